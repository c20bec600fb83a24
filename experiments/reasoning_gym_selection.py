"""Which reasoning-gym dataset and difficulty the real-model experiment uses: the measurement and the
rule of docs/preregistration/2026-12-07_reasoning_gym_task_selection.md.

    .venv/bin/python experiments/reasoning_gym_selection.py                       # all 8 candidates, 200 val problems each
    .venv/bin/python experiments/reasoning_gym_selection.py --engine vllm         # with model.engine=vllm
    .venv/bin/python experiments/reasoning_gym_selection.py --n 4 --candidates 1  # a smoke run
    .venv/bin/python experiments/reasoning_gym_selection.py --round 2 --engine vllm  # round 2 (its own pre-registration)

For each candidate, in the pre-registration's order: its split sizes (eligible iff >= 500 distinct test
problems), then on `--n` validation problems (problem seed 0) one greedy first attempt and 4 first
attempts at T = 1, top-p 1 (seeds 1..4), at most 128 new tokens, by SmolLM2-135M-Instruct
(`model=smollm2_135m`, the converted GGUF, fp32) through `Policy.attempt`, judged by the task's
verifier. Reported per candidate: Acc@t1 (greedy), pass@1 at T = 1 (mean over the 4 samples), pass@4
(any of the 4 right), and truncation (the share of greedy attempts that hit the 128-token cap: exactly
128 completion tokens, no EOS token at the end, no stop string in the text).

The rule (`choose`): the first eligible candidate with Acc@t1 in [30 %, 60 %], pass@4 - pass@1 >= 10
points and truncation < 5 %; else the eligible one closest to 45 % Acc@t1 among those passing the last
two; else the eligible one closest to 45 % overall (ties: the earlier one). The JSON (`--out`) holds
every candidate's numbers and the choice; every attempt goes to the `.attempts.jsonl` beside it; a
markdown table is printed. A run on a subset (`--candidates`) applies the rule to that subset only: it
is not the pre-registered decision.

Round 2 (docs/preregistration/2026-12-07_reasoning_gym_task_selection_round_2.md, `--round 2`): five
more candidates, the same measurement, and a rule with two more criteria (Acc@t1 at least 10 points
above the majority gold answer's share; the greedy attempts' most common answer on at most 25 % of the
problems) and no fallback (`choose_round_2`).
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import time
from dataclasses import dataclass, field
from pathlib import Path

import torch
from hydra import compose, initialize_config_dir
from omegaconf import OmegaConf

from selfcorrect.models.loading import load_base_policy
from selfcorrect.models.policy import Sampling
from selfcorrect.paths import CONF_DIR
from selfcorrect.tasks import make_task
from selfcorrect.tasks.reasoning_gym import MIN_TEST_PROBLEMS

ROOT = Path(__file__).resolve().parents[1]
PREREGISTRATIONS = {1: "docs/preregistration/2026-12-07_reasoning_gym_task_selection.md",
                    2: "docs/preregistration/2026-12-07_reasoning_gym_task_selection_round_2.md"}
MAX_NEW_TOKENS = 128
N_SAMPLES = 4  # first attempts at T = 1 per problem
PROBLEM_SEED = 0
ACC_BAND, TARGET_ACC, MIN_GAP, MAX_TRUNCATION = (0.30, 0.60), 0.45, 0.10, 0.05
MIN_ABOVE_MAJORITY, MAX_MODE_SHARE = 0.10, 0.25  # round 2's constant-answer criteria
EPS = 1e-9  # float slack in the rule's comparisons (e.g. 0.35 - 0.25 is 0.0999...)


@dataclass(frozen=True)
class Candidate:
    number: int
    dataset: str
    knobs: dict = field(hash=False)


# the pre-registration's table, in its order
CANDIDATES = (
    Candidate(1, "chain_sum", {"min_terms": 2, "max_terms": 2, "min_digits": 1, "max_digits": 2}),
    Candidate(2, "chain_sum", {"min_terms": 2, "max_terms": 2, "min_digits": 2, "max_digits": 2}),
    Candidate(3, "chain_sum", {"min_terms": 3, "max_terms": 3, "min_digits": 1, "max_digits": 2}),
    Candidate(4, "leg_counting", {"min_animals": 1, "max_animals": 2, "min_instances": 1, "max_instances": 5}),
    Candidate(5, "leg_counting", {"min_animals": 2, "max_animals": 3, "min_instances": 1, "max_instances": 10}),
    Candidate(6, "basic_arithmetic", {"min_terms": 2, "max_terms": 2, "min_digits": 1, "max_digits": 2,
                                      "operators": ["+", "-", "*"], "allow_parentheses": False, "allow_negation": False}),
    Candidate(7, "letter_counting", {"min_words": 3, "max_words": 5}),
    Candidate(8, "gcd", {"min_value": 1, "max_value": 50}),
)
# round 2 (docs/preregistration/2026-12-07_reasoning_gym_task_selection_round_2.md), numbered after round 1's
CANDIDATES_ROUND_2 = (
    Candidate(9, "spell_backward", {"min_word_len": 3, "max_word_len": 5}),
    Candidate(10, "spell_backward", {"min_word_len": 3, "max_word_len": 8}),
    Candidate(11, "word_sequence_reversal", {"min_words": 2, "max_words": 3}),
    Candidate(12, "chain_sum", {"min_terms": 3, "max_terms": 3, "min_digits": 1, "max_digits": 1}),
    Candidate(13, "basic_arithmetic", {"min_terms": 2, "max_terms": 2, "min_digits": 1, "max_digits": 2,
                                       "operators": ["+"], "allow_parentheses": False, "allow_negation": False}),
)
ROUNDS = {1: CANDIDATES, 2: CANDIDATES_ROUND_2}


# --- configuration -----------------------------------------------------------------------------------------
def hydra_value(value) -> str:
    """`value` in Hydra's override grammar (strings quoted, so that + - * stay strings)."""
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, (int, float)):
        return repr(value)
    if isinstance(value, str):
        return "'" + value.replace("\\", "\\\\").replace("'", "\\'") + "'"
    if isinstance(value, (list, tuple)):
        return "[" + ",".join(map(hydra_value, value)) + "]"
    raise ValueError(f"no Hydra override for knob value {value!r} of type {type(value).__name__}")


