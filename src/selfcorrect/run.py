"""Entry point: `python -m selfcorrect [overrides]` (or `-m` for a Hydra multirun).

One run = build or load the cached base model → train the configured arm → evaluate on the
fixed test problems → write the results beside the resolved config. The run directory holds:

  config.yaml        the resolved config          run.json          status, timings, paths
  metrics.json       all metrics (written last)    generations.jsonl every test episode
  probe_*.jsonl      mismatch-probe episodes       history.jsonl     everything logged
  correction_matrix.jsonl   second attempts on controlled first attempts (correct / one injected error)
  matched_t1_generations.jsonl   test episodes of the checkpoint at matched Acc@t1
  checkpoints/       RL resume states, the kept and the matched-Acc@t1 weights
  wandb/             the wandb run (offline by default)
"""

from __future__ import annotations

import json
import os
import random
import sys
import time
import traceback
import uuid
from pathlib import Path

import hydra
import numpy as np
import torch
from hydra.core.hydra_config import HydraConfig
from hydra.types import RunMode
from omegaconf import DictConfig, OmegaConf

from selfcorrect import distributed, resume, timing
from selfcorrect.arms import ArmContext, get_arm
from selfcorrect.metrics import total_variation
from selfcorrect.budget import Budget
from selfcorrect.cache import cached_artifact
from selfcorrect.correction_matrix import correction_matrix, matrix_line
from selfcorrect.evaluate import OfflineAttempts, evaluate_policy, write_eval, write_json, write_jsonl
from selfcorrect.models import base_model_path, load_base_policy
from selfcorrect.policy import Sampling
from selfcorrect.tasks import make_task
from selfcorrect.tracking import Tracker

CONF_DIR = os.environ.get("SELFCORRECT_CONF_DIR", str(Path(__file__).resolve().parents[2] / "conf"))
_UNIQUE = f"{os.getpid()}{uuid.uuid4().hex[:4]}"
# cached, so that Hydra copies the resolved value into every job of a sweep, including jobs that
# launchers (joblib, submitit) run in other processes or on other hosts
OmegaConf.register_new_resolver("sc.unique", lambda: _UNIQUE, replace=True, use_cache=True)


def validate(cfg: DictConfig) -> None:
    """Clear errors, naming the bad value, before any work is done."""

    def positive_int(key: str) -> None:
        v = OmegaConf.select(cfg, key)
        if not isinstance(v, int) or isinstance(v, bool) or v <= 0:
            raise ValueError(f"{key} must be a positive integer, got {v!r}")

    for key in ("eval.n_problems", "eval.n_monitor", "eval.max_new_tokens", "threads"):
        positive_int(key)
    if not isinstance(cfg.seed, int) or cfg.seed < 0:
        raise ValueError(f"seed must be a non-negative integer, got {cfg.seed!r}")
    if cfg.eval.probe.source not in ("base", "none"):
        raise ValueError(f"eval.probe.source must be 'base' or 'none', got {cfg.eval.probe.source!r}")
    get_arm(cfg.arm.name)  # unknown arm names fail here, before the base model is built
    Budget.from_cfg(cfg.budget)  # a bad budget value fails here too
    if "schedule" in cfg.arm:  # an RL arm: its schedule must fit the budget
        from selfcorrect.rl.config import RLConfig

        RLConfig.from_cfg(cfg.arm, cfg.budget)
    world = distributed.world_size()
    if world > 1 and "schedule" not in cfg.arm:  # only the RL arms split their work over processes
        raise RuntimeError(
            f"multi-process launch (WORLD_SIZE={world}) is for the RL arms; arm {cfg.arm.name!r} runs in one process "
            "(scale out over runs with hydra/launcher=submitit_slurm instead)"
        )


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


def run(cfg: DictConfig, run_dir: Path, group: str = "single") -> dict:
    validate(cfg)
    distributed.init()
    if not distributed.is_main():
        return _run_worker(cfg, run_dir)
    prepared = resume.prepare(run_dir, cfg)  # a re-launch into the same dir: skip, resume or rerun
    distributed.broadcast(prepared.state)
    if prepared.state == "complete":
        print(f"[skip] {run_dir} already complete", flush=True)
        return prepared.metrics
    run_dir.mkdir(parents=True, exist_ok=True)
    clock = timing.StageClock()
    with timing.running(clock):
        return _run_main(cfg, run_dir, group, prepared, clock)


