"""The correction matrix: how a policy revises *controlled* first attempts on the test problems.

For each of the first `n_problems` test problems p, the task's error model
(`tasks.make_error_model(task)`, e.g. `tasks/arithmetic_errors.py`) writes first attempts y1 that all
keep p's operands (a y1 borrowed from another problem would carry the wrong operands, and every
policy, the base included, then scores 0 %):

- row ``correct``: y1 = the correct attempt. **Keep rate** = #(y2 correct) / n: does the
  policy leave a right answer alone?
- row K, for each kind K of the taxonomy that is one bug at one site, site ``base``: y1 = the
  correct procedure with exactly one K bug where the base model's own greedy first attempt on p
  first erred, when that error was a K error (`K@k`); only those problems.
- row K, site ``own``: the same at the site where the *policy's own* greedy first attempt on p
  first erred with a K error (given as `own_first_attempts`): how well it fixes an error of its
  own kind at its own site when the attempt around it is written by the error model. Beside the
  ``base`` row this compares base and own error sites on first attempts of one form, which the
  mismatch probe (whose offline and own attempts differ in everything else too) cannot.
- row K, site ``random``: exactly one K bug at a uniformly random valid site for K on p, drawn
  from (`seed`, p, K) alone, so every arm and seed revises the same y1.

**Fix rate** of a cell (K, site) = #(y2 correct) / n over its problems; every cell carries its n.
The second attempts are `policy.two_turn(problems, sampling, seed, first_attempts=y1)`, greedy
in the evaluator. `summarize_matrix` recomputes the summary from the records (the results
loader does so from `correction_matrix.jsonl`). Tasks without an error model are skipped; an error
model without error kinds (reasoning_gym) gives the keep row only.
"""

from __future__ import annotations

import random
from collections.abc import Sequence

from selfcorrect.evaluation.spec import positive_int
from selfcorrect.tasks import make_error_model
from selfcorrect.tasks.base import Problem, Task

SITES = ("base", "own", "random")
KEEP_ROW = "correct"


def matrix_first_attempts(errors, problems: Sequence[Problem], base_first: Sequence[str], seed: int,
                          own_first: Sequence[str] | None = None) -> list[dict]:
    """The controlled first attempts: one `correct` row per problem, then per injectable kind a
    `base`-site row (where the base's first attempt erred with that kind), an `own`-site row
    (where the policy's own first attempt did, when `own_first` is given) and a `random`-site row."""
    if len(base_first) != len(problems) or (own_first is not None and len(own_first) != len(problems)):
        raise ValueError(f"{len(base_first)} base and {len(own_first or [])} own first attempts for {len(problems)} problems")
    rows = []
    for i, (p, y_base) in enumerate(zip(problems, base_first)):
        rows.append({"id": p.id, "row": KEEP_ROW, "site": None, "column": None, "y1": errors.correct_attempt(p)})
        erred = {"base": errors.error_site(p, y_base), "own": errors.error_site(p, own_first[i]) if own_first is not None else None}
        for kind in errors.kinds:
            sites = errors.sites(p, kind)
            # the base's (own) error site, where the error model can write that kind there (a site it
            # cannot write, e.g. a misread number of a free-form task, gives no row)
            for site, error in erred.items():
                if error is not None and error[0] == kind and error[1] in sites:
                    rows.append({"id": p.id, "row": kind, "site": site, "column": error[1], "y1": errors.inject(p, kind, error[1])})
            if sites:
                column = random.Random(f"correction_matrix:{seed}:{p.id}:{kind}").choice(sites)
                rows.append({"id": p.id, "row": kind, "site": "random", "column": column, "y1": errors.inject(p, kind, column)})
    return rows


def correction_matrix(policy, task: Task, problems: Sequence[Problem], base_first_attempts: Sequence[str],
                      sampling, seed: int, n_problems: int,
                      own_first_attempts: Sequence[str] | None = None) -> tuple[dict, list[dict]]:
    """(summary, records) of the policy's second attempts on the controlled first attempts of the
    first `n_problems` of `problems` (all of them when there are fewer); `seed` draws the random
    sites (pass the evaluation's problem seed so every run sees the same y1);
    `own_first_attempts` (the policy's own greedy first attempts on `problems`) adds the own sites."""
    positive_int("eval.correction_matrix.n_problems", n_problems)
    errors = make_error_model(task)
    if errors is None:
        return {"skipped": f"task {task.name!r} has no error model (`tasks.make_error_model`) to write controlled first attempts"}, []
    if len(base_first_attempts) != len(problems):
        raise ValueError(f"{len(base_first_attempts)} base first attempts for {len(problems)} problems")
    n = min(n_problems, len(problems))
    by_id = {p.id: p for p in problems[:n]}
    own = list(own_first_attempts[:n]) if own_first_attempts is not None else None
    rows = matrix_first_attempts(errors, problems[:n], base_first_attempts[:n], seed, own)
    episodes = policy.two_turn([by_id[r["id"]] for r in rows], sampling, seed, first_attempts=[r["y1"] for r in rows])
    records = []
    for r, ep in zip(rows, episodes):
        v1, v2 = task.verify(ep.problem, r["y1"]), task.verify(ep.problem, ep.y2)
        records.append({**r, "y2": ep.y2, "correct1": v1.correct, "error1": v1.error_type,
                        "correct2": v2.correct, "error2": v2.error_type})
    return summarize_matrix(records), records


def summarize_matrix(records: Sequence[dict]) -> dict:
    """keep_rate / n_keep (row `correct`), and fix_rate[K][site] / n[K][site] for every kind K in
    the records (rate None where n = 0)."""
    keep = [r["correct2"] for r in records if r["row"] == KEEP_ROW]
    out = {"n_problems": len(keep), "keep_rate": _rate(keep), "n_keep": len(keep), "fix_rate": {}, "n": {}}
    kinds = list(dict.fromkeys(r["row"] for r in records if r["row"] != KEEP_ROW))
    for kind in kinds:
        for site in SITES:
            cell = [r["correct2"] for r in records if r["row"] == kind and r["site"] == site]
            out["fix_rate"].setdefault(kind, {})[site] = _rate(cell)
            out["n"].setdefault(kind, {})[site] = len(cell)
    return out


def matrix_line(summary: dict) -> str:
    """The matrix in one line: keep rate, then fix rate (n) per kind at the base / random sites."""
    def cell(kind: str, site: str) -> str:
        rate = summary["fix_rate"][kind][site]
        return "–" if rate is None else f"{rate:.2f} (n={summary['n'][kind][site]})"

    head = f"[correction matrix, {summary['n_problems']} problems] keep={summary['keep_rate']:.2f}; "
    if not summary["fix_rate"]:
        return head + "fix rows not applicable (the task's error model has no error kinds to inject)"
    sites = [s for s in SITES if s != "own" or any(summary["n"][k].get("own") for k in summary["n"])]
    cells = [f"{kind} " + " / ".join(cell(kind, s) if s in summary["fix_rate"][kind] else "–" for s in sites) for kind in summary["fix_rate"]]
    return head + f"fix at {' / '.join(sites)} site: " + "; ".join(cells)


def _rate(values: Sequence[bool]) -> float | None:
    return sum(map(bool, values)) / len(values) if values else None
