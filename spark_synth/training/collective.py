"""How training ranks agree: sums across processes, rank 0's tensors, and DP noise added exactly once.

One interface, three transports: a single process (no communication), ``torch.distributed``
(gloo on CPU, NCCL on CUDA; what TorchDistributor starts) and Horovod (gloo). The training loops
are written once against it, so every backend runs the same arithmetic.

DP under data parallelism: each rank clips its own samples' gradients and sums them; the sums are
added across ranks, Gaussian noise is added once (on rank 0 only), and the total is divided by the
expected *global* batch. That is exactly one process's DP-SGD step on the union of the batches.
"""

from __future__ import annotations

import os
from collections.abc import Iterable

import torch
from opacus.optimizers import DPOptimizerFastGradientClipping
from torch.optim import Optimizer


class Collective:
    """A single process: every operation is the identity."""

    rank = 0
    world_size = 1
    local_rank = 0
    local_world_size = 1
    name = "local"

    def all_reduce_sum(self, tensor: torch.Tensor) -> torch.Tensor:
        """Sum ``tensor`` across ranks, in place; returns it."""
        return tensor

    def broadcast(self, tensor: torch.Tensor, root: int = 0) -> torch.Tensor:
        """Overwrite ``tensor`` with rank ``root``'s, in place; returns it."""
        return tensor

    def close(self) -> None:
        pass

    # ---- built on the two primitives ----------------------------------------------------
    def sum_float(self, value: float) -> float:
        return float(self.all_reduce_sum(torch.tensor([value], dtype=torch.float64))[0])

    def any(self, flag: bool) -> bool:
        """True on every rank when any rank says so: ranks must stop at the same step."""
        if self.world_size == 1:
            return flag
        return self.sum_float(float(flag)) > 0

    def average_gradients(self, parameters: Iterable[torch.nn.Parameter]) -> None:
        """Mean of the ranks' gradients, in one flat message."""
        if self.world_size == 1:
            return
        grads = [p.grad for p in parameters if p.grad is not None]
        flat = self._reduce_flat(grads)
        flat /= self.world_size
        _unflatten_into(flat, grads)

    def broadcast_parameters(self, module: torch.nn.Module, root: int = 0) -> None:
        """Every rank starts from rank ``root``'s weights and buffers."""
        if self.world_size == 1:
            return
        tensors = [t.data for t in (*module.parameters(), *module.buffers()) if t.is_floating_point()]
        flat = torch.cat([t.reshape(-1) for t in tensors])
        self.broadcast(flat, root)
        _unflatten_into(flat, tensors)

    def dp_optimizer(self, optimizer: Optimizer, noise_multiplier: float, max_grad_norm: float,
                     expected_batch: float, generator: torch.Generator) -> DPOptimizerFastGradientClipping:
        """Opacus' optimizer with gradients summed across ranks and the noise added once.

        ``expected_batch`` is the global expected batch; ``p.grad`` must hold this rank's sum of
        clipped per-sample gradients when ``step()`` is called.
        """
        if self.world_size == 1:
            return DPOptimizerFastGradientClipping(optimizer, noise_multiplier=noise_multiplier,
                                                   max_grad_norm=max_grad_norm, expected_batch_size=expected_batch,
                                                   loss_reduction="mean", generator=generator)
        return CollectiveDPOptimizer(self, optimizer, noise_multiplier=noise_multiplier, max_grad_norm=max_grad_norm,
                                     expected_batch_size=expected_batch / self.world_size, loss_reduction="mean",
                                     generator=generator)

    def _reduce_flat(self, tensors: list[torch.Tensor]) -> torch.Tensor:
        flat = torch.cat([t.reshape(-1) for t in tensors])
        return self.all_reduce_sum(flat)


