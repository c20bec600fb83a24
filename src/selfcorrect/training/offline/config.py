"""The settings of one offline arm (`OfflineConfig`): how its traces are sampled (or written by a teacher),
its mismatch-probe sets, its turn-1 anchors, its SFT settings and its rounds, read from
`conf/arm/<name>.yaml` (shared settings in `arm/offline/common.yaml`) with the shared budget
(`selfcorrect.training.budget`), which sets its problem counts. Checked once, before any work
(`selfcorrect.config.parse`); a bad value fails naming the key and the value."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from selfcorrect.evaluation.spec import positive_int
from selfcorrect.training.budget import Budget

INITS = ("base", "continue")


@dataclass(frozen=True)
class ProbeSizes:
    """`arm.probe`: fixed offline first attempts for the mismatch probe (paper Fig. 5)."""
    n_train: int       # trained-on wrong first attempts, distinct train problems
    n_val: int         # the same construction on val problems
    val_problems: int  # val problems the val set is built from


@dataclass(frozen=True)
class SFTSettings:
    """`arm.sft`: TRL SFTTrainer settings that are not part of the budget."""
    logging_steps: int
    eval_every: int                # the candidate checkpoints (the validation evaluator)
    micro_batch: int | None = None  # sequences per forward/backward pass within a step (None: the whole step)

    @classmethod
    def from_dict(cls, sft: Mapping) -> "SFTSettings":
        return cls(int(sft["logging_steps"]), int(sft.get("eval_every", 0)), sft.get("micro_batch"))


@dataclass(frozen=True)
class BaseLike:
    """`arm.base_like`: how sft_teacher's `base_like` teacher measures where the base's first attempts err."""
    n_problems: int
    temperature: float


@dataclass(frozen=True)
class OfflineConfig:
    name: str
    samples_per_problem: int
    rounds: int
    problems_per_round: int  # budget.episodes / (samples_per_problem × rounds): every arm spends the episode budget
    temperature: float       # data-collection sampling temperature
    anchor: float            # turn-1 anchor examples per correction trace (0: none, the paper's arms)
    probe: ProbeSizes
    sft: SFTSettings
    plus: bool = False                # D+: correct → correct traces too (Pair-SFT, STaR)
    incorrect_from: str = "all"       # Pair-SFT: incorrect responses of both turns, or first attempts only
    init: str = "base"                # STaR: each round from the base (ReST^EM) or `continue`
    error_model: str | None = None    # sft_teacher: the teacher's errors (checked against the task's error model)
    base_like: BaseLike | None = None

    @classmethod
    def from_cfg(cls, arm: Mapping, budget: Budget) -> "OfflineConfig":
        """The arm's settings (plain values) with the shared budget."""
        for key in ("samples_per_problem", "rounds"):
            positive_int(f"arm.{key}", arm.get(key))
        per = arm["samples_per_problem"] * arm["rounds"]
        if budget.episodes % per:
            raise ValueError(
                f"arm {arm['name']}: budget.episodes={budget.episodes} is not divisible by samples_per_problem × rounds = "
                f"{arm['samples_per_problem']} × {arm['rounds']}; every arm must spend exactly the shared episode budget"
            )
        anchor = arm.get("anchor", 0.0)
        if not isinstance(anchor, (int, float)) or isinstance(anchor, bool) or anchor < 0:
            raise ValueError(f"arm.anchor must be >= 0 (turn-1 examples per correction trace), got {anchor!r}")
        init = arm.get("init", "base")
        if init not in INITS:
            raise ValueError(f"arm.init must be 'base' (ReST^EM, the paper's) or 'continue', got {init!r}")
        probe, like = arm["probe"], arm.get("base_like")
        return cls(
            name=arm["name"], samples_per_problem=arm["samples_per_problem"], rounds=arm["rounds"],
            problems_per_round=budget.episodes // per, temperature=float(arm["temperature"]), anchor=float(anchor),
            probe=ProbeSizes(int(probe["n_train"]), int(probe["n_val"]), int(probe["val_problems"])),
            sft=SFTSettings.from_dict(arm["sft"]),
            plus=bool(arm.get("plus", False)), incorrect_from=str(arm.get("incorrect_from", "all")), init=init,
            error_model=arm.get("error_model"),
            base_like=BaseLike(int(like["n_problems"]), float(like["temperature"])) if like is not None else None,
        )
