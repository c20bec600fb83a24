"""Does y2 read y1? The first-attempt ablation of the final evaluation (issue 33, item 1).

A policy's second attempt may improve on its first because it reads the first attempt and fixes it
(self-correction), or because it is a better solver the second time whatever it was shown. The
ablation tells them apart by changing only what turn 2 is shown, on the first `n_problems` test
problems (greedy, the evaluator's sampling):

  own      y1 = the policy's own greedy first attempt on p (the main evaluation's episode; no new
           generation: its y2 is taken from the test records)
  swapped  y1 = the policy's own first attempt on *another* test problem (a seeded derangement of
           the problems: every problem gets one other problem's attempt, the same for every run)
  base     y1 = the base model's greedy first attempt on p (the final evaluation's cached one)
  none     no first attempt: the turn-2 prompt with an empty first attempt (the revise
           instruction alone)

Per condition: Acc@t2 (y2 right on p), and, with y1 judged on p, the fix rate P(y2 right | y1
wrong) and the break rate P(y2 wrong | y1 right) (None where there is no such y1: a swapped y1 is
almost never right on p, and `none`'s y1 never is). `drop_swapped` = Acc@t2(own) − Acc@t2(swapped):
a policy that corrects what it reads loses its gain when the y1 is another problem's; a second
solver keeps it. The records (one per problem and condition, `y1_ablation.jsonl`) recompute the
summary (`summarize_y1_ablation`).
"""

from __future__ import annotations

import random
from collections.abc import Sequence

from selfcorrect.evaluation.spec import positive_int
from selfcorrect.tasks.base import Problem, Task

CONDITIONS = ("own", "swapped", "base", "none")
FILE = "y1_ablation.jsonl"


def derangement(n: int, seed: int) -> list[int]:
    """partner[i] != i for every i (n >= 2): a seeded shuffle of the indices, each paired with the next
    one in the shuffled cycle."""
    if n < 2:
        raise ValueError(f"a swapped first attempt needs at least 2 problems, got {n}")
    order = list(range(n))
    random.Random(f"y1_ablation:{seed}").shuffle(order)
    partner = [0] * n
    for k, i in enumerate(order):
        partner[i] = order[(k + 1) % n]
    return partner


def y1_ablation(policy, task: Task, problems: Sequence[Problem], own_first: Sequence[str], own_second: Sequence[str],
                base_first: Sequence[str] | None, sampling, seed: int, n_problems: int) -> tuple[dict, list[dict]]:
    """(summary, records) over the first `n_problems` of `problems` (all when fewer). `own_first` /
    `own_second` are the policy's greedy test episodes (in `problems`' order); `base_first` the base's
    first attempts (None: no `base` condition); `seed` picks the derangement (pass the evaluation's
    problem seed, so every arm and seed swaps the same pairs)."""
    positive_int("eval.y1_ablation.n_problems", n_problems)
    if len(own_first) != len(problems) or len(own_second) != len(problems) or (base_first is not None and len(base_first) != len(problems)):
        raise ValueError(f"{len(own_first)} own first, {len(own_second)} own second and "
                         f"{None if base_first is None else len(base_first)} base first attempts for {len(problems)} problems")
    n = min(n_problems, len(problems))
    probs = list(problems[:n])
    partner = derangement(n, seed)
    shown = {"swapped": [own_first[partner[i]] for i in range(n)], "none": [""] * n}
    if base_first is not None:
        shown["base"] = list(base_first[:n])
    records = [_record(task, p, "own", own_first[i], own_second[i], i) for i, p in enumerate(probs)]
    for condition in (c for c in CONDITIONS if c in shown):
        y1s = shown[condition]
        episodes = policy.two_turn(probs, sampling, seed, first_attempts=y1s)
        records += [_record(task, p, condition, y1, ep.y2, partner[i] if condition == "swapped" else i)
                    for i, (p, y1, ep) in enumerate(zip(probs, y1s, episodes))]
    return summarize_y1_ablation(records), records


def _record(task: Task, problem: Problem, condition: str, y1: str, y2: str, source: int) -> dict:
    """One second attempt; `y1_from` is the index (within the ablation's problems) of the problem whose
    attempt was shown."""
    correct1 = bool(y1) and task.verify(problem, y1).correct
    return {"id": problem.id, "condition": condition, "y1_from": source, "y1": y1, "y2": y2,
            "correct1": correct1, "correct2": task.verify(problem, y2).correct}


def summarize_y1_ablation(records: Sequence[dict]) -> dict:
    """Per condition present: n, acc_t2, shown_right (the share of shown y1 right on p: Acc@t1 for `own`),
    fix_rate / n_wrong1, break_rate / n_right1; and drop_swapped."""
    out: dict = {}
    for condition in CONDITIONS:
        rows = [r for r in records if r["condition"] == condition]
        if not rows:
            continue
        wrong = [r["correct2"] for r in rows if not r["correct1"]]
        right = [not r["correct2"] for r in rows if r["correct1"]]
        out[condition] = {"n": len(rows), "acc_t2": sum(r["correct2"] for r in rows) / len(rows),
                          "shown_right": sum(r["correct1"] for r in rows) / len(rows),
                          "fix_rate": _rate(wrong), "n_wrong1": len(wrong), "break_rate": _rate(right), "n_right1": len(right)}
    if "own" in out and "swapped" in out:
        out["drop_swapped"] = out["own"]["acc_t2"] - out["swapped"]["acc_t2"]
    return out


def ablation_line(summary: dict) -> str:
    """The ablation in one line: Acc@t2 under each condition and the drop from own to swapped."""
    parts = [f"{c} {summary[c]['acc_t2']:.3f}" for c in CONDITIONS if c in summary]
    drop = f"; own − swapped {summary['drop_swapped']:+.3f}" if "drop_swapped" in summary else ""
    return f"[y1 ablation, {summary['own']['n']} problems] Acc@t2: " + ", ".join(parts) + drop


def _rate(values: Sequence[bool]) -> float | None:
    return sum(map(bool, values)) / len(values) if values else None
