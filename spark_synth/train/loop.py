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

from spark_synth.model.argn import FlatARGN
from spark_synth.train.data import Samples


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


def auto_batch_size(n_rows: int) -> int:
    """Larger batches for larger tables (fewer, cheaper steps), ~100+ steps per epoch for small ones."""
    return int(min(2048, max(32, 2 ** round(math.log2(max(n_rows, 1) / 80)))))


def fit(
    model: torch.nn.Module,
    train_samples: Samples,
    val_samples: Samples,
    settings: TrainSettings,
    on_epoch: Callable[[int, dict], None] | None = None,
) -> TrainResult:
    """Train in place; the model ends with the weights of the best validation epoch.

    ``model(*samples.batch(index), before)`` returns the loss per sample; ``heads(model)`` is the
    :class:`FlatARGN` whose column order is randomised (the model itself, or an event model's heads).
    """
    start = time.monotonic()
    deadline = start + settings.max_minutes * 60
    generator = torch.Generator().manual_seed(settings.seed)
    argn = heads(model)
    n_columns = len(argn.config.column_slices)
    batch_size = settings.batch_size or auto_batch_size(len(train_samples))
    lr = settings.learning_rate or 1e-3 * math.sqrt(batch_size / 256)
    # fused: one kernel for all parameters instead of several passes per tensor (much cheaper per step on CPU)
    optimizer = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=settings.weight_decay, fused=True)
    scheduler = torch.optim.lr_scheduler.ReduceLROnPlateau(optimizer, factor=0.5, patience=settings.lr_patience)
    canonical = argn.precedence(argn.sub_order(list(range(n_columns))))
    val = val_samples if len(val_samples) else train_samples.head(max(1, len(train_samples) // 10))

    best_loss, best_epoch, best_state = math.inf, 0, copy.deepcopy(model.state_dict())
    history: list[dict] = []
    stopped_by, epoch, train_loss = "max_epochs", 0, math.nan
    steps_per_epoch = max(1, math.ceil(len(train_samples) / batch_size))
    interactive = sys.stderr.isatty()  # in logs (CI, spark-submit), one line every 30 s is enough
    bar = tqdm(total=None, disable=not settings.progress, unit="epoch", dynamic_ncols=True,
               mininterval=0.5 if interactive else 30.0)
    for epoch in range(1, settings.max_epochs + 1):
        model.train()
        permutation = torch.randperm(len(train_samples), generator=generator)
        total, out_of_time = 0.0, False
        for step in range(steps_per_epoch):
            batch = train_samples.batch(permutation[step * batch_size : (step + 1) * batch_size], generator)
            if torch.rand(1, generator=generator).item() < settings.canonical_order_share:
                before = canonical
            else:
                order = torch.randperm(n_columns, generator=generator).tolist()
                before = argn.precedence(argn.sub_order(order))
            loss = model(*batch, before).mean()
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            total += loss.item()
            if time.monotonic() > deadline:
                out_of_time = True
                break
        train_loss = total / (step + 1)
        val_loss = evaluate(model, val, canonical, batch_size=4 * batch_size)  # bounded memory for long sequences
        scheduler.step(val_loss)
        record = {"epoch": epoch, "train_loss": train_loss, "val_loss": val_loss,
                  "lr": optimizer.param_groups[0]["lr"], "elapsed_s": time.monotonic() - start}
        history.append(record)
        if on_epoch:
            on_epoch(epoch, record)
        if val_loss < best_loss - 1e-4:
            best_loss, best_epoch, best_state = val_loss, epoch, copy.deepcopy(model.state_dict())
        bar.update(1)
        bar.set_postfix(epoch=epoch, loss=f"{train_loss:.3f}", val_loss=f"{val_loss:.3f}",
                        best=f"{best_loss:.3f}", elapsed=f"{record['elapsed_s']:.0f}s")
        if out_of_time or time.monotonic() > deadline:
            stopped_by = "time_budget"
            break
        if epoch - best_epoch >= settings.patience:
            stopped_by = "early_stopping"
            break
    bar.close()
    model.load_state_dict(best_state)
    model.eval()
    return TrainResult(epochs=epoch, best_epoch=best_epoch, best_val_loss=best_loss, train_loss=train_loss,
                       seconds=time.monotonic() - start, stopped_by=stopped_by, history=history)


def heads(model: torch.nn.Module) -> FlatARGN:
    """The any-order network inside ``model`` (a flat model is its own)."""
    return model if isinstance(model, FlatARGN) else model.events


@torch.no_grad()
def evaluate(model: torch.nn.Module, samples: Samples, before: torch.Tensor, batch_size: int = 4096) -> float:
    """Mean loss per sample in table order (the order unconditional generation uses)."""
    model.eval()
    total = 0.0
    for i in range(0, len(samples), batch_size):
        total += model(*samples.batch(torch.arange(i, min(i + batch_size, len(samples)))), before).sum().item()
    return total / max(len(samples), 1)
