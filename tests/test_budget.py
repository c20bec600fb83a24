"""The one training budget: every arm of the sweep plans the same spend, and both families build
the same optimizer and learning-rate schedule from it."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from omegaconf import OmegaConf

from selfcorrect.tasks.arithmetic import ArithmeticTask
from selfcorrect.training.budget import Budget, split_steps

from conftest import compose_config, random_char_policy

CONF = Path(__file__).resolve().parents[1] / "conf"


def sweep_arms(experiment: str) -> list[list[str]]:
    """The overrides of each arm configuration of an experiment's sweep (the experiment included),
    one seed: the jobs `make sweep` launches (selfcorrect.sweeps.sweep.planned_runs)."""
    from selfcorrect.sweeps.sweep import planned_runs

    jobs = [name.split(",") for name in planned_runs(experiment, ["seeds=1"])]
    return [[f"experiment={experiment}", *(o for o in job if not o.startswith("seed="))] for job in jobs]


def planned_spend(cfg) -> dict:
    """What an arm will spend, from its config alone (the run writes what it did spend)."""
    budget = Budget.from_cfg(cfg.budget)
    if cfg.arm.name == "base":
        return budget.spent(0, 0, 0)
    if "schedule" in cfg.arm:  # RL
        from selfcorrect.training.rl.config import RLConfig

        rl = RLConfig.from_cfg(cfg.arm, cfg.budget)
        steps = len(rl.stages_by_step())
        return budget.spent(steps * rl.prompts_per_step * rl.samples_per_prompt, steps, rl.prompts_per_step * rl.samples_per_prompt)
    from selfcorrect.training.offline.config import OfflineConfig

    offline = OfflineConfig.from_cfg(OmegaConf.to_container(cfg.arm, resolve=True), budget)
    episodes = offline.problems_per_round * offline.samples_per_problem * offline.rounds
    return budget.spent(episodes, budget.gradient_steps, budget.sequences_per_step)


@pytest.mark.parametrize("sweep,dial", [("embedded_sweep", "embedded_dial"), ("answer_first_sweep", "answer_first_dial")])
def test_every_trained_arm_of_the_sweep_plans_the_same_budget(sweep, dial):
    overrides = sweep_arms(sweep) + sweep_arms(dial)
    configs = {" ".join(o[1:]): compose_config(o) for o in overrides}
    grid = {float(x) for x in str(next(iter(configs.values())).lr_grid).split(",")}
    for c in configs.values():  # each trained arm has its own tuned lr, from the one grid (`make tune`)
        if c.arm.name != "base":
            assert c.budget.lr == c.tuned_lr[c.arm.lr_key] and c.budget.lr in grid, c.arm.lr_key
    plans = {k: planned_spend(c) for k, c in configs.items()}
    trained = {k: {f: x for f, x in v.items() if f != "lr"} for k, v in plans.items() if k != "arm=base"}
    assert len(trained) >= 17
    first = next(iter(trained.values()))
    assert all(v == first for v in trained.values()), {k: v for k, v in trained.items() if v != first}
    assert first["episodes"] == first["gradient_steps"] * first["sequences_per_step"] > 0
    assert plans["arm=base"]["episodes"] == 0


def test_split_steps_adds_up_and_refuses_bad_shares():
    assert split_steps([0.5, 0.5], 96) == [48, 48]
    assert split_steps([1 / 3, 1 / 3, 1 / 3], 10) == [4, 3, 3]
    assert sum(split_steps([0.2, 0.3, 0.5], 7)) == 7
    with pytest.raises(ValueError, match="add up to 1"):
        split_steps([0.5, 0.4], 10)
    with pytest.raises(ValueError, match="gets 0 steps"):
        split_steps([0.9, 0.1], 3)


@pytest.mark.parametrize("override,message", [
    ("budget.gradient_steps=0", "budget.gradient_steps must be a positive integer, got 0"),
    ("budget.optimizer=sgd", "budget.optimizer must be one of .*'sgd'"),
    ("budget.lr_schedule=wavy", "budget.lr_schedule must be one of .*'wavy'"),
    ("+budget.batch=3", "unknown budget keys \\['batch'\\]"),
])
def test_bad_budget_values_are_named(override, message):
    with pytest.raises(ValueError, match=message):
        Budget.from_cfg(compose_config([override]).budget)


def test_sft_and_rl_build_the_same_optimizer_and_schedule(tmp_path):
    """TRL's Trainer (the offline arms) and the RL loop get identical AdamW settings and the same
    learning rate at every step."""
    from selfcorrect.training.offline.sft import make_trainer, sft_config

    task = ArithmeticTask()
    cfg = compose_config(["budget.lr_schedule=cosine", "budget.warmup_steps=3", "budget.gradient_steps=10",
                          "budget.episodes=320"])
    budget = Budget.from_cfg(cfg.budget)
    policy = random_char_policy(task)
    problem = task.problems("train", 1, seed=0)[0]
    traces = [{"problem": problem, "y1": "1", "y2": task.write(problem)}] * 4
    trainer = make_trainer(policy, traces, sft_config(budget, cfg.arm.get("sft") or OmegaConf.create({"logging_steps": 1}), 10, 0, tmp_path))
    trainer.create_optimizer_and_scheduler(num_training_steps=10)
    ours = budget.make_optimizer(policy.model.parameters())
    ours_sched = budget.make_scheduler(ours)
    assert type(trainer.optimizer) is type(ours) is torch.optim.AdamW
    for key in ("lr", "betas", "eps", "weight_decay"):
        assert {g[key] for g in trainer.optimizer.param_groups} == {g[key] for g in ours.param_groups}, key
    lrs_trl, lrs_ours = [], []
    for _ in range(10):
        lrs_trl.append(trainer.lr_scheduler.get_last_lr()[0])
        lrs_ours.append(ours_sched.get_last_lr()[0])
        trainer.optimizer.step()
        trainer.lr_scheduler.step()
        ours.step()
        ours_sched.step()
    assert lrs_trl == pytest.approx(lrs_ours) and lrs_ours[0] == 0.0 and max(lrs_ours) == pytest.approx(budget.lr)
