"""The training loop: any-order batches, AdamW, reduce-on-plateau, early stopping, time budget.

Backend-agnostic on purpose: it sees tensors and a model, not Spark or processes, so the
distributed launchers wrap it instead of rewriting it. One :class:`Trainer` owns the loop (restore,
deadline, fault injection, column orders, history, checkpoints); :class:`PlainTrainer` here and
:class:`spark_synth.training.private.PrivateTrainer` (DP-SGD) only say how a step is taken, what an
epoch records and when to stop, the way Opacus subclasses one optimizer rather than rewriting it.
"""

from __future__ import annotations

import copy
import math
import sys
import time
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterable, Iterator
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


class Trainer(ABC):
    """The loop every training shares; a subclass says how batches are drawn, how a step is taken, what an
    epoch's record holds, when to stop, what a checkpoint holds and what the result is.

    One skeleton, so that restoring, the time budget, fault injection, the column orders, the history and
    the checkpoints behave alike with and without DP. The column orders come from ``settings.seed`` alone:
    every rank draws the same ones, so their weights stay equal.
    """

    unit = "epoch"  # what the progress bar counts
    stopped_by = "max_epochs"  # when the epochs run out without a stop decision

    def __init__(self, model: torch.nn.Module, settings: TrainSettings, placement: Placement | None = None,
                 on_epoch: Callable[[int, dict], None] | None = None) -> None:
        self.model, self.settings, self.on_epoch = model, settings, on_epoch
        self.place = placement or Placement()
        self.group = self.place.collective
        self.start = time.monotonic()
        self.argn = heads(model)
        self.n_columns = len(self.argn.config.column_slices)
        self.orders = torch.Generator().manual_seed(settings.seed)  # column orders: the same draws on every rank
        self.canonical = self.argn.precedence(self.argn.sub_order(list(range(self.n_columns)))).to(self.place.device)
        self.history: list[dict] = []
        self.steps_taken, self.epoch, self.resumed_at, self.spent = 0, 0, 0, 0.0

    def column_order(self) -> torch.Tensor:
        """The next step's ``before`` mask: the table order for a share of the steps, a random order otherwise."""
        if torch.rand(1, generator=self.orders).item() < self.settings.canonical_order_share:
            return self.canonical
        order = torch.randperm(self.n_columns, generator=self.orders).tolist()
        return self.argn.precedence(self.argn.sub_order(order)).to(self.place.device)

    def elapsed(self) -> float:
        """Seconds of training, a killed run's included."""
        return time.monotonic() - self.start + self.spent

    def run(self) -> TrainResult:
        saved = self.place.checkpointer.load() if self.place.checkpointer else None
        if saved:
            self.restore(saved)
            self.orders.set_state(saved["orders"])
            self.history, self.spent = saved["history"], saved["elapsed_s"]
        deadline = self.start + self.settings.max_minutes * 60 - self.spent  # a resumed run gets what was left
        bar = progress_bar(self.settings, self.place, self.bar_total(), self.unit)
        bar.update(self.bar_position())
        for epoch in self.epochs():
            self.epoch = epoch
            self.model.train()
            out_of_time = False
            for index in self.batches(epoch):
                maybe_kill(self.group.rank, self.steps_taken, self.place.phase)
                self.step(index, self.column_order())
                self.steps_taken += 1
                if self.group.any(time.monotonic() > deadline):  # every rank stops at the same step
                    out_of_time = True
                    break
            record = {**self.epoch_record(epoch), "elapsed_s": self.elapsed()}
            self.history.append(record)
            if self.on_epoch:
                self.on_epoch(record["epoch"], record)
            bar.update(self.bar_position() - bar.n)
            bar.set_postfix(**self.postfix(record), elapsed=f"{record['elapsed_s']:.0f}s")
            stop = self.stop(out_of_time or self.group.any(time.monotonic() > deadline))
            if stop:
                self.stopped_by = stop
                break
            if self.place.checkpointer:
                self.place.checkpointer.save({**self.checkpoint(), "orders": self.orders.get_state(),
                                              "history": self.history, "elapsed_s": record["elapsed_s"]})
        bar.close()
        return self.finish()

    # what a subclass says
    @abstractmethod
    def restore(self, saved: dict) -> None:
        """Load the subclass's state from a checkpoint (the orders, history and time are the loop's)."""
        raise NotImplementedError

    @abstractmethod
    def epochs(self) -> Iterator[int]:
        """The epochs still to train (after :meth:`restore`)."""
        raise NotImplementedError

    @abstractmethod
    def batches(self, epoch: int) -> Iterable[torch.Tensor]:
        """This epoch's batches of sample indices, drawn as the subclass draws them."""
        raise NotImplementedError

    @abstractmethod
    def step(self, index: torch.Tensor, before: torch.Tensor) -> None:
        """One optimizer step on the samples ``index`` in the column order ``before``."""
        raise NotImplementedError

    @abstractmethod
    def epoch_record(self, epoch: int) -> dict:
        """The history record of the epoch just trained ("epoch" included; the loop adds "elapsed_s")."""
        raise NotImplementedError

    def postfix(self, record: dict) -> dict:
        """What the progress bar shows of a record."""
        return {}

    @abstractmethod
    def stop(self, out_of_time: bool) -> str | None:
        """Why training stops after this epoch (``stopped_by``), or None to go on."""
        raise NotImplementedError

    @abstractmethod
    def checkpoint(self) -> dict:
        """The subclass's state to save (the loop adds the orders, the history and the time)."""
        raise NotImplementedError

    @abstractmethod
    def finish(self) -> TrainResult:
        """Leave the model ready for sampling and say how training went."""
        raise NotImplementedError

    def bar_total(self) -> int | None:
        return None

    def bar_position(self) -> int:
        """How far the progress bar is: epochs done (a resumed run's included)."""
        return len(self.history)


