"""A two-turn episode with the verifier's verdict on each attempt: the one place both attempts
are scored, for the evaluator's records, the offline arms' sampled traces and the RL rollouts."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

from selfcorrect.metrics import edit_distance_ratio
from selfcorrect.tasks.base import Problem, Task, Verdict

if TYPE_CHECKING:  # no torch import: the analysis tests build records without a model
    from selfcorrect.policy import Episode


@dataclass(frozen=True)
class ScoredEpisode:
    episode: Episode
    v1: Verdict
    v2: Verdict

    @property
    def problem(self) -> Problem:
        return self.episode.problem

    @property
    def y1(self) -> str:
        return self.episode.y1

    @property
    def y2(self) -> str:
        return self.episode.y2

    def record(self) -> dict:
        return attempt_record(self.problem, self.y1, self.y2, self.v1, self.v2)


def attempt_record(p: Problem, y1: str, y2: str, v1: Verdict, v2: Verdict) -> dict:
    """Everything about one two-turn episode that any metric needs (one row of generations.jsonl)."""
    return {
        "id": p.id, "prompt": p.prompt, "answer": p.answer, "y1": y1, "y2": y2,
        "correct1": v1.correct, "correct2": v2.correct,
        "well_formed1": v1.well_formed, "well_formed2": v2.well_formed,
        "answer1": v1.answer, "answer2": v2.answer,
        "error1": v1.error_type, "error2": v2.error_type,
        "edit_ratio": edit_distance_ratio(y1, y2),
    }


def score(task: Task, episode: Episode) -> ScoredEpisode:
    return ScoredEpisode(episode, task.verify(episode.problem, episode.y1), task.verify(episode.problem, episode.y2))


def score_all(task: Task, episodes: Sequence[Episode]) -> list[ScoredEpisode]:
    return [score(task, ep) for ep in episodes]
