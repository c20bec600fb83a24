"""The offline arms (SCoRe §4): SFT on teacher correction traces, Pair-SFT on the model's own
samples (D_SFT / D+_SFT) and multi-turn STaR (D_STaR / D+_STaR).

All of them spend the shared budget (`conf/budget/`, `selfcorrect.training.budget`) that the RL arms
spend too: `budget.episodes` two-turn episodes sampled from a model (traces written by the
teacher) and `budget.gradient_steps` SFT steps of `budget.sequences_per_step` traces, with the
same optimizer and schedule. Each registers fixed first attempts it trained on for the mismatch
probe (`train_fixed` on train problems, `val_fixed` built the same way on val problems) and
reports the error-kind histogram of its training first attempts, both in its `ArmResult`
(`offline_result`).
"""

from __future__ import annotations

import random
import time
from pathlib import Path

from selfcorrect.models.policy import Policy, Sampling
from selfcorrect.runtime import timing
from selfcorrect.training.arms import ArmResult
from selfcorrect.training.offline.sft import sft_train
from selfcorrect.training.offline.traces import (
    anchor_traces,
    cached_traces,
    error_histogram,
    error_model_for,
    pair_sft_traces,
    probe_set,
    sample_episodes,
    star_traces,
    teacher_traces,
)


# --- shared plumbing -----------------------------------------------------------------------------
def offline_result(ctx, policy: Policy, probes: dict, traces: list[dict], facts: dict, spent: dict, **metrics) -> ArmResult:
    """An offline arm's result: the last step's policy (SFT has no training reward: the paper's rule
    keeps the last step), what it spent, its probe sets, the error kinds of the first attempts it
    trained on (`traces`), and its sizes, dataset `facts` and `metrics` under `arm/`."""
    wrong = [t for t in traces if not t["correct1"]]
    hist = error_histogram(ctx.task, [t["problem"] for t in wrong], [t["y1"] for t in wrong])
    extra = dict(
        n_traces=len(traces),
        n_traces_i2c=len(wrong),
        n_traces_c2c=len(traces) - len(wrong),
        n_probe_train_fixed=len(probes["train_fixed"].attempts),
        n_probe_val_fixed=len(probes["val_fixed"].attempts),
        train_error_hist=hist,
        **{k: v for k, v in facts.items() if k not in ("datasets", "probes")},
    )
    return ArmResult(policy, paper_choice={"rule": "last", "step": ctx.spec.budget.gradient_steps}, budget_spent=spent,
                     offline=trained_probes(probes), offline_error_hist=hist, extra_metrics={**extra, **metrics},
                     candidates=ctx.candidates)


def trained_probes(probes: dict) -> tuple:
    """The probe sets of the first attempts an arm trained on, in the order the probe measures them."""
    return tuple(probes[label] for label in ("train_fixed", "val_fixed"))


def spent(ctx, episodes: int, fits: list[dict], measurement_samples: int = 0) -> dict:
    """What the arm spent: episodes sampled (or written), the SFT steps actually taken (`fits`: one
    `sft_train` result per round) and their sequences per step, and model samples drawn outside
    the episode budget (base_like's measurement of where the base errs)."""
    steps = sum(f["steps"] for f in fits)
    per_step = sum(f["sequences"] for f in fits) // max(steps, 1)
    return ctx.spec.budget.spent(episodes, steps, per_step, measurement_samples)


def model_id(base_path) -> str:
    """The cache hash of a cached base model (stable across checkouts), else its path or hub id."""
    p = Path(base_path)
    return p.parent.name if (p.parent / "artifact.json").exists() else str(base_path)


# the module path the offline arms' training functions had before issue 31 moved them here: cache keys
# name it, so trace datasets cached before the move keep their keys (tests/test_sft_arms.py pins it)
KEYED_MODULE = "selfcorrect.arms.sft_arms"


def keyed_train(train: str) -> str:
    """An arm's `train` ("module:function") as trace cache keys name it: this module as KEYED_MODULE."""
    module, _, function = train.partition(":")
    return f"{KEYED_MODULE}:{function}" if module == __name__ else train


def trace_spec(ctx, kind: str) -> dict:
    """Everything a cached trace dataset depends on (the SFT settings do not enter)."""
    arm = dict(ctx.spec.arm.settings)
    arm.pop("sft", None)
    arm.pop("data", None)  # a label (selfcorrect.training.catalog), not a setting: cache keys stay as they were
    if "train" in arm:
        arm["train"] = keyed_train(arm["train"])
    return {
        "kind": kind, "base": model_id(ctx.base_path), "seed": ctx.seed, "arm": arm, "episodes": ctx.spec.budget.episodes,
        "task": ctx.spec.task, "max_new_tokens": ctx.spec.eval.max_new_tokens,
    }


def cache_dir(ctx) -> Path:
    return ctx.cache_dir


