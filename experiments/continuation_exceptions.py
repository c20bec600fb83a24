"""Turn 2 from turn 1's KV cache (`model.continue_turns`) against re-encoding the conversation, on a sweep's test
problems: how many greedy episodes move, and whether each move is a float-rounding tie (issue 32, item 2).

    python experiments/continuation_exceptions.py outputs/sweeps/<stamp> [--seeds 0] [--json-out FILE]

For every run of the given seeds with a saved policy (`<run>/policy`; the base arm's is its base model), the
run's own test problems (`eval.split`, `eval.n_problems`, `eval.problem_seed` of its config.yaml) are rolled out
greedily twice, re-encoded (today's default) and continued. Every episode whose tokens differ is an exception;
for each, the re-encoded path's logits at the first differing token are read again, and the gap between their
top two values is printed: a gap within float rounding (< 1e-4) means the two paths' rounding chose between a
near-tie, anything larger is a bug. Prints one line per run and the total.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import torch
from omegaconf import OmegaConf

from selfcorrect.models.loading import base_model_path, open_policy
from selfcorrect.models.policy import Episode, Policy, Sampling
from selfcorrect.tasks import make_task

TIE = 1e-4  # a top-2 logit gap below this is a float-rounding tie (fp32 logits of order 10)


@torch.no_grad()
def top2_gap(policy: Policy, prompt: list[int], prefix: list[int]) -> float:
    """top-1 − top-2 logit of the next token after `prompt + prefix` (one sequence, no padding)."""
    ids = torch.tensor([list(prompt) + list(prefix)])
    logits = policy.model(input_ids=ids).logits[0, -1].float()
    top = torch.topk(logits, 2).values
    return float(top[0] - top[1])


def first_difference(a: Episode, b: Episode) -> tuple[int, int] | None:
    """(turn, token index) of the first differing token, or None."""
    for t, (x, y) in enumerate(zip(a.turns, b.turns)):
        n = next((i for i, (u, v) in enumerate(zip(x.completion_ids, y.completion_ids)) if u != v),
                 None if len(x.completion_ids) == len(y.completion_ids) else min(len(x.completion_ids), len(y.completion_ids)))
        if n is not None:
            return t, n
    return None


def compare(run: Path) -> dict:
    cfg = OmegaConf.load(run / "config.yaml")
    task = make_task(cfg.task)
    path = run / "policy" if (run / "policy").exists() else base_model_path(cfg.model, task, cfg.paths.cache_dir)
    policy = open_policy(path, task, cfg.model)
    problems = task.problems(cfg.eval.split, int(cfg.eval.n_problems), seed=int(cfg.eval.problem_seed))
    sampling = Sampling(0.0, int(cfg.eval.max_new_tokens))
    policy.continue_turns = False
    fresh = policy.two_turn(problems, sampling, seed=int(cfg.seed))
    policy.continue_turns = True
    continued = policy.two_turn(problems, sampling, seed=int(cfg.seed))
    gaps = []
    for a, b in zip(fresh, continued):
        d = first_difference(a, b)
        if d is not None:
            turn, n = d
            gaps.append(top2_gap(policy, a.turns[turn].prompt_ids, a.turns[turn].completion_ids[:n]))
    verdict_moved = sum(task.verify(a.problem, a.y2).correct != task.verify(b.problem, b.y2).correct for a, b in zip(fresh, continued))
    return {"run": run.name, "episodes": len(problems), "exceptions": len(gaps), "max_gap": max(gaps, default=None),
            "ties": sum(g < TIE for g in gaps), "turn2_verdicts_moved": verdict_moved}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("sweeps", nargs="+", type=Path, help="sweep directories (one per testbed)")
    ap.add_argument("--seeds", default="0", help="comma-separated seeds")
    ap.add_argument("--json-out", type=Path, default=None)
    args = ap.parse_args()
    torch.set_num_threads(1)
    seeds = {f"seed={s}" for s in args.seeds.split(",")}
    rows = []
    for sweep in args.sweeps:
        for run in sorted(p.parent for p in sweep.glob("*/metrics.json")):
            if not any(part in seeds for part in run.name.split(",")) or "shared_base" in str(run):
                continue
            r = compare(run) | {"sweep": sweep.name}
            rows.append(r)
            print(f"{sweep.name}/{r['run']}: {r['exceptions']} of {r['episodes']} episodes differ "
                  f"({r['ties']} at a top-2 gap < {TIE:g}; largest gap {r['max_gap']}); turn-2 verdicts moved: "
                  f"{r['turn2_verdicts_moved']}", flush=True)
    total, eps = sum(r["exceptions"] for r in rows), sum(r["episodes"] for r in rows)
    print(f"\ntotal: {total} of {eps} greedy episodes differ over {len(rows)} runs; "
          f"{sum(r['ties'] for r in rows)} of them at a float-rounding tie")
    if args.json_out:
        args.json_out.write_text("".join(json.dumps(r) + "\n" for r in rows))


if __name__ == "__main__":
    main()
