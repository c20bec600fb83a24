"""Inference-time scaling (paper Fig. 1 right, and V2 App. A.1's more-than-two-turn revision).

From a finished run's policy (its `policy/` folder, else the base model named in run.json),
sample K independent first attempts per test problem at temperature 0.7 and let the policy
revise each one `n_turns − 1` times. The verdict of every attempt is cached as JSONL in the
run directory, keyed by the settings, so figures never regenerate.

Two ways to spend a budget of B samples, scored by majority vote over final answers:
- parallel:   B first attempts, vote over their answers;
- sequential: B/2 first attempts, each revised once, vote over the B/2 second answers.
"""

from __future__ import annotations

import json
import os
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import pandas as pd
from omegaconf import OmegaConf

BUDGETS = (1, 2, 4, 8, 16, 32)


@dataclass(frozen=True)
class ScalingSpec:
    k: int = 32               # first attempts sampled per problem
    n_turns: int = 3          # attempts per sample: the first and n_turns − 1 revisions
    temperature: float = 0.7  # as in the paper's inference-scaling experiment
    n_problems: int = 200     # the first n test problems of the run
    seed: int = 0

    def __post_init__(self) -> None:
        if self.k < 1 or self.n_turns < 2 or self.n_problems < 1:
            raise ValueError(f"need k >= 1, n_turns >= 2, n_problems >= 1; got {self}")
        if self.temperature <= 0:
            raise ValueError(f"scaling needs sampling (temperature > 0), got {self.temperature!r}")

    @property
    def filename(self) -> str:
        return f"scaling_T{self.temperature:g}_K{self.k}_turns{self.n_turns}_n{self.n_problems}_s{self.seed}.jsonl"


def policy_path(run_dir: Path) -> Path | str:
    """The run's trained policy, or the base model it evaluated when it trained none."""
    if (run_dir / "policy").is_dir():
        return run_dir / "policy"
    status = json.loads((run_dir / "run.json").read_text())
    if not status.get("base_model"):
        raise FileNotFoundError(f"run {run_dir} has no policy/ folder and run.json names no base_model")
    return status["base_model"]


def sample_revisions(run_dir: str | Path, spec: ScalingSpec = ScalingSpec(), force: bool = False) -> Path:
    """Generate (or reuse) the cached scaling samples of one run; returns the JSONL path.
    One row per problem × sample: the answer and verdict of every turn."""
    run_dir = Path(run_dir)
    out = run_dir / spec.filename
    if out.exists() and not force:
        return out
    # imported here so that plotting cached curves never loads torch / transformers
    import torch

    from selfcorrect.models import open_policy
    from selfcorrect.policy import Sampling
    from selfcorrect.tasks import make_task

    cfg = OmegaConf.load(run_dir / "config.yaml")
    task = make_task(cfg.task)
    torch.set_num_threads(int(cfg.get("threads", 1)))
    policy = open_policy(policy_path(run_dir), task, cfg.model)
    n = min(spec.n_problems, int(cfg.eval.n_problems))
    problems = task.problems(cfg.eval.split, int(cfg.eval.n_problems), seed=cfg.eval.problem_seed)[:n]
    t0 = time.time()
    # all K samples of all problems in one batched rollout; sampling is seeded per call
    episodes = policy.two_turn(problems * spec.k, Sampling(spec.temperature, int(cfg.eval.max_new_tokens)),
                               seed=spec.seed, n_turns=spec.n_turns)
    rows = []
    for i, ep in enumerate(episodes):
        verdicts = [task.verify(ep.problem, t.text) for t in ep.turns]
        rows.append({"id": ep.problem.id, "answer": ep.problem.answer, "sample": i // len(problems),
                     "answers": [v.answer for v in verdicts], "correct": [bool(v.correct) for v in verdicts]})
    tmp = out.with_suffix(".jsonl.tmp")
    with open(tmp, "w") as f:
        for r in rows:
            f.write(json.dumps(r) + "\n")
    os.replace(tmp, out)
    (run_dir / (spec.filename[:-6] + ".json")).write_text(json.dumps({**asdict(spec), "gen_s": round(time.time() - t0, 1)}))
    return out


