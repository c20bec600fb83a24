"""The SCoRe loss, reward shaping and masks against closed-form values computed by hand."""

from __future__ import annotations

import pytest
import torch
from transformers import GPT2Config, GPT2LMHeadModel

from selfcorrect.models.char_tokenizer import build_char_tokenizer
from selfcorrect.models.policy import Policy, Sampling
from selfcorrect.tasks.arithmetic import ArithmeticTask
from selfcorrect.training.rl.losses import LossConfig, TurnTokens, advantages, kl_per_token, per_turn_advantages
from selfcorrect.training.rl.reference import TurnBatch, score_loss
from selfcorrect.training.rl.rewards import kl_weights, shaped_second_reward, trained_turns, training_reward, turn_rewards

# two prompts × k=2 samples; first attempt right/wrong pattern and second attempt pattern
# cover i→c, c→c, c→i, i→i once each
R1 = torch.tensor([0.0, 1.0, 1.0, 0.0])
R2 = torch.tensor([1.0, 1.0, 0.0, 0.0])


# --- (3) reward shaping ------------------------------------------------------------------------
def test_shaped_second_turn_reward_table():
    shaped = shaped_second_reward(R1, R2, alpha=10.0)
    assert shaped.tolist() == [11.0, 1.0, -10.0, 0.0]  # i→c, c→c, c→i, i→i


def test_turn_returns_per_stage():
    g1, g2 = turn_rewards("I", R1, R2, alpha=10.0)
    assert g1.tolist() == [0, 0, 0, 0] and g2.tolist() == R2.tolist()  # Stage I: r(y2) only
    g1, g2 = turn_rewards("II", R1, R2, alpha=10.0)
    assert g1.tolist() == R1.tolist() and g2.tolist() == [11, 1, -10, 0]
    g1, g2 = turn_rewards("II", R1, R2, alpha=0.0)  # no shaping
    assert g2.tolist() == R2.tolist()
    g1, g2 = turn_rewards("II", R1, R2, alpha=0.0, turn2_scale=11.0)  # the shaping control
    assert g1.tolist() == R1.tolist() and g2.tolist() == [11, 11, 0, 0]
    g1, g2 = turn_rewards("II", R1, R2, alpha=10.0, gamma=0.5)
    assert g1.tolist() == [5.5, 1.5, -4.0, 0.0]
    g1, g2 = turn_rewards("single", R1, R2, alpha=10.0)
    assert g1.tolist() == R1.tolist() and g2.tolist() == [0, 0, 0, 0]
    g1, g2 = turn_rewards("naive", R1, R2, alpha=10.0, gamma=0.5)  # turn 1 gets nothing, even with γ
    assert g1.tolist() == [0, 0, 0, 0] and g2.tolist() == R2.tolist()
    with pytest.raises(ValueError, match="'III'"):
        turn_rewards("III", R1, R2, alpha=1.0)


def test_shaping_control_and_score_have_the_same_expected_turn2_gradient_monte_carlo():
    """With r(y1) varying inside the RLOO groups: a two-turn toy where y1 ~ Bernoulli(0.5) is fixed
    and y2 ~ Bernoulli(σ(θ + w·y1)). The turn-2 policy-gradient estimates of SCoRe's return
    (1+α)·r2 − α·r1 and of the control's (1+α)·r2 agree in expectation, and both equal
    (1+α)·∇E[r2] (the raw gradient; clipping and Adam act on single steps, not on expectations)."""
    torch.manual_seed(0)
    groups, k, alpha, w = 100_000, 4, 10.0, 1.5
    theta = torch.tensor(0.3, requires_grad=True)
    r1 = torch.bernoulli(torch.full((groups * k,), 0.5))
    p2 = torch.sigmoid(theta + w * r1)
    r2 = torch.bernoulli(p2.detach())
    logp2 = torch.where(r2 == 1, torch.log(p2), torch.log1p(-p2))
    grads = {}
    for name, (a, scale) in {"score": (alpha, 1.0), "control": (0.0, 1.0 + alpha)}.items():
        adv = advantages(turn_rewards("II", r1, r2, alpha=a, turn2_scale=scale)[1], k, "rloo")
        (g,) = torch.autograd.grad((adv * logp2).mean(), theta, retain_graph=True)
        grads[name] = g.item()
    s0, s1 = torch.sigmoid(torch.tensor(0.3)), torch.sigmoid(torch.tensor(0.3 + w))
    exact = (1 + alpha) * 0.5 * (s0 * (1 - s0) + s1 * (1 - s1)).item()
    assert grads["score"] == pytest.approx(exact, abs=0.05) and grads["control"] == pytest.approx(exact, abs=0.05)
    assert grads["score"] == pytest.approx(grads["control"], abs=0.05)


