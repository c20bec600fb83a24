"""Train/val/test splits and reproducible draws for tasks built on a fixed list of problems."""

from __future__ import annotations

import random
from collections.abc import Sequence

from selfcorrect.tasks.base import Problem, check_split, stable_hash


def hash_split(key: str, fractions: dict[str, float], salt: str) -> str:
    """The split a problem belongs to, from a stable hash of its key: the same in every process
    and for every seed, so train, val and test never overlap."""
    u = (stable_hash(f"{salt}:{key}") % 10**6) / 10**6
    total = 0.0
    for split, frac in fractions.items():
        total += frac
        if u < total:
            return split
    return split  # rounding: the last split


def check_fractions(fractions: dict[str, float], what: str) -> dict[str, float]:
    fractions = {k: float(v) for k, v in dict(fractions).items()}
    for split, frac in fractions.items():
        check_split(split)
        if not 0 <= frac <= 1:
            raise ValueError(f"{what}: fraction for {split!r} must be in [0, 1], got {frac!r}")
    if abs(sum(fractions.values()) - 1) > 1e-6:
        raise ValueError(f"{what}: split fractions must sum to 1, got {fractions!r}")
    return fractions


def draw(problems: Sequence[Problem], n: int, seed: int, label: str) -> list[Problem]:
    """`n` distinct problems in an order fixed by `seed` (the first n of a seeded shuffle of the
    problems sorted by id, so a larger n extends a smaller one)."""
    if isinstance(n, bool) or not isinstance(n, int) or not 0 < n <= len(problems):
        raise ValueError(f"cannot draw n={n!r} problems from {label}: it holds {len(problems)}")
    pool = sorted(problems, key=lambda p: p.id)
    random.Random(f"{label}:{seed}").shuffle(pool)
    return pool[:n]
