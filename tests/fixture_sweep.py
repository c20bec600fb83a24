"""A small synthetic sweep in exactly the format `run.py` writes, for the analysis tests.

Attempts are written by the real arithmetic task (its bug operators), judged by its verifier
into the evaluator's per-problem records (`record` below: `scoring.attempt_record`, without a
model; a test pins it to a scored episode), and summarised by `metrics.summarize`, so every
metrics.json here is what the evaluator would have written. Each arm gets a behaviour
(probability of fixing a wrong first attempt, of breaking a right one, of editing at all) so
that the figures have something to show; histories are synthetic curves in the logged format.
"""

from __future__ import annotations

import json
import math
import random
from pathlib import Path

from hydra import compose, initialize_config_dir
from omegaconf import OmegaConf

from selfcorrect.evaluation.correction_matrix import matrix_first_attempts, summarize_matrix
from selfcorrect.evaluation.mechanisms.behaviours import entropy_bits
from selfcorrect.evaluation.mechanisms.self_conditioning import first_attempts, summarize_self_conditioning
from selfcorrect.evaluation.metrics import summarize, total_variation
from selfcorrect.evaluation.probe import probe_metrics, probe_record
from selfcorrect.evaluation.scoring import attempt_record, behaviour_of
from selfcorrect.paths import CONF_DIR
from selfcorrect.runtime.records import scalars, write_json, write_jsonl
from selfcorrect.tasks import make_error_model, make_task
from selfcorrect.tasks.arithmetic import parse_rules

# arm label -> (p fix a wrong first attempt, p break a right one, p edit at all)
BEHAVIOUR = {
    "base": (0.25, 0.12, 0.3),
    "sft_self": (0.15, 0.03, 0.08),
    "score": (0.5, 0.02, 0.6),
    "rl_multi_turn_naive": (0.05, 0.01, 0.05),
    "sft_teacher:random_digit": (0.05, 0.05, 0.3),
    "sft_teacher:carry_drop": (0.2, 0.04, 0.3),
}
RL = {"score", "rl_multi_turn_naive"}
DEFAULT_RUNS = [(arm, seed) for arm in BEHAVIOUR for seed in (0, 1)]


def record(task, problem, y1: str, y2: str) -> dict:
    """The evaluator's record of one episode (`scoring.attempt_record`, without a model)."""
    return attempt_record(problem, y1, y2, task.verify(problem, y1), task.verify(problem, y2), behaviour_of(task, problem, y1, y2))


def base_config() -> dict:
    with initialize_config_dir(config_dir=CONF_DIR, version_base="1.3"):
        cfg = compose("config", overrides=["tracking.mode=disabled"])
    return OmegaConf.to_container(cfg, resolve=True)