def test_shaping_control_has_the_same_expected_turn2_gradient_as_score():
    """With γ = 0, (1+α)·r2 − α·r1 and (1+α)·r2 differ by a term fixed before y2 is sampled: within
    a group with the same r1 the leave-one-out advantages are identical."""
    r1 = torch.tensor([1.0, 1.0, 1.0, 0.0, 0.0, 0.0])  # two prompts whose 3 samples share y1's verdict
    r2 = torch.tensor([1.0, 0.0, 1.0, 1.0, 0.0, 0.0])
    shaped = advantages(turn_rewards("II", r1, r2, alpha=10.0)[1], 3, "rloo")
    control = advantages(turn_rewards("II", r1, r2, alpha=0.0, turn2_scale=11.0)[1], 3, "rloo")
    torch.testing.assert_close(shaped, control)


def test_stage_kl_weights_and_trained_turns():
    assert kl_weights("I", 0.01, 0.1) == (0.1, 0.01)
    assert kl_weights("II", 0.01, 0.1) == (0.01, 0.01)
    assert trained_turns("single") == (True, False) and kl_weights("single", 0.01, 0.1) == (0.01, 0.0)
    # the paper's naive multi-turn RL: the first attempt is neither rewarded nor held by β2
    assert trained_turns("naive") == (False, True) and kl_weights("naive", 0.01, 0.1) == (0.0, 0.01)
    assert training_reward("II", R1, R2) == pytest.approx(1.0)  # mean of r1 + r2
    assert training_reward("naive", R1, R2) == pytest.approx(0.5)


# --- (1) loss equals closed-form REINFORCE + KL ------------------------------------------------
def _hand_batch():
    g = torch.Generator().manual_seed(0)
    logp1 = -torch.rand(4, 5, generator=g) * 3
    logp2 = -torch.rand(4, 5, generator=g) * 3
    ref1 = logp1 + torch.randn(4, 5, generator=g) * 0.3
    ref2 = logp2 + torch.randn(4, 5, generator=g) * 0.3
    m1 = torch.tensor([[0, 1, 1, 1, 0], [0, 0, 1, 1, 1], [0, 1, 1, 0, 0], [0, 1, 1, 1, 1]], dtype=torch.float)
    m2 = torch.tensor([[0, 0, 0, 1, 1], [0, 0, 1, 1, 0], [0, 0, 0, 0, 1], [0, 0, 1, 1, 1]], dtype=torch.float)
    return logp1, ref1, m1, logp2, ref2, m2


def _closed_form(stage: str, alpha: float, b1: float, b2: float) -> float:
    """The loss written out sample by sample with plain Python floats (KL k1 in each turn's return)."""
    logp1, ref1, m1, logp2, ref2, m2 = (x.tolist() for x in _hand_batch())
    r1, r2 = R1.tolist(), R2.tolist()
    n_tokens = sum(sum(row) for row in m1) + sum(sum(row) for row in m2)  # both turns are trained
    if stage == "I":
        G = [[0.0] * 4, r2]
        beta = [b2, b1]
    else:
        G = [r1, [b + alpha * (b - a) for a, b in zip(r1, r2)]]
        beta = [b1, b1]
    turns = [(logp1, ref1, m1), (logp2, ref2, m2)]
    total = 0.0
    for t, (lp, rf, m) in enumerate(turns):
        seq_logp = [sum(lp[i][j] * m[i][j] for j in range(5)) for i in range(4)]
        seq_kl = [sum((lp[i][j] - rf[i][j]) * m[i][j] for j in range(5)) for i in range(4)]
        ret = [G[t][i] - beta[t] * seq_kl[i] for i in range(4)]
        partner = {0: 1, 1: 0, 2: 3, 3: 2}  # k = 2: the leave-one-out baseline is the other sample
        adv = [ret[i] - ret[partner[i]] for i in range(4)]
        total += sum(-adv[i] * seq_logp[i] for i in range(4)) / n_tokens
    return total


