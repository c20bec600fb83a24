"""Self-conditioning on errors (issue 23 item 4; after arXiv 2509.09677, which injects errors into a
model's own history and measures the later turns): how the policy's revisions fare as the errors in
its context grow.

On the first `n_problems` test problems p, the task's error model writes first attempts with
k = 1 .. `max_errors` errors at k distinct sites (`SiteErrorModel.inject_errors`, drawn from
(`seed`, p, k) alone, so every arm and seed revises the same attempts), and the policy revises
them greedily:

  fix_rate[k]          = #(y2 right) / n[k]                      second attempt after k injected errors
  acc_turn[t]          = #(y_t right) / n[1]   for t = 2 .. `turns`, revising the k = 1 attempts again
                         and again (each turn sees every earlier attempt: the wrong ones accumulate)
  fix_given_wrong[t]   = #(y_t right and y_{t−1} wrong) / #(y_{t−1} wrong), t = 2 .. `turns`
  break_given_right[t] = #(y_t wrong and y_{t−1} right) / #(y_{t−1} right), t = 3 .. `turns`

`self_conditioning.jsonl` holds one record per attempt chain ({id, k, y1, turns: [y2, ...],
correct: [c1, c2, ...]}); `summarize_self_conditioning` recomputes the summary from them (the
results loader does). A task whose error model writes fewer errors than asked gets the k it can; one
without an error model, or whose error model has no error kinds (reasoning_gym), is skipped with a note.
"""

from __future__ import annotations

import random
from collections.abc import Sequence

from selfcorrect.tasks import make_error_model
from selfcorrect.tasks.base import Problem, Task

FILE = "self_conditioning.jsonl"  # beside metrics.json


def first_attempts(errors, problems: Sequence[Problem], seed: int, max_errors: int) -> list[dict]:
    """{id, k, y1} for every problem and k = 1 .. min(max_errors, what the error model writes)
    where the problem has k sites."""
    rows = []
    for p in problems:
        for k in range(1, min(max_errors, errors.max_injected_errors) + 1):
            y1 = errors.inject_errors(p, k, random.Random(f"self_conditioning:{seed}:{p.id}:{k}"))
            if y1 is not None:
                rows.append({"id": p.id, "k": k, "y1": y1})
    return rows


def self_conditioning(policy, task: Task, problems: Sequence[Problem], sampling, seed: int, n_problems: int,
                      max_errors: int = 3, turns: int = 4) -> tuple[dict, list[dict]]:
    """(summary, records) of the policy's revisions of first attempts with 1 .. `max_errors`
    injected errors (turn 2), and of the one-error attempts over turns 2 .. `turns`."""
    for name, v, low in (("n_problems", n_problems, 1), ("max_errors", max_errors, 1), ("turns", turns, 2)):
        if not isinstance(v, int) or isinstance(v, bool) or v < low:
            raise ValueError(f"eval.self_conditioning.{name} must be an integer >= {low}, got {v!r}")
    errors = make_error_model(task)
    if errors is None:
        return {"skipped": f"task {task.name!r} has no error model to inject errors with"}, []
    if not errors.kinds:
        return {"skipped": f"not applicable: the error model of task {task.name!r} has no error kinds to inject"}, []
    chosen = list(problems[:n_problems])
    by_id = {p.id: p for p in chosen}
    rows = first_attempts(errors, chosen, seed, max_errors)
    records = []
    for n_turns, group in ((turns, [r for r in rows if r["k"] == 1]), (2, [r for r in rows if r["k"] > 1])):
        if not group:
            continue
        episodes = policy.two_turn([by_id[r["id"]] for r in group], sampling, seed,
                                   first_attempts=[r["y1"] for r in group], n_turns=n_turns)
        for r, ep in zip(group, episodes):
            texts = [t.text for t in ep.turns]
            records.append({**r, "turns": texts[1:], "correct": [task.verify(ep.problem, y).correct for y in texts]})
    position = {p.id: i for i, p in enumerate(chosen)}
    records.sort(key=lambda r: (r["k"], position[r["id"]]))
    return summarize_self_conditioning(records), records


def summarize_self_conditioning(records: Sequence[dict]) -> dict:
    """The summary of the module docstring from the records (keys as strings: JSON-friendly)."""
    ks = sorted({r["k"] for r in records})
    out = {"n": {}, "fix_rate": {}, "acc_turn": {}, "fix_given_wrong": {}, "break_given_right": {}}
    for k in ks:
        rows = [r for r in records if r["k"] == k]
        out["n"][str(k)] = len(rows)
        out["fix_rate"][str(k)] = sum(r["correct"][1] for r in rows) / len(rows)
    chains = [r["correct"] for r in records if r["k"] == 1]
    for t in range(2, max((len(c) for c in chains), default=0) + 1):
        now = [c for c in chains if len(c) >= t]
        out["acc_turn"][str(t)] = sum(c[t - 1] for c in now) / len(now)
        wrong = [c for c in now if not c[t - 2]]
        out["fix_given_wrong"][str(t)] = sum(c[t - 1] for c in wrong) / len(wrong) if wrong else None
        if t >= 3:
            right = [c for c in now if c[t - 2]]
            out["break_given_right"][str(t)] = sum(not c[t - 1] for c in right) / len(right) if right else None
    return out