def load_samples(path: str | Path) -> tuple[list[str], np.ndarray, np.ndarray]:
    """(problem ids, answers [P, K, T] as strings or None, correct [P, K, T] bool) of a cache."""
    df = pd.read_json(path, lines=True)
    if df.empty:
        raise ValueError(f"scaling cache {path} is empty")
    ids = list(dict.fromkeys(df["id"]))
    k, t = df["sample"].nunique(), len(df["answers"].iloc[0])
    if len(df) != len(ids) * k:
        raise ValueError(f"scaling cache {path}: {len(df)} rows for {len(ids)} problems × {k} samples")
    df = df.assign(pos=df["id"].map({p: i for i, p in enumerate(ids)})).sort_values(["pos", "sample"])
    answers = np.array(df["answers"].tolist(), dtype=object).reshape(len(ids), k, t)
    correct = np.array(df["correct"].tolist(), dtype=bool).reshape(len(ids), k, t)
    return ids, answers, correct


def answer_codes(answers: np.ndarray) -> np.ndarray:
    """Answers [P, K] → integer codes per problem in order of first appearance; None → −1."""
    codes = np.full(answers.shape, -1, dtype=int)
    for p, row in enumerate(answers):
        seen: dict[str, int] = {}
        for j, a in enumerate(row):
            if a is not None:
                codes[p, j] = seen.setdefault(str(a).lstrip("0") or "0", len(seen))
    return codes


def majority_correct(codes: np.ndarray, correct: np.ndarray) -> np.ndarray:
    """Per problem, is the most frequent answer among the given samples [P, b] correct? Missing
    answers (−1) abstain; all-abstain counts as wrong; ties go to the answer seen first."""
    p, b = codes.shape
    n_codes = max(int(codes.max()) + 1, 1)
    votes = (codes[:, :, None] == np.arange(n_codes)).sum(axis=1)  # [P, n_codes]
    winner = votes.argmax(axis=1)
    # correctness of each answer code: any sample that gave it (all agree: same answer)
    code_correct = ((codes[:, :, None] == np.arange(n_codes)) & correct[:, :, None]).any(axis=1)
    return (votes.max(axis=1) > 0) & code_correct[np.arange(p), winner]


def budget_accuracy(codes: np.ndarray, correct: np.ndarray, budget: int, n_draws: int = 32, seed: int = 0) -> np.ndarray:
    """Expected majority-vote correctness per problem when `budget` of the K samples are drawn
    at random without replacement (averaged over `n_draws` draws)."""
    p, k = codes.shape
    if not 1 <= budget <= k:
        raise ValueError(f"budget {budget} outside 1..{k} available samples")
    rng = np.random.default_rng(seed)
    draws = 1 if budget == k else n_draws
    acc = np.zeros(p)
    for _ in range(draws):
        idx = rng.random((p, k)).argsort(axis=1)[:, :budget]
        acc += majority_correct(np.take_along_axis(codes, idx, 1), np.take_along_axis(correct, idx, 1))
    return acc / draws


def scaling_curves(answers: np.ndarray, correct: np.ndarray, budgets=BUDGETS, n_draws: int = 32, seed: int = 0) -> pd.DataFrame:
    """Per-problem accuracy for each mode and budget: rows (mode, budget, problem, acc).
    mode `parallel`: majority over `budget` first attempts; `sequential`: over budget/2 second
    attempts (budget even); `turn`: mean correctness of attempt t (budget column holds t)."""
    k = answers.shape[1]
    c1, c2 = answer_codes(answers[:, :, 0]), answer_codes(answers[:, :, 1])
    rows = []
    for b in budgets:
        if b <= k:
            rows.append(("parallel", b, budget_accuracy(c1, correct[:, :, 0], b, n_draws, seed)))
        if b % 2 == 0 and b // 2 <= k:
            rows.append(("sequential", b, budget_accuracy(c2, correct[:, :, 1], b // 2, n_draws, seed)))
    for t in range(answers.shape[2]):
        rows.append(("turn", t + 1, correct[:, :, t].mean(axis=1)))
    return pd.DataFrame(
        [(mode, b, i, float(a)) for mode, b, accs in rows for i, a in enumerate(accs)],
        columns=["mode", "budget", "problem", "acc"],
    )
