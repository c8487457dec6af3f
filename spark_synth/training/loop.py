"""The training loop: any-order batches, AdamW, reduce-on-plateau, early stopping, time budget.

Backend-agnostic on purpose: it sees tensors and a model, not Spark or processes, so the
distributed launchers wrap it instead of rewriting it.
"""

from __future__ import annotations

import copy
import math
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import torch
from tqdm.auto import tqdm

from spark_synth.faults import maybe_kill
from spark_synth.model.argn import FlatARGN
from spark_synth.training.checkpoint import Checkpointer
from spark_synth.training.collective import Collective
from spark_synth.training.data import Samples


@dataclass
class TrainSettings:
    max_minutes: float = 10.0
    max_epochs: int = 500
    batch_size: int | None = None  # None: sized to the data
    learning_rate: float | None = None  # None: scaled with the batch size
    weight_decay: float = 1e-4
    patience: int = 10  # epochs without validation improvement before stopping
    lr_patience: int = 3
    canonical_order_share: float = 0.25  # share of batches in table order; the rest use random orders
    seed: int = 0
    progress: bool = True


@dataclass
class TrainResult:
    epochs: int
    best_epoch: int
    best_val_loss: float | None  # None under DP: no validation loss is computed
    train_loss: float
    seconds: float
    stopped_by: str
    history: list[dict] = field(default_factory=list)
    resumed_at: int = 0  # the epoch (DP: step) a checkpoint resumed from; 0 for a run from the start


def auto_batch_size(n_rows: int) -> int:
    """Larger batches for larger tables (fewer, cheaper steps), ~100+ steps per epoch for small ones."""
    return int(min(2048, max(32, 2 ** round(math.log2(max(n_rows, 1) / 80)))))


@dataclass
class Placement:
    """Where and with whom this process trains: its ranks, its device, and where it checkpoints."""

    collective: Collective = field(default_factory=Collective)
    device: torch.device = field(default_factory=lambda: torch.device("cpu"))
    mixed_precision: bool = False  # bf16 autocast on CUDA (not under DP: clipping needs exact norms)
    checkpointer: Checkpointer | None = None
    phase: str = "model"  # which model of the job this is (an event log trains "subjects", then "events")

    @property
    def shows_progress(self) -> bool:
        return self.collective.rank == 0

    def autocast(self):
        enabled = self.mixed_precision and self.device.type == "cuda"
        return torch.autocast(self.device.type, dtype=torch.bfloat16, enabled=enabled)

    def to_device(self, batch: tuple[torch.Tensor, ...]) -> tuple[torch.Tensor, ...]:
        return tuple(t.to(self.device, non_blocking=True) for t in batch)