def make_run(sweep: Path, arm_label: str, seed: int, cfg0: dict, n_problems: int = 40,
             status: str = "complete", scaling: bool = False, history_steps: int = 5) -> Path:
    """Write one run directory; `status` other than complete leaves it as a crash would."""
    arm, _, error_model = arm_label.partition(":")
    cfg = json.loads(json.dumps(cfg0))
    cfg["seed"], cfg["model"]["pretrain"]["seed"] = seed, seed
    cfg["eval"]["n_problems"] = n_problems
    cfg["arm"] = {"name": arm, **({"error_model": error_model} if error_model else {})}
    name = f"arm={arm}," + (f"arm.error_model={error_model}," if error_model else "") + f"seed={seed}"
    run_dir = sweep / name
    (run_dir / ".hydra").mkdir(parents=True)
    (run_dir / "config.yaml").write_text(OmegaConf.to_yaml(OmegaConf.create(cfg)))
    write_json(run_dir / "run.json", {"status": "running", "arm": arm, "seed": seed})
    if status != "complete":
        if status == "failed":
            write_json(run_dir / "run.json", {"status": "failed", "arm": arm, "seed": seed, "error": "RuntimeError: boom"})
        return run_dir

    task = make_task(OmegaConf.create(cfg["task"]))
    rules1 = parse_rules(cfg["model"]["pretrain"]["turn1_rules"])
    rules2 = parse_rules(cfg["model"]["pretrain"]["turn2_rules"])
    problems = task.problems(cfg["eval"]["split"], n_problems, seed=cfg["eval"]["problem_seed"])
    rng = random.Random(f"{arm_label}:{seed}")
    p_fix, p_break, p_edit = BEHAVIOUR[arm_label]

    def revise(p, y1: str) -> str:
        right = task.verify(p, y1).correct
        if not right and rng.random() < p_fix:
            return task.write(p)
        if right and rng.random() < p_break:
            return perturb_random_digit(y1, rng)
        return task.sample(p, rules2, rng) if rng.random() < p_edit else y1

    own = [task.sample(p, rules1, rng) for p in problems]
    records = [record(task, p, y1, revise(p, y1)) for p, y1 in zip(problems, own)]
    aux = random.Random(f"aux:{arm_label}:{seed}")  # the mechanism fields draw from their own stream
    for r in records:  # the policy's probability of its y1: higher when right (a roughly calibrated confidence)
        q = min(0.99, max(0.01, (0.85 if r["correct1"] else 0.45) + aux.uniform(-0.1, 0.1)))
        r.update(logp1=math.log(q), n_tokens1=len(r["y1"]) + 1)
    base_y1 = [task.sample(p, rules1, random.Random(f"base-offline:{p.id}")) for p in problems]
    probe = [probe_record(record(task, p, y1, revise(p, y1)), r) for p, y1, r in zip(problems, base_y1, records)]
    metrics = summarize(records)
    metrics["probe/base"] = probe_metrics(probe)
    # the correction matrix on the first half of the problems, as `correction_matrix` writes it
    half = problems[: n_problems // 2]
    matrix = []
    for r in matrix_first_attempts(make_error_model(task), half, base_y1[: len(half)], seed=cfg["eval"]["problem_seed"]):
        p = next(q for q in half if q.id == r["id"])
        y2 = revise(p, r["y1"])
        v1, v2 = task.verify(p, r["y1"]), task.verify(p, y2)
        matrix.append({**r, "y2": y2, "correct1": v1.correct, "error1": v1.error_type, "correct2": v2.correct, "error2": v2.error_type})
    metrics["correction_matrix"] = summarize_matrix(matrix)
    metrics["budget"] = spent_budget(cfg["budget"], trained=arm != "base")
    if error_model:
        teacher_hist = {"carry_drop": {"carry_drop": 10}, "random_digit": {"sum_slip": 3, "operand_copy": 7}}[error_model]
        metrics["offline_error_tv"] = total_variation(teacher_hist, metrics["errors_t1"])

    history = []
    if arm != "base":
        for step in range(0, history_steps * 10, 10):
            f = step / (history_steps * 10)
            acc_t1, acc_t2 = 0.6 + 0.05 * f + 0.01 * seed, 0.6 + (0.1 if arm == "score" else 0.0) * f
            collapse = f if arm == "score" else 0.5 * f  # the share of the behaviour that takes over
            val = {"acc_t1": acc_t1, "acc_t2": acc_t2, "delta": acc_t2 - acc_t1, "fix_rate": 0.2 + 0.3 * f * (arm == "score"),
                   "behaviour": {"wrong_t1": {"share": {"patch_column": 0.3 + 0.6 * collapse, "repeat": 0.7 - 0.6 * collapse},
                                              "entropy_bits": entropy_bits([0.3 + 0.6 * collapse, 0.7 - 0.6 * collapse])}},
                   "probe": {"base": {"correction_rate_offline": 0.2 + 0.4 * f + 0.02 * seed,
                                      "correction_rate_own": 0.2 + (0.2 if arm == "score" else -0.1) * f + 0.02 * seed,
                                      "correction_rate_offline_matched": 0.15 + 0.4 * f + 0.02 * seed,
                                      "correction_rate_own_matched": 0.15 + (0.2 if arm == "score" else -0.1) * f + 0.02 * seed}}}
            history.append({"step": step, **scalars(val, "val/")})
            if arm in RL:
                t1 = 0.55 + 0.2 * f + 0.01 * seed
                train = {"reward_t1": t1, "reward_t2": t1 + (0.08 * f if arm == "score" else 0.0),
                         "kl_t1": 0.01 * f, "kl_t2": 0.01 * f, "no_edit_rate": 0.5,
                         "answer_change_rate": 0.3 if arm == "score" else 0.3 * (1 - f),
                         "stage": 1 if (arm == "score" and f < 0.4) else 2}
                history.append({"step": step, **scalars(train, "train/")})
    if arm != "base":  # the one checkpoint rule and the paper's (`selection.choose`): they differ for seed 1
        step = 10 * (history_steps - 1)
        metrics["checkpoint"] = {"rule": "val_acc_t2", "step": step - 10 * seed, "candidates": list(range(10, 10 * history_steps, 10)),
                                 "paper": {"rule": "best_train_reward" if arm in RL else "last", "step": step},
                                 "same_as_paper": seed == 0}
    paper_records = None
    fields = ("acc_t1", "acc_t2", "delta", "delta_i2c", "delta_c2i", "fix_rate", "break_rate")
    if arm != "base" and seed == 1:  # the paper's checkpoint: the same first attempts, a less willing reviser
        paper_records = [record(task, p, r["y1"], r["y1"] if rng.random() < 0.5 else r["y2"]) for p, r in zip(problems, records)]
        m = summarize(paper_records)
        metrics["paper_checkpoint"] = {k: m[k] for k in fields}
    elif arm != "base":  # the same checkpoint: the primary's row
        metrics["paper_checkpoint"] = {k: metrics[k] for k in fields}
    # self-conditioning (`mechanisms.self_conditioning`): k injected errors, and a third turn on k = 1
    chains = []
    for r in first_attempts(make_error_model(task), half, seed=cfg["eval"]["problem_seed"], max_errors=3):
        p = next(q for q in half if q.id == r["id"])
        ys = [r["y1"], revise(p, r["y1"])] + ([revise(p, revise(p, r["y1"]))] if r["k"] == 1 else [])
        chains.append({**r, "turns": ys[1:], "correct": [task.verify(p, y).correct for y in ys]})
    metrics["self_conditioning"] = summarize_self_conditioning(chains)
    if arm != "base":  # update sparsity as final_evaluation writes it (from weights the fixture has none of)
        for d, base_share in (("fp32", 0.07), ("bf16", 0.14)):
            for i, tol in enumerate(("0", "1e-06", "1e-05", "0.0001")):
                metrics[f"sparsity/unchanged/{d}/{tol}"] = base_share + 0.01 * i + aux.uniform(0, 0.005)
        metrics["sparsity/erank_ratio/weighted_mean"] = 0.55 + aux.uniform(0, 0.05)
    history.append({"step": None, **scalars(metrics, "test/")})
    with open(run_dir / "history.jsonl", "w") as fh:
        for row in history:
            fh.write(json.dumps(row) + "\n")
    if scaling:
        write_scaling(run_dir, task, problems, rules1, rng, revise)
    # the evaluator's order: generations and probes first, metrics.json last
    write_jsonl(run_dir / "generations.jsonl", records)
    write_jsonl(run_dir / "probe_base.jsonl", probe)
    write_jsonl(run_dir / "correction_matrix.jsonl", matrix)
    write_jsonl(run_dir / "self_conditioning.jsonl", chains)
    if paper_records is not None:
        write_jsonl(run_dir / "paper_checkpoint_generations.jsonl", paper_records)
    write_json(run_dir / "metrics.json", metrics)
    write_json(run_dir / "run.json", {"status": "complete", "arm": arm, "seed": seed, "train_s": 0.0, "wall_s": 0.1,
                                      "base_model": "unused-in-fixture"})
    return run_dir


def spent_budget(budget: dict, trained: bool) -> dict:
    """The `budget` block run.py writes (`budget.Budget.spent`, without importing torch): the
    shared budget for a trained arm, nothing spent for the base."""
    spent = {k: int(budget[k]) if trained else 0 for k in ("episodes", "gradient_steps", "sequences_per_step")}
    return {**spent, "optimizer": budget["optimizer"], "lr": float(budget["lr"]), "lr_schedule": budget["lr_schedule"],
            "warmup_steps": budget["warmup_steps"], "weight_decay": float(budget["weight_decay"]),
            "max_grad_norm": float(budget["max_grad_norm"])}


def write_scaling(run_dir: Path, task, problems, rules1, rng, revise, k: int = 32, n_turns: int = 3, n: int = 200) -> None:
    """A scaling cache in `scaling.sample_revisions`'s format, for the default ScalingSpec."""
    from selfcorrect.evaluation.scaling_samples import ScalingSpec

    spec = ScalingSpec()
    assert (spec.k, spec.n_turns) == (k, n_turns), "fixture scaling cache must match the default spec"
    with open(run_dir / spec.filename, "w") as f:
        for j in range(k):
            for p in problems[:n]:
                ys = [task.sample(p, rules1, rng)]
                for _ in range(n_turns - 1):
                    ys.append(revise(p, ys[-1]))
                v = [task.verify(p, y) for y in ys]
                f.write(json.dumps({"id": p.id, "answer": p.answer, "sample": j,
                                    "answers": [x.answer for x in v], "correct": [x.correct for x in v]}) + "\n")


def make_sweep(root: Path, runs=DEFAULT_RUNS, n_problems: int = 40, scaling_labels=("base", "score")) -> Path:
    """A sweep directory with one run per (arm label, seed)."""
    sweep = Path(root) / "sweeps" / "2000-01-01_00-00-00_fixture"
    sweep.mkdir(parents=True)
    cfg0 = base_config()
    for arm_label, seed in runs:
        make_run(sweep, arm_label, seed, cfg0, n_problems, scaling=arm_label in scaling_labels and seed == 0)
    return sweep


def perturb_random_digit(text: str, rng: random.Random) -> str:
    """Replace one uniformly chosen digit of an attempt with a different digit (fake revisions)."""
    positions = [i for i, ch in enumerate(text) if ch.isdigit()]
    if not positions:
        raise ValueError(f"attempt {text!r} has no digit to perturb")
    i = rng.choice(positions)
    new = rng.choice([d for d in "0123456789" if d != text[i]])
    return text[:i] + new + text[i + 1 :]
