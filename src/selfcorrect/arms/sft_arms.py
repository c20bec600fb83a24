"""The offline arms (SCoRe §4): SFT on teacher correction traces, Pair-SFT on the model's own
samples (D_SFT / D+_SFT) and multi-turn STaR (D_STaR / D+_STaR).

All of them spend the same budget, set once in `conf/arm/offline/budget.yaml`: `budget.samples`
two-turn episodes (traces for the teacher) and `budget.steps` gradient steps, with the same
optimiser settings (`sft`). Each registers fixed first attempts it trained on for the mismatch
probe (`train_fixed` on train problems, `val_fixed` built the same way on val problems) and
reports the error-kind histogram of its training first attempts (`ctx.offline_error_hist`).
"""

from __future__ import annotations

import random
import time
from pathlib import Path

import hydra
from omegaconf import OmegaConf

from selfcorrect.policy import Policy, Sampling
from selfcorrect.sft import sft_train
from selfcorrect.traces import (
    TEACHER_ERROR_MODELS,
    cached_traces,
    error_histogram,
    error_model_for,
    pair_sft_traces,
    probe_set,
    sample_episodes,
    star_traces,
    teacher_kind_weights,
    teacher_traces,
)


# --- shared plumbing -----------------------------------------------------------------------------
def check_budget(arm) -> int:
    """Every offline arm draws exactly `budget.samples` episodes (or teacher traces)."""
    used = int(arm.n_problems) * int(arm.samples_per_problem) * int(arm.rounds)
    if used != int(arm.budget.samples):
        raise ValueError(
            f"arm {arm.name}: n_problems × samples_per_problem × rounds = {arm.n_problems} × "
            f"{arm.samples_per_problem} × {arm.rounds} = {used}, but the shared budget arm.budget.samples "
            f"is {arm.budget.samples}; change them together so all arms get the same sample budget"
        )
    for key in ("n_problems", "samples_per_problem", "rounds"):
        if int(arm[key]) <= 0:
            raise ValueError(f"arm.{key} must be positive, got {arm[key]!r}")
    return used


def model_id(base_path) -> str:
    """The cache hash of a cached base model (stable across checkouts), else its path or hub id."""
    p = Path(base_path)
    return p.parent.name if (p.parent / "artifact.json").exists() else str(base_path)


def trace_spec(ctx, kind: str) -> dict:
    """Everything a cached trace dataset depends on (the SFT settings do not enter)."""
    arm = OmegaConf.to_container(ctx.cfg.arm, resolve=True)
    arm.pop("sft", None)
    return {
        "kind": kind, "base": model_id(ctx.base_path), "seed": ctx.seed, "arm": arm,
        "task": OmegaConf.to_container(ctx.cfg.task, resolve=True), "max_new_tokens": ctx.cfg.eval.max_new_tokens,
    }


def cache_dir(ctx) -> Path:
    return Path(hydra.utils.to_absolute_path(ctx.cfg.paths.cache_dir))


def data_sampling(ctx) -> Sampling:
    return Sampling(float(ctx.cfg.arm.temperature), int(ctx.cfg.eval.max_new_tokens))


def probe_problems(ctx):
    return ctx.task.problems("val", int(ctx.cfg.arm.probe.val_problems), seed=ctx.seed)


def rng_for(ctx, what: str) -> random.Random:
    return random.Random(f"{ctx.cfg.arm.name}:{what}:{ctx.seed}")


def register(ctx, probes: dict, traces: list[dict], facts: dict) -> None:
    """Probe sets into `ctx.offline`, training first-attempt errors, budgets and sizes."""
    ctx.offline.extend(probes[label] for label in ("train_fixed", "val_fixed"))
    wrong = [t for t in traces if not t["correct1"]]
    ctx.offline_error_hist = error_histogram(ctx.task, [t["problem"] for t in wrong], [t["y1"] for t in wrong])
    arm = ctx.cfg.arm
    ctx.extra_metrics.update(
        budget_samples=int(arm.budget.samples),
        budget_steps=int(arm.budget.steps),
        n_traces=len(traces),
        n_traces_i2c=len(wrong),
        n_traces_c2c=len(traces) - len(wrong),
        n_probe_train_fixed=len(probes["train_fixed"].attempts),
        n_probe_val_fixed=len(probes["val_fixed"].attempts),
        train_error_hist=ctx.offline_error_hist,
        **{k: v for k, v in facts.items() if k not in ("datasets", "probes")},
    )