def data_sampling(ctx) -> Sampling:
    return Sampling(ctx.spec.arm.offline.temperature, ctx.spec.eval.max_new_tokens)


def probe_problems(ctx):
    return ctx.task.problems("val", ctx.spec.arm.offline.probe.val_problems, seed=ctx.seed)


def rng_for(ctx, what: str) -> random.Random:
    return random.Random(f"{ctx.spec.arm.name}:{what}:{ctx.seed}")


def probes_from(ctx, train: list[dict], val: list[dict]) -> dict:
    n_train, n_val = ctx.spec.arm.offline.probe.n_train, ctx.spec.arm.offline.probe.n_val
    return {
        "train_fixed": probe_set("train_fixed", train, n_train, rng_for(ctx, "probe_train")),
        "val_fixed": probe_set("val_fixed", val, n_val, rng_for(ctx, "probe_val")),
    }


def anchors(ctx, samples: list[dict], n_traces: int) -> list[dict]:
    """`arm.anchor` turn-1 examples per correction trace from the base's samples (0: none, the paper's arms)."""
    return anchor_traces(samples, round(ctx.spec.arm.offline.anchor * n_traces), rng_for(ctx, "anchor"))


def with_anchors(datasets: dict) -> list[dict]:
    """The SFT set: the correction traces, then the turn-1 anchors (the trainer shuffles)."""
    return datasets["train"] + datasets.get("anchor", [])


def sample_stats(samples: list[dict]) -> dict:
    n = len(samples)
    return {
        "acc_t1": sum(s["correct1"] for s in samples) / n,
        "acc_t2": sum(s["correct2"] for s in samples) / n,
        "i2c": sum((not s["correct1"]) and s["correct2"] for s in samples) / n,
        "c2c": sum(s["correct1"] and s["correct2"] for s in samples) / n,
        "n": n,
    }


# --- SFT on teacher traces -----------------------------------------------------------------------
def train_sft_teacher(ctx) -> ArmResult:
    """SFT on (x, teacher's wrong y1, revise, correct y2); `arm.error_model` dials how far the
    teacher's errors are from the model's own."""
    arm, task = ctx.spec.arm.offline, ctx.task
    n_problems = arm.problems_per_round
    errors = error_model_for(task)
    if arm.error_model not in errors.teacher_models:
        raise ValueError(f"unknown arm.error_model {arm.error_model!r}; expected one of {errors.teacher_models}")

    def build():
        facts, base_sites = {}, None
        if arm.error_model == "base_like":  # measure where the base's own first attempts err
            measure = task.problems("train", arm.base_like.n_problems, seed=ctx.seed + 1)
            eps = ctx.base.two_turn(measure, Sampling(arm.base_like.temperature, ctx.spec.eval.max_new_tokens), seed=ctx.seed, n_turns=1)
            y1 = [ep.y1 for ep in eps]
            base_sites = errors.site_histogram(measure, y1)
            facts.update(base_error_hist=error_histogram(task, measure, y1), base_site_hist=base_sites, measurement_samples=len(measure))
        weights = errors.teacher_cells(arm.error_model, base_sites)
        rng = rng_for(ctx, f"teacher_{arm.error_model}")
        problems = task.problems("train", n_problems, seed=ctx.seed)
        train = teacher_traces(errors, problems, weights, ctx.spec.budget.episodes, rng)
        val = teacher_traces(errors, probe_problems(ctx), weights, 2 * arm.probe.n_val, rng)
        # the teacher's error sites, beside its error kinds (train_error_hist) and the trained model's own
        facts.update(teacher_cells=weights, train_site_hist=errors.site_histogram([t["problem"] for t in train], [t["y1"] for t in train]))
        return {"train": train}, probes_from(ctx, train, val), facts

    t0 = time.time()
    with timing.stage("sampling"):
        datasets, probes, facts, path = cached_traces(cache_dir(ctx), trace_spec(ctx, "sft_teacher"), build)
    data_s, measured = round(time.time() - t0, 2), facts.get("measurement_samples", 0)
    policy, steps = ctx.new_policy(), ctx.spec.budget.gradient_steps
    fit = sft_train(ctx, policy, datasets["train"], steps, ctx.seed, trained_probes(probes))
    return offline_result(ctx, policy, probes, datasets["train"], {**facts, "data_s": data_s, "measurement_samples": measured},
                          spent(ctx, len(datasets["train"]), [fit], measured), sft=fit)  # a teacher trace per episode


