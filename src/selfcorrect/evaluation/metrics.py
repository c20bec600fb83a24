"""The paper's self-correction metrics, computed from per-problem records.

Every number the evaluator reports comes from `summarize(records)` over the records it also
writes to `generations.jsonl`, so any metric can be recomputed from a finished run.
Definitions (SCoRe §3): over ALL n problems,
  Acc@t1, Acc@t2, Δ = Acc@t2 − Acc@t1, Δ i→c = #(wrong→right)/n, Δ c→i = #(right→wrong)/n,
so Δ = Δ i→c − Δ c→i exactly. Δ is bounded by 1 − Acc@t1, so beside it the ceiling-free rates:
  fix rate = #(wrong→right) / #(wrong at t1),   break rate = #(right→wrong) / #(right at t1).
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Iterable, Sequence

from rapidfuzz.distance import Indel

from selfcorrect.evaluation.mechanisms.behaviours import behaviour_summary
from selfcorrect.evaluation.mechanisms.calibration import calibration_summary, revise_summary
from selfcorrect.tasks.base import error_kind

EDIT_HIST_BINS = 10


def transition_metrics(correct1: Sequence[bool], correct2: Sequence[bool]) -> dict[str, float]:
    n = len(correct1)
    if n == 0 or n != len(correct2):
        raise ValueError(f"need the same non-zero number of first and second verdicts, got {n} and {len(correct2)}")
    i2c = sum((not a) and b for a, b in zip(correct1, correct2))
    c2i = sum(a and (not b) for a, b in zip(correct1, correct2))
    acc1, acc2 = sum(map(bool, correct1)) / n, sum(map(bool, correct2)) / n
    diffs = [int(b) - int(a) for a, b in zip(correct1, correct2)]
    return {
        "n": n,
        "acc_t1": acc1,
        "acc_t2": acc2,
        "delta": acc2 - acc1,
        "delta_i2c": i2c / n,
        "delta_c2i": c2i / n,
        "acc_t1_se": _se_mean([float(a) for a in correct1]),
        "acc_t2_se": _se_mean([float(b) for b in correct2]),
        "delta_se": _se_mean(diffs),  # paired: one difference per problem
    }


def correction_rate(correct1: Sequence[bool], correct2: Sequence[bool]) -> float | None:
    """Of the problems wrong at the first attempt, the fraction right at the second."""
    wrong = [b for a, b in zip(correct1, correct2) if not a]
    return sum(wrong) / len(wrong) if wrong else None


def break_rate(correct1: Sequence[bool], correct2: Sequence[bool]) -> float | None:
    """Of the problems right at the first attempt, the fraction wrong at the second."""
    right = [b for a, b in zip(correct1, correct2) if a]
    return sum(not b for b in right) / len(right) if right else None


def edit_distance_ratio(y1: str, y2: str) -> float:
    """Edit distance between the attempts divided by their total length (paper §5).

    Insertions and deletions only (rapidfuzz's Indel distance), so the ratio runs from 0 for
    identical attempts to 1 for attempts with no character in common; character-level, since
    the paper does not say which.
    """
    return Indel.normalized_distance(y1, y2)


def histogram(values: Iterable[float], bins: int = EDIT_HIST_BINS) -> list[int]:
    """Counts over `bins` equal bins of [0, 1]; 1.0 falls in the last bin."""
    counts = [0] * bins
    for v in values:
        if not 0.0 <= v <= 1.0:
            raise ValueError(f"histogram value {v!r} is outside [0, 1]")
        counts[min(int(v * bins), bins - 1)] += 1
    return counts


def summarize(records: Sequence[dict]) -> dict:
    """All metrics of one evaluation from its per-problem records (see `evaluate.record`)."""
    c1 = [r["correct1"] for r in records]
    c2 = [r["correct2"] for r in records]
    out = transition_metrics(c1, c2)
    ratios = [r["edit_ratio"] for r in records]
    n = len(records)
    out.update(
        well_formed_t1=sum(r["well_formed1"] for r in records) / n,
        well_formed_t2=sum(r["well_formed2"] for r in records) / n,
        edit_ratio_mean=sum(ratios) / n,
        edit_ratio_hist=histogram(ratios),
        no_edit_rate=sum(r["y1"] == r["y2"] for r in records) / n,
        answer_change_rate=sum(r["answer1"] != r["answer2"] for r in records) / n,
        correction_rate_own=correction_rate(c1, c2),
        # ceiling-free rates: fix = i→c over the wrong first attempts, break = c→i over the right ones
        fix_rate=correction_rate(c1, c2),
        break_rate=break_rate(c1, c2),
        errors_t1=dict(Counter(error_kind(r["error1"]) for r in records if r["error1"])),
        errors_t2=dict(Counter(error_kind(r["error2"]) for r in records if r["error2"])),
        errors_fixed=dict(Counter(error_kind(r["error1"]) for r in records if r["error1"] and r["correct2"])),
        revise=revise_summary(records),  # does y2 change the answer when y1 is wrong, and keep it when right?
    )
    truncation = truncation_summary(records)  # attempts that hit max_new_tokens, where the records say
    if truncation is not None:
        out["truncation"] = truncation
    # the mechanisms that need more than the verdicts: only for records that carry them
    behaviours = behaviour_summary(records)  # the task's `revision_behaviour` labels
    if behaviours is not None:
        out["behaviour"] = behaviours
    calibration = calibration_summary(records)  # the policy's probability of its own y1 (`logp1`)
    if calibration is not None:
        out["calibration"] = calibration
    return out


TRUNCATION_WARN = 0.05  # a run whose attempts hit max_new_tokens more often than this says so in its summary


def truncation_summary(records: Sequence[dict], threshold: float = TRUNCATION_WARN) -> dict | None:
    """The share of first and second attempts that hit `max_new_tokens` (`truncated1/2` in the
    records; None where no record carries them), and whether either exceeds `threshold`: a
    truncated attempt was cut off before its answer, so its verdict measures the token cap."""
    out = {}
    for t in (1, 2):
        flags = [r[f"truncated{t}"] for r in records if f"truncated{t}" in r]
        if flags:
            out[f"t{t}"] = sum(flags) / len(flags)
    if not out:
        return None
    out.update(threshold=threshold, exceeded=any(v > threshold for v in out.values()))
    return out


def total_variation(counts_p: dict[str, float], counts_q: dict[str, float]) -> float | None:
    """TV distance between two error-kind histograms (counts are normalised first)."""
    zp, zq = sum(counts_p.values()), sum(counts_q.values())
    if zp == 0 or zq == 0:
        return None
    kinds = sorted(set(counts_p) | set(counts_q))  # a fixed order: set order differs between processes
    return 0.5 * sum(abs(counts_p.get(k, 0) / zp - counts_q.get(k, 0) / zq) for k in kinds)


def _se_mean(xs: Sequence[float]) -> float:
    n = len(xs)
    if n < 2:
        return float("nan")
    m = sum(xs) / n
    return math.sqrt(sum((x - m) ** 2 for x in xs) / (n - 1) / n)
