"""The mismatch probe's metrics, from its per-problem records (no model needed, so the results
loader recomputes them from `probe_*.jsonl`).

Each record is one problem of an offline set: the policy's second attempt on the fixed offline
first attempt (`offline_correct1` → `correct2`) and, on the same problem, the policy's own
greedy two-turn episode (`own_correct1` → `own_correct2`).

Primary, on the same problems: M = the problems where BOTH first attempts are wrong,

    correction_rate_offline_matched = #{p ∈ M : offline y1 → y2 right} / |M|
    correction_rate_own_matched     = #{p ∈ M : own y1 → own y2 right} / |M|
    mismatch_gap_matched            = offline − own on M,   n_matched = |M|.

Secondary, unrestricted (different problems: the offline errors fall where the teacher or base
put them, the own errors on the policy's hardest problems): `correction_rate_offline` over the
problems whose offline y1 is wrong, `correction_rate_own` over those whose own y1 is wrong,
`mismatch_gap` = their difference.
"""

from __future__ import annotations

from collections.abc import Sequence

from selfcorrect.evaluation.metrics import correction_rate


def probe_record(offline: dict, own: dict) -> dict:
    """One probe record: the policy's episode record on the offline first attempt (`offline`, an
    `evaluate.record`) plus its own episode record on the same problem (`own`)."""
    if offline["id"] != own["id"]:
        raise ValueError(f"probe record for {offline['id']!r} paired with the own episode of {own['id']!r}")
    return {**offline, "offline_correct1": offline["correct1"], "own_y1": own["y1"], "own_y2": own["y2"],
            "own_correct1": own["correct1"], "own_correct2": own["correct2"], "own_error1": own["error1"]}


def probe_metrics(records: Sequence[dict]) -> dict:
    off1 = [bool(r["offline_correct1"]) for r in records]
    off2 = [bool(r["correct2"]) for r in records]
    own1 = [bool(r["own_correct1"]) for r in records]
    own2 = [bool(r["own_correct2"]) for r in records]
    matched = [i for i in range(len(records)) if not off1[i] and not own1[i]]
    off_m = sum(off2[i] for i in matched) / len(matched) if matched else None
    own_m = sum(own2[i] for i in matched) / len(matched) if matched else None
    off, own = correction_rate(off1, off2), correction_rate(own1, own2)
    return {
        "correction_rate_offline_matched": off_m,
        "correction_rate_own_matched": own_m,
        "mismatch_gap_matched": _gap(off_m, own_m),
        "n_matched": len(matched),
        "correction_rate_offline": off,
        "correction_rate_own": own,
        "mismatch_gap": _gap(off, own),
        "n_wrong_offline": sum(not c for c in off1),
        "n_wrong_own": sum(not c for c in own1),
        "n": len(records),
    }


def _gap(a: float | None, b: float | None) -> float | None:
    return None if a is None or b is None else a - b


STRATA = ("all", "same_error", "both_readable", "neither_readable")


def stratified_probe(records: Sequence[dict], task) -> dict:
    """The matched probe within strata of the problems where both first attempts are wrong
    (issue 22: a probe must not mix what differs between the two first attempts with the effect):
    `same_error` (the offline and the own first attempt have the same error kind at the same site),
    `both_readable` / `neither_readable` (their working spells the right answer, for tasks with
    `working_answer`). Per stratum: the offline and own correction rates, their gap, n."""
    readable = task.working_answer  # None for a task without it (`Task`'s optional capability)
    out = {}
    for stratum in STRATA:
        rows = []
        for r in records:
            if r["offline_correct1"] or r["own_correct1"]:
                continue
            if stratum == "same_error":
                own_error = r["own_error1"] if "own_error1" in r else task.verify(_problem(task, r), r["own_y1"]).error_type
                if own_error != r["error1"]:
                    continue
            elif stratum != "all":
                if readable is None:
                    continue
                p = _problem(task, r)
                both = [readable(p, y) == r["answer"] for y in (r["y1"], r["own_y1"])]
                if (stratum == "both_readable" and not all(both)) or (stratum == "neither_readable" and any(both)):
                    continue
            rows.append(r)
        off = sum(bool(r["correct2"]) for r in rows) / len(rows) if rows else None
        own = sum(bool(r["own_correct2"]) for r in rows) / len(rows) if rows else None
        out[stratum] = {"offline": off, "own": own, "gap": _gap(off, own), "n": len(rows)}
    return out


def _problem(task, r: dict):
    """The record's problem, rebuilt by the task (the embedded addition tasks: id `a+b`)."""
    a, b = r["id"].split("+")
    return task.make_problem(int(a), int(b))
