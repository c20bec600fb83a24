"""The RL arms end to end on a tiny random model: configs, a few-step run, checkpoint resume."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import pytest
import torch
from hydra import compose, initialize_config_dir
from omegaconf import OmegaConf
from transformers import GPT2Config, GPT2LMHeadModel

from selfcorrect.models.char_tokenizer import build_char_tokenizer
from selfcorrect.models.policy import Policy
from selfcorrect.runtime import checkpoint
from selfcorrect.runtime.tracking import Tracker
from selfcorrect.tasks.arithmetic import ArithmeticTask
from selfcorrect.tasks.base import Verdict
from selfcorrect.training import catalog
from selfcorrect.config import parse
from selfcorrect.training.arms import ArmContext, ArmSpec, get_arm, make_context
from selfcorrect.training.budget import Budget
from selfcorrect.training.rl.config import RLConfig

CONF = str(Path(__file__).resolve().parents[1] / "conf")
RL_ARMS = list(catalog.of_family("rl"))


def arm_cfg(name: str, *overrides: str):
    with initialize_config_dir(CONF, version_base="1.3"):
        return compose("config", overrides=[f"arm={name}", *overrides])


# --- configs -----------------------------------------------------------------------------------
@pytest.mark.parametrize("name", RL_ARMS)
def test_every_rl_arm_composes_and_parses(name):
    cfg = arm_cfg(name)
    assert cfg.arm.name == name and name in catalog.arms() and get_arm(name) is not None
    rl = RLConfig.from_cfg(cfg.arm, cfg.budget)
    stages = rl.stages_by_step()
    expected = {
        "score": ({"I", "II"}, 10.0, 1.0),
        "score_no_stage1": ({"II"}, 10.0, 1.0),
        "score_no_shaping": ({"I", "II"}, 0.0, 1.0),
        "score_shaping_control": ({"I", "II"}, 0.0, 11.0),
        "rl_single_turn": ({"single"}, None, 1.0),
        "rl_multi_turn_naive": ({"naive"}, None, 1.0),
        "rl_multi_turn_sum": ({"II"}, 0.0, 1.0),
    }[name]
    assert set(stages) == expected[0] and rl.turn2_scale == expected[2]
    if expected[1] is not None:
        assert rl.alpha == expected[1]
    # the paper's defaults: KL in the reward (k1, per turn), the best-training-reward checkpoint
    assert (rl.loss.kl_estimator, rl.loss.kl_in, rl.checkpoint) == ("k1", "reward", "best_train_reward")
    if "I" in stages:
        assert stages.index("II") > stages.index("I")  # Stage I first, then Stage II


def test_every_rl_arm_selects_among_the_same_checkpoint_steps():
    steps = {name: RLConfig.from_cfg(*cfg_pair(name)).selection_steps() for name in RL_ARMS}
    assert all(v == [60, 72, 84, 96] for v in steps.values()), steps


def test_every_rl_arm_spends_the_shared_budget():
    budgets = {}
    for name in RL_ARMS:
        cfg = arm_cfg(name)
        rl = RLConfig.from_cfg(cfg.arm, cfg.budget)
        budgets[name] = (len(rl.stages_by_step()), rl.prompts_per_step * rl.samples_per_prompt, rl.budget)
        assert budgets[name][0] == cfg.budget.gradient_steps and budgets[name][1] == cfg.budget.sequences_per_step
    assert len(set(budgets.values())) == 1, budgets


def test_bad_rl_settings_name_the_value():
    with pytest.raises(ValueError, match="'III'"):
        RLConfig.from_cfg(*cfg_pair("score", "arm.schedule=[{stage: III, share: 1.0}]"))
    with pytest.raises(ValueError, match="add up to 1"):
        RLConfig.from_cfg(*cfg_pair("score", "arm.schedule=[{stage: I, share: 0.5}]"))
    with pytest.raises(ValueError, match="samples_per_prompt.*0"):
        RLConfig.from_cfg(*cfg_pair("score", "arm.samples_per_prompt=0"))
    with pytest.raises(ValueError, match="samples_per_prompt=3"):
        RLConfig.from_cfg(*cfg_pair("score", "arm.samples_per_prompt=3"))
    with pytest.raises(ValueError, match="budget.lr.*-1"):
        RLConfig.from_cfg(*cfg_pair("score", "budget.lr=-1"))
    with pytest.raises(ValueError, match="budget.episodes=100"):
        RLConfig.from_cfg(*cfg_pair("score", "budget.episodes=100"))
    with pytest.raises(ValueError, match="'sometimes'"):
        RLConfig.from_cfg(*cfg_pair("score", "arm.checkpoint=sometimes"))


def cfg_pair(name: str, *overrides: str):
    cfg = arm_cfg(name, *overrides)
    return cfg.arm, cfg.budget


# --- a tiny model and a task whose reward a random model can earn ------------------------------
class EvenLengthTask(ArithmeticTask):
    """Arithmetic prompts, but an attempt is 'correct' when it has an even number of characters,
    so a randomly initialised model earns a reward about half the time and the policy gradient
    is not zero."""

    def verify(self, problem, completion):
        text = completion.strip()
        ok = len(text) % 2 == 0
        return Verdict(ok, True, str(len(text)), None if ok else "odd_length")


def make_ctx(tmp_path: Path, run_name: str, tracker_cls=Tracker, **arm_overrides) -> ArmContext:
    task = EvenLengthTask()
    tok = build_char_tokenizer("0123456789+=> " + task.revise_instruction)
    torch.manual_seed(0)
    model = GPT2LMHeadModel(GPT2Config(vocab_size=len(tok), n_layer=1, n_head=1, n_embd=16, n_positions=192,
                                       bos_token_id=tok.eos_token_id, eos_token_id=tok.eos_token_id,
                                       pad_token_id=tok.pad_token_id))
    base_path = tmp_path / "base"
    if not base_path.exists():
        Policy(model, tok, task).save(base_path)
    budget_overrides = arm_overrides.pop("budget", {})
    arm = {**OmegaConf.to_container(arm_cfg("score").arm), "samples_per_prompt": 2,
           "max_new_tokens": 12, "eval_every": 2, "ckpt_every": 2, "select_every": 1,
           "schedule": [{"stage": "I", "share": 0.5}, {"stage": "II", "share": 0.5}], **arm_overrides}
    budget = {**OmegaConf.to_container(arm_cfg("score").budget), "episodes": 32, "gradient_steps": 4,
              "sequences_per_step": 8, "lr": 1e-2, **budget_overrides}
    spec = run_spec(arm, budget, eval={"n_monitor": 8, "max_new_tokens": 12, "problem_seed": 1, "probe_every": 1})
    run_dir = tmp_path / run_name
    run_dir.mkdir(exist_ok=True)
    tracker = tracker_cls({"mode": "disabled"}, run_dir, {}, name=run_name, group="t", tags=[])
    return make_context(spec, task, Policy.load(base_path, task), base_path, run_dir, tracker)


def run_spec(arm: dict, budget: dict, seed: int = 0, **blocks):
    """The specs of a composed run (`config.parse`) with the arm, budget and `eval` fields replaced, as a
    training function receives them; the model block is the one `Policy.load` defaults to."""
    spec = parse(arm_cfg(arm["name"]))
    b = Budget.from_cfg(budget)
    return dataclasses.replace(spec, seed=seed, budget=b, arm=ArmSpec.from_cfg(arm, "rl", b), model={"dtype": "float32"},
                               eval=dataclasses.replace(spec.eval, **blocks.get("eval", {})))


def history(ctx) -> list[dict]:
    return [json.loads(line) for line in ctx.tracker.history.read_text().splitlines()]


# --- (4) a few-step run ------------------------------------------------------------------------
@pytest.fixture(scope="module")
def whole_run(tmp_path_factory):
    """An uninterrupted 4-step SCoRe run (2 Stage I + 2 Stage II steps), shared by two tests: (dir, context, result)."""
    tmp = tmp_path_factory.mktemp("rl")
    ctx = make_ctx(tmp, "whole")
    return tmp, ctx, get_arm("score")(ctx)


def test_few_step_run_logs_checkpoints_and_counts_its_budget(whole_run):
    _, ctx, result = whole_run
    rows = history(ctx)
    train = [r for r in rows if "train/reward_t1" in r]
    assert [r["step"] for r in train] == [1, 2, 3, 4]
    assert [r["train/stage"] for r in train] == [1, 1, 2, 2]
    for key in ("reward_t2", "kl_t1", "kl_t2", "answer_change_rate", "no_edit_rate", "tokens_per_s_rollout", "tokens_per_s_update"):
        assert all(f"train/{key}" in r for r in train), key
    assert [r["step"] for r in rows if "val/acc_t1" in r] == [0, 2, 4]
    assert sorted(p.name for p in (ctx.run_dir / "checkpoints").glob("step_*.pt")) == ["step_0000002.pt", "step_0000004.pt"]
    assert result.extra_metrics["gradient_steps"] == 4 and result.extra_metrics["episodes"] == 4 * 8
    assert result.budget_spent["episodes"] == 32 and result.budget_spent["gradient_steps"] == 4
    assert result.budget_spent["sequences_per_step"] == 8 and result.budget_spent["lr"] == 1e-2
    assert result.extra_metrics["attempts_sampled"] == 4 * 16
    assert result.offline == () and result.offline_error_hist is None  # an RL arm trains on no fixed first attempts
    changed = any(not torch.equal(p, q) for p, q in zip(result.policy.model.parameters(), ctx.base.model.parameters()))
    assert changed, "four policy-gradient steps left the weights unchanged"
    assert train[0]["train/kl_t1"] == pytest.approx(0.0, abs=1e-6)  # step 1 samples from the base itself
    assert train[-1]["train/kl_t1"] > 0


def test_single_turn_arm_never_trains_the_second_attempt(tmp_path):
    ctx = make_ctx(tmp_path, "single", schedule=[{"stage": "single", "share": 1.0}], budget={"gradient_steps": 2, "episodes": 16})
    get_arm("rl_single_turn")(ctx)
    train = [r for r in history(ctx) if "train/reward_t1" in r]
    assert all("train/adv_abs_t2" not in r and "train/adv_abs_t1" in r for r in train)
    assert all(r["train/stage"] == 0 for r in train)


# --- (5) resume equals uninterrupted -----------------------------------------------------------
class Killed(Exception):
    pass


class KilledAtStep3(Tracker):
    """Simulates a run killed after the update of step 3 (past the step-2 checkpoint)."""

    armed = True

    def log(self, metrics, step=None, prefix=""):
        if KilledAtStep3.armed and step == 3 and prefix == "train/":
            KilledAtStep3.armed = False
            raise Killed
        super().log(metrics, step, prefix)


def test_resume_from_checkpoint_equals_uninterrupted_run(whole_run):
    tmp_path, whole, r_whole = whole_run
    killed = make_ctx(tmp_path, "killed", tracker_cls=KilledAtStep3)
    with pytest.raises(Killed):
        get_arm("score")(killed)
    assert checkpoint.latest(killed.run_dir / "checkpoints").name == "step_0000002.pt"
    relaunched = make_ctx(tmp_path, "killed")  # same run dir, fresh process state
    r_resumed = get_arm("score")(relaunched)

    for (name, a), b in zip(r_whole.policy.model.state_dict().items(), r_resumed.policy.model.state_dict().values()):
        assert torch.equal(a, b), name
    def untimed(rows):  # times and throughputs are wall-clock measurements, everything else must match
        return [{k: v for k, v in r.items() if "tokens_per_s" not in k and not k.endswith("_s")} for r in rows]

    assert untimed(history(whole)) == untimed(history(relaunched))
    assert untimed([r_whole.extra_metrics]) == untimed([r_resumed.extra_metrics]) and r_whole.extra_metrics["gradient_steps"] == 4
    assert r_whole.budget_spent == r_resumed.budget_spent and r_whole.paper_choice == r_resumed.paper_choice


def test_resume_refuses_a_checkpoint_of_another_config(tmp_path):
    ctx = make_ctx(tmp_path, "run", schedule=[{"stage": "I", "share": 1.0}], budget={"gradient_steps": 2, "episodes": 16})
    get_arm("score")(ctx)
    other = make_ctx(tmp_path, "run", schedule=[{"stage": "I", "share": 1.0}], budget={"gradient_steps": 2, "episodes": 16, "lr": 5e-3})
    with pytest.raises(ValueError, match="different configuration"):
        get_arm("score")(other)


# --- the paper's naive multi-turn RL, the temperature and the kept checkpoint ------------------
def test_naive_arm_never_trains_or_regularises_the_first_attempt(tmp_path, monkeypatch):
    """Paper Fig. 6: optimise only on (x2, y2): no reward, no KL (no β2) and no gradient on turn 1
    (its tokens are masked out of the loss: tests/test_grpo_engine.py checks the masks)."""
    from selfcorrect.training.rl.grpo_engine import SCoReGRPOTrainer

    calls = []
    scoring = SCoReGRPOTrainer._get_per_token_logps_and_entropies

    def recording(self, model, *args, **kwargs):
        calls.append((self.temperature, torch.is_grad_enabled()))
        return scoring(self, model, *args, **kwargs)

    monkeypatch.setattr(SCoReGRPOTrainer, "_get_per_token_logps_and_entropies", recording)
    ctx = make_ctx(tmp_path, "naive", schedule=[{"stage": "naive", "share": 1.0}], budget={"gradient_steps": 2, "episodes": 16},
                   temperature=0.7)
    get_arm("rl_multi_turn_naive")(ctx)
    train = [r for r in history(ctx) if "train/reward_t1" in r]
    assert len(train) == 2 and all(r["train/stage"] == 3 for r in train)
    assert all("train/adv_abs_t1" not in r and "train/adv_abs_t2" in r and r["train/return_t1"] == 0 for r in train)
    # every scoring forward is at the sampling temperature; the loss's forward carries the gradient
    assert {t for t, _ in calls} == {0.7} and any(g for _, g in calls)


def test_kept_checkpoint_is_the_best_training_reward_or_the_last(tmp_path):
    best = make_ctx(tmp_path, "best", schedule=[{"stage": "II", "share": 1.0}])
    r_best = get_arm("score")(best)
    rewards = {r["step"]: r["train/train_reward"] for r in history(best) if "train/train_reward" in r}
    kept = r_best.extra_metrics["checkpoint"]
    assert kept["selection"] == "best_train_reward" and kept["candidates"] == [3, 4]  # select_every = 1, last half
    last_half = {s: r for s, r in rewards.items() if s >= 3}
    assert kept["step"] == max(s for s in last_half if last_half[s] == max(last_half.values()))  # ties: the later step
    assert [p.name for p in (best.run_dir / "checkpoints").glob("best_train_reward_*.pt")] == [f"best_train_reward_{kept['step']:07d}.pt"]
    saved = torch.load(best.run_dir / "checkpoints" / f"best_train_reward_{kept['step']:07d}.pt")
    assert all(torch.equal(saved[k], v) for k, v in r_best.policy.model.state_dict().items())

    last = make_ctx(tmp_path, "last", schedule=[{"stage": "II", "share": 1.0}], checkpoint="last")
    r_last = get_arm("score")(last)
    assert r_last.extra_metrics["checkpoint"]["step"] == 4 and r_last.paper_choice == {"rule": "last", "step": 4}
    final = checkpoint.latest(last.run_dir / "checkpoints")
    assert all(torch.equal(torch.load(final, weights_only=False)["model"][k], v) for k, v in r_last.policy.model.state_dict().items())


def test_the_one_checkpoint_rule_keeps_the_best_validation_acc_t2(whole_run):
    """Every monitoring step > 0 is a candidate (weights and validation metrics kept, never test);
    the one rule keeps the highest validation Acc@t2 (ties: the later step), the paper's rule
    (best training reward) is named beside it, and the kept weights are the candidate's."""
    from selfcorrect.training import selection

    _, ctx, result = whole_run
    val = {r["step"]: r["val/acc_t2"] for r in history(ctx) if "val/acc_t2" in r}
    records = result.candidates.records()
    assert [r["step"] for r in records] == [s for s in val if s > 0] == [2, 4]
    assert all(r["val_acc_t2"] == val[r["step"]] for r in records)
    assert result.paper_choice == {"rule": "best_train_reward", "step": result.extra_metrics["checkpoint"]["step"]}
    kept, paper, info = selection.choose(result.candidates, result.policy, result.paper_choice, ctx.new_policy)
    best = max(records, key=lambda r: (r["val_acc_t2"], r["step"]))
    assert info["rule"] == "val_acc_t2" and info["step"] == best["step"] and info["candidates"] == [2, 4]
    assert info["same_as_paper"] == (best["step"] == result.paper_choice["step"]) and (paper is None) == info["same_as_paper"]
    saved = torch.load(result.candidates.weights(best["step"]), weights_only=True)
    assert all(torch.equal(saved[k], v) for k, v in kept.model.state_dict().items())
    result.candidates.forget_after(2)  # a resume at step 2 forgets the later candidate
    assert [r["step"] for r in result.candidates.records()] == [2] and not result.candidates.weights(4).exists()