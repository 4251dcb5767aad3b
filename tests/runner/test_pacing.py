"""Pacings of a lottery cell: iterative (plain names), @oneshot and @earlybird levels, their
cost columns, resuming, and the names and run directories they leave alone."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest
import torch
from test_cells import _pool, _same_file
from test_lottery import TRAIN, Net, Recorder, _lottery
from torch import nn

import lotterytrim as lt
from lotterytrim.storage.files import read_tensors
from lotterytrim.storage.io import saved_metadata

AMOUNT = 0.3
# the costliest unit of Net: a conv2 channel (12 x 3 weights, a bias, 24 fc inputs)
UNIT = 12 * 3 + 1 + 24
LAYERS = ["conv1", "conv2", "fc"]  # the prunable groups of Net


class Handed(Recorder):
    """Trains as ``Recorder`` does, after keeping what each level was handed (its tensors)."""

    def __init__(self, epochs: int = 2, crash_at: tuple[str, int] | None = None) -> None:
        super().__init__(epochs, crash_at)
        self.handed: dict[tuple[str, int], dict[str, torch.Tensor]] = {}

    def __call__(self, model: nn.Module, ctx: lt.LevelContext) -> None:
        state = {k: v.detach().clone() for k, v in model.state_dict().items()}
        self.handed[ctx.method, ctx.level] = state
        super().__call__(model, ctx)


class Settling(Recorder):
    """The reference trains for ``moving`` epochs, then stays still, so its keep-sets settle;
    it runs its own monitors (one per level) and keeps its state after every epoch. Later
    levels train for 2 epochs, as ``Recorder`` does."""

    def __init__(
        self,
        epochs: int = 6,
        moving: int = 2,
        window: int = 2,
        levels: int = 2,
        losses: list[float] | None = None,
        stop: int | None = None,
    ):
        super().__init__(2)
        self.ref_epochs = epochs
        self.losses = losses  # reported to the runner after each reference epoch when given
        self.stop = stop  # leave the epoch loop after this many epochs (early stopping)
        self.moving, self.window, self.levels = moving, window, levels
        self.settled_at: dict[int, int | None] = {}
        self.distances: dict[int, list[float]] = {}
        self.states: list[dict[str, torch.Tensor]] = []

    def __call__(self, model: nn.Module, ctx: lt.LevelContext) -> None:
        if ctx.level:
            return super().__call__(model, ctx)
        trimmer = lt.LotteryTrimmer(model, TRAIN[0][:4], "magnitude", AMOUNT)
        birds = {
            level: lt.EarlyBird(trimmer, (1 - AMOUNT) ** level, window=self.window)
            for level in range(1, self.levels + 1)
        }
        opt = torch.optim.Adam(model.parameters(), lr=1e-2)
        x, y = TRAIN
        for epoch in ctx.epochs(self.ref_epochs):
            if epoch < self.moving:
                for idx in torch.randperm(len(x)).split(32):
                    opt.zero_grad()
                    nn.functional.cross_entropy(model(x[idx]), y[idx]).backward()
                    opt.step()
            for bird in birds.values():
                bird.update()
            if self.losses is not None:
                ctx.report_loss(self.losses[epoch])
            self.states.append({k: v.detach().clone() for k, v in model.state_dict().items()})
            if epoch + 1 == self.stop:
                break
        self.settled_at = {level: bird.settled_at for level, bird in birds.items()}
        self.distances = {level: bird.distances for level, bird in birds.items()}


def _params(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


def _rows(results: pd.DataFrame, method: str) -> pd.DataFrame:
    return results[results.method == method].sort_values("level").reset_index(drop=True)


def test_oneshot_levels_are_the_reference_trimmed_to_their_size(tmp_path: Path) -> None:
    train = Handed()
    lottery = _lottery(tmp_path, train, methods=("lrr", "lrr@oneshot"), levels=3)
    results = lottery.run()
    oneshot, iterative = _rows(results, "lrr@oneshot"), _rows(results, "lrr")
    assert len(oneshot) == 4 and oneshot["level"].tolist() == [0, 1, 2, 3]
    params0 = int(oneshot["params"][0])
    ref_file = lottery.directory / "replicate-0" / "reference.lt"
    for level in (1, 2, 3):
        keep = (1 - AMOUNT) ** level
        assert abs(oneshot["params"][level] - keep * params0) <= UNIT
        # what train was handed is the trained reference trimmed straight to the size
        model, trimmer = lottery.from_file(ref_file, 0, "lrr@oneshot", "magnitude", True)
        trimmer.trim_to(keep, data=lottery.data)
        handed = train.handed["lrr@oneshot", level]
        assert _params(model) == oneshot["params"][level]
        assert sorted(handed) == sorted(model.state_dict())
        for name, value in model.state_dict().items():
            assert torch.equal(handed[name], value), (level, name)
        loaded = lt.load(lottery.directory / oneshot["path"][level], Net)
        assert _params(loaded) == oneshot["params"][level]
    # one retraining per level, each from the reference: no level's file is another's source
    assert [c[3] for c in train.calls if c[0] == "lrr@oneshot"] == [1, 2, 3]
    assert set(results["method"]) == {"lrr", "lrr@oneshot"}
    assert iterative["params"][3] < iterative["params"][0]
    assert "drawn_epoch" not in oneshot.columns or oneshot["drawn_epoch"].isna().all()


def test_cost_columns_add_up(tmp_path: Path) -> None:
    lottery = _lottery(
        tmp_path,
        Settling(epochs=6, moving=2, window=2, levels=2),
        methods=("lrr", "lrr@oneshot", "lrr@earlybird"),
        earlybird={"window": 2},
    )
    results = lottery.run()
    ref = results[results.level == 0].iloc[0]
    assert ref["train_epochs"] == 6 and ref["total_epochs"] == 6
    assert ref["total_seconds"] == pytest.approx(ref["seconds"])
    it = _rows(results, "lrr")
    assert it["train_epochs"].tolist() == [6, 2, 2]
    assert it["total_epochs"].tolist() == [6, 8, 10]
    assert it["total_seconds"].tolist() == pytest.approx(it["seconds"].cumsum().tolist())
    one = _rows(results, "lrr@oneshot")
    assert one["total_epochs"].tolist() == [6, 8, 8]
    want = [ref["seconds"]] + [ref["seconds"] + s for s in one["seconds"][1:]]
    assert one["total_seconds"].tolist() == pytest.approx(want)
    bird = _rows(results, "lrr@earlybird").iloc[1:]
    assert (bird["total_epochs"] == bird["drawn_epoch"] + 2).all()
    share = ref["seconds"] * bird["drawn_epoch"] / 6
    assert bird["total_seconds"].tolist() == pytest.approx((share + bird["seconds"]).tolist())
    for column in ("train_epochs", "total_epochs", "total_seconds"):
        assert results[column].notna().all(), column


def test_earlybird_levels_start_from_the_snapshot_drawn_when_the_monitor_settled(
    tmp_path: Path,
) -> None:
    train = Settling(epochs=6, moving=2, window=2, levels=2)
    handed = Handed()

    def both(model: nn.Module, ctx: lt.LevelContext) -> None:
        if ctx.level and ctx.method.endswith("@earlybird"):
            handed.handed[ctx.method, ctx.level] = {
                k: v.detach().clone() for k, v in model.state_dict().items()
            }
        train(model, ctx)

    lottery = _lottery(tmp_path, both, methods=("lrr@earlybird",), earlybird={"window": 2})
    results = lottery.run()
    rows = _rows(results, "lrr@earlybird")
    folder = lottery.directory / "replicate-0"
    for level in (1, 2):
        drawn = int(rows["drawn_epoch"][level])
        assert train.settled_at[level] is not None and rows["settled"][level] == 1
        assert drawn == train.settled_at[level] + 1 <= train.moving + train.window + 1
        snapshot = folder / f"earlybird-magnitude-level-{level:02d}.lt"
        assert saved_metadata(snapshot)["drawn_epoch"] == drawn
        state = lt.load(snapshot, Net).state_dict()
        for name, value in state.items():
            assert torch.equal(value, train.states[drawn - 1][name]), (level, name)
        model, trimmer = lottery.from_file(snapshot, 0, "lrr@earlybird", "magnitude", True)
        trimmer.trim_to((1 - AMOUNT) ** level, data=lottery.data)
        got = handed.handed["lrr@earlybird", level]
        assert all(torch.equal(got[k], v) for k, v in model.state_dict().items())
        assert abs(rows["params"][level] - (1 - AMOUNT) ** level * rows["params"][0]) <= UNIT


def _curves(lottery: lt.Lottery, replicate: int = 0) -> tuple[dict, dict]:
    """A replicate's curves file, and its monitors by (criterion, level)."""
    curves = json.loads(
        (lottery.directory / f"replicate-{replicate}" / "earlybird-curves.json").read_text()
    )
    return curves, {(m["criterion"], m["level"]): m for m in curves["monitors"]}


