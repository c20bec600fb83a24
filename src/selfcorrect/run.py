"""Entry point: `python -m selfcorrect [overrides]` (or `-m` for a Hydra multirun).

One run = prepare the run directory → build or load the cached base model → train the configured
arm → keep the checkpoint with the highest validation Acc@t2 (`selection`) → evaluate it on the
fixed test problems (`final_evaluation`) → write the results beside the resolved config. The run
directory holds:

  config.yaml        the resolved config          run.json          status, timings, paths
  metrics.json       all metrics (written last)    generations.jsonl every test episode
  probe_*.jsonl      mismatch-probe episodes       history.jsonl     everything logged
  correction_matrix.jsonl   second attempts on controlled first attempts (correct / one injected error)
  paper_checkpoint_generations.jsonl   test episodes of the paper's checkpoint, when the one rule kept another
  checkpoints/       RL resume states, candidates.json (the validation metrics of every candidate checkpoint)
  wandb/             the wandb run (offline by default)
"""

from __future__ import annotations

import random
import sys
import time
import traceback
from pathlib import Path

import hydra
import numpy as np
import torch
from hydra.core.hydra_config import HydraConfig
from hydra.types import RunMode
from omegaconf import DictConfig, OmegaConf

from selfcorrect.config import RunSpec, parse
from selfcorrect.evaluation.final_evaluation import final_evaluation, write_final
from selfcorrect.models.loading import base_model_path, load_base_policy
from selfcorrect.paths import CONF_DIR
from selfcorrect.runtime import checkpoint, distributed, flops, resume, timing
from selfcorrect.runtime.provenance import provenance
from selfcorrect.runtime.records import write_json
from selfcorrect.runtime.tracking import Tracker
from selfcorrect.tasks import make_task
from selfcorrect.training import selection
from selfcorrect.training.arms import get_arm, make_context

def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


def run(cfg: DictConfig, run_dir: Path, group: str = "single") -> dict:
    """One run of the composed config `cfg`, parsed once into specs (`config.parse`: every value
    checked before any work); nothing below reads `cfg` itself."""
    spec = parse(cfg)
    distributed.init()
    if not distributed.is_main():
        return _run_worker(spec, run_dir)
    prepared = resume.prepare(run_dir, spec.resolved)  # a re-launch into the same dir: skip, resume or rerun
    distributed.broadcast(prepared.state)
    if prepared.state == "complete":
        print(f"[skip] {run_dir} already complete", flush=True)
        return prepared.metrics
    run_dir.mkdir(parents=True, exist_ok=True)
    clock = timing.StageClock(count_flops=flops.requested())  # the FLOP-accounted bench counts (flops.py)
    with timing.running(clock):
        return _run_main(spec, cfg, run_dir, group, prepared, clock)