def _run_main(cfg: DictConfig, run_dir: Path, group: str, prepared, clock: timing.StageClock) -> dict:
    """The main process's run: prepare → build → train → evaluate → write, each step a stage
    of `clock` (run.json `stages`)."""
    t0 = time.time()
    status = resume.start_status(cfg, prepared)
    write_json(run_dir / "run.json", status)
    (run_dir / "config.yaml").write_text(OmegaConf.to_yaml(cfg, resolve=True))
    torch.set_num_threads(cfg.threads)
    seed_everything(cfg.seed)
    task = make_task(cfg.task)
    cache_dir = Path(hydra.utils.to_absolute_path(cfg.paths.cache_dir))
    with timing.stage("tracker"):
        tracker = Tracker(
            cfg.tracking, run_dir, OmegaConf.to_container(cfg, resolve=True),
            name=f"{cfg.arm.name}-s{cfg.seed}", group=group,
            tags=[cfg.arm.name, f"seed{cfg.seed}", cfg.task.name, cfg.model.name],
        )
    try:
        with timing.stage("base"):
            base_path = base_model_path(cfg.model, task, cache_dir)
            base = load_base_policy(cfg.model, task, cache_dir)
            distributed.barrier()  # the base is built and cached: the other processes load it
            status.update(machine=machine_info(), base_weights_sha256=weights_sha256(base.model))
        ctx = ArmContext(cfg, task, base, base_path, run_dir, tracker)
        t_train = time.time()
        with timing.stage("updates"):  # sampling, monitoring and checkpoints inside are stages of their own
            policy = get_arm(cfg.arm.name)(ctx)
        status["train_s"] = round(time.time() - t_train, 1)
        if policy is not base and cfg.get("save_policy", True):
            with timing.stage("write"):
                policy.save(run_dir / "policy")

        problems = task.problems(cfg.eval.split, cfg.eval.n_problems, seed=cfg.eval.problem_seed)
        sampling = Sampling(cfg.eval.temperature, cfg.eval.max_new_tokens)
        offline = list(ctx.offline)
        matrix_cfg = OmegaConf.select(cfg, "eval.correction_matrix", default=None)
        base_first = None  # the base's greedy first attempts on the test problems (probe and matrix)
        if cfg.eval.probe.source == "base" or (matrix_cfg is not None and matrix_cfg.enabled):
            with timing.stage("base_first"):
                base_first = base_first_attempts(cfg, base, status["base_weights_sha256"], problems, sampling, cache_dir)
        if cfg.eval.probe.source == "base":
            offline.insert(0, OfflineAttempts("base", problems, base_first))
        t_eval = time.time()
        with timing.stage("final_eval"):  # the probe's episodes inside are stage `probe`
            result = evaluate_policy(policy, problems, sampling, seed=cfg.seed, offline=offline)
        status["eval_s"] = round(time.time() - t_eval, 1)
        if ctx.extra_metrics:
            result.metrics["arm"] = ctx.extra_metrics
        if ctx.offline_error_hist is not None:
            result.metrics["offline_error_tv"] = total_variation(ctx.offline_error_hist, result.metrics["errors_t1"])
        if matrix_cfg is not None and matrix_cfg.enabled:  # second attempts on controlled first attempts
            t_matrix = time.time()
            with timing.stage("matrix"):
                summary, matrix_records = correction_matrix(policy, task, problems, base_first, sampling,
                                                            seed=cfg.eval.problem_seed, n_problems=matrix_cfg.n_problems)
            result.metrics["correction_matrix"] = summary
            if "skipped" in summary:
                print(f"[correction matrix skipped] {summary['skipped']}", flush=True)
            else:
                write_jsonl(run_dir / "correction_matrix.jsonl", matrix_records)
                print(matrix_line(summary), flush=True)
            status["matrix_s"] = round(time.time() - t_matrix, 1)
        if callable(getattr(task, "error_model", None)):  # where the trained model's own first attempts err
            own_sites = task.error_model().site_histogram(problems, [r["y1"] for r in result.records])
            result.metrics["errors_t1_sites"] = own_sites
            teacher_sites = ctx.extra_metrics.get("train_site_hist")
            if teacher_sites:  # sft_teacher: TV between the teacher's error sites and the model's own
                result.metrics["offline_site_tv"] = total_variation(teacher_sites, own_sites)
        # what the arm spent of the shared budget (the base spends nothing)
        result.metrics["budget"] = ctx.budget_spent or Budget.from_cfg(cfg.budget).spent(0, 0, 0)
        matched = ctx.matched_t1()
        if matched is not None:  # Δ of the arm's checkpoint whose val Acc@t1 is closest to the base's
            with timing.stage("matched_eval"):
                result.metrics["matched_t1"] = evaluate_matched_t1(ctx, matched, problems, sampling, run_dir)
        with timing.stage("write"):
            tracker.log(result.metrics, prefix=f"{cfg.eval.split}/")
            tracker.summary(result.metrics)
            tracker.table("generations", result.records, max_rows=cfg.tracking.table_rows)
            status.update(status="complete", wall_s=round(time.time() - t0, 1), wandb_dir=tracker.wandb_dir, base_model=str(base_path))
            write_eval(run_dir, result)
            tracker.finish()
        status["stages"] = clock.split()
        write_json(run_dir / "run.json", status)
    except BaseException as e:
        status.update(status="failed", error=f"{type(e).__name__}: {e}", traceback=traceback.format_exc(), stages=clock.split())
        write_json(run_dir / "run.json", status)
        tracker.finish(exit_code=1)
        raise
    print(summary_line(cfg, result.metrics, run_dir), flush=True)
    return result.metrics


