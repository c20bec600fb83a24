"""transformers' `generate` for GPT-2 models, token for token, without its per-step overhead.

For the embedded testbeds' tiny GPT-2 (0.1 M parameters) a decoding step of `generate` costs
~3 ms at batch 256, and much of it is not the model's arithmetic: the KV cache is concatenated
anew every step (`torch.cat` over the whole cache), masks and positions are rebuilt, and every
module call passes through hooks and output capturing. `decode` runs the model's own weights
through the same torch ops on the same shapes, in the same order, with the KV cache written into
a preallocated buffer (SDPA on a view of it gives bitwise the results it gives on the
concatenated tensor): its tokens are `generate`'s, greedy and sampled (the same
`torch.multinomial` call on the same probabilities each step, so the same RNG stream).
`tests/test_gpt2_decoding.py` compares the two on ragged, multi-batch, greedy and sampled prompts;
`experiments/bench_embedded.py` prints the speed-up.

What `generate` does here, mirrored step by step (transformers 5, `GenerationMixin._sample`):
positions = cumsum(attention mask) − 1 (padding at 0); an all-ones mask is dropped, so unpadded
prefill runs causal SDPA without a mask and unpadded decoding without one; a padded batch gets
transformers' own 4-D boolean causal mask in prefill (`create_causal_mask`) and the padding mask
while decoding; logits of the last position only, in float32; `scores / temperature` when the
temperature is not 1; argmax, or softmax then multinomial; finished rows emit the pad token; stop
when every row has emitted a stop token or `max_new_tokens` are generated.

Supported (`supports`): `GPT2LMHeadModel` with sdpa attention, no cross-attention, no
layer-wise or reordered attention scaling, eval mode, and top_p = 1. Anything else is decoded
by `generate` itself (`Policy.generate` chooses).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn


def _cache_kwarg() -> str:
    """`create_causal_mask`'s name for the KV cache: `cache` (transformers >= 5.18), `past_key_values` before."""
    import inspect

    from transformers.masking_utils import create_causal_mask

    return "cache" if "cache" in inspect.signature(create_causal_mask).parameters else "past_key_values"


_CACHE_KWARG = _cache_kwarg()


def supports(model: nn.Module, top_p: float) -> bool:
    """Whether `decode` reproduces `model.generate` for this model and sampling setting."""
    from transformers import GPT2LMHeadModel

    cfg = model.config
    return (
        type(model) is GPT2LMHeadModel
        and getattr(cfg, "_attn_implementation", None) == "sdpa"
        and not cfg.add_cross_attention
        and not cfg.scale_attn_by_inverse_layer_idx
        and not cfg.reorder_and_upcast_attn
        and not model.training
        and top_p == 1.0
    )


@torch.no_grad()
def decode(model: nn.Module, input_ids: torch.Tensor, attention_mask: torch.Tensor, *, greedy: bool, temperature: float,
           max_new_tokens: int, eos_ids: Sequence[int], pad_id: int, keep_cache: bool = False):
    """Generated token ids [B, n] for one left-padded batch, n ≤ max_new_tokens (what
    `model.generate(...)[:, T0:]` returns for the same inputs and global RNG state). With `keep_cache`,
    `(tokens, KVCache)`: the batch's cache, for a later turn to continue from (`continue_decode`)."""
    tr = model.transformer
    batch, t0 = input_ids.shape
    heads, head_dim = model.config.n_head, model.config.n_embd // model.config.n_head
    padded = not bool(attention_mask.all())
    positions = (attention_mask.long().cumsum(-1) - 1).masked_fill(attention_mask == 0, 0)
    mask = None
    if padded:
        from transformers.masking_utils import create_causal_mask

        embeds_meta = torch.empty(batch, t0, model.config.n_embd, dtype=tr.wte.weight.dtype, device=input_ids.device)
        mask = create_causal_mask(config=model.config, inputs_embeds=embeds_meta, attention_mask=attention_mask,
                                  position_ids=positions, **{_CACHE_KWARG: None})
    length = t0 + max_new_tokens
    caches = [(tr.wte.weight.new_empty(batch, heads, length, head_dim), tr.wte.weight.new_empty(batch, heads, length, head_dim))
              for _ in tr.h]
    logits = _forward(model, input_ids, positions, mask, caches, start=0)
    eos = torch.tensor(sorted(eos_ids), device=input_ids.device)
    unfinished = torch.ones(batch, dtype=torch.long, device=input_ids.device)
    out, real = [], []  # real: the row had not stopped when the token was drawn (a pad otherwise)
    prompt_valid = attention_mask.bool()
    for step in range(max_new_tokens):
        tokens = _draw(logits, greedy, temperature) * unfinished + pad_id * (1 - unfinished)
        out.append(tokens)
        real.append(unfinished.bool())
        unfinished = unfinished & ~torch.isin(tokens, eos)
        if step == max_new_tokens - 1 or unfinished.max() == 0:
            break
        positions = positions[:, -1:] + 1
        if padded:
            attention_mask = torch.cat([attention_mask, attention_mask.new_ones(batch, 1)], dim=-1)
            mask = attention_mask.bool()[:, None, None, :]
        logits = _forward(model, tokens[:, None], positions, mask, caches, start=t0 + step)
    tokens = torch.stack(out, dim=1)
    if not keep_cache:
        return tokens
    # the last drawn token was never fed: the cache holds the prompt and the real tokens before it
    fed = torch.stack(real[:-1], dim=1) if len(real) > 1 else prompt_valid.new_zeros(batch, 0)
    valid = torch.cat([prompt_valid, fed], dim=1)
    return tokens, KVCache(caches, valid, used=valid.size(1))


