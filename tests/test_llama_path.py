"""The real-model path on the architecture real models use: a tiny randomly initialised Llama (grouped-
query attention, RoPE, tied embeddings) saved locally, as SmolLM2 is.

- the sampler's log-probs (what `generate` samples from, left-padded batch) equal the trainer's
  (`Policy.token_logprobs`, right-padded, the log-probs every update uses) within 1e-4 in fp32;
- mixed precision: a trained arm with bf16 weights is refused; fp32 master weights with bf16 compute
  train at lr 1e-5 and move their weights as fp32 does, where bf16 weights updated in place would
  mostly not move;
- stop strings: an attempt ends where the task's stop string starts (through `generate`'s own
  `stop_strings`), the verifier reads only the attempt, and truncation is reported per attempt.

The engine's gradient against the reference update on the same tiny Llama: tests/test_grpo_engine.py.
"""

from __future__ import annotations

import dataclasses

import pytest
import torch
from omegaconf import OmegaConf

from selfcorrect.evaluation.scoring import score_all
from selfcorrect.models.char_tokenizer import build_char_tokenizer
from selfcorrect.models.loading import check_precision
from selfcorrect.models.completion import Completion, stop_prefix
from selfcorrect.models.policy import Policy, Sampling
from selfcorrect.tasks.arithmetic import ArithmeticTask
from selfcorrect.training.budget import Budget
from selfcorrect.training.offline.sft import make_trainer, sft_config

from conftest import compose_config, save_tiny_llama

TASK = ArithmeticTask()


@pytest.fixture(scope="module")
def llama_dir(tmp_path_factory):
    tok = build_char_tokenizer("abcdefghijklmnopqrstuvwxyz0123456789 ()[]:=+-*/.,_<>|#" + TASK.revise_instruction)
    return save_tiny_llama(tmp_path_factory.mktemp("llama"), tok)


def prompts_of_several_lengths(policy: Policy) -> list[list[int]]:
    problems = TASK.problems("train", 6, seed=0)
    prompts = policy.prompts(problems, [[] for _ in problems])
    prompts = [p[: len(p) - i] for i, p in enumerate(prompts)]  # ragged: left padding happens
    assert len({len(p) for p in prompts}) == len(prompts)
    return prompts


@pytest.mark.parametrize("temperature", [1.0, 0.7])
def test_sampler_logprobs_equal_the_trainers_on_a_left_padded_batch(llama_dir, temperature):
    """`generate` on one left-padded batch samples each token from softmax(logits / T) at RoPE positions
    counted from the first real token; `Policy.token_logprobs` scores the same tokens right-padded, in
    another batch: the two log-probs agree within 1e-4 on every sampled token."""
    policy = Policy.load(llama_dir, TASK, batch_size=8)
    prompts = prompts_of_several_lengths(policy)
    tok = policy.tokenizer
    batch = tok.pad({"input_ids": prompts}, padding=True, padding_side="left", return_tensors="pt")
    torch.manual_seed(3)
    with torch.no_grad():
        out = policy.model.generate(**batch, do_sample=True, temperature=temperature, top_k=0, top_p=1.0, max_new_tokens=12,
                                    pad_token_id=tok.pad_token_id, eos_token_id=policy.eos_ids, output_scores=True,
                                    return_dict_in_generate=True)
    new = out.sequences[:, batch["input_ids"].shape[1]:]
    sampler = torch.stack([torch.log_softmax(s.float(), -1) for s in out.scores], 1).gather(-1, new.unsqueeze(-1)).squeeze(-1)
    completions = [policy._finish(row).ids for row in new.tolist()]
    assert sum(map(len, completions)) > 30
    logp, mask = policy.token_logprobs(prompts[::-1], completions[::-1], temperature=temperature)  # another batch order
    logp, mask = logp.flip(0), mask.flip(0)
    for i, (p, c) in enumerate(zip(prompts, completions)):
        trainer = logp[i, len(p) - 1 : len(p) - 1 + len(c)]
        assert mask[i, len(p) - 1 : len(p) - 1 + len(c)].all()
        torch.testing.assert_close(trainer, sampler[i, : len(c)], rtol=0, atol=1e-4)
    # the comparison can fail: scoring at the wrong temperature moves the log-probs far outside it
    if temperature != 1.0:
        wrong, _ = policy.token_logprobs(prompts[:1], completions[:1], temperature=1.0)
        assert (wrong[0, len(prompts[0]) - 1 : len(prompts[0]) - 1 + len(completions[0])] - sampler[0, : len(completions[0])]).abs().max() > 1e-2


