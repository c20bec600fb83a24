"""Correction behaviours and their collapse (the Echo-Chamber measure, arXiv 2504.07912, applied to
revisions): each two-turn record carries the task's label of *how* y2 revised y1
(`Task.revision_behaviour`, e.g. answer-first's "repeat", "read_off_working", "reanswer", ...),
and the summary gives, separately on the problems whose first attempt was wrong and on those
whose first attempt was right:

  share[b]      = #(records labelled b) / n                      for every label b the task declares
  entropy_bits  = − Σ_b share[b] · log2 share[b]                 (0: one behaviour only)
  entropy_mm_bits = entropy_bits + (K − 1) / (2 n ln 2)          Miller–Madow: K labels seen, n records
  dominant      = the label with the largest share (ties: the first in label order), and its share

The plug-in entropy is biased low by about (K − 1) / (2 n ln 2) bits (~0.2 bits at n = 20 with 7
labels), so comparing strata of very different n (a base with ~400 wrong first attempts, an arm
with ~20) reads the bias as collapse; the Miller–Madow value removes that first-order term.

Collapse is the entropy falling (the dominant share rising) over training; history.jsonl holds
the summary at every validation point, because `metrics.summarize` (which the evaluator runs at
every monitoring step) includes it.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Sequence

STRATA = {"wrong_t1": False, "right_t1": True}


def behaviour_summary(records: Sequence[dict], labels: Sequence[str] | None = None) -> dict | None:
    """{stratum: {"n", "share": {label: x}, "entropy_bits", "dominant", "dominant_share"}} over the
    records' "behaviour" labels, strata `wrong_t1` / `right_t1` / `all`; None when the records carry
    no labels (a task without `revision_behaviour`). `labels` fixes the order and the zero shares
    (default: the labels seen, sorted; a label no record has is then absent, i.e. share 0)."""
    if not records or any("behaviour" not in r for r in records):
        return None
    order = list(labels) if labels is not None else sorted({r["behaviour"] for r in records})
    unknown = sorted({r["behaviour"] for r in records} - set(order))
    if unknown:
        raise ValueError(f"behaviour labels {unknown} are not among the task's {order}")
    out = {}
    for name, right in (*STRATA.items(), ("all", None)):
        rows = [r["behaviour"] for r in records if right is None or bool(r["correct1"]) == right]
        out[name] = stratum_summary(rows, order)
    return out


def stratum_summary(labels_seen: Sequence[str], order: Sequence[str]) -> dict:
    n = len(labels_seen)
    counts = Counter(labels_seen)
    share = {b: (counts[b] / n if n else None) for b in order}
    if not n:
        return {"n": 0, "share": share, "entropy_bits": None, "entropy_mm_bits": None, "dominant": None, "dominant_share": None}
    dominant = max(order, key=lambda b: (counts[b], -order.index(b)))
    h = entropy_bits(counts[b] / n for b in order)
    return {"n": n, "share": share, "entropy_bits": h, "entropy_mm_bits": h + miller_madow_bits(len(counts), n),
            "dominant": dominant, "dominant_share": counts[dominant] / n}


def miller_madow_bits(k_seen: int, n: int) -> float:
    """The Miller–Madow correction of a plug-in entropy in bits: (K − 1) / (2 n ln 2)."""
    return (k_seen - 1) / (2 * n * math.log(2))


def entropy_bits(shares) -> float:
    """Shannon entropy in bits of a distribution given by its shares (zeros contribute nothing)."""
    h = -sum(p * math.log2(p) for p in shares if p > 0)
    return h + 0.0  # no -0.0