def test_every_monitor_keeps_measuring_after_its_draw_and_its_curve_is_kept(
    tmp_path: Path,
) -> None:
    train = Settling(epochs=6, moving=2, window=2, levels=2)
    lottery = _lottery(tmp_path, train, methods=("lrr@earlybird",), earlybird={"window": 2})
    rows = _rows(lottery.run(), "lrr@earlybird")
    curves, monitors = _curves(lottery)
    assert sorted(monitors) == [("magnitude", 1), ("magnitude", 2)]
    # one distance per epoch after the first: epochs - 1 of them, measured after epochs 2..6
    assert curves["epochs"] == 6 and curves["distance_epochs"] == [2, 3, 4, 5, 6]
    folder = lottery.directory / "replicate-0"
    for level in (1, 2):
        got = monitors["magnitude", level]
        assert got["keep"] == pytest.approx((1 - AMOUNT) ** level)
        assert (got["threshold"], got["window"], got["settled"]) == (0.1, 2, 1)
        # the draw is the snapshot's, made before the curve ended; the curve goes on to the end
        meta = saved_metadata(folder / f"earlybird-magnitude-level-{level:02d}.lt")
        assert got["drawn_epoch"] == meta["drawn_epoch"] == rows["drawn_epoch"][level]
        assert meta["settled"] == 1 and got["drawn_epoch"] < 6
        assert got["distances"] == train.distances[level] and len(got["distances"]) == 5
        assert sorted(got["layer_distances"]) == LAYERS
        assert all(len(d) == 5 for d in got["layer_distances"].values())