class TorchCollective(Collective):
    """``torch.distributed``, as TorchDistributor (torchrun) sets it up through environment variables."""

    name = "torch-distributor"

    def __init__(self, device: torch.device) -> None:
        import torch.distributed as dist

        if not dist.is_initialized():
            dist.init_process_group(backend="nccl" if device.type == "cuda" else "gloo")
        # NCCL reduces device tensors only; the loop's bookkeeping tensors (counts, losses) live on the host
        self.device = device if dist.get_backend() == "nccl" else torch.device("cpu")
        self.dist = dist
        self.rank, self.world_size = dist.get_rank(), dist.get_world_size()
        self.local_rank = int(os.environ.get("LOCAL_RANK", 0))
        self.local_world_size = int(os.environ.get("LOCAL_WORLD_SIZE", 1))

    def all_reduce_sum(self, tensor: torch.Tensor) -> torch.Tensor:
        moved = tensor.to(self.device)
        self.dist.all_reduce(moved, op=self.dist.ReduceOp.SUM)
        return tensor.copy_(moved) if moved is not tensor else tensor

    def broadcast(self, tensor: torch.Tensor, root: int = 0) -> torch.Tensor:
        moved = tensor.to(self.device)
        self.dist.broadcast(moved, src=root)
        return tensor.copy_(moved) if moved is not tensor else tensor

    def dp_optimizer(self, optimizer: Optimizer, noise_multiplier: float, max_grad_norm: float,
                     expected_batch: float, generator: torch.Generator) -> DPOptimizerFastGradientClipping:
        """Opacus' own distributed optimizer: noise on rank 0, gradients summed with torch.distributed."""
        from opacus.optimizers import DistributedDPOptimizerFastGradientClipping

        if self.world_size == 1:
            return super().dp_optimizer(optimizer, noise_multiplier, max_grad_norm, expected_batch, generator)
        return DistributedDPOptimizerFastGradientClipping(
            optimizer, noise_multiplier=noise_multiplier, max_grad_norm=max_grad_norm,
            expected_batch_size=expected_batch / self.world_size, loss_reduction="mean", generator=generator)

    def close(self) -> None:
        if self.dist.is_initialized():
            self.dist.destroy_process_group()


class HorovodCollective(Collective):
    """Horovod's collectives; tensors go through host memory when Horovod was built without GPU operations."""

    name = "horovod"

    def __init__(self) -> None:
        import horovod.torch as hvd

        hvd.init()
        self.hvd = hvd
        self.rank, self.world_size = hvd.rank(), hvd.size()
        self.local_rank, self.local_world_size = hvd.local_rank(), hvd.local_size()
        self.on_host = not hvd.nccl_built()

    def all_reduce_sum(self, tensor: torch.Tensor) -> torch.Tensor:
        if self.on_host and tensor.is_cuda:
            tensor.copy_(self.hvd.allreduce(tensor.cpu(), op=self.hvd.Sum))
        else:
            self.hvd.allreduce_(tensor, op=self.hvd.Sum)
        return tensor

    def broadcast(self, tensor: torch.Tensor, root: int = 0) -> torch.Tensor:
        if self.on_host and tensor.is_cuda:
            tensor.copy_(self.hvd.broadcast(tensor.cpu(), root_rank=root))
        else:
            self.hvd.broadcast_(tensor, root_rank=root)
        return tensor

    def close(self) -> None:
        self.hvd.shutdown()


class CollectiveDPOptimizer(DPOptimizerFastGradientClipping):
    """DP-SGD across ranks for any :class:`Collective` (the glue Opacus has for torch.distributed only).

    Rank 0 adds the noise to its clipped sum, the others add none; the sums are added across ranks
    in one message and divided by the world size (each rank already divided by its share of the
    expected batch), which gives (sum of all clipped gradients + one noise draw) / global batch.
    """

    def __init__(self, collective: Collective, optimizer: Optimizer, **kwargs) -> None:
        super().__init__(optimizer, **kwargs)
        self.collective = collective

    def add_noise(self) -> None:
        if self.collective.rank == 0:
            super().add_noise()
        else:
            for p in self.params:
                p.grad = p.summed_grad.view_as(p)

    def step(self, closure=None):
        if closure is not None:
            with torch.enable_grad():
                closure()
        if not self.pre_step():
            return None
        grads = [p.grad for p in self.params if p.requires_grad]
        flat = self.collective._reduce_flat(grads)
        flat /= self.collective.world_size
        _unflatten_into(flat, grads)
        return self.original_optimizer.step()


def _unflatten_into(flat: torch.Tensor, tensors: list[torch.Tensor]) -> None:
    offset = 0
    for t in tensors:
        t.copy_(flat[offset:offset + t.numel()].view_as(t))
        offset += t.numel()
