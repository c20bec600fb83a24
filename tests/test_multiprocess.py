"""One RL run over two CPU processes (`accelerate launch --multi_gpu --num_processes 2`, which
on a machine without GPUs starts two gloo/DDP processes; `--cpu` would start one): one run
directory, one metrics.json and history written by the main process, and the same training as
a one-process run of the same global batch whose episodes are drawn in the same two shares
(`arm.rollout_shards=2`): equal rewards at every step, KL and gradient norms to float tolerance."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import psutil
import pytest

from conftest import TINY_OVERRIDES

ACCELERATE = Path(sys.executable).with_name("accelerate")
SIZE = [o for o in TINY_OVERRIDES if not o.startswith("model.pretrain.steps")] + [
    "model.pretrain.steps=220", "model.pretrain.warmup_steps=10",  # a base that is sometimes right
    "budget.episodes=64", "budget.gradient_steps=4", "budget.sequences_per_step=16", "budget.lr=1e-3",
    "++arm.ckpt_every=2", "++arm.eval_every=2", "++arm.select_every=1", "++arm.rollout_shards=2",
]


def launch(prefix: list[str], run_dir: Path, env: dict) -> None:
    cmd = [*prefix, "-m", "selfcorrect", "arm=score", *SIZE, f"hydra.run.dir={run_dir}"]
    res = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=600, cwd=run_dir.parent)
    assert res.returncode == 0, res.stdout[-2000:] + res.stderr[-4000:]


def rows(run_dir: Path, key: str) -> dict[int, dict]:
    out = {}
    for line in (run_dir / "history.jsonl").read_text().splitlines():
        r = json.loads(line)
        if key in r:
            assert r["step"] not in out, f"step {r['step']} logged twice: more than one process wrote history.jsonl"
            out[r["step"]] = r
    return out


TWO_PROCESSES = [str(ACCELERATE), "launch", "--multi_gpu", "--num_processes", "2", "--num_machines", "1",
                 "--mixed_precision", "no", "--dynamo_backend", "no"]
needs_accelerate = pytest.mark.skipif(not ACCELERATE.exists(), reason="accelerate's launcher is not installed")


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    """(env, a one-process run, an uninterrupted two-process run) of the same configuration."""
    tmp = tmp_path_factory.mktemp("multiprocess")
    env = {**os.environ, "SELFCORRECT_CACHE_DIR": str(tmp / "cache"), "OMP_NUM_THREADS": "1",
           "HYDRA_FULL_ERROR": "1", "WANDB_SILENT": "true",
           "PYTHONPATH": os.pathsep.join([str(Path(__file__).resolve().parents[1] / "src"), os.environ.get("PYTHONPATH", "")])}
    one, two = tmp / "one" / "run", tmp / "two" / "run"
    one.parent.mkdir(), two.parent.mkdir()
    launch([sys.executable], one, env)  # also builds the base into the shared cache
    launch(TWO_PROCESSES, two, env)
    return env, one, two


@needs_accelerate
def test_two_process_run_is_one_run_equal_to_one_process(runs):
    env, one, two = runs

    # one run: a single run directory with one metrics.json, complete
    assert [p.name for p in two.parent.iterdir()] == ["run"]
    assert sorted(p.relative_to(two.parent).as_posix() for p in two.parent.rglob("metrics.json")) == ["run/metrics.json"]
    assert json.loads((two / "run.json").read_text())["status"] == "complete"
    m1, m2 = (json.loads((d / "metrics.json").read_text()) for d in (one, two))
    assert m2["budget"] == m1["budget"] and m2["budget"]["episodes"] == 64
    assert (m2["arm"]["episodes"], m2["arm"]["prompts"]) == (m1["arm"]["episodes"], m1["arm"]["prompts"]) == (64, 16)

    # the same training, step for step
    t1, t2 = rows(one, "train/reward_t1"), rows(two, "train/reward_t1")
    assert sorted(t1) == sorted(t2) == [1, 2, 3, 4]
    assert any(r["train/grad_norm"] > 0 for r in t1.values()), "no gradient: the comparison would be vacuous"
    for s in t1:
        for key in ("reward_t1", "reward_t2", "answer_change_rate", "no_edit_rate", "train_reward", "stage"):
            assert t2[s][f"train/{key}"] == pytest.approx(t1[s][f"train/{key}"], abs=1e-9), (s, key)
        for key in ("kl_t1", "kl_t2", "grad_norm"):
            assert t2[s][f"train/{key}"] == pytest.approx(t1[s][f"train/{key}"], rel=1e-3, abs=1e-5), (s, key)
    v1, v2 = rows(one, "val/acc_t1"), rows(two, "val/acc_t1")
    assert sorted(v2) == [0, 2, 4]
    assert all(abs(v2[s]["val/acc_t1"] - v1[s]["val/acc_t1"]) <= 1 / 16 for s in v1)  # one problem of 16
    for key in ("acc_t1", "acc_t2"):
        assert abs(m2[key] - m1[key]) <= 2 / 48, key  # two problems of 48
    assert m2["arm"]["checkpoint"]["step"] == m1["arm"]["checkpoint"]["step"]


def untimed(d):
    """A metrics mapping without its wall-clock fields (`*_s` seconds, `*_per_s` rates) at any depth."""
    if isinstance(d, dict):
        return {k: untimed(v) for k, v in d.items() if not (k.endswith("_s") or "_per_s" in k)}
    return d


def results(run_dir: Path) -> tuple[str, dict]:
    """generations.jsonl and metrics.json less its timings: what a rerun must reproduce."""
    return (run_dir / "generations.jsonl").read_text(), untimed(json.loads((run_dir / "metrics.json").read_text()))


def _process(pid: int):
    try:
        return psutil.Process(pid)
    except psutil.NoSuchProcess:
        return None


@needs_accelerate
def test_a_killed_two_process_run_resumes_to_the_uninterrupted_result(runs):
    """A two-process run SIGKILLed (both processes and the launcher) after its step-2 checkpoint and
    re-launched into the same directory resumes from that checkpoint (steps 1-2 are not retrained)
    and ends with the uninterrupted two-process run's generations and metrics, byte for byte (the
    logged update statistics of the steps after the resume agree to ~1e-7 relative: not bit for bit)."""
    env, _, two = runs
    three = two.parent.parent / "killed" / "run"
    three.parent.mkdir()
    cmd = [*TWO_PROCESSES, "-m", "selfcorrect", "arm=score", *SIZE, f"hydra.run.dir={three}"]
    proc = subprocess.Popen(cmd, env=env, cwd=three.parent, start_new_session=True,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    ckpt, deadline = three / "checkpoints" / "step_0000002.pt", time.monotonic() + 600
    while not ckpt.exists():
        assert proc.poll() is None, f"the run ended (rc {proc.returncode}) before its step-2 checkpoint"
        assert time.monotonic() < deadline, "no step-2 checkpoint within 10 minutes"
        time.sleep(0.05)
    # the launcher and every process under it (torch's elastic agent may start its workers in their own groups)
    victims = [proc.pid, *(c.pid for c in psutil.Process(proc.pid).children(recursive=True))]
    for pid in victims:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
    proc.wait()
    psutil.wait_procs([p for p in map(_process, victims) if p is not None], timeout=30)
    assert not (three / "metrics.json").exists(), "killed too late: the run had finished"
    assert json.loads((three / "run.json").read_text())["status"] == "running"
    trained_before = set(rows(three, "train/reward_t1"))
    assert trained_before and max(trained_before) < 4

    launch(TWO_PROCESSES, three, env)
    status = json.loads((three / "run.json").read_text())
    assert status["status"] == "complete" and status["resumed"] is True and status["starts"] == 2, status
    assert results(three) == results(two)
    t2, t3 = rows(two, "train/reward_t1"), rows(three, "train/reward_t1")  # rows() also refuses a step logged twice
    assert sorted(t3) == [1, 2, 3, 4]
    for s in t2:  # the training statistics: rewards exact, the floats of the update to float tolerance
        a, b = untimed(t2[s]), untimed(t3[s])
        assert a.keys() == b.keys()
        for key in a:
            if isinstance(a[key], float) and not key.startswith(("train/reward", "train/train_reward")):
                assert b[key] == pytest.approx(a[key], rel=1e-5, abs=1e-7), (s, key)
            else:
                assert b[key] == a[key], (s, key)


def test_only_rl_arms_split_over_processes(monkeypatch):
    from conftest import compose_config

    from selfcorrect.config import parse

    monkeypatch.setenv("WORLD_SIZE", "2")
    with pytest.raises(RuntimeError, match="'base' runs in one process"):
        parse(compose_config([*TINY_OVERRIDES, "arm=base"]))
    parse(compose_config([*TINY_OVERRIDES, "arm=score"]))


def test_accelerate_configs_and_the_vllm_switch(tmp_path):
    """experiments/accelerate/*.yaml are accelerate config files for DDP, ZeRO-2/3 and FSDP;
    arm.use_vllm (TRL's own vLLM engine) is refused, pointing to model.engine=vllm, never silently ignored."""
    import dataclasses

    import yaml

    from conftest import compose_config

    from selfcorrect.training.rl.config import RLConfig
    from selfcorrect.training.rl.grpo_engine import grpo_args

    root = Path(__file__).resolve().parents[1] / "experiments" / "accelerate"
    kinds = {p.stem: yaml.safe_load(p.read_text()) for p in root.glob("*.yaml")}
    assert {k: v["distributed_type"] for k, v in kinds.items()} == {
        "ddp": "MULTI_GPU", "zero2": "DEEPSPEED", "zero3": "DEEPSPEED", "fsdp": "FSDP"}
    assert kinds["zero2"]["deepspeed_config"]["zero_stage"] == 2 and kinds["zero3"]["deepspeed_config"]["zero_stage"] == 3

    cfg = compose_config([*TINY_OVERRIDES, "arm=score"])
    rl = RLConfig.from_cfg(cfg.arm, cfg.budget)
    assert rl.use_vllm is False and grpo_args(rl, str(tmp_path), steps=1).use_vllm is False
    on = RLConfig.from_cfg(compose_config([*TINY_OVERRIDES, "arm=score", "++arm.use_vllm=true"]).arm, cfg.budget)
    assert on.use_vllm is True
    with pytest.raises(NotImplementedError, match="set model.engine=vllm"):
        grpo_args(on, str(tmp_path), steps=1)
    with pytest.raises(ValueError, match="use_vllm"):
        RLConfig.from_cfg(compose_config([*TINY_OVERRIDES, "arm=score", "++arm.use_vllm=1"]).arm, cfg.budget)
    assert dataclasses.replace(rl, use_vllm=False) == rl