@pytest.mark.parametrize("stage", ["I", "II"])
def test_loss_equals_closed_form(stage):
    alpha, b1, b2 = 10.0, 0.01, 0.1
    logp1, ref1, m1, logp2, ref2, m2 = _hand_batch()
    kl = kl_weights(stage, b1, b2)
    g1, g2 = turn_rewards(stage, R1, R2, alpha)
    turns = [TurnBatch(logp1, ref1, m1, g1, kl[0]), TurnBatch(logp2, ref2, m2, g2, kl[1])]
    loss, stats = score_loss(turns, group_size=2, cfg=LossConfig())
    assert loss.item() == pytest.approx(_closed_form(stage, alpha, b1, b2), rel=1e-6, abs=1e-6)
    assert stats["kl_t1"] >= 0 and stats["kl_t2"] >= 0


def test_loss_gradient_is_reinforce_with_the_kl_in_the_advantage():
    """d loss / d logp[i,j] = −m·A_i/N with A_i the leave-one-out advantage of r − β·Σ(log π − log π_ref)
    (Stage II, turn 2 only trained, N its tokens): no gradient flows through the KL term itself."""
    logp1, ref1, m1, logp2, ref2, m2 = _hand_batch()
    logp2 = logp2.clone().requires_grad_(True)
    b1 = 0.01
    g1, g2 = turn_rewards("II", R1, R2, 10.0)
    turns = [TurnBatch(logp1, ref1, m1, g1, b1, trained=False), TurnBatch(logp2, ref2, m2, g2, b1)]
    loss, _ = score_loss(turns, 2, LossConfig())
    loss.backward()
    ret = g2 - b1 * ((logp2.detach() - ref2) * m2).sum(-1)
    adv = ret - ret[[1, 0, 3, 2]]
    torch.testing.assert_close(logp2.grad, -m2 * adv[:, None] / m2.sum())


def test_per_turn_advantages_skip_untrained_turns_and_log_k3():
    """The one per-turn assembly (engine and reference): None for an untrained turn, the logged KL is
    the mean per-attempt k3, zero when π = π_ref."""
    logp1, ref1, m1, logp2, ref2, m2 = _hand_batch()
    g1, g2 = turn_rewards("single", R1, R2, 10.0)
    advs, stats = per_turn_advantages([TurnTokens(logp1, ref1, m1), TurnTokens(logp2, logp2, m2)], [g1, g2],
                                      kl_weights("single", 0.01, 0.1), trained_turns("single"), 2, LossConfig())
    assert advs[1] is None and advs[0].shape == (4,) and set(stats) == {"kl_t1", "adv_abs_t1", "kl_t2"}
    assert stats["kl_t2"] == 0.0 and stats["kl_t1"] > 0
    k3 = ((torch.exp(ref1 - logp1) - 1 + logp1 - ref1) * m1).sum(-1).mean().item()
    assert stats["kl_t1"] == pytest.approx(k3)


# --- (1b) the KL in the reward descends KL(π‖π_ref): Monte Carlo on a small categorical --------
def test_kl_in_the_reward_descends_the_forward_kl_monte_carlo():
    """The Monte-Carlo gradient, w.r.t. the logits θ of π, of the loss built by `score_loss` from
    samples x ~ π (reward 0, so only the KL acts, β = 1, no baseline) equals the exact gradient of
    KL(π‖π_ref) and not that of KL(π_ref‖π)."""
    torch.manual_seed(0)
    n = 200_000
    theta = torch.tensor([0.3, -0.5, 1.2, 0.0, -1.0], requires_grad=True)
    ref_logp_all = torch.log_softmax(torch.tensor([0.0, 0.4, 0.1, -0.6, 0.8]), 0)
    logp_all = torch.log_softmax(theta, 0)
    x = torch.multinomial(logp_all.detach().exp(), n, replacement=True)
    logp, ref = logp_all[x].unsqueeze(1), ref_logp_all[x].unsqueeze(1)  # one-token "attempts"
    turn = TurnBatch(logp, ref, torch.ones_like(logp), torch.zeros(n), kl_coef=1.0)
    loss, _ = score_loss([turn], group_size=1, cfg=LossConfig("none"))
    (mc,) = torch.autograd.grad(loss, theta)
    logp_all = torch.log_softmax(theta, 0)  # a fresh graph for the exact gradients
    p, q = logp_all.exp(), ref_logp_all.exp()
    (fwd,) = torch.autograd.grad((p * (logp_all - ref_logp_all)).sum(), theta, retain_graph=True)  # KL(π‖π_ref)
    (rev,) = torch.autograd.grad((q * (ref_logp_all - logp_all)).sum(), theta)   # KL(π_ref‖π)
    assert (fwd - rev).abs().max() > 0.05  # the two KL gradients are distinguishable here
    torch.testing.assert_close(mc, fwd, atol=0.01, rtol=0.0)
    assert (mc - rev).abs().max() > 0.04


