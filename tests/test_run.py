"""End to end through the Hydra entry point: composition, validation, run directories."""

import json
from importlib import metadata
import os
import subprocess
import sys
from pathlib import Path

import pytest
from omegaconf import OmegaConf

from selfcorrect.evaluation.metrics import summarize
from selfcorrect.paths import CONF_DIR
from selfcorrect.run import run
from selfcorrect.runtime.records import read_jsonl

from conftest import TINY_OVERRIDES, compose_config

GROUPS = ["task", "model", "arm", "eval", "tracking", "experiment"]


@pytest.mark.parametrize("group", GROUPS)
def test_every_option_of_every_group_composes(group):
    options = sorted(p.stem for p in (Path(CONF_DIR) / group).glob("*.yaml"))
    assert options, f"no options in conf/{group}"
    for option in options:
        cfg = compose_config([f"{group}={option}"])
        container = OmegaConf.to_container(cfg, resolve=True, throw_on_missing=False)
        assert container["arm"]["name"] and container["task"]["name"] and container["model"]["kind"]


def test_base_run_writes_complete_results(tiny_cfg, tmp_path):
    metrics = run(tiny_cfg, tmp_path / "run")
    d = tmp_path / "run"
    status = json.loads((d / "run.json").read_text())
    assert status["status"] == "complete"
    # what produced it: the checkout's commit and dirty flag, the library versions
    head = subprocess.run(["git", "-C", CONF_DIR, "rev-parse", "HEAD"], capture_output=True, text=True).stdout.strip()
    assert status["code"]["commit"] == head and isinstance(status["code"]["dirty"], bool)
    assert status["code"]["libraries"]["torch"] == metadata.version("torch")
    on_disk = json.loads((d / "metrics.json").read_text())
    assert on_disk["acc_t1"] == metrics["acc_t1"]
    # every metric can be recomputed from the saved generations
    recomputed = summarize(read_jsonl(d / "generations.jsonl"))
    for key in ("acc_t1", "acc_t2", "delta", "delta_i2c", "delta_c2i", "no_edit_rate", "edit_ratio_hist"):
        assert recomputed[key] == on_disk[key]
    assert len(read_jsonl(d / "generations.jsonl")) == tiny_cfg.eval.n_problems
    # the base revising the base's own first attempts: offline == own, so no mismatch
    probe = on_disk["probe/base"]
    assert probe["mismatch_gap"] in (0.0, None)
    assert probe["n_wrong_offline"] == probe["n_wrong_own"]
    saved = OmegaConf.load(d / "config.yaml")
    assert saved.arm.name == "base" and saved.eval.n_problems == tiny_cfg.eval.n_problems
    # a re-launch into a complete run's directory skips it (selfcorrect.runtime.resume): saved metrics, untouched files
    mtime = (d / "metrics.json").stat().st_mtime_ns
    assert run(tiny_cfg, d) == on_disk and (d / "metrics.json").stat().st_mtime_ns == mtime


def test_failed_run_is_marked_failed_and_has_no_metrics(tiny_cache, tmp_path):
    cfg = compose_config([*TINY_OVERRIDES, f"paths.cache_dir={tiny_cache}", "model.architecture.n_positions=8"])
    with pytest.raises(ValueError, match="n_positions=8"):
        run(cfg, tmp_path / "bad")
    status = json.loads((tmp_path / "bad" / "run.json").read_text())
    assert status["status"] == "failed" and "n_positions=8" in status["error"]
    assert not (tmp_path / "bad" / "metrics.json").exists()


@pytest.mark.parametrize(
    "override, message",
    [
        ("eval.n_problems=-5", "eval.n_problems must be a positive integer, got -5"),
        ("eval.n_monitor=0", "eval.n_monitor must be a positive integer, got 0"),
        ("seed=-1", "seed must be a non-negative integer, got -1"),
        ("arm.name=telepathy", "unknown arm 'telepathy'"),
        ("task.name=chess", "unknown task 'chess'"),
        ("eval.probe.source=oracle", "eval.probe.source must be 'base' or 'none', got 'oracle'"),
        ("budget.lr=0", "budget.lr must be a number > 0, got 0"),
        ("arm=score arm.samples_per_prompt=5", "not divisible by arm.samples_per_prompt=5"),
    ],
)
def test_bad_values_are_named(tiny_cache, tmp_path, override, message):
    cfg = compose_config([*TINY_OVERRIDES, f"paths.cache_dir={tiny_cache}", *override.split()])
    with pytest.raises(ValueError, match=message):
        run(cfg, tmp_path / "r")
    assert not (tmp_path / "r" / "metrics.json").exists()


def _cli(args, tmp_path, cache):
    env = {**os.environ, "SELFCORRECT_OUTPUT_DIR": str(tmp_path / "out"), "SELFCORRECT_CACHE_DIR": str(cache), "HYDRA_FULL_ERROR": "1"}
    return subprocess.run([sys.executable, "-m", "selfcorrect", *args], capture_output=True, text=True, env=env, timeout=600)


@pytest.mark.parametrize("args, message", [(["arm=telepathy"], "arm/telepathy"), (["task=chess"], "task/chess")])
def test_cli_rejects_unknown_group_options(tmp_path, tiny_cache, args, message):
    res = _cli(args, tmp_path, tiny_cache)
    assert res.returncode != 0
    assert message in res.stderr


@pytest.mark.parametrize("launcher", ["basic", "submitit_local"])
def test_cli_multirun_gives_each_job_its_own_directory_and_offline_wandb(tmp_path, tiny_cache, launcher):
    """In-process jobs, and jobs in separate processes started by submitit (the same code path as
    `hydra/launcher=submitit_slurm` on a cluster): one sweep directory, one sub-directory per job."""
    overrides = [o for o in TINY_OVERRIDES if not o.startswith("tracking")]
    res = _cli(["-m", *overrides, "tracking.mode=offline", "arm=base", "seed=0,1", f"hydra/launcher={launcher}"], tmp_path, tiny_cache)
    assert res.returncode == 0, res.stderr[-3000:]
    runs = sorted((tmp_path / "out" / "sweeps").glob("*/*/metrics.json"))
    assert len(runs) == 2 and runs[0].parent != runs[1].parent
    assert len(list((tmp_path / "out" / "sweeps").iterdir())) == 1  # every job in the one sweep dir
    assert {json.loads((r.parent / "run.json").read_text())["seed"] for r in runs} == {0, 1}
    for r in runs:
        assert list((r.parent / "wandb").glob("offline-run-*"))
    # each job's summary line: on the console in-process, in the job's log under submitit
    logs = res.stdout + "".join(f.read_text() for f in (tmp_path / "out" / "sweeps").rglob("*_log.out"))
    assert logs.count("Acc@t1=") == 2
