"""Sweeps that survive being killed (selfcorrect.runtime.resume): a sweep re-run into its own directory
skips complete runs, resumes killed ones from their checkpoints, reruns the rest, and ends with
results identical to a sweep that was never interrupted."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from omegaconf import OmegaConf

from selfcorrect.runtime import resume

from conftest import TINY_OVERRIDES, compose_config

# --- the small sweep: every size in ONE place (adapt here when config keys change) ---------------
# a base pretrained just long enough that some answers are right, so RL rewards and gradients are
# not all zero (with fewer steps every attempt is malformed and training would change nothing)
SMALL_BASE = ["model.pretrain.steps=220", "model.pretrain.warmup_steps=10", "model.pretrain.batch_size=32",
              "model.pretrain.n_problems=2000"]
SMALL_BUDGET = ["budget.episodes=64", "budget.gradient_steps=8", "budget.sequences_per_step=8",
                "++arm.ckpt_every=2", "++arm.eval_every=2",  # RL: a checkpoint every 2 steps
                "++arm.probe.n_train=16", "++arm.probe.n_val=16", "++arm.probe.val_problems=32"]  # SFT probes
SMALL_EVAL = ["eval.n_problems=48", "eval.n_monitor=16", "tracking.mode=disabled"]
SMALL = [*SMALL_BASE, *SMALL_BUDGET, *SMALL_EVAL]
ARMS = ["base", "sft_self", "score"]  # no checkpoints (rerun), SFT (rerun), RL (resume from a checkpoint)


def is_timing(key: str) -> bool:
    """Wall-clock times and speeds (…_s, tokens_per_s_…): they differ between any two runs."""
    return key.endswith("_s") or "_per_s" in key


# --- what a re-launch does with each state of a run directory (no model needed) ------------------
@pytest.fixture(scope="module")
def cfg():
    return compose_config([*TINY_OVERRIDES, "arm=base"])


def make_run_dir(d: Path, cfg, status: str, files=(), checkpoint: bool = False) -> Path:
    d.mkdir(parents=True)
    (d / "config.yaml").write_text(OmegaConf.to_yaml(cfg, resolve=True))
    (d / "run.json").write_text(json.dumps({"status": status, "started": "2026-01-01T00:00:00"}))
    (d / ".hydra").mkdir()
    (d / ".hydra" / "overrides.yaml").write_text("- arm=base\n")
    (d / "run.log").write_text("log\n")
    for name in files:
        (d / name).parent.mkdir(parents=True, exist_ok=True)
        (d / name).write_text("{}\n")
    if checkpoint:
        (d / "checkpoints").mkdir()
        (d / "checkpoints" / "step_0000002.pt").write_bytes(b"state")
    return d


PARTIAL = ("generations.jsonl", "probe_base.jsonl", "history.jsonl", "policy/model.safetensors", "wandb/offline-run-1/x")


def test_a_fresh_directory_starts_as_before(tmp_path, cfg):
    p = resume.prepare(tmp_path / "new", cfg)
    assert (p.state, p.metrics, p.resumable) == ("fresh", None, False)
    assert resume.start_status(cfg, p)["starts"] == 1


def test_a_complete_run_is_skipped_with_its_saved_metrics(tmp_path, cfg):
    d = make_run_dir(tmp_path / "r", cfg, "complete", ["generations.jsonl"])
    (d / "metrics.json").write_text(json.dumps({"acc_t2": 0.25}))
    p = resume.prepare(d, cfg)
    assert p.state == "complete" and p.metrics == {"acc_t2": 0.25}
    assert (d / "generations.jsonl").exists()  # nothing touched
    # the saved config decides: a different configuration is refused, naming the key, not skipped
    other = compose_config([*TINY_OVERRIDES, "arm=base", "eval.n_problems=47"])
    with pytest.raises(ValueError, match=r"eval\.n_problems: 48 → 47"):
        resume.prepare(d, other)
    # runtime settings do not change results: still a skip
    assert resume.prepare(d, compose_config([*TINY_OVERRIDES, "arm=base", "threads=2", "paths.cache_dir=/x"])).state == "complete"


@pytest.mark.parametrize("status", ["failed", "running"])  # "running" left behind = killed
def test_an_incomplete_run_without_checkpoints_starts_over_clean(tmp_path, cfg, status):
    d = make_run_dir(tmp_path / "r", cfg, status, [*PARTIAL, "metrics.json"])  # metrics without "complete"
    p = resume.prepare(d, cfg)
    assert p.state == "incomplete" and not p.resumable
    assert sorted(x.name for x in d.iterdir()) == [".hydra", "run.json", "run.log"]
    s = resume.start_status(cfg, p)
    assert s["starts"] == 2 and s["earlier"] == [{"started": "2026-01-01T00:00:00", "status": "killed" if status == "running" else "failed"}]


def test_a_killed_run_with_checkpoints_keeps_what_it_resumes_from(tmp_path, cfg):
    d = make_run_dir(tmp_path / "r", cfg, "running", PARTIAL, checkpoint=True)
    p = resume.prepare(d, cfg)
    assert p.state == "incomplete" and p.resumable
    assert sorted(x.name for x in d.iterdir()) == [".hydra", "checkpoints", "history.jsonl", "run.json", "run.log", "wandb"]
    # restarted a second time: every earlier launch is counted
    (d / "run.json").write_text(json.dumps(resume.start_status(cfg, p)))
    s = resume.start_status(cfg, resume.prepare(d, cfg))
    assert s["starts"] == 3 and [e["status"] for e in s["earlier"]] == ["killed", "killed"]


def test_checkpoints_of_a_different_configuration_are_discarded(tmp_path, cfg):
    d = make_run_dir(tmp_path / "r", cfg, "running", PARTIAL, checkpoint=True)
    p = resume.prepare(d, compose_config([*TINY_OVERRIDES, "arm=base", "seed=1"]))
    assert p.state == "incomplete" and not p.resumable
    assert not (d / "checkpoints").exists() and not (d / "history.jsonl").exists()


# --- end to end: SIGKILL jobs of a real sweep, resume it, compare with an uninterrupted one -----
def sweep_args(sweep_dir: Path, launcher: str = "joblib") -> list[str]:
    # job subdirs are named by the overrides (as in `make sweep`); the size overrides stay out of
    # the names so that they remain short: arm=base, arm=score, ...
    keys = ["experiment", "tracking.mode", "paths.output_dir", "paths.cache_dir", "threads",
            *(o.split("=")[0].lstrip("+") for o in SMALL)]
    return [sys.executable, "-m", "selfcorrect", "-m", *SMALL, f"arm={','.join(ARMS)}",
            f"hydra.sweep.dir={sweep_dir}", f"hydra/launcher={launcher}",
            *(["hydra.launcher.n_jobs=2"] if launcher == "joblib" else []),  # as `make sweep`
            f"hydra.job.config.override_dirname.exclude_keys=[{','.join(keys)}]"]


@pytest.fixture(scope="module")
def env(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("resume")
    return {**os.environ, "SELFCORRECT_CACHE_DIR": str(tmp / "cache"), "SELFCORRECT_OUTPUT_DIR": str(tmp / "out"),
            "OMP_NUM_THREADS": "1", "HYDRA_FULL_ERROR": "1", "WANDB_SILENT": "true"}


def run_sweep(sweep_dir: Path, env: dict, launcher: str = "joblib") -> str:
    res = subprocess.run(sweep_args(sweep_dir, launcher), capture_output=True, text=True, env=env, timeout=600)
    assert res.returncode == 0, res.stderr[-3000:]
    return res.stdout


def sweep_killed_at(sweep_dir: Path, env: dict, job: str, ready) -> None:
    """Run the sweep and SIGKILL the process of job `job` once `ready(job_dir)` holds."""
    job_dir = sweep_dir / f"arm={job}"
    before = status_of(job_dir).get("starts", 0)
    with open(sweep_dir.parent / f"{sweep_dir.name}.log", "a") as log:
        proc = subprocess.Popen(sweep_args(sweep_dir), stdout=log, stderr=subprocess.STDOUT, env=env)
    try:
        deadline = time.time() + 300
        # wait for this launch's attempt at the job (a killed earlier one leaves a stale run.json)
        while status_of(job_dir).get("starts", 0) <= before or not ready(job_dir):
            assert proc.poll() is None, f"the sweep ended (rc {proc.returncode}) before {job} could be killed"
            assert time.time() < deadline, f"{job} never reached the kill point"
            time.sleep(0.02)
        pid = status_of(job_dir)["pid"]
        stat = Path(f"/proc/{pid}/stat")
        ppid = int(stat.read_text().rsplit(")", 1)[1].split()[1]) if stat.exists() else None
        assert proc.pid in (pid, ppid), f"pid {pid} in {job_dir}/run.json is not a live job of this sweep"
        os.kill(pid, signal.SIGKILL)
        assert proc.wait(timeout=120) != 0  # the launcher reports its dead worker and stops
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    status = status_of(job_dir)
    assert status["status"] == "running" and not (job_dir / "metrics.json").exists(), "killed too late: the run completed"


def status_of(job_dir: Path) -> dict:
    try:
        return json.loads((job_dir / "run.json").read_text())
    except (FileNotFoundError, json.JSONDecodeError):
        return {}


def drop_timings(x):
    if isinstance(x, dict):
        return {k: drop_timings(v) for k, v in x.items() if not is_timing(k)}
    return x


def jsonl(path: Path) -> list:
    return [drop_timings(json.loads(line)) for line in path.read_text().splitlines() if line.strip()]


def test_a_killed_sweep_resumed_equals_an_uninterrupted_one(tmp_path, env):
    a, b = tmp_path / "A", tmp_path / "B"
    # the reference: every job in turn in one process (cheaper; job dirs and results do not
    # depend on the launcher); it also builds the base model into the shared cache
    run_sweep(a, env, launcher="basic")

    # kill the RL job once it has written a checkpoint (the launcher then stops the whole sweep,
    # so whatever else was running at that moment is killed too)
    sweep_killed_at(b, env, "score", lambda d: any((d / "checkpoints").glob("step_*.pt")))
    complete = {d.name for d in b.iterdir() if (d / "metrics.json").exists()}
    assert complete and "arm=score" not in complete  # some job finished before the kill, score did not

    out = run_sweep(b, env)  # 3) resume to the end
    skipped = {Path(line.split()[1]).name for line in out.splitlines() if line.startswith("[skip]")}
    assert skipped == complete, out[-3000:]
    assert "[rl] resuming score from" in out
    score = json.loads((b / "arm=score" / "run.json").read_text())
    assert score["status"] == "complete" and score["resumed"] and score["starts"] >= 2
    assert "killed" in [e["status"] for e in score["earlier"]]

    jobs = sorted(d.name for d in a.iterdir() if d.is_dir())
    assert jobs == [f"arm={arm}" for arm in sorted(ARMS)]
    assert sorted(d.name for d in b.iterdir() if d.is_dir()) == jobs
    for job in jobs:
        ra, rb = a / job, b / job
        assert drop_timings(json.loads((rb / "metrics.json").read_text())) == drop_timings(json.loads((ra / "metrics.json").read_text())), job
        assert (rb / "generations.jsonl").read_bytes() == (ra / "generations.jsonl").read_bytes(), job
        assert (rb / "history.jsonl").exists() == (ra / "history.jsonl").exists(), job
        if (ra / "history.jsonl").exists():
            assert jsonl(rb / "history.jsonl") == jsonl(ra / "history.jsonl"), job
        if (ra / "policy").exists():
            assert (rb / "policy" / "model.safetensors").read_bytes() == (ra / "policy" / "model.safetensors").read_bytes(), job
    # the weights did move: the comparison above is not of untrained copies of the base
    base = Path(json.loads((a / "arm=score" / "run.json").read_text())["base_model"])
    assert (a / "arm=score" / "policy" / "model.safetensors").read_bytes() != (base / "model.safetensors").read_bytes()


def test_run_settings_outside_the_results_never_block_a_resume(tmp_path):
    """A run saved before a runtime key existed (first_seed came with the confirmatory replication) resumes; a
    changed result-bearing value is named."""
    from selfcorrect.runtime.resume import config_diff

    now = {"seed": 3, "seeds": 10, "first_seed": 0, "budget": {"lr": 1e-4}}
    saved = tmp_path / "config.yaml"
    saved.write_text(OmegaConf.to_yaml({"seed": 3, "seeds": 3, "budget": {"lr": 1e-4}}))
    assert config_diff(saved, now) == []
    saved.write_text(OmegaConf.to_yaml({"seed": 3, "budget": {"lr": 3e-4}}))
    assert config_diff(saved, now) == ["budget.lr: 0.0003 → 0.0001"]