class PlainTrainer(Trainer):
    """Shuffled epochs, AdamW, reduce-on-plateau, the best validation epoch's weights, early stopping.

    Across ranks, each rank holds its own samples: every step averages the ranks' gradients, the
    validation loss is summed over all ranks' validation samples, and every decision (column order,
    stop) is the same on all ranks, so their weights stay equal.
    """

    def __init__(self, model: torch.nn.Module, train_samples: Samples, val_samples: Samples,
                 settings: TrainSettings, on_epoch: Callable[[int, dict], None] | None = None,
                 placement: Placement | None = None) -> None:
        super().__init__(model, settings, placement, on_epoch)
        self.samples = train_samples
        n_total = round(self.group.sum_float(len(train_samples)))
        self.batch_size = settings.batch_size or auto_batch_size(n_total)  # the global batch
        self.steps_per_epoch = max(1, math.ceil(n_total / self.batch_size))
        self.local_batch = max(1, math.ceil(len(train_samples) / self.steps_per_epoch))
        lr = settings.learning_rate or 1e-3 * math.sqrt(self.batch_size / 256)
        # fused: one kernel for all parameters instead of several passes per tensor (much cheaper per step on CPU)
        self.optimizer = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=settings.weight_decay, fused=True)
        self.scheduler = torch.optim.lr_scheduler.ReduceLROnPlateau(self.optimizer, factor=0.5,
                                                                    patience=settings.lr_patience)
        self.local = torch.Generator().manual_seed(settings.seed + self.group.rank)  # this rank's shuffles, windows
        self.val = val_samples if len(val_samples) else train_samples.head(max(1, len(train_samples) // 10))
        self.best_loss, self.best_epoch, self.best_state = math.inf, 0, copy.deepcopy(model.state_dict())
        self.total, self.samples_seen, self.epoch_steps, self.train_loss = 0.0, 0.0, 0, math.nan

    def restore(self, saved: dict) -> None:
        self.model.load_state_dict(saved["model"])
        self.optimizer.load_state_dict(saved["optimizer"])
        self.scheduler.load_state_dict(saved["scheduler"])
        self.best_loss, self.best_epoch, self.best_state = saved["best_loss"], saved["best_epoch"], saved["best_state"]
        self.epoch = self.resumed_at = saved["epoch"]
        self.steps_taken = saved["epoch"] * self.steps_per_epoch

    def epochs(self) -> Iterator[int]:
        return iter(range(self.epoch + 1, self.settings.max_epochs + 1))

    def batches(self, epoch: int) -> Iterator[torch.Tensor]:
        self.total, self.samples_seen, self.epoch_steps = 0.0, 0.0, 0
        permutation = torch.randperm(len(self.samples), generator=self.local)
        return (permutation[s * self.local_batch : (s + 1) * self.local_batch] for s in range(self.steps_per_epoch))

    def step(self, index: torch.Tensor, before: torch.Tensor) -> None:
        self.optimizer.zero_grad(set_to_none=True)
        if len(index):
            with self.place.autocast():
                loss = self.model(*self.place.to_device(self.samples.batch(index, self.local)), before).mean()
            loss.backward()
            self.total += loss.item()
            self.samples_seen += len(index)
        _fill_missing_grads(self.model)  # a rank without samples this step still joins the average
        self.group.average_gradients(self.model.parameters())
        self.optimizer.step()
        self.epoch_steps += 1

    def epoch_record(self, epoch: int) -> dict:
        group = self.group
        self.train_loss = group.sum_float(self.total / self.epoch_steps) / group.world_size
        samples = group.sum_float(self.samples_seen)
        val_loss = evaluate(self.model, self.val, self.canonical, batch_size=4 * self.local_batch,
                            placement=self.place)
        self.scheduler.step(val_loss)
        if val_loss < self.best_loss - 1e-4:
            self.best_loss, self.best_epoch, self.best_state = val_loss, epoch, copy.deepcopy(self.model.state_dict())
        return {"epoch": epoch, "train_loss": self.train_loss, "val_loss": val_loss, "samples": samples,
                "lr": self.optimizer.param_groups[0]["lr"]}

    def postfix(self, record: dict) -> dict:
        return {"epoch": record["epoch"], "loss": f"{record['train_loss']:.3f}",
                "val_loss": f"{record['val_loss']:.3f}", "best": f"{self.best_loss:.3f}"}

    def stop(self, out_of_time: bool) -> str | None:
        if out_of_time:
            return "time_budget"
        if self.epoch - self.best_epoch >= self.settings.patience:
            return "early_stopping"
        return "max_epochs" if self.epoch >= self.settings.max_epochs else None

    def checkpoint(self) -> dict:
        return {"model": self.model.state_dict(), "optimizer": self.optimizer.state_dict(),
                "scheduler": self.scheduler.state_dict(), "best_loss": self.best_loss, "best_epoch": self.best_epoch,
                "best_state": self.best_state, "epoch": self.epoch}

    def finish(self) -> TrainResult:
        self.model.load_state_dict(self.best_state)
        self.model.eval()
        return TrainResult(epochs=self.epoch, best_epoch=self.best_epoch, best_val_loss=self.best_loss,
                           train_loss=self.train_loss, seconds=self.elapsed(), stopped_by=self.stopped_by,
                           history=self.history, resumed_at=self.resumed_at)


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
    """
    return PlainTrainer(model, train_samples, val_samples, settings, on_epoch, placement).run()


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