# --- mixed precision -------------------------------------------------------------------------------
def test_a_trained_arm_with_bf16_weights_is_refused_with_the_reason():
    cfg = OmegaConf.create({"dtype": "bfloat16", "compute_dtype": "float32"})
    with pytest.raises(ValueError, match="model.dtype=bfloat16 for a trained arm.*compute_dtype=bfloat16"):
        check_precision(cfg, trained=True)
    check_precision(cfg, trained=False)  # the base arm only evaluates: bf16 weights are fine there
    check_precision(OmegaConf.create({"dtype": "float32", "compute_dtype": "bfloat16"}), trained=True)
    with pytest.raises(ValueError, match="compute_dtype must be float32 or bfloat16, got 'float16'"):
        check_precision(OmegaConf.create({"dtype": "float32", "compute_dtype": "float16"}), trained=True)


def sft_update(policy: Policy, tmp_path, steps: int = 3) -> dict[str, torch.Tensor]:
    """`steps` SFT steps at lr 1e-5 through the offline arms' trainer; returns the weight change."""
    before = {k: v.detach().clone().float() for k, v in policy.model.state_dict().items()}
    problems = TASK.problems("train", 8, seed=1)
    traces = [{"problem": p, "y1": TASK.write(p)[::-1], "y2": TASK.write(p)} for p in problems]
    cfg = compose_config(["arm=sft_self"])
    budget = dataclasses.replace(Budget.from_cfg(cfg.budget), lr=1e-5, sequences_per_step=8)
    args = sft_config(budget, cfg.arm.sft, steps, 0, tmp_path, "cpu", bf16=policy.compute_dtype == "bfloat16")
    make_trainer(policy, traces, args).train()
    return {k: v.detach().float() - before[k] for k, v in policy.model.state_dict().items()}


def test_fp32_master_weights_with_bf16_compute_move_as_fp32_does(llama_dir, tmp_path):
    """At lr 1e-5, three SFT steps: fp32 weights with bf16 autocast change (nearly) every weight and by
    as much as pure fp32 does; the same training with bf16 weights updated in place leaves most of
    them exactly where they were (the failure `check_precision` refuses)."""
    fp32 = sft_update(Policy.load(llama_dir, TASK), tmp_path / "fp32")
    mixed_policy = Policy.load(llama_dir, TASK, compute_dtype="bfloat16")
    mixed = sft_update(mixed_policy, tmp_path / "mixed")
    assert all(p.dtype == torch.float32 for p in mixed_policy.model.parameters())  # master weights stay fp32
    name = "model.layers.0.mlp.up_proj.weight"
    moved = {k: (d != 0).float().mean().item() for k, d in (("fp32", fp32[name]), ("mixed", mixed[name]))}
    assert moved["fp32"] > 0.9 and moved["mixed"] > 0.9, moved
    ratio = mixed[name].norm() / fp32[name].norm()
    assert 0.8 < ratio < 1.25, f"bf16-compute update norm {ratio:.2f}× the fp32 one"
    # the same training with bf16 weights updated in place (what check_precision refuses): most never move
    in_place = sft_update(Policy.load(llama_dir, TASK, dtype="bfloat16", compute_dtype="bfloat16"), tmp_path / "bf16")
    stays = (in_place[name] == 0).float().mean().item()
    assert stays > 0.5, f"only {stays:.0%} of the bf16 weights stayed where they were"


# --- stop strings and truncation ---------------------------------------------------------------------
@dataclasses.dataclass
class StopTask:
    """The arithmetic task with stop strings: attempts end where "0" or "5" starts."""

    inner: ArithmeticTask
    stop: tuple[str, ...] = ("0", "5")

    def __getattr__(self, name):
        return getattr(self.inner, name)


