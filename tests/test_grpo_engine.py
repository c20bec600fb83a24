"""The GRPOTrainer engine computes SCoRe (issue 13): on one fixed batch of the tiny model, the loss
gradient of the GRPOTrainer subclass equals that of an independent reference computation of our
SCoRe loss (`rl.reference.reference_update`: per-turn log-probs, `reference.score_loss`), for
Stage I, Stage II and single-turn RL (and naive multi-turn RL on a left-padded mixed batch); the
check is sharp enough to catch a wrong per-turn weight; and a short run through `train_grpo`
matches the reference update step for step."""

from __future__ import annotations

import copy
import dataclasses

import pytest
import torch

from selfcorrect.models.policy import Policy, Sampling
from selfcorrect.training.rl.config import RLConfig
from selfcorrect.training.rl.grpo_engine import INSTRUCTION, TURN1, TURN2, SCoReGRPOTrainer, grpo_args, pack, two_turn_tokens
from selfcorrect.training.rl.losses import LossConfig
from selfcorrect.training.rl.rollouts import Rollouts, collect

from conftest import compose_config, save_tiny_llama
from selfcorrect.training.rl.reference import reference_run, reference_update

PROMPTS, K, NEW_TOKENS, TEMPERATURE = 4, 4, 12, 0.8
torch.set_num_threads(1)


def tiny_llama_like(base_path, out) -> str:
    """A randomly initialised Llama (grouped-query attention, RoPE, tied embeddings: the architecture
    of real models such as SmolLM2) with the tiny base's tokenizer and chat template, saved to `out`."""
    from transformers import AutoTokenizer

    return str(save_tiny_llama(out, AutoTokenizer.from_pretrained(base_path), positions=256))


@pytest.fixture(scope="module", params=["gpt2", "llama", "llama_lora"])
def fixed(request, tiny_base, tiny_cfg, tmp_path_factory):
    """The policy (the base with perturbed weights, so its KL to π_ref is not 0), π_ref, one
    two-turn batch sampled from the policy, with verifier rewards replaced by a fixed mixed
    pattern (the tiny model is rarely right), and an RLConfig with larger β so the KL matters.
    Twice: the tiny GPT-2 base (absolute positions) and a tiny random Llama (RoPE, grouped-query
    attention), whose positions under GRPOTrainer's left padding must match the reference's, with and
    without a LoRA adapter (`model.lora`: the trained parameters are the adapter's)."""
    task, _, base_path = tiny_base
    if request.param.startswith("llama"):
        base_path = tiny_llama_like(base_path, tmp_path_factory.mktemp("tiny_llama"))
    cfg = compose_config([f"paths.cache_dir={tiny_cfg.paths.cache_dir}", "arm=score"])
    rl = RLConfig.from_cfg(cfg.arm, cfg.budget)
    rl = dataclasses.replace(rl, prompts_per_step=PROMPTS, samples_per_prompt=K, temperature=TEMPERATURE,
                             max_new_tokens=NEW_TOKENS, alpha=10.0, beta1=0.05, beta2=0.5,
                             budget=dataclasses.replace(rl.budget, max_grad_norm=1e9))  # no clipping: compare raw gradients
    policy, ref = Policy.load(base_path, task), Policy.load(base_path, task)
    if request.param == "llama_lora":
        from selfcorrect.models.lora import lora_settings, with_adapter

        policy.model = with_adapter(policy.model, lora_settings({"enabled": True, "r": 4, "alpha": 8}), seed=0)
    policy.model.eval(), ref.model.eval()
    gen = torch.Generator().manual_seed(1)
    with torch.no_grad():
        for p in policy.model.parameters():
            p.add_(0.05 * torch.randn(p.shape, generator=gen))
    # raw samples of the barely trained model (with <unk>/<pad> tokens), turn-2 prompts token for token
    problems = [p for p in task.problems("train", PROMPTS, seed=3) for _ in range(K)]
    episodes = two_turn_tokens(policy, problems, Sampling(TEMPERATURE, NEW_TOKENS), seed=5)
    r1 = torch.tensor([1, 0, 0, 1, 0, 0, 1, 1, 1, 0, 0, 0, 0, 1, 0, 1], dtype=torch.float)
    r2 = torch.tensor([1, 1, 0, 0, 0, 1, 1, 1, 0, 0, 1, 0, 1, 1, 0, 1], dtype=torch.float)
    zeros = torch.zeros(len(episodes))
    ro = Rollouts(episodes, K, r1, r2, zeros, zeros, zeros, zeros, gen_tokens=0, gen_s=0.0)
    return task, policy, ref, ro, rl, tmp_path_factory.mktemp("grpo")