def fit(
    model: torch.nn.Module,
    train_samples: Samples,
    val_samples: Samples,
    settings: TrainSettings,
    on_epoch: Callable[[int, dict], None] | None = None,
    placement: Placement | None = None,
) -> TrainResult:
    """Train in place; the model ends with the weights of the best validation epoch.

    ``model(*samples.batch(index), before)`` returns the loss per sample; ``heads(model)`` is the
    :class:`FlatARGN` whose column order is randomised (the model itself, or an event model's heads).
    Across ranks, each rank holds its own samples: every step averages the ranks' gradients, the
    validation loss is summed over all ranks' validation samples, and every decision (column order,
    stop) is the same on all ranks, so their weights stay equal.
    """
    place = placement or Placement()
    group = place.collective
    start = time.monotonic()
    argn = heads(model)
    n_columns = len(argn.config.column_slices)
    n_total = round(group.sum_float(len(train_samples)))
    batch_size = settings.batch_size or auto_batch_size(n_total)  # the global batch
    steps_per_epoch = max(1, math.ceil(n_total / batch_size))
    local_batch = max(1, math.ceil(len(train_samples) / steps_per_epoch))
    lr = settings.learning_rate or 1e-3 * math.sqrt(batch_size / 256)
    # fused: one kernel for all parameters instead of several passes per tensor (much cheaper per step on CPU)
    optimizer = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=settings.weight_decay, fused=True)
    scheduler = torch.optim.lr_scheduler.ReduceLROnPlateau(optimizer, factor=0.5, patience=settings.lr_patience)
    orders = torch.Generator().manual_seed(settings.seed)  # column orders: the same draws on every rank
    local = torch.Generator().manual_seed(settings.seed + group.rank)  # this rank's shuffles and windows
    canonical = argn.precedence(argn.sub_order(list(range(n_columns)))).to(place.device)
    val = val_samples if len(val_samples) else train_samples.head(max(1, len(train_samples) // 10))

    best_loss, best_epoch, best_state = math.inf, 0, copy.deepcopy(model.state_dict())
    history: list[dict] = []
    stopped_by, first_epoch, train_loss, spent = "max_epochs", 1, math.nan, 0.0
    saved = place.checkpointer.load() if place.checkpointer else None
    if saved:
        model.load_state_dict(saved["model"])
        optimizer.load_state_dict(saved["optimizer"])
        scheduler.load_state_dict(saved["scheduler"])
        orders.set_state(saved["orders"])
        best_loss, best_epoch, best_state = saved["best_loss"], saved["best_epoch"], saved["best_state"]
        history, first_epoch, spent = saved["history"], saved["epoch"] + 1, saved["elapsed_s"]
    deadline = start + settings.max_minutes * 60 - spent  # a resumed run gets what the killed one left
    bar = progress_bar(settings, place, None, "epoch")
    epoch = first_epoch - 1
    for epoch in range(first_epoch, settings.max_epochs + 1):
        model.train()
        permutation = torch.randperm(len(train_samples), generator=local)
        total, out_of_time, samples = 0.0, False, 0.0
        for step in range(steps_per_epoch):
            maybe_kill(group.rank, (epoch - 1) * steps_per_epoch + step, place.phase)
            index = permutation[step * local_batch : (step + 1) * local_batch]
            if torch.rand(1, generator=orders).item() < settings.canonical_order_share:
                before = canonical
            else:
                order = torch.randperm(n_columns, generator=orders).tolist()
                before = argn.precedence(argn.sub_order(order)).to(place.device)
            optimizer.zero_grad(set_to_none=True)
            if len(index):
                with place.autocast():
                    loss = model(*place.to_device(train_samples.batch(index, local)), before).mean()
                loss.backward()
                total += loss.item()
                samples += len(index)
            _fill_missing_grads(model)  # a rank without samples this step still joins the average
            group.average_gradients(model.parameters())
            optimizer.step()
            if group.any(time.monotonic() > deadline):
                out_of_time = True
                break
        train_loss = group.sum_float(total / (step + 1)) / group.world_size
        samples = group.sum_float(samples)
        val_loss = evaluate(model, val, canonical, batch_size=4 * local_batch, placement=place)
        scheduler.step(val_loss)
        record = {"epoch": epoch, "train_loss": train_loss, "val_loss": val_loss, "samples": samples,
                  "lr": optimizer.param_groups[0]["lr"], "elapsed_s": time.monotonic() - start + spent}
        history.append(record)
        if on_epoch:
            on_epoch(epoch, record)
        if val_loss < best_loss - 1e-4:
            best_loss, best_epoch, best_state = val_loss, epoch, copy.deepcopy(model.state_dict())
        bar.update(1)
        bar.set_postfix(epoch=epoch, loss=f"{train_loss:.3f}", val_loss=f"{val_loss:.3f}",
                        best=f"{best_loss:.3f}", elapsed=f"{record['elapsed_s']:.0f}s")
        if out_of_time or group.any(time.monotonic() > deadline):
            stopped_by = "time_budget"
            break
        if epoch - best_epoch >= settings.patience:
            stopped_by = "early_stopping"
            break
        if place.checkpointer:
            place.checkpointer.save({"model": model.state_dict(), "optimizer": optimizer.state_dict(),
                                     "scheduler": scheduler.state_dict(), "orders": orders.get_state(),
                                     "best_loss": best_loss, "best_epoch": best_epoch, "best_state": best_state,
                                     "history": history, "epoch": epoch, "elapsed_s": record["elapsed_s"]})
    bar.close()
    model.load_state_dict(best_state)
    model.eval()
    return TrainResult(epochs=epoch, best_epoch=best_epoch, best_val_loss=best_loss, train_loss=train_loss,
                       seconds=time.monotonic() - start + spent, stopped_by=stopped_by, history=history,
                       resumed_at=first_epoch - 1)


def progress_bar(settings: TrainSettings, place: Placement, total: int | None, unit: str) -> tqdm:
    """One progress bar, on rank 0; in logs (CI, spark-submit) one line every 30 s is enough."""
    interactive = sys.stderr.isatty()
    return tqdm(total=total, disable=not (settings.progress and place.shows_progress), unit=unit,
                dynamic_ncols=True, mininterval=0.5 if interactive else 30.0)


def _fill_missing_grads(model: torch.nn.Module) -> None:
    for p in model.parameters():
        if p.requires_grad and p.grad is None:
            p.grad = torch.zeros_like(p)


def heads(model: torch.nn.Module) -> FlatARGN:
    """The any-order network inside ``model`` (a flat model is its own)."""
    return model if isinstance(model, FlatARGN) else model.events


@torch.no_grad()
def evaluate(model: torch.nn.Module, samples: Samples, before: torch.Tensor, batch_size: int = 4096,
             placement: Placement | None = None) -> float:
    """Mean loss per sample in table order (the order unconditional generation uses), over all ranks' samples."""
    place = placement or Placement()
    model.eval()
    total = 0.0
    for i in range(0, len(samples), batch_size):
        batch = place.to_device(samples.batch(torch.arange(i, min(i + batch_size, len(samples)))))
        with place.autocast():
            total += model(*batch, before).float().sum().item()
    sums = place.collective.all_reduce_sum(torch.tensor([total, len(samples)], dtype=torch.float64))
    return float(sums[0] / max(sums[1].item(), 1))
