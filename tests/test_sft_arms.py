"""The SFT wrapper and the offline arms end to end: the trained-token mask, and a tiny run of each
arm (few steps, a base pretrained for seconds) through `run.run`."""

import json
import random

import pytest

from selfcorrect.models.policy import Sampling
from selfcorrect.tasks.arithmetic import ArithmeticTask
from selfcorrect.training.budget import Budget
from selfcorrect.training.offline.sft import make_trainer, sft_config
from selfcorrect.training.offline.traces import sample_episodes

from conftest import TINY_OVERRIDES, compose_config, random_char_policy

TASK = ArithmeticTask()


@pytest.fixture(scope="module")
def char_policy():
    return random_char_policy(TASK)


def test_sft_trains_exactly_the_second_attempt_and_eos_after_the_policys_own_prompt(char_policy, tmp_path):
    problems = [TASK.make_problem(357, 468), TASK.make_problem(905, 99 + 100)]
    traces = [
        {"problem": problems[0], "y1": "78015 56112 34108>824", "y2": TASK.write(problems[0])},
        {"problem": problems[1], "y1": "garbage", "y2": "12"},  # lengths differ: padding must be masked too
    ]
    cfg = compose_config(["arm=sft_self"])
    trainer = make_trainer(char_policy, traces, sft_config(Budget.from_cfg(cfg.budget), cfg.arm.sft, 1, 0, tmp_path))
    batch = trainer.data_collator([trainer.train_dataset[i] for i in range(len(traces))])
    tok = char_policy.tokenizer
    for ids, labels, attn, t in zip(batch["input_ids"].tolist(), batch["labels"].tolist(), batch["attention_mask"].tolist(), traces):
        prompt = char_policy.prompt_ids(t["problem"], [t["y1"]])
        assert ids[: len(prompt)] == prompt  # the same prompt the policy sees at its second turn
        trained = [i for i, lab in zip(ids, labels) if lab != -100]
        assert tok.decode(trained) == t["y2"] + tok.eos_token
        assert trained == tok(t["y2"], add_special_tokens=False).input_ids + [tok.eos_token_id]
        assert all(lab == -100 for lab in labels[: len(prompt)]) and sum(attn) == len(prompt) + len(trained)


def test_sample_episodes_records_both_attempts_and_their_verdicts(tiny_base):
    task, policy, _ = tiny_base
    problems = task.problems("train", 3, seed=0)
    samples = sample_episodes(policy, problems, 2, Sampling(1.0, 24), seed=0)
    assert [s["problem"].id for s in samples] == [p.id for p in problems for _ in range(2)]
    for s in samples:
        assert s["correct1"] == task.verify(s["problem"], s["y1"]).correct
        assert s["correct2"] == task.verify(s["problem"], s["y2"]).correct


# --- tiny end-to-end runs ------------------------------------------------------------------------
SAMPLER_CALLS = []


def scripted_samples(policy, problems, per_problem, sampling, seed):
    """Stand-in for model sampling (a seconds-old base never adds correctly, so filters would keep
    nothing): attempts right with probability 0.6, else with a final-copy slip."""
    SAMPLER_CALLS.append(len(problems) * per_problem)
    rng = random.Random(seed)
    out = []
    for p in (p for p in problems for _ in range(per_problem)):
        c1, c2 = rng.random() < 0.6, rng.random() < 0.6
        y1, y2 = (TASK.write(p) if c else TASK.write(p, final_bug="final_copy") for c in (c1, c2))
        out.append({"problem": p, "y1": y1, "y2": y2, "correct1": c1, "correct2": c2})
    return out


def arm_overrides(arm: str, n_problems: int, extra=()):
    """A 48-episode, 6-step budget of 2 traces a step (STaR's filter keeps only a few traces from 16
    scripted samples a round); `n_problems` (per round) is what the arm derives from it."""
    assert n_problems * 2 * (3 if arm.startswith("star") else 1) == 48
    return [
        *TINY_OVERRIDES, f"arm={arm}", "budget.episodes=48", "budget.gradient_steps=6", "budget.sequences_per_step=2",
        "budget.lr=5e-4", "arm.samples_per_problem=2", "arm.sft.eval_every=3",
        "arm.sft.logging_steps=2", "arm.probe.n_train=8", "arm.probe.n_val=8",
        "arm.probe.val_problems=16", "eval.max_new_tokens=24", *extra,
    ]


