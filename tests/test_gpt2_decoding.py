"""gpt2_decoding.decode gives transformers' `generate` tokens, token for token."""

import random

import pytest
import torch

from selfcorrect.models import gpt2_decoding
from selfcorrect.models.policy import Policy, Sampling
from selfcorrect.tasks.arithmetic import ArithmeticTask

from conftest import random_char_policy

TASK = ArithmeticTask()


@pytest.fixture(scope="module")
def pair():
    """The same untrained GPT-2 behind two policies: the lean decoder and `generate`. An untrained
    model samples near-uniformly, so every sampled token (and every early EOS) tests the RNG stream."""
    lean = random_char_policy(TASK, n_layer=2, n_embd=32, batch_size=4)
    plain = Policy(lean.model, lean.tokenizer, TASK, batch_size=4, decoder="generate")
    return lean, plain


def ragged_prompts(n: int, seed: int = 0) -> list[list[int]]:
    rng = random.Random(seed)
    return [[rng.randrange(3, 17) for _ in range(rng.randint(1, 12))] for _ in range(n)]


def test_the_test_policy_takes_the_lean_path(pair):
    lean, _ = pair
    lean.model.eval()
    assert gpt2_decoding.supports(lean.model, top_p=1.0)
    assert not gpt2_decoding.supports(lean.model, top_p=0.9)  # top-p filtering: generate's own warper
    lean.model.train()
    assert not gpt2_decoding.supports(lean.model, top_p=1.0)
    lean.model.eval()


@pytest.mark.parametrize("temperature", [0.0, 1.0, 0.7, 1.5])
def test_ragged_multi_batch_prompts_give_generates_tokens(pair, temperature):
    lean, plain = pair
    prompts = ragged_prompts(11)  # 3 batches of 4: the RNG stream runs on across batches
    s = Sampling(temperature, max_new_tokens=10)
    for seed in (0, 3):
        assert lean.generate(prompts, s, seed=seed) == plain.generate(prompts, s, seed=seed)


def test_unpadded_batches_and_single_token_prompts(pair):
    lean, plain = pair
    for prompts in ([[5, 6, 7]] * 6, [[9]] * 5, [[4]]):
        for s in (Sampling(0.0, 8), Sampling(1.0, 8)):
            assert lean.generate(prompts, s, seed=1) == plain.generate(prompts, s, seed=1)


def test_rows_that_stop_early_and_the_context_limit(pair):
    lean, plain = pair
    s = Sampling(1.0, 24)
    prompts = ragged_prompts(8, seed=5)
    out = lean.generate(prompts, s, seed=2)
    assert any(len(o) < 24 and o[-1] in lean.eos_ids for o in out)  # some rows stopped on EOS
    assert out == plain.generate(prompts, s, seed=2)
    near_full = [[3] * 124, [4] * 20]  # n_positions = 128: the first row has room for 4 tokens
    assert lean.generate(near_full, s, seed=2) == plain.generate(near_full, s, seed=2)


def test_the_trained_base_model_decodes_identically(tiny_cfg, tiny_cache):
    """The sweep's kind of model (a pretrained tiny GPT-2 on its task), two-turn, greedy and T = 1."""
    from selfcorrect.models.loading import load_base_policy
    from selfcorrect.tasks import make_task

    task = make_task(tiny_cfg.task)
    lean = load_base_policy(tiny_cfg.model, task, tiny_cache)
    plain = Policy(lean.model, lean.tokenizer, task, batch_size=lean.batch_size, decoder="generate")
    problems = task.problems("test", 40, seed=1)
    for s in (Sampling(0.0, 32), Sampling(1.0, 32)):
        a, b = lean.two_turn(problems, s, seed=4), plain.two_turn(problems, s, seed=4)
        assert [[t.completion_ids for t in ep.turns] for ep in a] == [[t.completion_ids for t in ep.turns] for ep in b]


def test_unknown_decoder_is_refused(pair):
    lean, _ = pair
    with pytest.raises(ValueError, match="model.decoder must be one of .* got 'vllm'"):
        Policy(lean.model, lean.tokenizer, TASK, decoder="vllm")


def test_generation_leaves_the_global_rng_alone(pair):
    lean, _ = pair
    state = torch.random.get_rng_state()
    lean.generate(ragged_prompts(5), Sampling(1.0, 6), seed=9)
    assert torch.equal(torch.random.get_rng_state(), state)


# --- later turns continued from the KV cache (`continue_decode`, `Policy.rollout`; issue 32, item 2) ---------------

def _greedy(policy, prompts, n=10):
    batch = policy.tokenizer.pad({"input_ids": prompts}, padding=True, padding_side="left", return_tensors="pt")
    return batch, dict(greedy=True, temperature=0.0, eos_ids=policy.eos_ids, pad_id=policy.tokenizer.pad_token_id, max_new_tokens=n)


