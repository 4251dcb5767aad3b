"""Transformers through the lottery driver: exact rewind of heads and owned parameters, reload."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from test_crafted_files import _attr, _rewrite
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


def _heads_trimmed(tmp_path: Path) -> tuple[Path, torch.nn.Module, torch.Tensor]:
    """A spectrogram ViT with heads removed from its hand-written attention, saved."""
    torch.manual_seed(0)
    model, x = SpectrogramViT().eval(), torch.randn(2, 1, 16, 16)
    trimmer = lt.LotteryTrimmer(
        model, x, "magnitude", 0.4, method="finetune", safeguards={"cost": "params"}
    )
    while all(b.attn.num_heads == 4 for b in model.blocks):
        trimmer.step()
    path = tmp_path / "heads.lt"
    lt.save(model, path, trimmer)
    return path, model, x


def test_removed_attention_heads_reload(tmp_path: Path) -> None:
    path, model, x = _heads_trimmed(tmp_path)
    loaded = lt.load(path, SpectrogramViT).eval()
    for got, want in zip(loaded.blocks, model.blocks, strict=True):
        assert (got.attn.num_heads, got.attn.query.out_features) == (
            want.attn.num_heads,
            want.attn.query.out_features,
        )
    with torch.no_grad():
        torch.testing.assert_close(loaded(x), model(x))


@pytest.mark.parametrize("attribute", ["num_heads", "head_dim"])
def test_head_counts_that_do_not_fit_are_refused(tmp_path: Path, attribute: str) -> None:
    path, model, _ = _heads_trimmed(tmp_path)
    block = next(i for i, b in enumerate(model.blocks) if b.attn.num_heads < 4)
    value = getattr(model.blocks[block].attn, attribute) + 1
    bad = tmp_path / "bad.lt"
    _rewrite(path, bad, _attr(f"blocks.{block}.attn", **{attribute: value}))
    match = f"{attribute}={value} of attention module" if attribute == "num_heads" else "may only"
    with pytest.raises(lt.errors.LoadError, match=match):
        lt.load(bad, SpectrogramViT)
