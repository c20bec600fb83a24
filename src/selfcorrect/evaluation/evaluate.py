"""The one evaluator: two-turn greedy evaluation, the full metric set, and the mismatch probe.

The mismatch probe asks how well the policy corrects *fixed, offline* first attempts (from the
base model, or the ones an SFT arm trained on) against how well it corrects *its own fresh*
first attempts (paper Fig. 5). Each probe record holds both on one problem, and the primary
numbers are over the problems where both first attempts are wrong (`selfcorrect.evaluation.probe`):
`mismatch_gap_matched` = offline − own there; the unrestricted rates are kept as secondary.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from selfcorrect.evaluation.metrics import summarize
from selfcorrect.evaluation.probe import probe_metrics, probe_record
from selfcorrect.evaluation.scoring import score_all
from selfcorrect.models.policy import Policy, Sampling
from selfcorrect.runtime import timing
from selfcorrect.runtime.records import write_json, write_jsonl
from selfcorrect.tasks.base import Problem


@dataclass
class OfflineAttempts:
    """Fixed first attempts for the mismatch probe, one per problem."""

    label: str
    problems: list[Problem]
    attempts: list[str]

    def __post_init__(self) -> None:
        if len(self.problems) != len(self.attempts):
            raise ValueError(f"offline set {self.label!r}: {len(self.attempts)} attempts for {len(self.problems)} problems")


@dataclass
class EvalResult:
    metrics: dict
    records: list[dict]
    probe_records: dict[str, list[dict]] = field(default_factory=dict)


def evaluate_policy(
    policy: Policy,
    problems: Sequence[Problem],
    sampling: Sampling,
    seed: int = 0,
    offline: Sequence[OfflineAttempts] = (),
) -> EvalResult:
    task = policy.task
    episodes = policy.two_turn(problems, sampling, seed)
    records = [s.record() for s in score_all(task, episodes)]
    with timing.stage("confidence", within=("final_eval",)):  # the policy's probability of its own y1 (calibration)
        for r, ep, logp in zip(records, episodes, policy.sequence_logprobs([ep.turns[0] for ep in episodes], sampling.temperature)):
            r.update(logp1=logp, n_tokens1=len(ep.turns[0].completion_ids))
    metrics = summarize(records)
    probe_records = {}
    own_by_problems = {_key(problems): records}
    with timing.stage("probe", within=("final_eval",)):  # during training: part of `monitoring`
        _probe(policy, sampling, seed, offline, own_by_problems, metrics, probe_records)
    return EvalResult(metrics, records, probe_records)


def _probe(policy: Policy, sampling: Sampling, seed: int, offline: Sequence[OfflineAttempts],
           own_by_problems: dict, metrics: dict, probe_records: dict) -> None:
    """The mismatch probe: the policy revises each offline set's first attempts, and (on the
    same problems) its own."""
    task = policy.task
    for off in offline:
        key = _key(off.problems)
        if key not in own_by_problems:  # the policy's own greedy episodes on the offline set's problems
            own_by_problems[key] = [s.record() for s in score_all(task, policy.two_turn(off.problems, sampling, seed))]
        probe_eps = policy.two_turn(off.problems, sampling, seed, first_attempts=off.attempts)
        probe = [probe_record(s.record(), own) for s, own in zip(score_all(task, probe_eps), own_by_problems[key])]
        metrics[f"probe/{off.label}"] = probe_metrics(probe)
        probe_records[off.label] = probe


def write_eval(out_dir: str | Path, result: EvalResult, prefix: str = "") -> None:
    """generations + probe JSONL first, metrics JSON last (its presence marks completeness)."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    write_jsonl(out / f"{prefix}generations.jsonl", result.records)
    for label, rows in result.probe_records.items():
        write_jsonl(out / f"{prefix}probe_{label}.jsonl", rows)
    write_json(out / f"{prefix}metrics.json", result.metrics)


def _key(problems: Sequence[Problem]) -> tuple[str, ...]:
    return tuple(p.id for p in problems)