def reference_grads(fixed, stage):
    task, policy, ref, ro, rl, _ = fixed
    model = copy.deepcopy(policy.model)
    sgd = torch.optim.SGD(model.parameters(), lr=0.0)  # keeps the weights, leaves .grad for us
    reference_update(Policy(model, policy.tokenizer, task), ref, ro, stage, rl, sgd)
    return [p.grad.clone() for p in model.parameters() if p.requires_grad]


def engine(fixed, stage, rl=None):
    task, policy, ref, ro, rl0, tmp = fixed
    rl = rl or rl0
    from datasets import Dataset

    return SCoReGRPOTrainer(
        rl=rl, ref_model=copy.deepcopy(ref.model), rollouts_for_step=lambda trainer, step: ro, stages=[stage],
        model=copy.deepcopy(policy.model), args=grpo_args(rl, str(tmp / stage), steps=1),
        processing_class=policy.tokenizer, train_dataset=Dataset.from_dict({"prompt": ["-"] * len(ro)}),
    )


def engine_grads(trainer, edit_advantages=None):
    trainer.model.train()
    trainer.current_gradient_accumulation_steps = 1  # what Trainer's training loop sets before each step
    n = len(trainer.rollouts_for_step(trainer, 0))
    batch = trainer._prepare_inputs([{"prompt": "-"} for _ in range(n)])  # rollout_func → packed rows → our advantages
    if edit_advantages is not None:
        batch["advantages"] = edit_advantages(batch)
    trainer.model.zero_grad(set_to_none=True)
    trainer.compute_loss(trainer.model, batch).backward()
    return [p.grad.clone() for p in trainer.model.parameters() if p.requires_grad], batch


def rel_err(a, b) -> float:
    num = sum(((x - y) ** 2).sum() for x, y in zip(a, b)).sqrt()
    return (num / sum((x**2).sum() for x in a).sqrt()).item()


def test_fixed_batch_packs_every_episode_as_one_row(fixed):
    _, _, _, ro, _, _ = fixed
    if fixed[1].model.config.model_type != "gpt2":
        pytest.skip("the round-trip mix is a property of the tiny GPT-2's samples")
    for ep in ro.episodes:
        (p1, c1), (p2, c2) = [(t.prompt_ids, t.completion_ids) for t in ep.turns]
        prompt, completion, turn = pack(p1, c1, p2, c2)
        assert prompt == p1 and completion[: len(c1)] == c1 and completion[len(completion) - len(c2):] == c2
        assert turn.count(TURN1) == len(c1) and turn.count(TURN2) == len(c2) and turn.count(INSTRUCTION) > 0
        assert p1 + completion[: len(completion) - len(c2)] == p2  # y2 is scored in exactly its sampled context
    # the same seeds through Policy.two_turn: the same first attempts, and the same turn-2 prompts
    # wherever y1 round-trips through its text (this batch has both kinds; the y2 draws coincide
    # only when every prompt does, since one batch shares the sampling stream)
    policy = fixed[1]
    old = policy.two_turn([ep.problem for ep in ro.episodes], Sampling(TEMPERATURE, NEW_TOKENS), seed=5)
    round_trips = [b.turns[1].prompt_ids[: len(b.turns[0].prompt_ids) + len(b.turns[0].completion_ids)]
                   == b.turns[0].prompt_ids + b.turns[0].completion_ids for b in old]
    assert 0 < sum(round_trips) < len(round_trips)
    for a, b, rt in zip(ro.episodes, old, round_trips):
        assert a.turns[0].completion_ids == b.turns[0].completion_ids
        assert (a.turns[1].prompt_ids == b.turns[1].prompt_ids) == rt
    # an attempt that does not round-trip (here: a turn-2 prompt that is not x + y1 + ...) trains y2 alone
    assert pack([1, 2], [3, 4], [1, 2, 5, 6], [7]) == ([1, 2, 5, 6], [7], [TURN2])