def overrides(candidate: Candidate, engine: str | None) -> list[str]:
    """The Hydra overrides of one candidate (`model.engine` only when an engine is asked for)."""
    knobs = ",".join(f"{k}:{hydra_value(v)}" for k, v in candidate.knobs.items())
    out = ["model=smollm2_135m", "task=reasoning_gym", f"task.dataset={candidate.dataset}", f"task.knobs={{{knobs}}}"]
    return out + ([f"model.engine={engine}"] if engine else [])


def compose_candidate(candidate: Candidate, engine: str | None = None):
    with initialize_config_dir(config_dir=CONF_DIR, version_base="1.3"):
        return compose("config", overrides=overrides(candidate, engine))


# --- measurement -------------------------------------------------------------------------------------------
def cut_at_stop(text: str, stop) -> str:
    """The text before its first stop string (the attempt ends there; a policy that cuts there already
    leaves nothing to cut)."""
    ends = [i for i in (text.find(s) for s in stop) if i >= 0]
    return text[: min(ends)].rstrip() if ends else text


def truncated(turn, max_new_tokens: int, eos_ids, stop) -> bool:
    """The attempt hit the token cap: exactly `max_new_tokens` tokens, the last not an EOS token, and
    no stop string (where one starts, the attempt ended before the cap)."""
    ids = turn.completion_ids
    return len(ids) == max_new_tokens and ids[-1] not in eos_ids and not any(s in turn.text for s in stop)


def measure(candidate: Candidate, n: int, engine: str | None, cache: str, attempts_file) -> dict:
    """One candidate's split sizes and numbers on `n` validation problems; its attempts are written
    to `attempts_file`."""
    cfg = compose_candidate(candidate, engine)
    task = make_task(cfg.task)
    sizes = task.split_sizes()
    problems = task.problems("val", n, seed=PROBLEM_SEED)
    policy = load_base_policy(cfg.model, task, cache)
    t0 = time.time()
    greedy = policy.attempt(problems, [[] for _ in problems], Sampling(0.0, MAX_NEW_TOKENS), seed=PROBLEM_SEED)
    samples = [policy.attempt(problems, [[] for _ in problems], Sampling(1.0, MAX_NEW_TOKENS, top_p=1.0), seed=PROBLEM_SEED + 1 + k)
               for k in range(N_SAMPLES)]
    wall = time.time() - t0

    def judge(p, turn) -> dict:
        text = cut_at_stop(turn.text, task.stop)
        v = task.verify(p, text)
        return {"y1": text, "answer": v.answer, "correct": v.correct, "well_formed": v.well_formed,
                "tokens": len(turn.completion_ids), "truncated": truncated(turn, MAX_NEW_TOKENS, policy.eos_ids, task.stop)}

    rows = []
    for i, p in enumerate(problems):
        row = {"candidate": candidate.number, "id": p.id, "gold": p.answer, "greedy": judge(p, greedy[i]),
               "samples": [judge(p, s[i]) for s in samples]}
        attempts_file.write(json.dumps(row) + "\n")
        rows.append(row)
    del policy  # one model at a time (a vLLM engine holds its memory until dropped)
    return summarize(candidate, sizes, rows, wall)


