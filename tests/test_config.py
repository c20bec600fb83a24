"""The configuration is parsed once (`selfcorrect.config.parse`): typed, checked, frozen specs, and no module
below the entry point reads the raw Hydra config."""

from __future__ import annotations

import dataclasses
import re
from pathlib import Path

import pytest

from selfcorrect.config import RunSpec, parse

from conftest import TINY_OVERRIDES, compose_config

SRC = Path(__file__).resolve().parents[1] / "src" / "selfcorrect"
# the modules that may hold the composed DictConfig: the entry point and its parser; the drivers above it
# (sweeps/ compose configs to plan jobs) and analysis/ (reads saved config.yaml files of finished runs)
ALLOWED = ("run.py", "config.py", "sweeps/", "analysis/")
# reading a saved run's config.yaml (a file, not the composed config handed down): resume compares it,
# scaling_samples reopens a finished run's policy from it
LOADS_SAVED = ("runtime/resume.py", "evaluation/scaling_samples.py")
# registering the config's own resolvers (`${sc.*}`) touches OmegaConf but never a config
REGISTERS = ("resolvers.py",)


def below_entry_point():
    for path in sorted(SRC.rglob("*.py")):
        rel = path.relative_to(SRC).as_posix()
        if not rel.startswith(ALLOWED):
            yield rel, path.read_text()


def test_no_module_below_the_entry_point_reads_the_raw_config():
    offenders = []
    for rel, text in below_entry_point():
        if "DictConfig" in text or re.search(r"\bctx\.cfg\b|\bcfg\.(arm|budget|eval|task|model|seed|paths)\b", text):
            offenders.append(rel)
        uses = set(re.findall(r"OmegaConf\.(\w+)", text))
        if uses - ({"load", "to_container"} if rel in LOADS_SAVED else {"register_new_resolver"} if rel in REGISTERS else set()):
            offenders.append(f"{rel}: OmegaConf.{sorted(uses)}")
    assert offenders == []


def test_parse_gives_frozen_typed_specs():
    spec = parse(compose_config([*TINY_OVERRIDES, "arm=star"]))
    assert isinstance(spec, RunSpec) and spec.arm.family == "offline" and spec.arm.rl is None
    assert spec.arm.offline.problems_per_round * 2 * 3 == spec.budget.episodes
    assert spec.eval.n_problems == 48 and spec.eval.correction_matrix.enabled and isinstance(spec.task, dict)
    with pytest.raises(dataclasses.FrozenInstanceError):
        spec.seed = 1
    rl = parse(compose_config([*TINY_OVERRIDES, "arm=score"]))
    assert rl.arm.rl.prompts_per_step * rl.arm.rl.samples_per_prompt == rl.budget.sequences_per_step


@pytest.mark.parametrize("override, message", [
    ("eval.n_problems=-5", "eval.n_problems must be a positive integer, got -5"),
    ("eval.probe.source=oracle", "eval.probe.source must be 'base' or 'none', got 'oracle'"),
    ("seed=-1", "seed must be a non-negative integer, got -1"),
    ("threads=0", "threads must be a positive integer, got 0"),
    ("arm.name=telepathy", "unknown arm 'telepathy'"),
    ("budget.gradient_steps=0", "budget.gradient_steps must be a positive integer, got 0"),
])
def test_a_bad_value_is_named_before_any_work(override, message):
    with pytest.raises(ValueError, match=re.escape(message)):
        parse(compose_config([*TINY_OVERRIDES, override]))


@pytest.mark.parametrize("arm, override, message", [
    ("star", "arm.init=sideways", "arm.init must be 'base' (ReST^EM, the paper's) or 'continue', got 'sideways'"),
    ("star", "arm.rounds=0", "arm.rounds must be a positive integer, got 0"),
    ("sft_self_plus_anchor", "arm.anchor=-1", "arm.anchor must be >= 0 (turn-1 examples per correction trace), got -1"),
    ("score", "arm.samples_per_prompt=3", "arm.samples_per_prompt=3"),
])
def test_a_bad_arm_setting_is_named_before_any_work(arm, override, message):
    with pytest.raises(ValueError, match=re.escape(message)):
        parse(compose_config([*TINY_OVERRIDES, f"arm={arm}", override]))
