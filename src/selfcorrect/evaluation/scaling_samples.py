"""Samples for inference-time scaling (paper Fig. 1 right, and V2 App. A.1's more-than-two-turn
revision): from a finished run's policy (its `policy/` folder, else the base model named in
run.json), K independent first attempts per test problem at temperature 0.7, each revised
`n_turns − 1` times. The verdict of every attempt is cached as JSONL in the run directory, keyed
by the settings, so figures never regenerate. The curves drawn from them: `analysis.scaling`.
"""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass
from pathlib import Path

from omegaconf import OmegaConf

from selfcorrect.runtime.records import read_json, write_json, write_jsonl


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
    status = read_json(run_dir / "run.json")
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

    from selfcorrect.models.loading import open_policy
    from selfcorrect.models.policy import Sampling
    from selfcorrect.tasks import make_task

    cfg = OmegaConf.to_container(OmegaConf.load(run_dir / "config.yaml"))  # the finished run's, resolved already
    task, ev = make_task(cfg["task"]), cfg["eval"]
    torch.set_num_threads(int(cfg.get("threads", 1)))
    policy = open_policy(policy_path(run_dir), task, cfg["model"])
    n = min(spec.n_problems, int(ev["n_problems"]))
    problems = task.problems(ev["split"], int(ev["n_problems"]), seed=ev["problem_seed"])[:n]
    t0 = time.time()
    # all K samples of all problems in one batched rollout; sampling is seeded per call
    episodes = policy.two_turn(problems * spec.k, Sampling(spec.temperature, int(ev["max_new_tokens"])),
                               seed=spec.seed, n_turns=spec.n_turns)
    rows = []
    for i, ep in enumerate(episodes):
        verdicts = [task.verify(ep.problem, t.text) for t in ep.turns]
        rows.append({"id": ep.problem.id, "answer": ep.problem.answer, "sample": i // len(problems),
                     "answers": [v.answer for v in verdicts], "correct": [bool(v.correct) for v in verdicts]})
    write_jsonl(out, rows)
    write_json(run_dir / (spec.filename[:-6] + ".json"), {**asdict(spec), "gen_s": round(time.time() - t0, 1)}, indent=None)
    return out