@pytest.mark.parametrize("stage", ["I", "II", "single"])
def test_engine_gradient_equals_reference_gradient(fixed, stage):
    want = reference_grads(fixed, stage)
    trainer = engine(fixed, stage)
    got, batch = engine_grads(trainer)
    norm = sum((g**2).sum() for g in want).sqrt().item()
    assert norm > 1e-3, "the fixed batch gives (almost) no gradient: the comparison would be vacuous"
    assert rel_err(want, got) < 1e-5, f"stage {stage}: relative gradient error {rel_err(want, got):.2e}"
    for w, g in zip(want, got):
        torch.testing.assert_close(g, w, rtol=1e-4, atol=1e-5 * norm)
    # every row is one whole episode; the instruction is masked; an untrained turn is masked too
    turn1_trained, turn2_trained = stage != "naive", stage != "single"
    mask = batch["tool_mask"] * batch["completion_mask"]
    assert trainer.last_stats["kl_t1"] > 0 and trainer.last_stats["kl_t2"] > 0  # π ≠ π_ref: the KL term is live
    assert (mask.sum(1) > 0).all() and trainer.last_rollouts is fixed[3]
    turn = batch["turn_ids"]
    assert (mask[turn == INSTRUCTION] == 0).all() and (batch["advantages"][turn == INSTRUCTION] == 0).all()
    assert (mask[turn == TURN1] == int(turn1_trained)).all() and (mask[turn == TURN2] == int(turn2_trained)).all()
    assert ("adv_abs_t1" in trainer.last_stats) == turn1_trained and ("adv_abs_t2" in trainer.last_stats) == turn2_trained


@pytest.mark.parametrize("stage", ["I", "II"])
def test_equality_breaks_when_a_per_turn_weight_is_perturbed(fixed, stage):
    """The comparison can fail: 5 % more weight on either turn's advantages, doubled KL weights, or
    the other stage's returns each move the gradient far (> 100×) outside the tolerance."""
    want = reference_grads(fixed, stage)
    trainer = engine(fixed, stage)

    def heavier_turn2(batch):
        return torch.where(batch["turn_ids"] == TURN2, 1.05 * batch["advantages"], batch["advantages"])

    def heavier_turn1(batch):
        return torch.where(batch["turn_ids"] == TURN1, 1.05 * batch["advantages"], batch["advantages"])

    for edit in (heavier_turn1, heavier_turn2):
        got, _ = engine_grads(trainer, edit)
        assert rel_err(want, got) > 1e-3, edit.__name__
    other = dataclasses.replace(fixed[4], beta2=2 * fixed[4].beta2, beta1=2 * fixed[4].beta1)
    got, _ = engine_grads(engine(fixed, stage, other))
    assert rel_err(want, got) > 1e-3
    got, _ = engine_grads(engine(fixed, "II" if stage == "I" else "I"))
    assert rel_err(want, got) > 1e-3