def summarize(candidate: Candidate, sizes: dict, rows: list[dict], wall_s: float) -> dict:
    """The pre-registered numbers of one candidate from its attempt rows."""
    n = len(rows)
    acc = sum(r["greedy"]["correct"] for r in rows) / n
    pass1 = sum(s["correct"] for r in rows for s in r["samples"]) / (n * N_SAMPLES)
    pass4 = sum(any(s["correct"] for s in r["samples"]) for r in rows) / n
    return {
        "candidate": candidate.number, "dataset": candidate.dataset, "knobs": candidate.knobs,
        "split_sizes": sizes, "eligible": sizes["test"] >= MIN_TEST_PROBLEMS, "n": n,
        "acc_t1": acc, "acc_t1_se": math.sqrt(acc * (1 - acc) / n), "pass1": pass1, "pass4": pass4, "gap": pass4 - pass1,
        "truncation": sum(r["greedy"]["truncated"] for r in rows) / n,
        "well_formed": sum(r["greedy"]["well_formed"] for r in rows) / n,
        "mean_tokens": sum(r["greedy"]["tokens"] for r in rows) / n, "wall_s": round(wall_s, 1),
        **constant_answer_check(rows),
    }


def constant_answer_check(rows: list[dict]) -> dict:
    """Not a criterion of the registered rule (it lacked one; docs/real_models.md): what always giving the most common
    gold answer scores, and how often the greedy attempt gives its own most common answer. A greedy Acc@t1 near the
    first with the second near 1 is a constant guess, not a half-solved task."""
    from collections import Counter

    gold, g = Counter(str(r["gold"]) for r in rows).most_common(1)[0]
    mode, m = Counter(r["greedy"]["answer"] for r in rows).most_common(1)[0]
    return {"majority_answer": gold, "majority_share": g / len(rows), "greedy_mode": mode, "greedy_mode_share": m / len(rows)}


# --- the rule -------------------------------------------------------------------------------------------------
def criteria(row: dict) -> dict[str, bool]:
    """The rule's three criteria for one candidate."""
    lo, hi = ACC_BAND
    return {"acc_t1": lo - EPS <= row["acc_t1"] <= hi + EPS, "gap": row["pass4"] - row["pass1"] >= MIN_GAP - EPS,
            "truncation": row["truncation"] < MAX_TRUNCATION - EPS}


def criteria_round_2(row: dict) -> dict[str, bool]:
    """Round 2's five criteria: round 1's three and the constant-answer check's two."""
    return {**criteria(row), "above_majority": row["acc_t1"] - row["majority_share"] >= MIN_ABOVE_MAJORITY - EPS,
            "no_constant_answer": row["greedy_mode_share"] <= MAX_MODE_SHARE + EPS}


def choose_round_2(rows: list[dict]) -> dict:
    """Round 2's choice: the first eligible candidate passing all five criteria, else none (no fallback)."""
    for r in rows:
        if r["eligible"] and all(criteria_round_2(r).values()):
            return {"candidate": r["candidate"], "tier": "first to pass all five criteria", "failed": []}
    failed = {r["candidate"]: [k for k, ok in criteria_round_2(r).items() if not ok] + ([] if r["eligible"] else ["eligible"])
              for r in rows}
    return {"candidate": None, "tier": "none passes all five criteria: no second experiment (no fallback)", "failed": failed}


def choose(rows: list[dict]) -> dict:
    """The pre-registered choice among the eligible candidates (rows in the table's order): which one,
    by which tier of the rule, and the criteria it fails."""
    eligible = [r for r in rows if r["eligible"]]
    if not eligible:
        raise ValueError(f"no candidate has >= {MIN_TEST_PROBLEMS} distinct test problems: {[r['candidate'] for r in rows]}")

    def closest(group: list[dict]) -> dict:
        return min(group, key=lambda r: abs(r["acc_t1"] - TARGET_ACC))  # min keeps the first of a tie

    passing = [r for r in eligible if all(criteria(r).values())]
    if passing:
        chosen, tier = passing[0], "first to pass all three criteria"
    else:
        other_two = [r for r in eligible if criteria(r)["gap"] and criteria(r)["truncation"]]
        chosen, tier = (closest(other_two), "none passes all three: closest to 45 % among those passing the gap and truncation") if other_two \
            else (closest(eligible), "none passes the gap and truncation criteria: closest to 45 % overall")
    return {"candidate": chosen["candidate"], "tier": tier, "failed": [k for k, ok in criteria(chosen).items() if not ok]}


