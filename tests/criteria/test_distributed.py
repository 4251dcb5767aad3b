"""Two gloo ranks on CPU with different data end with the same plan and the same weights."""

from __future__ import annotations

import socket
import sys
from pathlib import Path

import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp
from safetensors import safe_open

pytestmark = pytest.mark.skipif(not dist.is_available(), reason="torch.distributed unavailable")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _worker(rank: int, world: int, port: int, out: str, sync: bool) -> None:
    here = Path(__file__).resolve().parents[1]  # tests/, beside src/
    sys.path[:0] = [str(here), str(here.parent / "src")]
    from safetensors.torch import save_file
    from zoo_patterns import ConvFlatten

    import lotterytrim as lt
    from lotterytrim.trimming.rewind import model_tensors

    dist.init_process_group(
        "gloo", init_method=f"tcp://127.0.0.1:{port}", rank=rank, world_size=world
    )
    try:
        for criterion in ("activation", "random"):
            torch.manual_seed(0)
            model = ConvFlatten()
            gen = torch.Generator().manual_seed(100 + rank)  # each rank its own data
            x, y = torch.randn(6, 1, 32, generator=gen), torch.randint(0, 5, (6,), generator=gen)
            trimmer = lt.LotteryTrimmer(
                model, x, criterion, 0.3, seed=7, sync_scores=None if sync else False
            )
            trimmer.capture_rewind()
            for _ in range(2):
                trimmer.step(data=[(x, y)])
            tensors = {k: v.detach().clone() for k, v in model_tensors(model).items()}
            meta = {"plan": trimmer.plan.to_json()}
            save_file(tensors, f"{out}/{criterion}{rank}.safetensors", metadata=meta)
    finally:
        dist.destroy_process_group()


def _read(path: Path) -> tuple[str, dict[str, torch.Tensor]]:
    with safe_open(str(path), "pt") as f:
        return f.metadata()["plan"], {k: f.get_tensor(k) for k in f.keys()}  # noqa: SIM118


def test_ranks_agree(tmp_path):
    mp.spawn(_worker, args=(2, _free_port(), str(tmp_path), True), nprocs=2, join=True)
    for criterion in ("activation", "random"):
        plan_a, a = _read(tmp_path / f"{criterion}0.safetensors")
        plan_b, b = _read(tmp_path / f"{criterion}1.safetensors")
        assert plan_a == plan_b, criterion
        assert set(a) == set(b)
        for k in a:
            assert torch.equal(a[k], b[k]), (criterion, k)


def test_synced_scores_are_the_sum(tmp_path):
    from lotterytrim.criteria.distributed import all_reduce_scores, is_distributed

    assert not is_distributed()
    scores = {0: torch.ones(3)}
    assert all_reduce_scores(scores) is scores