def test_stop_strings_end_attempts_through_generate_and_truncation_is_reported(llama_dir):
    task = StopTask(TASK)
    problems = task.problems("train", 32, seed=2)
    plain = Policy.load(llama_dir, TASK, batch_size=32)
    stopped = Policy.load(llama_dir, task, batch_size=32)
    sampling = Sampling(1.0, 16)
    free = plain.attempt(problems, [[] for _ in problems], sampling, seed=4)
    cut = stopped.attempt(problems, [[] for _ in problems], sampling, seed=4)
    n_stop = 0
    for a, b in zip(free, cut):
        text = plain.tokenizer.decode(a.completion_ids)
        if any(s in text.split(plain.tokenizer.eos_token)[0] for s in task.stop):  # the free attempt wrote a stop string
            n_stop += 1
            assert b.finish == "stop" and not any(s in b.text for s in task.stop)
            assert a.completion_ids[: len(b.completion_ids)] == b.completion_ids  # the same draw, cut where the stop starts
        else:
            assert b.completion_ids == a.completion_ids and b.finish == a.finish
        assert b.finish in ("eos", "stop", "length") and b.truncated == (b.finish == "length")
    assert n_stop > 0, "no sampled attempt wrote the stop string: the check would be vacuous"
    assert any(t.finish == "length" for t in free)  # a random model runs to the cap: truncation is seen
    # records carry the truncation flags and the metrics their shares
    eps = stopped.two_turn(problems, sampling, seed=4)
    rows = [s.record() for s in score_all(task, eps)]
    assert all(isinstance(r["truncated1"], bool) and isinstance(r["truncated2"], bool) for r in rows)
    from selfcorrect.evaluation.metrics import summarize

    m = summarize(rows)["truncation"]
    assert m["t1"] == sum(r["truncated1"] for r in rows) / len(rows) and m["exceeded"] == (max(m["t1"], m["t2"]) > 0.05)


def test_stop_prefix_drops_every_token_that_carries_a_stop_character(llama_dir):
    tok = Policy.load(llama_dir, TASK).tokenizer
    ids = tok("12+34", add_special_tokens=False).input_ids
    assert tok.decode(stop_prefix(tok, ids, ["+"])) == "12"
    assert stop_prefix(tok, ids, ["-"]) is None
    assert stop_prefix(tok, ids, ["+3", "2+"]) == tok("1", add_special_tokens=False).input_ids  # the earliest stop wins


def test_a_run_whose_attempts_hit_the_cap_says_so_in_its_summary():
    from selfcorrect.run import summary_line

    cfg = OmegaConf.create({"arm": {"name": "base"}, "seed": 0, "eval": {"max_new_tokens": 8}})
    m = {"acc_t1": 0.1, "acc_t2": 0.1, "delta": 0.0, "delta_i2c": 0.0, "delta_c2i": 0.0, "no_edit_rate": 1.0,
         "truncation": {"t1": 0.3, "t2": 0.01, "threshold": 0.05, "exceeded": True}}
    line = summary_line(cfg, m, "run")
    assert "WARNING: attempts hit max_new_tokens=8 (turn 1 30.0%, turn 2 1.0%; threshold 5%)" in line
    m["truncation"].update(t1=0.01, exceeded=False)
    assert "WARNING" not in summary_line(cfg, m, "run")


def test_completion_is_what_both_engines_return():
    c = Completion([1, 2], "eos")
    assert c.logprobs is None and c.finish == "eos"


def test_sft_micro_batches_give_the_update_of_the_whole_batch(llama_dir, tmp_path):
    """`arm.sft.micro_batch`: a step's 8 sequences forwarded 4 at a time (gradients accumulated) move the weights
    as one pass over all 8 does."""
    def weights_after(micro, out):
        policy = Policy.load(llama_dir, TASK)
        problems = TASK.problems("train", 16, seed=1)
        traces = [{"problem": p, "y1": TASK.write(p)[::-1], "y2": TASK.write(p)[: 3 + i % 5]} for i, p in enumerate(problems)]
        cfg = compose_config(["arm=sft_self"])
        budget = dataclasses.replace(Budget.from_cfg(cfg.budget), lr=1e-3, sequences_per_step=8)
        sft_cfg = OmegaConf.create({**OmegaConf.to_container(cfg.arm.sft, resolve=False), "micro_batch": micro, "eval_every": 0})
        make_trainer(policy, traces, sft_config(budget, sft_cfg, 2, 0, out)).train()
        return {k: v.detach().clone() for k, v in policy.model.state_dict().items()}

    whole, micro = weights_after(None, tmp_path / "whole"), weights_after(4, tmp_path / "micro")
    base = Policy.load(llama_dir, TASK).model.state_dict()
    assert any(not torch.equal(whole[k], base[k]) for k in whole)
    for k in whole:
        torch.testing.assert_close(micro[k], whole[k], rtol=1e-4, atol=1e-6)
    with pytest.raises(ValueError, match="micro_batch=3 must be a positive divisor"):
        sft_config(Budget.from_cfg(compose_config(["arm=sft_self"]).budget), OmegaConf.create({"logging_steps": 1, "micro_batch": 3}),
                   1, 0, tmp_path)