def table(rows: list[dict]) -> str:
    """Every candidate's numbers as a markdown table."""
    lines = ["| # | dataset | knobs | train/val/test | Acc@t1 (± SE) | pass@1 T=1 | pass@4 T=1 | gap | truncation | well-formed | passes |",
             "|---|---|---|---|---|---|---|---|---|---|---|"]
    for r in rows:
        s, ok = r["split_sizes"], criteria(r)
        knobs = ", ".join(f"{k}={v}" for k, v in r["knobs"].items())
        passes = ("all" if all(ok.values()) else "fails " + ", ".join(k for k, v in ok.items() if not v)) if r["eligible"] \
            else f"ineligible (< {MIN_TEST_PROBLEMS} test)"
        lines.append(f"| {r['candidate']} | {r['dataset']} | {knobs} | {s['train']}/{s['val']}/{s['test']} | "
                     f"{100 * r['acc_t1']:.1f} % ± {100 * r['acc_t1_se']:.1f} | {100 * r['pass1']:.1f} % | {100 * r['pass4']:.1f} % | "
                     f"{100 * r['gap']:+.1f} | {100 * r['truncation']:.1f} % | {100 * r['well_formed']:.1f} % | {passes} |")
    lines += ["", "Constant-answer check (not part of the registered rule): the most common gold answer and its share (what "
              "always giving it scores); the greedy attempts' most common answer and its share.", "",
              "| # | majority gold answer | its share | greedy's modal answer | its share | Acc@t1 − majority share |",
              "|---|---|---|---|---|---|"]
    for r in rows:
        if "majority_share" in r:
            lines.append(f"| {r['candidate']} | {r['majority_answer']} | {100 * r['majority_share']:.1f} % | {r['greedy_mode']} | "
                         f"{100 * r['greedy_mode_share']:.1f} % | {100 * (r['acc_t1'] - r['majority_share']):+.1f} |")
    return "\n".join(lines)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--n", type=int, default=200, help="validation problems per candidate")
    ap.add_argument("--round", type=int, default=1, choices=sorted(ROUNDS), help="which pre-registered selection round")
    ap.add_argument("--candidates", type=int, nargs="+", choices=[c.number for r in ROUNDS.values() for c in r],
                    help="a subset of the candidates by number (a smoke run; the rule then sees only these)")
    ap.add_argument("--engine", help="model.engine (hf | vllm); left out: the model config's default")
    ap.add_argument("--out", type=Path, help="the JSON (default outputs/reasoning_gym_selection/selection[_round_2].json)")
    ap.add_argument("--threads", type=int, default=2, help="torch CPU threads")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    cache = os.environ.get("SELFCORRECT_CACHE_DIR", str(ROOT / ".cache/selfcorrect"))
    out_name = "selection.json" if args.round == 1 else f"selection_round_{args.round}.json"
    args.out = args.out or ROOT / "outputs" / "reasoning_gym_selection" / out_name
    chosen_candidates = [c for c in ROUNDS[args.round] if args.candidates is None or c.number in args.candidates]
    if not chosen_candidates:
        raise SystemExit(f"--candidates {args.candidates} holds none of round {args.round}'s candidates")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    rows = []
    with open(args.out.with_suffix(".attempts.jsonl"), "w") as attempts:
        for c in chosen_candidates:
            rows.append(measure(c, args.n, args.engine, cache, attempts))
            print(json.dumps(rows[-1]), flush=True)
    choice = choose(rows) if args.round == 1 else choose_round_2(rows)
    row = next((r for r in rows if r["candidate"] == choice["candidate"]), None)
    choice.update(dataset=row and row["dataset"], knobs=row and row["knobs"])
    engine = args.engine or OmegaConf.select(compose_candidate(CANDIDATES[0]).model, "engine", default="hf")
    result = {"preregistration": PREREGISTRATIONS[args.round], "round": args.round, "n": args.n, "problem_seed": PROBLEM_SEED, "max_new_tokens": MAX_NEW_TOKENS,
              "samples": N_SAMPLES, "engine": engine, "subset": args.candidates is not None, "candidates": rows, "chosen": choice,
              "machine": f"{platform.processor() or platform.machine()}, {os.cpu_count()} cores, torch threads {torch.get_num_threads()}"}
    args.out.write_text(json.dumps(result, indent=1) + "\n")
    print(table(rows))
    scope = "among the measured subset only (not the pre-registered decision)" if args.candidates else "by the pre-registered rule"
    if choice["candidate"] is None:
        print(f"round {args.round} {scope}: {choice['tier']}; failed criteria per candidate: {choice['failed']}")
    else:
        print(f"chosen {scope}: candidate {choice['candidate']} ({choice['dataset']}, {choice['knobs']}): {choice['tier']}"
              + (f"; fails {', '.join(choice['failed'])}" if choice["failed"] else ""))
    print(f"wrote {args.out} and {args.out.with_suffix('.attempts.jsonl')}")


if __name__ == "__main__":
    main()
