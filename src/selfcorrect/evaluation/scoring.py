"""A two-turn episode with the verifier's verdict on each attempt: the one place both attempts
are scored, for the evaluator's records, the offline arms' sampled traces and the RL rollouts."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

from selfcorrect.evaluation.metrics import edit_distance_ratio
from selfcorrect.tasks.base import Problem, Task, Verdict

if TYPE_CHECKING:  # no torch import: the analysis tests build records without a model
    from selfcorrect.models.policy import Episode


@dataclass(frozen=True)
class ScoredEpisode:
    episode: Episode
    v1: Verdict
    v2: Verdict
    behaviour: str | None = None  # how y2 revised y1 (`Task.revision_behaviour`), None for a task without it

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
        """The episode's row; `truncated1/2` (the attempt hit `max_new_tokens`) for every generated attempt
        (not for a first attempt given from outside, whose finish is unknown)."""
        row = attempt_record(self.problem, self.y1, self.y2, self.v1, self.v2, self.behaviour)
        for t, turn in enumerate(self.episode.turns[:2], start=1):
            if turn.finish:
                row[f"truncated{t}"] = turn.truncated
        return row


def attempt_record(p: Problem, y1: str, y2: str, v1: Verdict, v2: Verdict, behaviour: str | None = None) -> dict:
    """Everything about one two-turn episode that any metric needs (one row of generations.jsonl);
    `behaviour` only for a task with `revision_behaviour`."""
    return {
        "id": p.id, "prompt": p.prompt, "answer": p.answer, "y1": y1, "y2": y2,
        "correct1": v1.correct, "correct2": v2.correct,
        "well_formed1": v1.well_formed, "well_formed2": v2.well_formed,
        "answer1": v1.answer, "answer2": v2.answer,
        "error1": v1.error_type, "error2": v2.error_type,
        "edit_ratio": edit_distance_ratio(y1, y2),
        **({"behaviour": behaviour} if behaviour is not None else {}),
    }


def behaviour_of(task: Task, p: Problem, y1: str, y2: str) -> str | None:
    """How y2 revised y1 (`Task.revision_behaviour`), None for a task without the capability."""
    return task.revision_behaviour(p, y1, y2) if task.revision_behaviour is not None else None


def score(task: Task, episode: Episode) -> ScoredEpisode:
    p, y1, y2 = episode.problem, episode.y1, episode.y2
    return ScoredEpisode(episode, task.verify(p, y1), task.verify(p, y2), behaviour_of(task, p, y1, y2))


def score_all(task: Task, episodes: Sequence[Episode]) -> list[ScoredEpisode]:
    return [score(task, ep) for ep in episodes]