def test_measuring_after_the_draw_changes_neither_the_reference_nor_the_snapshot(
    tmp_path: Path,
) -> None:
    # every monitor settles after epoch 2 (threshold 1, window 1) while the reference trains on
    kw = dict(levels=2, criteria=("magnitude", "activation"))
    plain = _lottery(tmp_path / "a", Settling(epochs=5, moving=5), methods=("lrr",), **kw)
    plain.run()
    train = Settling(epochs=5, moving=5)
    options = {"threshold": 1.0, "window": 1}
    bird = _lottery(tmp_path / "b", train, methods=("lrr@earlybird",), earlybird=options, **kw)
    bird.run()
    a, _ = read_tensors(plain.directory / "replicate-0" / "reference.lt")
    b, _ = read_tensors(bird.directory / "replicate-0" / "reference.lt")
    assert sorted(a) == sorted(b) and all(torch.equal(a[k], b[k]) for k in a)
    _, monitors = _curves(bird)
    assert len(monitors) == 4
    for (criterion, level), got in monitors.items():
        assert got["drawn_epoch"] == 2 and len(got["distances"]) == 4
        file = bird.directory / "replicate-0" / f"earlybird-{criterion}-level-{level:02d}.lt"
        assert saved_metadata(file)["drawn_epoch"] == 2
        snap = lt.load(file, Net).state_dict()
        assert all(torch.equal(v, train.states[1][k]) for k, v in snap.items())
        assert not all(torch.equal(v, b[k]) for k, v in snap.items() if k in b)


def test_min_drop_draws_no_ticket_before_the_reported_loss_has_fallen(tmp_path: Path) -> None:
    # the keep-sets hold still from epoch 2 on; the loss falls by a third only at epoch 5
    losses = [1.0, 0.98, 0.99, 0.97, 0.6, 0.5, 0.45, 0.4, 0.4]
    train = Settling(epochs=9, moving=1, window=2, levels=1, losses=losses)
    options = {"window": 2, "min_drop": 0.3}
    lottery = _lottery(tmp_path, train, methods=("lrr@earlybird",), levels=1, earlybird=options)
    rows = _rows(lottery.run(), "lrr@earlybird")
    curves, monitors = _curves(lottery)
    got = monitors["magnitude", 1]
    assert curves["losses"] == losses
    assert train.settled_at[1] == 2  # unguarded, the same keep-sets draw after epoch 3
    assert got["min_drop"] == 0.3 and got["opened_epoch"] == 5
    assert got["drawn_epoch"] == rows["drawn_epoch"][1] == 5 + 2
    folder = lottery.directory / "replicate-0"
    assert saved_metadata(folder / "earlybird-magnitude-level-01.lt")["drawn_epoch"] == 7