# --- Pair-SFT: D_SFT and D+_SFT ------------------------------------------------------------------
def train_pair_sft(ctx) -> ArmResult:
    """Sample two-turn traces from the base at `arm.temperature`, pair incorrect responses with
    random correct ones of the same problem (D+: correct ones too), SFT once."""
    arm, task = ctx.spec.arm.offline, ctx.task
    n_problems = arm.problems_per_round
    if arm.rounds != 1:
        raise ValueError(f"Pair-SFT builds its dataset once (arm.rounds must be 1), got {arm.rounds!r}")

    def build():
        k, sampling = arm.samples_per_problem, data_sampling(ctx)
        problems = task.problems("train", n_problems, seed=ctx.seed)
        samples = sample_episodes(ctx.base, problems, k, sampling, seed=ctx.seed)
        rng = rng_for(ctx, "pairs")
        train = pair_sft_traces(samples, rng, plus=arm.plus, incorrect_from=arm.incorrect_from)
        val_samples = sample_episodes(ctx.base, probe_problems(ctx), k, sampling, seed=ctx.seed + 1)
        val = pair_sft_traces(val_samples, rng, plus=arm.plus, incorrect_from=arm.incorrect_from)
        facts = {"model_samples": len(samples), "samples": sample_stats(samples)}
        return {"train": train, "anchor": anchors(ctx, samples, len(train))}, probes_from(ctx, train, val), facts

    t0 = time.time()
    with timing.stage("sampling"):
        datasets, probes, facts, path = cached_traces(cache_dir(ctx), trace_spec(ctx, "pair_sft"), build)
    data_s = round(time.time() - t0, 2)
    policy, steps = ctx.new_policy(), ctx.spec.budget.gradient_steps
    fit = sft_train(ctx, policy, with_anchors(datasets), steps, ctx.seed, trained_probes(probes))
    return offline_result(ctx, policy, probes, datasets["train"], {**facts, "data_s": data_s},
                          spent(ctx, facts["model_samples"], [fit]), n_anchor_t1=len(datasets.get("anchor", [])), sft=fit)


# --- multi-turn STaR: D_STaR and D+_STaR ---------------------------------------------------------
def train_star(ctx) -> ArmResult:
    """`arm.rounds` rounds of: sample two-turn traces from the latest model, keep those that
    revise incorrect → correct (D+: also correct → correct), and fine-tune on them, from the base
    model every round (`arm.init: base`, ReST^EM as the paper has it) or from the latest model
    (`continue`). The budget's episodes and gradient steps are split evenly over the rounds.
    Round 1 samples the base, so its dataset (and the probe sets built from it) is cached; later
    rounds depend on the trained model and are resampled every run."""
    arm, task = ctx.spec.arm.offline, ctx.task
    n_problems = arm.problems_per_round
    rounds, k, sampling = arm.rounds, arm.samples_per_problem, data_sampling(ctx)
    problems = task.problems("train", n_problems, seed=ctx.seed)

    def build():
        samples = sample_episodes(ctx.base, problems, k, sampling, seed=ctx.seed)
        train = star_traces(samples, plus=arm.plus)
        val_samples = sample_episodes(ctx.base, probe_problems(ctx), k, sampling, seed=ctx.seed + 1)
        val = star_traces(val_samples, plus=arm.plus)
        return ({"train": train, "anchor": anchors(ctx, samples, len(train))}, probes_from(ctx, train, val),
                {"samples": sample_stats(samples)})

    t0 = time.time()
    with timing.stage("sampling"):
        datasets, probes, facts, _ = cached_traces(cache_dir(ctx), trace_spec(ctx, "star_round1"), build)
    data_s = round(time.time() - t0, 2)
    total = ctx.spec.budget.gradient_steps
    steps = [total // rounds + (r < total % rounds) for r in range(rounds)]
    policy, offset, per_round = ctx.new_policy(), 0, []
    traces, stats = datasets["train"], facts["samples"]
    anchor = datasets.get("anchor", [])  # turn-1 anchors (the *_anchor variants): the base's correct first attempts
    for r in range(rounds):
        if r > 0:
            with timing.stage("sampling"):
                samples = sample_episodes(policy, problems, k, sampling, seed=ctx.seed + 1000 * r)
            traces, stats = star_traces(samples, plus=arm.plus), sample_stats(samples)
            if not traces:
                raise RuntimeError(f"STaR round {r + 1}: no trace of {len(samples)} samples passed the filter")
            if arm.init == "base":
                policy = ctx.new_policy()
        n_anchor = round(arm.anchor * len(traces))
        mixed = traces + [anchor[i % len(anchor)] for i in range(n_anchor)] if anchor else traces
        fit = sft_train(ctx, policy, mixed, steps[r], ctx.seed + r, trained_probes(probes), offset=offset, at_start=(r == 0))
        per_round.append({"n_traces": len(traces), "n_c2c": sum(t["correct1"] for t in traces), "n_anchor_t1": len(mixed) - len(traces),
                          "samples": stats, **fit})
        offset += steps[r]
    return offline_result(ctx, policy, probes, datasets["train"], {"data_s": data_s}, spent(ctx, rounds * len(problems) * k, per_round),
                          model_samples=rounds * len(problems) * k, rounds=per_round, init=arm.init,
                          epochs_per_round=[r["epochs"] for r in per_round])