@dataclass
class KVCache:
    """One batch's KV cache across turns: per layer the key and value buffers [B, H, L, D], of which the first
    `used` slots are written; `valid` [B, used] marks the slots that hold a row's real tokens (its prompts and
    attempts: not the left padding, not the pads a stopped row was fed). A row's next position is its count
    of real tokens (positions count real tokens from 0, as `generate`'s cumsum of the mask does)."""

    layers: list[tuple[torch.Tensor, torch.Tensor]]
    valid: torch.Tensor
    used: int

    def reserve(self, length: int) -> None:
        """Room for `length` slots (the buffers grow once per turn, not per token)."""
        have = self.layers[0][0].size(2)
        if length > have:
            grow = lambda b: torch.cat([b, b.new_empty(*b.shape[:2], length - have, b.size(3))], dim=2)  # noqa: E731
            self.layers = [(grow(k), grow(v)) for k, v in self.layers]


@torch.no_grad()
def continue_decode(model: nn.Module, cache: KVCache, new_ids: Sequence[Sequence[int]], *, greedy: bool, temperature: float,
                    max_new_tokens: int, eos_ids: Sequence[int], pad_id: int) -> torch.Tensor:
    """The next attempt of every row of a cached batch: each row's `new_ids` (what the next prompt adds after
    the tokens already in the cache: the rest of the last attempt, the revise instruction, the generation
    prompt; at least one token) are encoded after its cached tokens, then decoded as `decode` does. Returns
    the generated ids [B, n] and extends `cache` in place. The prompt is not re-encoded, so the logits equal
    a fresh encoding's up to float rounding (the same keys, summed in another order), not bitwise."""
    if len(new_ids) != cache.valid.size(0) or not all(len(x) for x in new_ids):
        raise ValueError(f"continue_decode needs 1+ new tokens for each of the batch's {cache.valid.size(0)} rows")
    device = cache.valid.device
    batch, width = cache.valid.size(0), max(len(x) for x in new_ids)
    start, end = cache.used, cache.used + width
    cache.reserve(end + max_new_tokens)
    # the new tokens right-aligned in a block of `width` slots: every row's last new token sits in the last slot
    block = torch.full((batch, width), pad_id, dtype=torch.long, device=device)
    block_valid = torch.zeros(batch, width, dtype=torch.bool, device=device)
    for i, x in enumerate(new_ids):
        block[i, width - len(x):] = torch.tensor(list(x), dtype=torch.long)
        block_valid[i, width - len(x):] = True
    valid = torch.cat([cache.valid, block_valid], dim=1)
    count = cache.valid.sum(1, keepdim=True)
    positions = (count + block_valid.long().cumsum(1) - 1).masked_fill(~block_valid, 0)
    causal = torch.ones(width, end, dtype=torch.bool, device=device).tril(diagonal=start)
    # a pad query attends to the row's cached tokens (never to nothing: that would put NaN into the cache)
    pad_query = torch.cat([cache.valid[:, None, :].expand(batch, width, start),
                           torch.zeros(batch, width, width, dtype=torch.bool, device=device)], dim=2)
    mask = torch.where(block_valid[:, :, None], valid[:, None, :] & causal[None], pad_query)[:, None]
    logits = _forward(model, block, positions, mask, cache.layers, start=start)
    eos = torch.tensor(sorted(eos_ids), device=device)
    unfinished = torch.ones(batch, dtype=torch.long, device=device)
    positions = positions[:, -1:]
    out = []
    for step in range(max_new_tokens):
        tokens = _draw(logits, greedy, temperature) * unfinished + pad_id * (1 - unfinished)
        out.append(tokens)
        real = unfinished.bool()
        unfinished = unfinished & ~torch.isin(tokens, eos)
        if step == max_new_tokens - 1 or unfinished.max() == 0:
            break
        valid = torch.cat([valid, real[:, None]], dim=1)
        positions = positions + 1
        logits = _forward(model, tokens[:, None], positions, valid[:, None, None, :], cache.layers, start=end + step)
    cache.valid, cache.used = valid, valid.size(1)
    return torch.stack(out, dim=1)


