"""The selection study's profiles: which runs are the quick profile's own."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

from benchmarks.selection import Setting, guard_for, profile_for
from examples.mir.profiles import PROFILES


def _default() -> Setting:
    base = PROFILES["quick"]
    guard = "params@0.25"
    assert guard_for(guard).to_dict() == dict(base.safeguards)
    return Setting(base.scope, base.normalize, guard, base.criteria[0])


def test_the_default_with_the_profiles_methods_is_the_profile_itself() -> None:
    base = PROFILES["quick"]
    assert profile_for(base, _default(), base.replicates, base.levels, base.methods) is base


def test_the_default_with_fewer_methods_is_a_run_of_its_own() -> None:
    base = PROFILES["quick"]
    profile = profile_for(base, _default(), base.replicates, base.levels, ("trim",))
    assert profile is not base
    assert profile.methods == ("trim",)
    assert dict(profile.safeguards) == dict(base.safeguards)
    assert (profile.scope, profile.normalize) == (base.scope, base.normalize)


def test_another_setting_changes_only_the_selection() -> None:
    base = PROFILES["quick"]
    profile = profile_for(base, Setting.parse("global/max/on/magnitude"), 3, 6, ("trim",))
    assert dict(profile.safeguards) == guard_for("on").to_dict()
    assert dict(profile.safeguards) != dict(base.safeguards)
    assert profile.lr == base.lr and profile.patience == base.patience


def test_a_task_with_its_own_scope_is_the_profiles_run_in_that_scope() -> None:
    """Where the profile ranks a task per layer, the study's local setting for that task is the
    profile's own run, and its global setting a run of the study."""
    base = dataclasses.replace(PROFILES["quick"], task_scope={"chord": "local"})
    guard = "params@0.25"
    local = Setting("local", base.normalize, guard, base.criteria[0])
    glob = Setting("global", base.normalize, guard, base.criteria[0])
    args = (base.replicates, base.levels, base.methods)
    assert profile_for(base, local, *args, task="chord") is base
    assert profile_for(base, glob, *args, task="onset") is base
    moved = profile_for(base, glob, *args, task="chord")
    assert moved is not base and moved.config("chord").scope == "global"
    assert profile_for(base, local, *args, task="onset").config("onset").scope == "local"


def test_a_screen_table_ranks_settings_on_validation_and_shows_their_sizes() -> None:
    import pandas as pd

    from benchmarks.selection import screen_table

    rows = pd.DataFrame(
        [
            # setting, level, kept, val_error, error: "b" is lower on validation, "a" on test
            ("a", 0, 1.0, 0.3, 0.3),
            ("a", 1, 0.7, 0.5, 0.1),
            ("a", 2, 0.5, 0.3, 0.1),
            ("b", 0, 1.0, 0.3, 0.3),
            ("b", 1, 0.6, 0.2, 0.4),
            ("b", 2, 0.4, 0.4, 0.4),
        ],
        columns=["setting", "level", "kept", "val_error", "error"],
    )
    text = screen_table(rows)
    first, second = (line for line in text.splitlines()[2:])
    assert first.startswith("| b ") and "0.200 (60%)" in first and "0.300" in first
    assert second.startswith("| a ") and "0.500 (70%)" in second and "0.100 |" in second


def test_a_setting_names_the_whole_selection_over_a_tasks_own() -> None:
    """Where the profile gives a task its own floor and minimum, a study's setting for that
    task ranks with the setting's safeguards and no minimum, and is not the profile's run."""
    base = PROFILES["quick"]
    assert base.config("pitch").options.min_units > 1  # the profile's own for pitch
    setting = Setting.parse("local/none/params@0.25/magnitude")
    profile = profile_for(base, setting, 3, 6, ("finetune",), task="pitch")
    assert profile is not base
    config = profile.config("pitch")
    assert config.safeguards == guard_for("params@0.25")
    assert config.options.min_units == 1 and config.scope == "local"


def test_a_run_directory_is_named_by_the_setting_it_ran() -> None:
    from benchmarks.selection import setting_name

    base = PROFILES["quick"]
    local = json.loads(json.dumps(base.config("chord").record()))
    assert setting_name(local) == "local/none/params@0.25/magnitude"
    pitch = json.loads(json.dumps(base.config("pitch").record()))
    assert setting_name(pitch) == "local/none/params@0.05/magnitude/min_units=3"
    glob = json.loads(json.dumps(base.config("onset").record()))
    assert setting_name(glob) == "global/max/params@0.25/magnitude"
    for text in ("global/mean/on@0.25/group_norm", "global/l2/off/activation"):
        profile = profile_for(base, Setting.parse(text), 1, 6, ("finetune",), task="onset")
        record = json.loads(json.dumps(profile.config("onset").record()))
        assert setting_name(record) == text


def test_gathered_rows_keep_the_methods_and_replicates_asked_for(tmp_path: Path) -> None:
    from benchmarks.selection import SCREEN_COLUMNS, gather

    config = json.loads(json.dumps(PROFILES["quick"].config("chord").record()))
    run = tmp_path / "chord-aaaa"
    run.mkdir()
    (run / "settings.json").write_text(json.dumps({"config": config}))
    for method in ("trim", "finetune"):
        for replicate in (0, 1):
            cell = run / f"replicate-{replicate}" / f"{method}-magnitude"
            cell.mkdir(parents=True)
            for level in (0, 1):
                row = {c: 0.0 for c in SCREEN_COLUMNS if c != "setting"}
                row |= {"task": "chord", "method": method, "criterion": "magnitude"}
                row |= {"replicate": replicate, "level": level, "val_error": 0.1 * level}
                (cell / f"level-{level:02d}.json").write_text(json.dumps(row))
    got = gather([run], ["finetune"], replicates=1)
    assert list(got.columns) == SCREEN_COLUMNS
    assert set(got.method) == {"finetune"} and set(got.replicate) == {0} and len(got) == 2
    assert set(got.setting) == {"local/none/params@0.25/magnitude"}
    assert list(got.val_error) == [0.0, 0.1]  # each level's own row


def test_a_run_of_two_criteria_gathers_as_two_settings(tmp_path: Path) -> None:
    from benchmarks.selection import SCREEN_COLUMNS, gather, screen_table

    config = json.loads(json.dumps(PROFILES["quick"].config("chord").record()))
    config["criteria"] = ["magnitude", "group_norm"]
    run = tmp_path / "chord-bbbb"
    run.mkdir()
    (run / "settings.json").write_text(json.dumps({"config": config}))
    for criterion, error in (("magnitude", 0.2), ("group_norm", 0.1)):
        cell = run / "replicate-0" / f"finetune-{criterion}"
        cell.mkdir(parents=True)
        for level in (0, 1):
            row = {c: 0.0 for c in SCREEN_COLUMNS if c != "setting"}
            row |= {"task": "chord", "method": "finetune", "criterion": criterion}
            row |= {"replicate": 0, "level": level, "val_error": error * level, "kept": 0.7}
            (cell / f"level-{level:02d}.json").write_text(json.dumps(row))
    got = gather([run], ["finetune"], replicates=1)
    by_setting = got[got.level == 1].set_index("setting").val_error.to_dict()
    assert by_setting == {
        "local/none/params@0.25/magnitude": 0.2,
        "local/none/params@0.25/group_norm": 0.1,
    }
    table = screen_table(got)
    assert table.index("group_norm") < table.index("magnitude")  # best first, not one mean
