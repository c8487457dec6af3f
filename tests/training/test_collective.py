"""Data-parallel arithmetic on 2 real gloo processes, for both transports (torch.distributed, Horovod):
one step on two halves of a batch equals one process's step on the whole batch, and DP noise is added once."""

from __future__ import annotations

import os
import socket
from pathlib import Path

import pytest
import torch
import torch.multiprocessing as mp

from spark_synth.model.argn import FlatARGN, ModelConfig
from spark_synth.training.clipping import clipped_gradient_sum
from spark_synth.training.collective import Collective, HorovodCollective, TorchCollective

BATCH = 64
CARDS = [3, 5, 7, 2]


def _model() -> FlatARGN:
    torch.manual_seed(0)
    return FlatARGN(ModelConfig(cardinalities=CARDS, column_slices=[(0, 1), (1, 2), (2, 4)], hidden=16, dropout=0.0))


def _batch() -> torch.Tensor:
    generator = torch.Generator().manual_seed(1)
    return torch.stack([torch.randint(0, c, (BATCH,), generator=generator) for c in CARDS], dim=1)


def _step(group: Collective, codes: torch.Tensor, mode: str) -> dict[str, torch.Tensor]:
    """One training step on ``codes`` (this rank's part); returns the gradients (plain) or new weights (dp)."""
    model = _model()
    before = model.precedence(model.sub_order([2, 0, 1]))
    if mode == "plain":
        model(codes, before).mean().backward()
        group.average_gradients(model.parameters())
        return {k: p.grad.clone() for k, p in model.named_parameters()}
    clipped_gradient_sum(model, (codes,), before, max_norm=0.5)
    noise = 0.0 if mode == "dp" else 1.0
    optimizer = group.dp_optimizer(torch.optim.SGD(model.parameters(), lr=1.0), noise, 0.5, float(BATCH),
                                   torch.Generator().manual_seed(123))
    optimizer.step()
    return {k: p.detach().clone() for k, p in model.named_parameters()}


def _my_half(rank: int, world: int) -> torch.Tensor:
    return _batch().chunk(world)[rank]


def _torch_worker(rank: int, world: int, port: int, mode: str, out: str) -> None:
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port), RANK=str(rank), WORLD_SIZE=str(world))
    torch.set_num_threads(1)
    group = TorchCollective(torch.device("cpu"))
    try:
        torch.save(_step(group, _my_half(rank, world), mode), os.path.join(out, f"{rank}.pt"))
    finally:
        group.close()


def _horovod_worker(mode: str, out: str) -> None:
    torch.set_num_threads(1)
    group = HorovodCollective()
    try:
        torch.save(_step(group, _my_half(group.rank, group.world_size), mode), os.path.join(out, f"{group.rank}.pt"))
    finally:
        group.close()


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _run_two(transport: str, mode: str, out: Path) -> list[dict[str, torch.Tensor]]:
    # the worker processes import this module by name
    os.environ["PYTHONPATH"] = os.pathsep.join([str(Path(__file__).parent), os.environ.get("PYTHONPATH", "")])
    if transport == "torch":
        mp.spawn(_torch_worker, args=(2, _free_port(), mode, str(out)), nprocs=2, join=True)
    else:
        from horovod.runner import run

        run(_horovod_worker, args=(mode, str(out)), num_proc=2, hosts="localhost:2", use_gloo=True, verbose=0)
    return [torch.load(out / f"{r}.pt", weights_only=True) for r in range(2)]


@pytest.mark.parametrize("transport", ["torch", "horovod"])
@pytest.mark.parametrize("mode", ["plain", "dp"])
def test_two_processes_update_like_one_process_on_the_union(transport: str, mode: str, tmp_path: Path) -> None:
    ranks = _run_two(transport, mode, tmp_path)
    union = _step(Collective(), _batch(), mode)
    for name, expected in union.items():
        assert torch.equal(ranks[0][name], ranks[1][name]), f"{name} differs between ranks"
        torch.testing.assert_close(ranks[0][name], expected, rtol=1e-5, atol=1e-6, msg=f"{name}: 2 ranks != union")
    assert any(v.abs().sum() > 0 for v in union.values())  # the step did something


@pytest.mark.parametrize("transport", ["torch", "horovod"])
def test_dp_noise_is_added_once_across_ranks(transport: str, tmp_path: Path) -> None:
    """With noise, the update differs from the noiseless one by one draw of std sigma*C/B, not two."""
    ranks = _run_two(transport, "noisy", tmp_path)
    clean = _step(Collective(), _batch(), "dp")
    assert all(torch.equal(ranks[0][k], ranks[1][k]) for k in clean)
    deviation = torch.cat([(ranks[0][k] - clean[k]).reshape(-1) for k in clean])
    expected_std = 1.0 * 0.5 / BATCH  # noise multiplier x clipping norm / expected batch, times lr = 1
    assert deviation.std().item() == pytest.approx(expected_std, rel=0.1)