def probes_from(ctx, train: list[dict], val: list[dict]) -> dict:
    n_train, n_val = int(ctx.cfg.arm.probe.n_train), int(ctx.cfg.arm.probe.n_val)
    return {
        "train_fixed": probe_set("train_fixed", train, n_train, rng_for(ctx, "probe_train")),
        "val_fixed": probe_set("val_fixed", val, n_val, rng_for(ctx, "probe_val")),
    }


def sample_stats(samples: list[dict]) -> dict:
    n = len(samples)
    return {
        "acc_t1": sum(s["correct1"] for s in samples) / n,
        "acc_t2": sum(s["correct2"] for s in samples) / n,
        "i2c": sum((not s["correct1"]) and s["correct2"] for s in samples) / n,
        "c2c": sum(s["correct1"] and s["correct2"] for s in samples) / n,
        "n": n,
    }


def train_and_finish(ctx, policy: Policy, traces: list[dict], steps: int, seed: int, offset: int = 0, at_start: bool = True) -> dict:
    return sft_train(ctx, policy, traces, ctx.cfg.arm.sft, steps, seed, offset=offset, at_start=at_start)


# --- SFT on teacher traces -----------------------------------------------------------------------
def train_sft_teacher(ctx) -> Policy:
    """SFT on (x, teacher's wrong y1, revise, correct y2); `arm.error_model` dials how far the
    teacher's errors are from the model's own."""
    arm, task = ctx.cfg.arm, ctx.task
    check_budget(arm)
    if arm.error_model not in TEACHER_ERROR_MODELS:
        raise ValueError(f"unknown arm.error_model {arm.error_model!r}; expected one of {TEACHER_ERROR_MODELS}")
    errors = error_model_for(task)

    def build():
        facts, base_hist = {}, None
        if arm.error_model == "base_like":  # measure the base's own first-attempt error kinds
            measure = task.problems("train", int(arm.base_like.n_problems), seed=ctx.seed + 1)
            eps = ctx.base.two_turn(measure, Sampling(float(arm.base_like.temperature), int(ctx.cfg.eval.max_new_tokens)), seed=ctx.seed, n_turns=1)
            base_hist = error_histogram(task, measure, [ep.y1 for ep in eps])
            facts.update(base_error_hist=base_hist, model_samples=len(measure))
        weights = teacher_kind_weights(arm.error_model, errors.bug_kinds, base_hist)
        rng = rng_for(ctx, f"teacher_{arm.error_model}")
        problems = task.problems("train", int(arm.n_problems), seed=ctx.seed)
        train = teacher_traces(errors, problems, weights, int(arm.n_problems) * int(arm.samples_per_problem), rng)
        val = teacher_traces(errors, probe_problems(ctx), weights, 2 * int(arm.probe.n_val), rng)
        facts.update(teacher_kind_weights=weights)
        return {"train": train}, probes_from(ctx, train, val), facts

    t0 = time.time()
    datasets, probes, facts, path = cached_traces(cache_dir(ctx), trace_spec(ctx, "sft_teacher"), build)
    register(ctx, probes, datasets["train"], {**facts, "data_s": round(time.time() - t0, 2), "model_samples": facts.get("model_samples", 0)})
    policy = ctx.new_policy()
    ctx.extra_metrics["sft"] = train_and_finish(ctx, policy, datasets["train"], int(arm.budget.steps), ctx.seed)
    return policy