def test_a_loop_left_early_gives_its_last_reported_loss_to_the_last_update(
    tmp_path: Path,
) -> None:
    losses = [1.0, 0.9, 0.8, 0.5, 0.4, 0.3]
    train = Settling(epochs=6, moving=1, window=2, levels=1, losses=losses, stop=4)
    options = {"window": 2, "min_drop": 0.4}
    lottery = _lottery(tmp_path, train, methods=("lrr@earlybird",), levels=1, earlybird=options)
    rows = _rows(lottery.run(), "lrr@earlybird")
    curves, monitors = _curves(lottery)
    assert curves["epochs"] == 4 and curves["losses"] == losses[:4]
    assert monitors["magnitude", 1]["opened_epoch"] == 4  # 0.5: opened at the last epoch only
    assert monitors["magnitude", 1]["drawn_epoch"] is None and rows["settled"][1] == 0


def test_min_drop_without_a_reported_loss_names_the_call(tmp_path: Path) -> None:
    train = Settling(epochs=4, moving=1, window=2, levels=1)
    options = {"window": 2, "min_drop": 0.3}
    lottery = _lottery(tmp_path, train, methods=("lrr@earlybird",), levels=1, earlybird=options)
    with pytest.raises(lt.errors.LotteryError, match=r"ctx\.report_loss\(val_loss\)"):
        lottery.run()
    assert not (lottery.directory / "replicate-0" / "reference.lt").exists()


def test_an_unsettled_monitor_draws_the_trained_reference(tmp_path: Path) -> None:
    lottery = _lottery(
        tmp_path, Recorder(epochs=3), methods=("lrr@earlybird",), levels=1, earlybird={"window": 9}
    )
    rows = _rows(lottery.run(), "lrr@earlybird")
    assert rows["settled"][1] == 0 and rows["drawn_epoch"][1] == 3
    assert rows["total_epochs"][1] == 3 + 3
    _, monitors = _curves(lottery)
    got = monitors["magnitude", 1]
    assert got["drawn_epoch"] is None and got["settled"] == 0 and len(got["distances"]) == 2
    folder = lottery.directory / "replicate-0"
    snap = lt.load(folder / "earlybird-magnitude-level-01.lt", Net).state_dict()
    ref = lt.load(folder / "reference.lt", Net).state_dict()
    assert all(torch.equal(snap[k], v) for k, v in ref.items())


def test_references_watch_only_for_earlybird_cells(tmp_path: Path) -> None:
    plain = _lottery(tmp_path / "a", methods=("lrr", "lrr@oneshot"), levels=1)
    plain.run()
    assert not list(plain.directory.rglob("earlybird-*"))
    # a monitor changes nothing in the reference's training: same weights with and without
    bird = _lottery(tmp_path / "b", methods=("lrr@earlybird",), levels=1)
    bird.run()
    a, _ = read_tensors(plain.directory / "replicate-0" / "reference.lt")
    b, _ = read_tensors(bird.directory / "replicate-0" / "reference.lt")
    assert sorted(a) == sorted(b) and all(torch.equal(a[k], b[k]) for k in a)


