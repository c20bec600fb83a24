"""The answer-first testbed's criteria (issue 12), measured on a finished base run of that task.

- headroom and a second look: the base's Acc@t1 and Δ (greedy), and how often the working written
  after a wrong first answer spells the right answer (what a second attempt that reads it would get);
- latent but undeployed: two-turn samples of the base at T=1 (the RL arms' sampling temperature) on
  the same problems: of the first attempts wrong by a carry-lookahead error, how many second
  attempts are right, and how many take the answer their first attempt's working spells.

    python experiments/answer_first_criteria.py outputs/sweeps/<stamp>-answer_first/arm=base,seed=0 [--n 1000]
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from omegaconf import OmegaConf

from selfcorrect.models.loading import load_base_policy
from selfcorrect.models.policy import Sampling
from selfcorrect.tasks import make_task


def reads_right(task, problem, attempt: str) -> bool:
    """Whether the working after the answer spells the right answer."""
    working = attempt.split(">", 1)[1] if ">" in attempt else ""
    try:
        return task.read_answer(working) == problem.answer
    except (ValueError, IndexError):
        return False


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("run_dir", type=Path)
    ap.add_argument("--n", type=int, default=1000, help="problems sampled at T=1 (the run's first n)")
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()
    cfg = OmegaConf.load(args.run_dir / "config.yaml")
    task = make_task(cfg.task)
    if task.name != "answer_first":
        raise ValueError(f"{args.run_dir} is a run of task {task.name!r}, not answer_first")
    records = [json.loads(line) for line in (args.run_dir / "generations.jsonl").open()]
    problems = {p.id: p for p in task.problems(cfg.eval.split, len(records), cfg.eval.problem_seed)}
    wrong = [r for r in records if not r["correct1"]]
    m = json.loads((args.run_dir / "metrics.json").read_text())
    print(f"{args.run_dir}  (n={len(records)} {cfg.eval.split} problems, greedy)")
    print(f"  Acc@t1 {m['acc_t1']:.3f}  Acc@t2 {m['acc_t2']:.3f}  Δ {m['delta']:+.3f}  (i→c {m['delta_i2c']:.3f}, c→i {m['delta_c2i']:.3f})")
    print(f"  first-attempt errors: {m['errors_t1']}")
    n_read = sum(reads_right(task, problems[r["id"]], r["y1"]) for r in wrong)
    print(f"  wrong first attempts whose working spells the right answer: {n_read}/{len(wrong)}"
          f"  (reading it would give Acc@t2 {(m['acc_t1'] * len(records) + n_read) / len(records):.3f})")
    cm = m.get("correction_matrix", {}).get("summary", m.get("correction_matrix", {}))
    print(f"  correction matrix: {json.dumps(cm)[:400]}")

    policy = load_base_policy(cfg.model, task, cfg.paths.cache_dir)
    sample = [problems[r["id"]] for r in records[: args.n]]
    episodes = policy.two_turn(sample, Sampling(1.0, cfg.eval.max_new_tokens), seed=args.seed)
    lookahead = fixed = took_reading = 0
    for p, ep in zip(sample, episodes):
        v1 = task.verify(p, ep.y1)
        if v1.error_kind != "carry_lookahead":
            continue
        lookahead += 1
        fixed += task.verify(p, ep.y2).correct
        took_reading += reads_right(task, p, ep.y1) and task.verify(p, ep.y2).answer == p.answer
    print(f"  T=1 samples of the base, {len(sample)} problems: {lookahead} first attempts with a carry-lookahead error;"
          f" second attempt right in {fixed} ({fixed / max(lookahead, 1):.1%}), of which it took the answer its"
          f" first attempt's working spells: {took_reading}")


if __name__ == "__main__":
    main()