# --- Pair-SFT: D_SFT and D+_SFT ------------------------------------------------------------------
def train_pair_sft(ctx) -> Policy:
    """Sample two-turn traces from the base at `arm.temperature`, pair incorrect responses with
    random correct ones of the same problem (D+: correct ones too), SFT once."""
    arm, task = ctx.cfg.arm, ctx.task
    check_budget(arm)
    if int(arm.rounds) != 1:
        raise ValueError(f"Pair-SFT builds its dataset once (arm.rounds must be 1), got {arm.rounds!r}")

    def build():
        k, sampling = int(arm.samples_per_problem), data_sampling(ctx)
        problems = task.problems("train", int(arm.n_problems), seed=ctx.seed)
        samples = sample_episodes(ctx.base, problems, k, sampling, seed=ctx.seed)
        rng = rng_for(ctx, "pairs")
        train = pair_sft_traces(samples, rng, plus=bool(arm.plus), incorrect_from=str(arm.incorrect_from))
        val_samples = sample_episodes(ctx.base, probe_problems(ctx), k, sampling, seed=ctx.seed + 1)
        val = pair_sft_traces(val_samples, rng, plus=bool(arm.plus), incorrect_from=str(arm.incorrect_from))
        facts = {"model_samples": len(samples), "samples": sample_stats(samples)}
        return {"train": train}, probes_from(ctx, train, val), facts

    t0 = time.time()
    datasets, probes, facts, path = cached_traces(cache_dir(ctx), trace_spec(ctx, "pair_sft"), build)
    register(ctx, probes, datasets["train"], {**facts, "data_s": round(time.time() - t0, 2)})
    policy = ctx.new_policy()
    ctx.extra_metrics["sft"] = train_and_finish(ctx, policy, datasets["train"], int(arm.budget.steps), ctx.seed)
    return policy


# --- multi-turn STaR: D_STaR and D+_STaR ---------------------------------------------------------
def train_star(ctx) -> Policy:
    """`arm.rounds` rounds of: sample two-turn traces from the latest model, keep those that
    revise incorrect → correct (D+: also correct → correct), SFT the latest model on them.
    Round 1 samples the base, so its dataset (and the probe sets built from it) is cached; later
    rounds depend on the trained model and are resampled every run."""
    arm, task = ctx.cfg.arm, ctx.task
    check_budget(arm)
    rounds, k, sampling = int(arm.rounds), int(arm.samples_per_problem), data_sampling(ctx)
    problems = task.problems("train", int(arm.n_problems), seed=ctx.seed)

    def build():
        samples = sample_episodes(ctx.base, problems, k, sampling, seed=ctx.seed)
        train = star_traces(samples, plus=bool(arm.plus))
        val_samples = sample_episodes(ctx.base, probe_problems(ctx), k, sampling, seed=ctx.seed + 1)
        val = star_traces(val_samples, plus=bool(arm.plus))
        return {"train": train}, probes_from(ctx, train, val), {"samples": sample_stats(samples)}

    t0 = time.time()
    datasets, probes, facts, _ = cached_traces(cache_dir(ctx), trace_spec(ctx, "star_round1"), build)
    register(ctx, probes, datasets["train"], {"data_s": round(time.time() - t0, 2)})
    steps = [int(arm.budget.steps) // rounds + (r < int(arm.budget.steps) % rounds) for r in range(rounds)]
    policy, offset, per_round = ctx.new_policy(), 0, []
    traces, stats = datasets["train"], facts["samples"]
    for r in range(rounds):
        if r > 0:
            t0 = time.time()
            samples = sample_episodes(policy, problems, k, sampling, seed=ctx.seed + 1000 * r)
            traces, stats = star_traces(samples, plus=bool(arm.plus)), sample_stats(samples)
            if not traces:
                raise RuntimeError(f"STaR round {r + 1}: no trace of {len(samples)} samples passed the filter")
        fit = train_and_finish(ctx, policy, traces, steps[r], ctx.seed + r, offset=offset, at_start=(r == 0))
        per_round.append({"n_traces": len(traces), "n_c2c": sum(t["correct1"] for t in traces), "samples": stats, **fit})
        offset += steps[r]
    ctx.extra_metrics.update(model_samples=rounds * len(problems) * k, rounds=per_round)
    return policy
