import pytest
import torch

from selfcorrect.models.policy import Policy, Sampling
from selfcorrect.tasks.arithmetic import ArithmeticTask

from conftest import random_char_policy

TASK = ArithmeticTask()


@pytest.fixture(scope="module")
def policy():
    return random_char_policy(TASK, n_layer=2, n_embd=32, batch_size=4)


def plain_logprob(policy, prompt, completion, temperature=1.0):
    """log p_T(completion | prompt) from one unpadded forward pass, token by token."""
    ids = torch.tensor([prompt + completion])
    with torch.no_grad():
        logp = torch.log_softmax(policy.model(ids).logits[0].float() / temperature, -1)
    return sum(logp[len(prompt) + t - 1, tok].item() for t, tok in enumerate(completion))


def test_prompts_come_from_the_chat_template(policy):
    p = TASK.make_problem(357, 468)
    first = policy.tokenizer.decode(policy.prompt_ids(p))
    second = policy.tokenizer.decode(policy.prompt_ids(p, ["78015 56112 34108>825"]))
    assert first == "357+468="
    assert second == "357+468=78015 56112 34108>825<eos>[revise]"


def sequence_logprob(policy, prompts, completions, temperature=1.0):
    logp, mask = policy.token_logprobs(prompts, completions, temperature)
    return (logp * mask).sum(-1)


@pytest.mark.parametrize("temperature", [1.0, 0.7, 1.5])
def test_token_logprobs_equal_plain_forward_at_the_sampling_temperature(policy, temperature):
    prompts = [[3, 4, 5], [6, 7, 8, 9, 10, 11], [12]]
    completions = [[5, 6, 1], [7], [8, 9, 10, 11, 1]]
    batched = sequence_logprob(policy, prompts, completions, temperature)
    for i, (p, c) in enumerate(zip(prompts, completions)):
        assert batched[i].item() == pytest.approx(plain_logprob(policy, p, c, temperature), abs=1e-4)
    if temperature != 1.0:  # scoring at T = 1 would be a different (off-policy) distribution
        assert batched[0].item() != pytest.approx(plain_logprob(policy, prompts[0], completions[0]), abs=1e-3)


def test_token_logprobs_refuse_a_zero_temperature(policy):
    with pytest.raises(ValueError, match="temperature > 0, got 0"):
        policy.token_logprobs([[3]], [[4]], temperature=0)


def test_completion_mask_covers_exactly_the_completion_tokens(policy):
    prompts = [[3, 4, 5], [6, 7, 8, 9]]
    completions = [[5, 6], [7, 8, 9]]
    logp, mask = policy.token_logprobs(prompts, completions)
    assert logp.shape == mask.shape == (2, 6)  # [B, T-1] for T = longest sequence = 7
    # position t scores token t+1: completions start at t = len(prompt) - 1
    assert mask[0].tolist() == [0, 0, 1, 1, 0, 0]
    assert mask[1].tolist() == [0, 0, 0, 1, 1, 1]


def test_token_logprobs_carry_gradients(policy):
    logp = sequence_logprob(policy, [[3, 4]], [[5, 1]])
    logp.sum().backward()
    assert any(p.grad is not None and p.grad.abs().sum() > 0 for p in policy.model.parameters())
    policy.model.zero_grad()


def test_batched_left_padded_generation_matches_one_by_one(policy):
    prompts = [[3, 4, 5, 6, 7], [8], [9, 10, 11]]
    greedy = Sampling(temperature=0.0, max_new_tokens=6)
    batched = policy.generate(prompts, greedy)
    for p, out in zip(prompts, batched):
        assert policy.generate([p], greedy)[0] == out
        assert 0 < len(out) <= 6
        assert policy.tokenizer.pad_token_id not in out[:-1]


def test_sampling_is_seeded_and_leaves_global_rng_alone(policy):
    prompts = [[3, 4, 5]] * 8
    hot = Sampling(temperature=1.0, max_new_tokens=8)
    state = torch.random.get_rng_state()
    a = policy.generate(prompts, hot, seed=1)
    assert torch.equal(torch.random.get_rng_state(), state)
    assert policy.generate(prompts, hot, seed=1) == a
    assert policy.generate(prompts, hot, seed=2) != a


def test_two_turn_builds_the_second_prompt_from_the_first_attempt(policy):
    problems = [TASK.make_problem(111, 222), TASK.make_problem(345, 678)]
    eps = policy.two_turn(problems, Sampling(0.0, 6))
    for ep in eps:
        assert len(ep.turns) == 2
        assert ep.turns[1].prompt_ids == policy.prompt_ids(ep.problem, [ep.y1])
    offline = policy.two_turn(problems, Sampling(0.0, 6), first_attempts=["11101 22202 33303>333", "bad"])
    assert [ep.y1 for ep in offline] == ["11101 22202 33303>333", "bad"]
    assert offline[0].turns[1].prompt_ids == policy.prompt_ids(problems[0], ["11101 22202 33303>333"])


def test_generation_stops_when_the_context_is_full(policy):
    long_prompt = [3] * 127
    out = policy.generate([long_prompt, [3]], Sampling(0.0, 8))
    assert len(out[0]) <= 1 and len(out[1]) > 0


@pytest.mark.parametrize("kw, message", [({"temperature": -1}, "temperature"), ({"max_new_tokens": 0}, "max_new_tokens"), ({"top_p": 0}, "top_p")])
def test_bad_sampling_settings(kw, message):
    with pytest.raises(ValueError, match=message):
        Sampling(**kw)


def test_save_load_roundtrip(policy, tmp_path):
    policy.save(tmp_path / "p")
    again = Policy.load(tmp_path / "p", TASK)
    prompts, comps = [[3, 4]], [[5, 6, 1]]
    assert sequence_logprob(again, prompts, comps).item() == pytest.approx(sequence_logprob(policy, prompts, comps).item(), abs=1e-6)


def test_the_char_template_written_out_renders_as_the_jinja_template(policy):
    """char_tokenizer.render_chat (the fast path of Policy.render) against apply_chat_template on
    attempts with the characters models write: digits, operators, spaces at either end, '>' and '<'."""
    import random

    from selfcorrect.models.prompts import conversation

    rng = random.Random(0)
    alphabet = "0123456789+=> <[]eos"
    for n in range(4):
        for _ in range(25):
            attempts = ["".join(rng.choice(alphabet) for _ in range(rng.randint(0, 30))) for _ in range(n)]
            p = TASK.make_problem(rng.randint(100, 999), rng.randint(100, 999))
            jinja = policy.tokenizer.apply_chat_template(conversation(TASK, p, attempts), tokenize=False, add_generation_prompt=True)
            assert policy.render(p, attempts) == jinja
    assert policy.prompts([p, p], [[], ["1 2"]]) == [policy.prompt_ids(p), policy.prompt_ids(p, ["1 2"])]
