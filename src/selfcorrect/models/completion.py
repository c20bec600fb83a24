"""What a generation engine returns for one prompt (`Completion`), the one type both engines give back
(`Policy`'s transformers path and `vllm_engine`), and where a task's stop string cuts an attempt (`stop_prefix`)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass


@dataclass
class Completion:
    """What a generation engine returns for one prompt: the kept tokens (up to and including an EOS
    token; none of the tokens from where a task stop string starts), why the attempt ended, and
    the sampler's log-prob of each kept token under softmax(logits / T) where the engine gives them
    (vLLM; None for greedy decoding and for the transformers engine)."""

    ids: list[int]
    finish: str
    logprobs: list[float] | None = None


def stop_prefix(tokenizer, ids: Sequence[int], stops: Sequence[str]) -> list[int] | None:
    """The longest prefix of `ids` whose text ends before the first occurrence of any of `stops`
    (so no kept token carries a character of the stop string), or None when no stop string occurs."""
    text = tokenizer.decode(list(ids), skip_special_tokens=False)
    hits = [text.find(s) for s in stops if s and s in text]
    if not hits:
        return None
    cut = min(hits)
    kept = 0
    for k in range(1, len(ids) + 1):
        if len(tokenizer.decode(list(ids[:k]), skip_special_tokens=False)) > cut:
            break
        kept = k
    return list(ids[:kept])
