"""A model-free stand-in for `policy.Policy` (its `two_turn` and `sequence_logprobs`), for evaluator
tests: the first attempt and the revision are plain functions of the problem and the first attempt,
and every attempt has the probability `confidence` (the calibration measure's input)."""

from __future__ import annotations

import math
from collections.abc import Callable

from selfcorrect.models.policy import Episode, Turn


class FakePolicy:
    def __init__(self, task, first: Callable, revise: Callable, confidence: float = 0.5):
        self.task, self.first, self.revise, self.confidence = task, first, revise, confidence
        self.calls: list[dict] = []

    def sequence_logprobs(self, turns, sampled_at=None) -> list[float]:
        return [math.log(self.confidence) for _ in turns]

    def two_turn(self, problems, sampling, seed=0, first_attempts=None, n_turns=2):
        self.calls.append({"n": len(problems), "offline": first_attempts is not None})
        episodes = []
        for i, p in enumerate(problems):
            y1 = first_attempts[i] if first_attempts is not None else self.first(p)
            turns = [Turn([], [], y1)] + ([Turn([], [], self.revise(p, y1))] if n_turns > 1 else [])
            episodes.append(Episode(p, turns))
        return episodes
