"""Arms: each is a `conf/arm/<name>.yaml`, which names its training function (`selfcorrect.training.catalog`):
the offline family's in `training/offline/arms.py`, the RL family's in `training/rl/arms.py`, the base
arm's (`train_base`, no training) here.

A training function takes an `ArmContext` (the run's specs, the task, the frozen base, where to
write, and two services passed in as plain functions) and returns an `ArmResult`; it writes nothing
onto the context. It starts from `ctx.new_policy()` (the policy factory: a fresh copy of the base)
and evaluates on validation problems during training with `ctx.evaluate(policy, step, probes)` (the
validation evaluator: every `eval.monitor_every` steps, the candidate checkpoints of the one
checkpoint rule, `selfcorrect.training.selection`). Its result holds the policy its own rule keeps
(the paper's: RL the best training reward, SFT the last step) with that step (`paper_choice`), what
it spent of the budget, the fixed first attempts it trained on (so that the final evaluation's
mismatch probe compares them with the policy's own), their error histogram and its extra metrics.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from selfcorrect.evaluation.evaluate import OfflineAttempts, evaluate_policy
from selfcorrect.models.loading import policy_factory
from selfcorrect.models.policy import Policy, Sampling
from selfcorrect.runtime import timing
from selfcorrect.runtime.tracking import Tracker
from selfcorrect.tasks.base import Task
from selfcorrect.training import catalog
from selfcorrect.training.budget import Budget
from selfcorrect.training.offline.config import OfflineConfig
from selfcorrect.training.rl.config import RLConfig
from selfcorrect.training.selection import Candidates

# the validation evaluator: (policy, step, the arm's probe sets) -> the validation metrics
Evaluator = Callable[[Policy, int, Sequence[OfflineAttempts]], dict]


@dataclass(frozen=True)
class ArmSpec:
    """The `arm` block: what `catalog` reads (name, family, training function), the resolved settings
    (trace cache keys and RL resume fingerprints hash them) and its family's typed settings."""
    name: str
    family: str                     # none | offline | rl
    train: str                      # "module:function"
    settings: dict                  # the arm block as plain values
    offline: OfflineConfig | None = None
    rl: RLConfig | None = None

    @classmethod
    def from_cfg(cls, arm: dict, family: str, budget: Budget) -> "ArmSpec":
        """The arm's settings, its family's checked against the shared budget."""
        return cls(name=arm["name"], family=family, train=arm["train"], settings=arm,
                   offline=OfflineConfig.from_cfg(arm, budget) if family == "offline" else None,
                   rl=RLConfig.from_cfg(arm, budget) if family == "rl" else None)


@dataclass(frozen=True)
class ArmContext:
    """What a training function gets: read, never written. `new_policy` and `evaluate` are the
    services it calls, passed in as plain functions (`make_context` wires the run's own)."""
    spec: "RunSpec"  # noqa: F821 (selfcorrect.config.RunSpec: the run's parsed specs)
    task: Task
    base: Policy  # frozen: the reference policy for KL terms and the source of offline attempts
    base_path: str | Path
    run_dir: Path
    tracker: Tracker
    new_policy: Callable[[], Policy]  # a fresh, trainable copy of the base (`models.loading.policy_factory`)
    evaluate: Evaluator               # the validation evaluator (`validation_evaluator`)

    @property
    def seed(self) -> int:
        return self.spec.seed

    @property
    def cache_dir(self) -> Path:
        """The artifact cache (base models, traces, base first attempts)."""
        return self.spec.cache_dir

    @property
    def candidates(self) -> Candidates:
        """The candidate checkpoints of the one checkpoint rule (`selfcorrect.training.selection`);
        a run (re)started at step s forgets those after s (`Candidates.forget_after`)."""
        return Candidates(self.run_dir)


@dataclass(frozen=True)
class ArmResult:
    """What a training function returns; `run.py`, `selection.choose` and the final evaluation
    read it."""
    policy: Policy                  # the policy the arm's own (the paper's) rule keeps
    # that checkpoint: {"rule": ..., "step": ...} (selection.py); None: nothing was trained (the base arm)
    paper_choice: dict | None = None
    # what the arm spent of the shared budget (`Budget.spent`); written to metrics.json as `budget`
    budget_spent: dict | None = None
    # the fixed first attempts it trained on: the final evaluation's mismatch probe measures them
    offline: tuple[OfflineAttempts, ...] = ()
    # error-kind histogram of the first attempts it trained on; the final evaluation reports its
    # total-variation distance to the trained policy's own t1 errors
    offline_error_hist: dict | None = None
    # merged into the final metrics.json under "arm/" (budgets, dataset sizes, ...)
    extra_metrics: dict = field(default_factory=dict)
    # the candidate checkpoints measured on validation (None: nothing was trained)
    candidates: Candidates | None = None


def make_context(spec: "RunSpec", task: Task, base: Policy, base_path: str | Path, run_dir: Path,  # noqa: F821
                 tracker: Tracker) -> ArmContext:
    """A run's context with its own services: the policy factory (the base at `base_path`, a LoRA
    adapter seeded by the run's seed) and the validation evaluator (logging to `tracker`, keeping
    the candidates in `run_dir`)."""
    return ArmContext(spec, task, base, base_path, run_dir, tracker,
                      new_policy=policy_factory(base_path, task, spec.model, adapter_seed=spec.seed),
                      evaluate=validation_evaluator(spec, task, tracker, Candidates(run_dir)))


def validation_evaluator(spec: "RunSpec", task: Task, tracker: Tracker, candidates: Candidates) -> Evaluator:  # noqa: F821
    """The validation evaluator: `evaluate(policy, step, probes)` measures greedy two-turn metrics
    on `eval.n_monitor` validation problems, plus the mismatch probe on `probes` (the arm's own
    sets) every `eval.probe_every` steps and at the last, logged under `val/`; at a step > 0 the
    policy becomes a candidate checkpoint (`selection.Candidates`)."""
    ev = spec.eval

    def evaluate(policy: Policy, step: int, probes: Sequence[OfflineAttempts] = ()) -> dict:
        with timing.stage("monitoring"):
            problems = task.problems("val", ev.n_monitor, seed=ev.problem_seed)
            due = step % ev.probe_every == 0 or step == spec.budget.gradient_steps
            offline = list(probes) if due else []
            metrics = evaluate_policy(policy, problems, Sampling(0.0, ev.max_new_tokens), seed=spec.seed, offline=offline).metrics
            tracker.log(metrics, step=step, prefix="val/")
        if step > 0:
            with timing.stage("checkpoints"):
                candidates.add(step, metrics, policy.model)
        return metrics

    return evaluate


def get_arm(name: str) -> Callable[[ArmContext], ArmResult]:
    """The training function `conf/arm/<name>.yaml` names (`selfcorrect.training.catalog`)."""
    return catalog.arm(name).trainer()


def train_base(ctx: ArmContext) -> ArmResult:
    """`arm=base`: no training; the base model is evaluated as it is."""
    return ArmResult(ctx.base)