def test_a_continued_turn_gives_the_tokens_of_encoding_the_whole_conversation(pair):
    """Ragged prompts, rows that stop early and rows that run to the cap; then each row's own new tokens
    (ragged too) after what the cache holds, twice (three turns): greedy tokens equal a fresh encoding's."""
    lean, _ = pair
    lean.model.eval()
    rng = random.Random(7)
    prompts = ragged_prompts(6, seed=11)
    batch, kw = _greedy(lean, prompts)
    new, cache = gpt2_decoding.decode(lean.model, batch["input_ids"], batch["attention_mask"], keep_cache=True, **kw)
    held = [list(p) for p in prompts]
    for _ in range(2):
        rows = new.tolist()
        for h, r in zip(held, rows):
            kept = lean._finish(r).ids
            h += kept[: len(r) - 1]  # the last drawn token is not in the cache
        ext = [[rng.randrange(3, 17) for _ in range(rng.randint(1, 6))] for _ in prompts]
        new = gpt2_decoding.continue_decode(lean.model, cache, ext, **kw)
        held = [h + e for h, e in zip(held, ext)]
        fresh_batch, _ = _greedy(lean, held)
        fresh = gpt2_decoding.decode(lean.model, fresh_batch["input_ids"], fresh_batch["attention_mask"], **kw)
        assert [lean._finish(r).ids for r in new.tolist()] == [lean._finish(r).ids for r in fresh.tolist()]
    last = [lean._finish(r).ids[: len(r) - 1] for r in new.tolist()]  # the last turn's tokens that were fed
    assert cache.used == cache.valid.size(1) and cache.valid.sum(1).tolist() == [len(h) + len(x) for h, x in zip(held, last)]


def test_continue_decode_needs_new_tokens_for_every_row(pair):
    lean, _ = pair
    batch, kw = _greedy(lean, [[3, 4], [5]])
    _, cache = gpt2_decoding.decode(lean.model, batch["input_ids"], batch["attention_mask"], keep_cache=True, **kw)
    with pytest.raises(ValueError, match="1\\+ new tokens for each of the batch's 2 rows"):
        gpt2_decoding.continue_decode(lean.model, cache, [[3], []], **kw)


def test_rollout_equals_two_turn_greedy_and_falls_back_where_a_prompt_does_not_extend(tiny_cfg, tiny_cache, monkeypatch):
    """The sweep's kind of model: `continue_turns` leaves greedy two- and three-turn episodes as they are, and
    the continuation is really taken; a next prompt that does not extend the cached tokens takes `attempt`."""
    from selfcorrect.models.loading import load_base_policy
    from selfcorrect.tasks import make_task

    task = make_task(tiny_cfg.task)
    policy = load_base_policy(tiny_cfg.model, task, tiny_cache)
    policy.batch_size = 4
    problems = task.problems("test", 10, seed=2)
    s = Sampling(0.0, 12)
    calls = []
    real = gpt2_decoding.continue_decode
    monkeypatch.setattr(gpt2_decoding, "continue_decode", lambda *a, **k: calls.append(1) or real(*a, **k))
    ids = lambda eps: [[t.completion_ids for t in ep.turns] for ep in eps]  # noqa: E731
    for n_turns in (2, 3):
        policy.continue_turns = False
        want = policy.two_turn(problems, s, seed=4, n_turns=n_turns)
        policy.continue_turns = True
        assert policy.continues(s)
        got = policy.two_turn(problems, s, seed=4, n_turns=n_turns)
        assert ids(got) == ids(want)
        assert [[t.prompt_ids for t in ep.turns] for ep in got] == [[t.prompt_ids for t in ep.turns] for ep in want]
    assert len(calls) == 3 * (1 + 2)  # 3 batches: one continued turn, then two
    calls.clear()
    odd = lambda p, turns: [0] + policy.prompt_ids(p, [t.text for t in turns])  # noqa: E731  (not an extension)
    got = policy.rollout(problems, s, 4, 2, odd)
    assert not calls and ids(got) == ids(policy.two_turn(problems, s, seed=4))


def test_rl_rollouts_continue_from_the_cache_with_turn2_prompts_token_for_token(tiny_cfg, tiny_cache):
    """`grpo_engine.two_turn_tokens` with `continue_turns`: greedy episodes as without it; sampled ones keep
    turn-2 prompts x + y1 + instruction token for token (`continued_prompt`), so every episode packs into one row."""
    from selfcorrect.models.loading import load_base_policy
    from selfcorrect.tasks import make_task
    from selfcorrect.training.rl.grpo_engine import continued_prompt, two_turn_tokens

    task = make_task(tiny_cfg.task)
    policy = load_base_policy(tiny_cfg.model, task, tiny_cache)
    problems = task.problems("train", 8, seed=5)
    ids = lambda eps: [[(t.prompt_ids, t.completion_ids) for t in ep.turns] for ep in eps]  # noqa: E731
    policy.continue_turns = False
    want = two_turn_tokens(policy, problems, Sampling(0.0, 12), seed=3)
    policy.continue_turns = True
    assert ids(two_turn_tokens(policy, problems, Sampling(0.0, 12), seed=3)) == ids(want)
    for ep in two_turn_tokens(policy, problems, Sampling(1.0, 12), seed=3):
        assert ep.turns[1].prompt_ids == (continued_prompt(policy, ep.problem, ep.turns[0])
                                          or policy.prompt_ids(ep.problem, [ep.turns[0].text]))