CASES = {
    "sft_teacher-carry_drop": ("sft_teacher", 24, ["arm.error_model=carry_drop"]),
    "sft_teacher-random_digit": ("sft_teacher", 24, ["arm.error_model=random_digit"]),
    "sft_teacher-mixed": ("sft_teacher", 24, ["arm.error_model=mixed"]),
    "sft_self": ("sft_self", 24, []),
    "sft_self_plus": ("sft_self_plus", 24, []),
    "star": ("star", 8, []),
    "star_plus": ("star_plus", 8, []),
}


@pytest.mark.parametrize("case", sorted(CASES))
def test_each_offline_arm_runs_end_to_end(case, tiny_cache, tmp_path, monkeypatch):
    from selfcorrect.run import run
    from selfcorrect.training.offline import arms as sft_arms

    arm, n_problems, extra = CASES[case]
    monkeypatch.setattr(sft_arms, "sample_episodes", scripted_samples)
    cfg = compose_config([*arm_overrides(arm, n_problems, extra), f"paths.cache_dir={tiny_cache}"])
    SAMPLER_CALLS.clear()
    m = run(cfg, tmp_path / "run")

    for label in ("train_fixed", "val_fixed"):
        probe = m[f"probe/{label}"]
        assert 0 < probe["n"] <= 8 and probe["n_wrong_offline"] == probe["n"]
    a = m["arm"]
    assert m["budget"] == {"episodes": 48, "gradient_steps": 6, "sequences_per_step": 2, "measurement_samples": 0, "optimizer": "adamw", "lr": 5e-4,
                           "lr_schedule": "constant", "warmup_steps": 0, "weight_decay": 0.0, "max_grad_norm": 1.0}
    assert m["offline_error_tv"] is not None and sum(a["train_error_hist"].values()) == a["n_traces_i2c"]
    history = [json.loads(line) for line in open(tmp_path / "run" / "history.jsonl")]
    eval_steps = [h["step"] for h in history if "val/acc_t2" in h]
    assert eval_steps == [0, 3, 6]  # every arm, STaR's 2-step rounds too: the same candidate steps (global multiples, the last)
    probe_steps = [h["step"] for h in history if "val/probe/train_fixed/correction_rate_offline" in h]
    assert probe_steps == [0, 6]  # the probe on the arm's own sets: every eval.probe_every (24) steps, the start and the end
    assert m["checkpoint"]["candidates"] == [3, 6] and m["checkpoint"]["rule"] == "val_acc_t2"
    assert m["checkpoint"]["paper"]["rule"] == "last" and m["checkpoint"]["paper"]["step"] == 6
    assert any("train/loss" in h for h in history)
    if arm.startswith("star"):
        assert [r["steps"] for r in a["rounds"]] == [2, 2, 2] and a["model_samples"] == 48
        assert a["init"] == "base" and len(a["epochs_per_round"]) == 3  # ReST^EM: every round from the base
        assert SAMPLER_CALLS == [16, 32, 16, 16]  # round 1 + val probe set (cached), rounds 2 and 3
        assert all((r["n_c2c"] > 0) == (arm == "star_plus") for r in a["rounds"])
    elif arm.startswith("sft_self"):
        assert a["sft"]["steps"] == 6 and a["model_samples"] == 48
        assert (a["n_traces_c2c"] > 0) == (arm == "sft_self_plus")
    else:
        assert a["n_traces"] == 48 and a["n_traces_c2c"] == 0 and SAMPLER_CALLS == []
        if "carry_drop" in case:
            assert set(a["train_error_hist"]) == {"carry_drop"}

    if case not in ("star", "sft_self"):
        return
    # a rerun reads the cached traces instead of sampling them again
    SAMPLER_CALLS.clear()
    run(cfg, tmp_path / "rerun")
    assert SAMPLER_CALLS == ([16, 16] if arm == "star" else [])


