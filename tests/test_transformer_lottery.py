"""Transformers through the lottery driver: exact rewind of heads and owned parameters, reload."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from zoo_transformers import EncoderClassifier, SpectrogramViT

import lotterytrim as lt


@pytest.mark.parametrize(
    ("build", "shape"),
    [(SpectrogramViT, (2, 1, 16, 16)), (EncoderClassifier, (2, 10, 16))],
    ids=["vit", "encoder"],
)
def test_step_rewinds_exactly_and_reloads(build, shape, tmp_path: Path) -> None:
    torch.manual_seed(0)
    model, x = build().eval(), torch.randn(*shape)
    n0 = sum(p.numel() for p in model.parameters())
    trimmer = lt.LotteryTrimmer(model, x, "magnitude", 0.3)
    trimmer.capture_rewind()
    rewind = {k: v.clone() for k, v in model.state_dict().items()}
    for _ in range(3):
        trimmer.step()
    assert sum(p.numel() for p in model.parameters()) <= 0.6 * n0
    plan = trimmer.plan
    for name, tensor in model.state_dict().items():
        assert torch.equal(tensor, plan.apply_to_state_dict(rewind)[name]), name
    lt.save(model, tmp_path / "m.lt", trimmer)
    loaded = lt.load(tmp_path / "m.lt", build).eval()
    with torch.no_grad():
        torch.testing.assert_close(loaded(x), model(x))
