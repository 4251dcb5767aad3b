"""The selection study's profiles: which runs are the quick profile's own."""

from __future__ import annotations

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