def test_rows_that_do_not_round_trip_train_y2_exactly_in_its_own_context(fixed):
    """Raw samples of the barely trained tiny model hold <unk>/<pad> tokens, so about half the
    turn-2 prompts are not x + y1 token for token: those rows are (turn-2 prompt, y2), longer
    prompts that GRPOTrainer left-pads. Naive multi-turn RL trains y2 only, so its gradient must
    still equal the reference's on such a mixed batch (positions under left padding included)."""
    task, policy, ref, ro, rl, tmp = fixed
    raw = collect(policy, task, task.problems("train", PROMPTS, seed=3), K, Sampling(TEMPERATURE, NEW_TOKENS), seed=5)
    raw.r1, raw.r2 = ro.r1, ro.r2
    rows = [pack(e.turns[0].prompt_ids, e.turns[0].completion_ids, e.turns[1].prompt_ids, e.turns[1].completion_ids) for e in raw.episodes]
    assert 0 < sum(TURN1 not in turn for _, _, turn in rows) < len(rows)  # a mixed batch
    assert len({len(p) for p, _, _ in rows}) > 1  # prompts of several lengths: left padding happens
    mixed = (task, policy, ref, raw, rl, tmp)
    want = reference_grads(mixed, "naive")
    got, _ = engine_grads(engine(mixed, "naive"))
    assert rel_err(want, got) < 1e-5


def test_a_kl_term_in_the_loss_is_refused_when_the_config_is_read():
    """Only the paper's placement exists (k1 in each turn's return); others fail at config time,
    naming the value, not at the engine's first step."""
    with pytest.raises(ValueError, match="kl_in='loss'"):
        LossConfig(kl_estimator="k3", kl_in="loss")
    with pytest.raises(ValueError, match="kl_estimator='k3'"):
        LossConfig(kl_estimator="k3", kl_in="reward")


# --- a short run through the subclass, next to the reference update -----------------------------
@pytest.mark.parametrize("micro_batch", [None, 4])
def test_short_score_run_through_grpo_trainer_matches_the_reference(tmp_path, micro_batch):
    """4 steps (2 Stage I + 2 Stage II) of the tiny random model on the even-length task, once
    through GRPOTrainer (`train_grpo`, what every RL arm runs) and once with `reference_update`
    given the same sampler, seeds, optimizer and schedule: the same episodes' rewards at every
    step, KL, advantages and gradient norms equal to float tolerance, the same final weights."""
    from test_rl_arms import history, make_ctx

    from selfcorrect.training.rl.grpo_run import train_grpo

    ctx = make_ctx(tmp_path, "grpo")
    rl = ctx.spec.arm.rl
    # compare the final weights of both; micro_batch 4: each step's 8 episodes in two accumulated halves
    rl = dataclasses.replace(rl, checkpoint="last", micro_batch=micro_batch)
    p_new = train_grpo(ctx, rl).policy
    p_ref, ref_rows = reference_run(make_ctx(tmp_path, "reference"), rl, sampler=two_turn_tokens)

    new_rows = [r for r in history(ctx) if "train/reward_t1" in r]
    assert [r["step"] for r in new_rows] == [r["step"] for r in ref_rows] == [1, 2, 3, 4]
    assert [r["train/stage"] for r in new_rows] == [1, 1, 2, 2]
    for new, ref in zip(new_rows, ref_rows):
        assert new["train/unpacked_rate"] == 0
        for key in ("reward_t1", "reward_t2", "answer_change_rate", "no_edit_rate", "return_t1", "return_t2", "train_reward"):
            assert new[f"train/{key}"] == ref[key], (new["step"], key)
        for key in ("kl_t1", "kl_t2", "adv_abs_t1", "adv_abs_t2", "grad_norm"):
            assert new[f"train/{key}"] == pytest.approx(ref[key], rel=1e-4, abs=1e-6), (new["step"], key)
    # Adam divides by √v: on coordinates whose gradient is ~0, float noise in it moves the weight by a
    # visible fraction of lr (1e-2 here); 1e-4 is 1 % of one step
    for a, b in zip(p_new.model.parameters(), p_ref.model.parameters()):
        torch.testing.assert_close(a, b, rtol=1e-3, atol=1e-4)
    assert any(not torch.equal(p, q) for p, q in zip(p_new.model.parameters(), ctx.base.model.parameters()))