def _run_main(spec: RunSpec, cfg: DictConfig, run_dir: Path, group: str, prepared, clock: timing.StageClock) -> dict:
    """The main process's run: prepare → build → train → evaluate → write, each step a stage
    of `clock` (run.json `stages`)."""
    t0 = time.time()
    status = resume.start_status(spec.resolved, prepared)
    write_json(run_dir / "run.json", status)
    (run_dir / "config.yaml").write_text(OmegaConf.to_yaml(cfg, resolve=True))  # the resolved Hydra config
    torch.set_num_threads(spec.threads)
    seed_everything(spec.seed)
    task = make_task(spec.task)
    cache_dir = spec.cache_dir
    with timing.stage("tracker"):
        tracker = Tracker(
            spec.tracking, run_dir, spec.resolved,
            name=f"{spec.arm.name}-s{spec.seed}", group=group,
            tags=[spec.arm.name, f"seed{spec.seed}", spec.task["name"], spec.model["name"]],
        )
    try:
        with timing.stage("base"):
            base_path = base_model_path(spec.model, task, cache_dir)
            base = load_base_policy(spec.model, task, cache_dir)
            distributed.barrier()  # the base is built and cached: the other processes load it
            # code: commit, dirty flag, library versions (a resumed run's earlier starts keep theirs: resume._ended)
            status.update(machine=machine_info(), code=provenance(), base_weights_sha256=checkpoint.weights_sha256(base.model))
        ctx = make_context(spec, task, base, base_path, run_dir, tracker)
        t_train = time.time()
        with timing.stage("updates"):  # sampling, monitoring and checkpoints inside are stages of their own
            result = get_arm(spec.arm.name)(ctx)
        status["train_s"] = round(time.time() - t_train, 1)
        policy, paper_other, choice = selection.choose(result.candidates, result.policy, result.paper_choice, ctx.new_policy)
        # what the arm spent of the shared budget (the base spends nothing)
        spent = result.budget_spent or spec.budget.spent(0, 0, 0)
        policy, paper_other = policy.merged(), paper_other and paper_other.merged()  # LoRA folded in (lora.py)
        if not spec.eval.test:  # a tuning run: training and the checkpoint choice on validation only
            metrics = {"checkpoint": choice, "budget": spent, **({"arm": result.extra_metrics} if result.extra_metrics else {})}
            ctx.candidates.prune()
            with timing.stage("write"):
                tracker.summary(metrics)
                write_json(run_dir / "metrics.json", metrics)
                tracker.finish()
            status.update(status="complete", wall_s=round(time.time() - t0, 1), base_model=str(base_path), stages=clock.split())
            write_json(run_dir / "run.json", status)
            print(f"[{spec.arm.name} seed={spec.seed} lr={spec.budget.lr:g}] kept step {choice.get('step')}, "
                  f"val Acc@t2={choice.get('val_acc_t2')} → {run_dir}", flush=True)
            return metrics
        if policy is not base and spec.save_policy:
            with timing.stage("write"):
                policy.save(run_dir / "policy")
        t_eval = time.time()
        fe = final_evaluation(spec, task, base, result, policy, paper_other, status["base_weights_sha256"])
        status["eval_s"] = round(time.time() - t_eval, 1)
        ctx.candidates.prune()
        metrics = fe.result.metrics
        metrics["checkpoint"] = choice
        metrics["budget"] = spent
        with timing.stage("write"):
            tracker.log(metrics, prefix=f"{spec.eval.split}/")
            tracker.summary(metrics)
            tracker.table("generations", fe.result.records, max_rows=spec.tracking["table_rows"])
            status.update(status="complete", wall_s=round(time.time() - t0, 1), wandb_dir=tracker.wandb_dir, base_model=str(base_path))
            write_final(run_dir, fe)
            tracker.finish()
            checkpoint.prune(run_dir / "checkpoints")  # complete: the resume states are no longer needed
        status["stages"] = clock.split()
        if clock.count_flops:
            status["stage_flops"] = clock.flop_split()
        status["max_rss_gb"] = max_rss_gb()
        write_json(run_dir / "run.json", status)
    except BaseException as e:
        status.update(status="failed", error=f"{type(e).__name__}: {e}", traceback=traceback.format_exc(), stages=clock.split())
        write_json(run_dir / "run.json", status)
        tracker.finish(exit_code=1)
        raise
    print(summary_line(spec, metrics, run_dir), flush=True)
    return metrics


def _run_worker(spec: RunSpec, run_dir: Path) -> dict:
    """A process other than the main one: trains its share of the arm and stops (the main
    process prepares the run directory, writes everything and evaluates)."""
    if distributed.broadcast(None) == "complete":
        return {}
    torch.set_num_threads(spec.threads)
    seed_everything(spec.seed)
    task = make_task(spec.task)
    distributed.barrier()
    base = load_base_policy(spec.model, task, spec.cache_dir)
    quiet = Tracker({"mode": "disabled"}, run_dir, {}, name="", group="", tags=[])
    quiet.log = lambda *args, **kwargs: None  # history.jsonl is the main process's
    get_arm(spec.arm.name)(make_context(spec, task, base, base_model_path(spec.model, task, spec.cache_dir), run_dir, quiet))
    return {}


def machine_info() -> dict:
    """Where a run ran: float results can differ between CPUs and libraries."""
    import platform

    return {"machine": platform.machine(), "processor": platform.processor() or platform.machine(),
            "torch": torch.__version__, "cpu_capability": torch.backends.cpu.get_cpu_capability(),
            "threads": torch.get_num_threads()}


def max_rss_gb() -> float:
    """The run process's peak resident memory (a real model's run holds GBs: a sweep's machine must have them)."""
    import resource

    return round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20, 2)


def summary_line(spec: RunSpec, m: dict, run_dir: Path) -> str:
    """One line per run; a second, a warning, when more attempts hit `max_new_tokens` than
    `metrics.TRUNCATION_WARN` allows (their verdicts measure the token cap, not the policy)."""
    line = (
        f"[{spec.arm.name} seed={spec.seed}] Acc@t1={m['acc_t1']:.3f} Acc@t2={m['acc_t2']:.3f} "
        f"Δ={m['delta']:+.3f} i→c={m['delta_i2c']:.3f} c→i={m['delta_c2i']:.3f} "
        f"no-edit={m['no_edit_rate']:.3f} → {run_dir}"
    )
    tr = m.get("truncation")
    if tr and tr["exceeded"]:
        shares = ", ".join(f"turn {k[1]} {v:.1%}" for k, v in tr.items() if k in ("t1", "t2"))
        line += (f"\n[{spec.arm.name} seed={spec.seed}] WARNING: attempts hit max_new_tokens={spec.eval.max_new_tokens} "
                 f"({shares}; threshold {tr['threshold']:.0%}): raise eval.max_new_tokens or give the task a stop string")
    return line


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
