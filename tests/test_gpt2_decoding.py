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