@pytest.mark.parametrize("method", ["lrr@oneshot", "lrr@earlybird"])
def test_a_resumed_paced_cell_recomputes_nothing_finished(tmp_path: Path, method: str) -> None:
    clean = _rows(_lottery(tmp_path / "clean", methods=(method,), levels=3).run(), method)
    crash = Recorder(crash_at=(method, 2))
    with pytest.raises(KeyboardInterrupt):
        _lottery(tmp_path / "crash", crash, methods=(method,), levels=3).run()
    assert [c[3] for c in crash.calls] == [0, 1]
    resumed = Recorder()
    lottery = _lottery(tmp_path / "crash", resumed, methods=(method,), levels=3)
    rows = _rows(lottery.run(), method)
    assert [c[3] for c in resumed.calls] == [2, 3]
    cols = ["level", "error", "params", "macs", "total_epochs"]
    pd.testing.assert_frame_equal(clean[cols], rows[cols])
    # levels are independent: a lost middle level is made again, alone, the same
    (lottery.directory / "replicate-0" / f"{method}-magnitude" / "level-01.json").unlink()
    again = Recorder()
    rows = _rows(_lottery(tmp_path / "crash", again, methods=(method,), levels=3).run(), method)
    assert [c[3] for c in again.calls] == [1]
    pd.testing.assert_frame_equal(clean[cols], rows[cols])


def test_a_process_pool_gives_the_sequential_rows_and_files(tmp_path: Path) -> None:
    methods = ("lrr", "lrr@oneshot", "finetune@earlybird")
    sequential = _lottery(tmp_path / "seq", methods=methods, replicates=2)
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # as the workers run
    try:
        want = sequential.run()
    finally:
        torch.set_num_threads(threads)
    lottery = _lottery(tmp_path / "pool", methods=methods, replicates=2)
    with _pool() as pool:
        got = lottery.run(executor=pool)
    loose = ["train_seconds", "step_seconds", "seconds", "total_seconds", "memory_bytes"]
    pd.testing.assert_frame_equal(want.drop(columns=loose), got.drop(columns=loose))
    files = {p.relative_to(sequential.directory) for p in sequential.directory.rglob("*.lt")}
    assert files == {p.relative_to(lottery.directory) for p in lottery.directory.rglob("*.lt")}
    assert any(name.name.startswith("earlybird-") for name in files)
    for name in sorted(files):
        _same_file(sequential.directory / name, lottery.directory / name)


@pytest.mark.parametrize(
    ("methods", "message"),
    [
        (("lrr@twoshot",), r"unknown pacing 'twoshot' in method 'lrr@twoshot'"),
        (("lrr@oneshot+kd",), r"the pacing comes last: 'lrr\+kd@oneshot'"),
        (("prune@oneshot",), r"unknown method 'prune@oneshot' \('prune' is not registered\)"),
        (("lrr@iterative",), "iterative is the default pacing, write 'lrr'"),
        (("mask@earlybird",), "can only be paced iteratively"),
    ],
)
def test_bad_pacings_are_refused_naming_the_part(methods: tuple[str, ...], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        lt.LotteryConfig(methods=methods)


def test_earlybird_settings_are_checked_and_hashed_only_when_used(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="no method is paced @earlybird"):
        lt.LotteryConfig(methods=("lrr",), earlybird={"window": 2})
    with pytest.raises(ValueError, match="window must be an integer"):
        lt.LotteryConfig(methods=("lrr@earlybird",), earlybird={"window": 0})
    with pytest.raises(ValueError, match="takes 'threshold', 'window' and 'min_drop'"):
        lt.LotteryConfig(methods=("lrr@earlybird",), earlybird={"patience": 2})
    for bad in (1.0, -0.1, True):
        with pytest.raises(ValueError, match=f"min_drop must be a share in \\[0, 1\\), got {bad}"):
            lt.LotteryConfig(methods=("lrr@earlybird",), earlybird={"min_drop": bad})
    assert "earlybird" not in lt.LotteryConfig(methods=("lrr@earlybird",)).record()
    a = _lottery(tmp_path, methods=("lrr@earlybird",)).directory
    assert _lottery(tmp_path, methods=("lrr@earlybird",), earlybird={"window": 2}).directory != a
    assert lt.LotteryConfig(methods=("lrr+kd@oneshot",)).runs() == [("lrr+kd@oneshot", "magnitude")]


def test_runs_without_pacings_keep_their_run_directory(tmp_path: Path) -> None:
    # the names the runner gave these settings before pacings existed
    assert _lottery(tmp_path).directory.name == "toy-65961c4c54c6"
    grid = dict(methods=("trim", "lrr+kd", "mask"), criteria=("magnitude", "activation"))
    assert _lottery(tmp_path, **grid).directory.name == "toy-0f01f7c6e16c"
    assert "earlybird" not in lt.LotteryConfig(**grid).record()