def base_first_attempts(cfg: DictConfig, base, base_sha256: str, problems, sampling: Sampling, cache_dir: Path) -> list[str]:
    """The base model's greedy first attempts on the test problems (for the probe and the
    matrix): the same for every arm of a seed, so computed once and cached by the base weights'
    hash and everything that picks the problems and decodes them."""
    spec = {"version": 1, "base_weights_sha256": base_sha256, "task": OmegaConf.to_container(cfg.task, resolve=True),
            "split": cfg.eval.split, "n_problems": len(problems), "problem_seed": cfg.eval.problem_seed,
            "temperature": sampling.temperature, "max_new_tokens": sampling.max_new_tokens}

    def build(out: Path) -> dict:
        episodes = base.two_turn(problems, sampling, seed=cfg.eval.problem_seed, n_turns=1)
        write_json(out / "first_attempts.json", {"ids": [p.id for p in problems], "y1": [ep.y1 for ep in episodes]})
        return {"n": len(episodes)}

    saved = json.loads((cached_artifact(cache_dir, "base_first", spec, build) / "first_attempts.json").read_text())
    if saved["ids"] != [p.id for p in problems]:
        raise RuntimeError(f"cached base first attempts are for other problems than {cfg.eval.split!r} n={len(problems)}")
    return saved["y1"]


def _run_worker(cfg: DictConfig, run_dir: Path) -> dict:
    """A process other than the main one: trains its share of the arm and stops (the main
    process prepares the run directory, writes everything and evaluates)."""
    if distributed.broadcast(None) == "complete":
        return {}
    torch.set_num_threads(cfg.threads)
    seed_everything(cfg.seed)
    task = make_task(cfg.task)
    cache_dir = Path(hydra.utils.to_absolute_path(cfg.paths.cache_dir))
    distributed.barrier()
    base = load_base_policy(cfg.model, task, cache_dir)
    quiet = Tracker(OmegaConf.create({"mode": "disabled"}), run_dir, {}, name="", group="", tags=[])
    quiet.log = lambda *args, **kwargs: None  # history.jsonl is the main process's
    get_arm(cfg.arm.name)(ArmContext(cfg, task, base, base_model_path(cfg.model, task, cache_dir), run_dir, quiet))
    return {}


def evaluate_matched_t1(ctx: ArmContext, matched: dict, problems, sampling: Sampling, run_dir: Path) -> dict:
    """Test metrics of the matched-Acc@t1 checkpoint; its records go to matched_t1_generations.jsonl."""
    from selfcorrect.rl.checkpoint import load_weights

    policy = ctx.new_policy()
    load_weights(matched["weights"], policy.model)
    result = evaluate_policy(policy, problems, sampling, seed=ctx.seed)
    write_jsonl(run_dir / "matched_t1_generations.jsonl", result.records)
    m = result.metrics
    return {**{k: matched[k] for k in ("step", "val_acc_t1", "base_val_acc_t1")},
            **{k: m[k] for k in ("acc_t1", "acc_t2", "delta", "delta_i2c", "delta_c2i")}}


def machine_info() -> dict:
    """Where a run ran: float results can differ between CPUs and libraries."""
    import platform

    return {"machine": platform.machine(), "processor": platform.processor() or platform.machine(),
            "torch": torch.__version__, "cpu_capability": torch.backends.cpu.get_cpu_capability(),
            "threads": torch.get_num_threads()}


def weights_sha256(model) -> str:
    """A hash of a model's weights, to tell whether two runs started from the same base."""
    import hashlib

    h = hashlib.sha256()
    for name, t in sorted(model.state_dict().items()):
        h.update(name.encode())
        h.update(t.detach().cpu().contiguous().view(-1).view(torch.uint8).numpy().tobytes())
    return h.hexdigest()


def summary_line(cfg: DictConfig, m: dict, run_dir: Path) -> str:
    return (
        f"[{cfg.arm.name} seed={cfg.seed}] Acc@t1={m['acc_t1']:.3f} Acc@t2={m['acc_t2']:.3f} "
        f"Δ={m['delta']:+.3f} i→c={m['delta_i2c']:.3f} c→i={m['delta_c2i']:.3f} "
        f"no-edit={m['no_edit_rate']:.3f} → {run_dir}"
    )


@hydra.main(version_base="1.3", config_path=CONF_DIR, config_name="config")
def main(cfg: DictConfig) -> float:
    hc = HydraConfig.get()
    group = Path(hc.sweep.dir).name if hc.mode == RunMode.MULTIRUN else "single"
    if distributed.world_size() > 1 and (hc.mode == RunMode.MULTIRUN or not any(o.startswith("hydra.run.dir=") for o in hc.overrides.hydra)):
        # every process resolves the default run dir itself (its own time stamp and suffix)
        raise RuntimeError("a multi-process launch is one run: name its directory with hydra.run.dir=... (no -m)")
    metrics = run(cfg, Path(hc.runtime.output_dir), group=group)
    return metrics.get("acc_t2", 0.0)


if __name__ == "__main__":
    sys.exit(main())