def _draw(logits: torch.Tensor, greedy: bool, temperature: float) -> torch.Tensor:
    """The next token of each row from the last position's logits, as `generate` draws it: float32 scores,
    argmax, or softmax(scores / T) then multinomial (the global RNG)."""
    scores = logits[:, -1].to(copy=True, dtype=torch.float32)
    if greedy:
        return torch.argmax(scores, dim=-1)
    if temperature != 1.0:
        scores = scores / temperature
    return torch.multinomial(F.softmax(scores, dim=-1), num_samples=1).squeeze(1)


def _forward(model: nn.Module, ids: torch.Tensor, positions: torch.Tensor, mask: torch.Tensor | None,
             caches: list[tuple[torch.Tensor, torch.Tensor]], start: int) -> torch.Tensor:
    """GPT2LMHeadModel.forward with the cache in `caches` (positions start.. of the buffers):
    the logits of the last position, [B, 1, V]."""
    tr = model.transformer
    batch, width = ids.shape
    end = start + width
    h = tr.wte(ids) + tr.wpe(positions)
    for block, (k_buf, v_buf) in zip(tr.h, caches):
        attn = block.attn
        residual = h
        x = F.layer_norm(h, block.ln_1.normalized_shape, block.ln_1.weight, block.ln_1.bias, block.ln_1.eps)
        q, k, v = _conv1d(attn.c_attn, x).split(attn.split_size, dim=2)
        shape = (batch, width, -1, attn.head_dim)
        q, k, v = q.view(shape).transpose(1, 2), k.view(shape).transpose(1, 2), v.view(shape).transpose(1, 2)
        k_buf[:, :, start:end] = k
        v_buf[:, :, start:end] = v
        if start > 0:  # decoding: attend over the cache so far (generate's concatenated cache, bitwise)
            k, v = k_buf[:, :, :end], v_buf[:, :, :end]
        a = F.scaled_dot_product_attention(q, k, v, attn_mask=mask, dropout_p=0.0, scale=attn.scaling,
                                           is_causal=mask is None and width > 1)
        a = a.reshape(a.shape[0], -1, width, v.shape[-1]).transpose(1, 2).contiguous()
        a = a.reshape(*a.shape[:-2], -1).contiguous()
        h = _conv1d(attn.c_proj, a) + residual
        residual = h
        x = F.layer_norm(h, block.ln_2.normalized_shape, block.ln_2.weight, block.ln_2.bias, block.ln_2.eps)
        h = residual + _conv1d(block.mlp.c_proj, block.mlp.act(_conv1d(block.mlp.c_fc, x)))
    h = F.layer_norm(h, tr.ln_f.normalized_shape, tr.ln_f.weight, tr.ln_f.bias, tr.ln_f.eps)
    return model.lm_head(h[:, -1:, :])


def _conv1d(layer: nn.Module, x: torch.Tensor) -> torch.Tensor:
    """transformers' Conv1D forward: x W + b as one addmm."""
    return torch.addmm(layer.bias, x.view(-1, x.size(-1)), layer.weight).view(*x.shape[:-1], layer.nf)