@pytest.mark.parametrize("stage", ["I", "II"])
def test_the_samplers_logprobs_replace_the_policys_no_grad_forward(fixed, stage):
    """With the sampled tokens' log-probs on the turns (what vLLM returns), the KL term reads them instead
    of a no-grad forward pass of the policy: given the policy's exact log-probs the gradient still equals
    the reference's; given log-probs off by 0.5 per token it does not (they are really used)."""
    import copy as _copy

    task, policy, ref, ro, rl, tmp = fixed
    eps = _copy.deepcopy(ro.episodes)
    for ep in eps:
        for t in ep.turns:
            logp, mask = policy.token_logprobs([t.prompt_ids], [t.completion_ids], TEMPERATURE)
            t.logprobs = logp[0][mask[0].bool()].tolist()
    with_lp = dataclasses.replace(ro, episodes=eps)
    want = reference_grads((task, policy, ref, with_lp, rl, tmp), stage)
    trainer = engine((task, policy, ref, with_lp, rl, tmp), stage)
    got, _ = engine_grads(trainer)
    assert trainer._sampler_logp is not None  # the forward pass was skipped
    assert rel_err(want, got) < 1e-5
    for ep in eps:
        for t in ep.turns:
            t.logprobs = [x + 0.5 for x in t.logprobs]
    got_off, _ = engine_grads(engine((task, policy, ref, dataclasses.replace(ro, episodes=eps), rl, tmp), stage))
    assert rel_err(want, got_off) > 1e-3


def test_micro_batches_hold_every_row_once_cut_to_their_own_longest_row():
    """`length_sorted_chunks`: rows sorted by real length into the micro-batches, each chunk's left-padded prompts
    and right-padded completions cut to its own longest, every row exactly once, scalars kept."""
    from selfcorrect.training.rl.grpo_engine import length_sorted_chunks

    p_len, c_len = [3, 1, 2, 1], [1, 4, 2, 1]
    pm = torch.tensor([[0] * (3 - n) + [1] * n for n in p_len])
    cm = torch.tensor([[1] * n + [0] * (4 - n) for n in c_len])
    batch = {"prompt_ids": pm * torch.arange(1, 5)[:, None], "prompt_mask": pm, "completion_ids": cm * 7, "completion_mask": cm,
             "advantages": cm.float() * torch.arange(1, 5)[:, None], "num_items_in_batch": torch.tensor(8.0), "names": list("abcd")}
    chunks = length_sorted_chunks(batch, 2)
    assert [c["names"] for c in chunks] == [["d", "a"], ["c", "b"]]  # real lengths 2, 4 | 4, 5 (stable order)
    assert chunks[0]["prompt_ids"].shape == (2, 3) and chunks[0]["completion_ids"].shape == (2, 1)
    assert chunks[1]["prompt_ids"].shape == (2, 2) and chunks[1]["completion_ids"].shape == (2, 4)
    assert chunks[0]["prompt_ids"].tolist() == [[0, 0, 4], [1, 1, 1]]  # left padding cut from the left
    assert all(float(c["num_items_in_batch"]) == 8.0 for c in chunks)
    assert sum(float(c["advantages"].sum()) for c in chunks) == float(batch["advantages"].sum())
    assert sum(int(c["prompt_mask"].sum()) for c in chunks) == sum(p_len)
    with pytest.raises(ValueError, match="do not split into 3"):
        length_sorted_chunks(batch, 3)


def test_chunked_scoring_equals_scoring_the_padded_batch(fixed):
    """`scored_logps` in length-sorted, trimmed chunks (micro-batches) gives the log-probs of one pass over the
    step's padded batch, row for row, on every completion token."""
    task, policy, ref, ro, rl, tmp = fixed
    whole = engine(fixed, "II")
    chunked = engine(fixed, "II", dataclasses.replace(rl, micro_batch=4))
    whole.model.eval()
    batch = whole._generate_and_score_completions([{"prompt": "-"} for _ in range(len(ro))])
    a, b = whole.scored_logps(whole.model, batch), chunked.scored_logps(whole.model, batch)
    mask = batch["completion_mask"].bool()
    assert len(set(batch["completion_mask"].sum(1).tolist())) > 1  # rows of several lengths: trimming happens
    torch.testing.assert_close(a[mask], b[mask], rtol=0, atol=1e-5)
