"""Calibration of the first attempt and the revise decision (issue 23 item 3; the measures of
RLCR, arXiv 2507.16806, with the policy's own probability instead of a verbalised confidence).

**Confidence** q of a first attempt: the policy's probability of writing exactly that attempt,
q = Π_t π(y1_t | x, y1_<t) over its tokens (stop token included) at temperature 1 — the
probability of the answer *and* the working that led to it (the answer's marginal probability
would need a sum over all workings). Each evaluation record keeps its log, `logp1`, and its length
`n_tokens1`, so every number below is recomputed from generations.jsonl. With c = 1[y1 correct]:

  Brier          mean (q − c)²
  ECE            Σ_b (n_b / n) |mean c in b − mean q in b| over 10 equal-width bins of q
                 (a q of 1.0 falls in the last bin)
  AUROC          P(q of a right attempt > q of a wrong one), ties ½ (None with one class only)
  overconfidence mean q − mean c (> 0: more confident than right)

**The revise decision**: does the second attempt change the answer when the first is wrong and
keep it when it is right? P(answer changes | y1 wrong), P(answer changes | y1 right), and the
AUROC of "changes" as a detector of a wrong first attempt, (P(change | wrong) + 1 − P(change | right)) / 2.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

ECE_BINS = 10


def brier(q: Sequence[float], c: Sequence[bool]) -> float:
    _check(q, c)
    return sum((qi - float(ci)) ** 2 for qi, ci in zip(q, c)) / len(q)


def ece(q: Sequence[float], c: Sequence[bool], bins: int = ECE_BINS) -> float:
    """Expected calibration error over `bins` equal-width bins of [0, 1]."""
    _check(q, c)
    members: list[list[int]] = [[] for _ in range(bins)]
    for i, qi in enumerate(q):
        members[min(int(qi * bins), bins - 1)].append(i)
    n = len(q)
    return sum(len(m) / n * abs(sum(float(c[i]) for i in m) / len(m) - sum(q[i] for i in m) / len(m)) for m in members if m)


def auroc(scores: Sequence[float], positive: Sequence[bool]) -> float | None:
    """P(score of a positive > score of a negative) with ties counted ½ (the Mann-Whitney U / n+n−);
    None when one class is empty."""
    _check(scores, positive)
    pos = sorted(s for s, p in zip(scores, positive) if p)
    neg = sorted(s for s, p in zip(scores, positive) if not p)
    if not pos or not neg:
        return None
    # ranks with ties averaged: U = Σ rank(pos) − n+(n+ + 1)/2
    allv = sorted((s, i) for i, s in enumerate(list(pos) + list(neg)))
    ranks = [0.0] * len(allv)
    j = 0
    while j < len(allv):
        k = j
        while k + 1 < len(allv) and allv[k + 1][0] == allv[j][0]:
            k += 1
        for m in range(j, k + 1):
            ranks[allv[m][1]] = (j + k) / 2 + 1
        j = k + 1
    u = sum(ranks[: len(pos)]) - len(pos) * (len(pos) + 1) / 2
    return u / (len(pos) * len(neg))


def calibration_summary(records: Sequence[dict]) -> dict | None:
    """Brier, ECE, AUROC, mean confidence and overconfidence of the first attempts (records with
    `logp1`), and the mean per-token probability; None when the records carry no `logp1`."""
    if not records or any(r.get("logp1") is None for r in records):
        return None
    q = [math.exp(r["logp1"]) for r in records]
    c = [bool(r["correct1"]) for r in records]
    per_token = [math.exp(r["logp1"] / max(r["n_tokens1"], 1)) for r in records]
    return {"n": len(q), "brier": brier(q, c), "ece": ece(q, c), "auroc": auroc(q, c),
            "mean_confidence": sum(q) / len(q), "overconfidence": sum(q) / len(q) - sum(c) / len(c),
            "auroc_per_token": auroc(per_token, c)}


def revise_summary(records: Sequence[dict]) -> dict:
    """P(answer changes | y1 wrong), P(answer changes | y1 right) and the AUROC of the change
    decision for a wrong first attempt (None where a side has no problems)."""
    changed = [r["answer1"] != r["answer2"] for r in records]
    wrong = [not r["correct1"] for r in records]
    n_wrong, n_right = sum(wrong), len(wrong) - sum(wrong)
    p_wrong = sum(ch for ch, w in zip(changed, wrong) if w) / n_wrong if n_wrong else None
    p_right = sum(ch for ch, w in zip(changed, wrong) if not w) / n_right if n_right else None
    return {"n_wrong": n_wrong, "n_right": n_right, "p_change_given_wrong": p_wrong, "p_change_given_right": p_right,
            "auroc": auroc([float(ch) for ch in changed], wrong)}


def _check(q: Sequence, c: Sequence) -> None:
    if len(q) == 0 or len(q) != len(c):
        raise ValueError(f"need the same non-zero number of confidences and outcomes, got {len(q)} and {len(c)}")
    bad = [x for x in q if not (isinstance(x, (int, float)) and 0.0 <= x <= 1.0)]
    if bad:
        raise ValueError(f"confidences must be in [0, 1], got {bad[:3]}")
