"""Inference-time scaling curves (paper Fig. 1 right) from the samples `scaling_samples` caches.

Two ways to spend a budget of B samples, scored by majority vote over final answers:
- parallel:   B first attempts, vote over their answers;
- sequential: B/2 first attempts, each revised once, vote over the B/2 second answers.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

BUDGETS = (1, 2, 4, 8, 16, 32)


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