def test_base_like_needs_base_errors_the_teacher_can_write(tiny_cache, tmp_path):
    """A seconds-old base writes only malformed attempts: base_like must say so, not train."""
    from selfcorrect.run import run

    cfg = compose_config([*arm_overrides("sft_teacher", 24, ["arm.error_model=base_like", "arm.base_like.n_problems=16"]),
                          f"paths.cache_dir={tiny_cache}"])
    with pytest.raises(ValueError, match="can be written by the teacher"):
        run(cfg, tmp_path / "run")
    assert json.loads((tmp_path / "run" / "run.json").read_text())["status"] == "failed"


def test_unequal_sample_budget_is_a_clear_error(tiny_cache, tmp_path):
    from selfcorrect.run import run

    cfg = compose_config([*arm_overrides("star", 8, ["arm.rounds=5"]), f"paths.cache_dir={tiny_cache}"])
    with pytest.raises(ValueError, match="budget.episodes=48 is not divisible by samples_per_problem × rounds = 2 × 5"):
        run(cfg, tmp_path / "run")


def test_star_rounds_restart_from_the_base_or_continue(tiny_cache, tmp_path, monkeypatch):
    """ReST^EM (the paper's STaR): each round fine-tunes a fresh copy of the base; `continue` does not."""
    from selfcorrect.training import arms
    from selfcorrect.training.offline import arms as sft_arms

    monkeypatch.setattr(sft_arms, "sample_episodes", scripted_samples)
    made = []
    factory = arms.policy_factory

    def counting_factory(*args, **kwargs):  # the policy factory the run passes in, counting its calls
        new_policy = factory(*args, **kwargs)

        def counting():
            made.append(1)
            return new_policy()
        return counting

    monkeypatch.setattr(arms, "policy_factory", counting_factory)
    from selfcorrect.run import run

    for init, policies in (("base", 3), ("continue", 1)):
        made.clear()
        cfg = compose_config([*arm_overrides("star", 8, [f"arm.init={init}"]), f"paths.cache_dir={tiny_cache}"])
        m = run(cfg, tmp_path / init)
        assert m["arm"]["init"] == init
        # new_policy: one per training round (base) or one in all (continue); one more copy when the
        # one checkpoint rule keeps another step than the last (the paper's rule for SFT)
        assert len(made) == policies + (not m["checkpoint"]["same_as_paper"])


def test_a_filtered_set_smaller_than_a_batch_is_repeated_to_fill_it(tiny_cache, tmp_path, monkeypatch):
    """STaR D on a testbed where the base rarely fixes its answers: each round's few kept traces are
    trained for the round's full batches (more epochs), not refused."""
    from selfcorrect.run import run
    from selfcorrect.training.offline import arms as sft_arms

    monkeypatch.setattr(sft_arms, "sample_episodes", scripted_samples)
    cfg = compose_config([*arm_overrides("star", 8, ["budget.sequences_per_step=8"]), f"paths.cache_dir={tiny_cache}"])
    a = run(cfg, tmp_path / "run")["arm"]
    assert all(0 < r["n_traces"] < 8 for r in a["rounds"])  # ~16 × 0.4 × 0.6 ≈ 4 kept of 16 a round
    assert [r["steps"] for r in a["rounds"]] == [2, 2, 2]
    assert all(r["n_examples"] == r["n_traces"] and r["epochs"] == round(16 / r["n_traces"], 3) for r in a["rounds"])


@pytest.mark.parametrize("arm,kind,function", [("sft_self", "pair_sft", "train_pair_sft"),
                                               ("star", "star_round1", "train_star"),
                                               ("sft_teacher", "sft_teacher", "train_sft_teacher")])
def test_trace_cache_keys_name_the_training_function_as_before_the_move(arm, kind, function):
    """Issue 31 moved the offline arms to selfcorrect.training.offline; trace datasets cached before
    the move keep their keys because the key names the function by its old module path."""
    from types import SimpleNamespace

    from selfcorrect.config import parse
    from selfcorrect.training.offline.arms import trace_spec

    cfg = compose_config([f"arm={arm}"])
    assert cfg.arm.train == f"selfcorrect.training.offline.arms:{function}"
    spec = trace_spec(SimpleNamespace(spec=parse(cfg), base_path="base", seed=0), kind)
    assert spec["arm"]["train"] == f"selfcorrect.arms.sft_arms:{function}"