def test_rloo_advantages_and_bad_groups():
    a = advantages(torch.tensor([1.0, 0.0, 0.0, 1.0, 1.0, 1.0]), 3, "rloo")
    torch.testing.assert_close(a, torch.tensor([1.0, -0.5, -0.5, 0.0, 0.0, 0.0]))
    with pytest.raises(ValueError, match="group_size=4"):
        advantages(torch.zeros(6), 4, "rloo")


def test_bad_loss_settings_name_the_value():
    with pytest.raises(ValueError, match="kl_in='loss'"):
        LossConfig("rloo", "k1", "loss")
    with pytest.raises(ValueError, match="kl_estimator='k3'"):
        LossConfig("rloo", "k3", "reward")
    with pytest.raises(ValueError, match="kl_estimator='k2'"):
        LossConfig("rloo", "k2", "reward")
    with pytest.raises(ValueError, match="'grpo'"):
        LossConfig("grpo")
    with pytest.raises(ValueError, match="'k2'"):
        kl_per_token(torch.zeros(3), torch.zeros(3), "k2")
    assert kl_per_token(torch.zeros(3), torch.zeros(3), "k3").abs().sum() == 0


# --- (2) masks exclude prompt and instruction tokens -------------------------------------------
def _tiny_policy(task) -> Policy:
    tok = build_char_tokenizer("0123456789+=> " + task.revise_instruction)
    torch.manual_seed(0)
    cfg = GPT2Config(vocab_size=len(tok), n_layer=1, n_head=1, n_embd=16, n_positions=192,
                     bos_token_id=tok.eos_token_id, eos_token_id=tok.eos_token_id, pad_token_id=tok.pad_token_id)
    return Policy(GPT2LMHeadModel(cfg), tok, task)


def test_masks_cover_only_the_attempt_tokens():
    task = ArithmeticTask()
    policy = _tiny_policy(task)
    problems = task.problems("train", 3, seed=0)
    episodes = policy.two_turn(problems, Sampling(1.0, 12), seed=0)
    revise_ids = policy.tokenizer(task.revise_instruction, add_special_tokens=False).input_ids
    for t in range(2):
        prompts = [ep.turns[t].prompt_ids for ep in episodes]
        completions = [ep.turns[t].completion_ids for ep in episodes]
        logp, mask = policy.token_logprobs(prompts, completions)
        for i, (p, c) in enumerate(zip(prompts, completions)):
            # position j of the [B, T-1] tensors scores token j+1 of prompt+completion
            on = mask[i].nonzero().flatten().tolist()
            assert on == list(range(len(p) - 1, len(p) + len(c) - 1))
        if t == 1:  # the second-turn prompt holds x, y1 and the instruction: none of it is trained
            p = prompts[0]
            start = next(j for j in range(len(p)) if p[j : j + len(revise_ids)] == revise_ids)
            assert mask[0, start - 1 : start - 1 + len(revise_ids)].sum() == 0
            # and the loss has no gradient there
            logp = logp.detach().requires_grad_(True)
            turn = TurnBatch(logp, logp.detach() - 0.1, mask, torch.tensor([1.0, 0.0, 0.5]), 0.1)
            loss, _ = score_loss([turn], 3, LossConfig())
            loss.backward()
            assert (logp.grad[mask == 0] == 0).all() and (logp.grad[mask == 1] != 0).any()
