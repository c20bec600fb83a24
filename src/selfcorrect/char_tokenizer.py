"""A character-level Hugging Face tokenizer for the embedded task (one token per character).

Built from the `tokenizers` library so it saves, loads and pads like any hub tokenizer; its chat
template renders user turns verbatim and ends each assistant turn with EOS, so the two-turn
prompts of the tiny model come from the same `apply_chat_template` path as a real chat model's.
"""

from __future__ import annotations

from tokenizers import Regex, Tokenizer, decoders, models, pre_tokenizers
from transformers import PreTrainedTokenizerFast

PAD, EOS, UNK = "<pad>", "<eos>", "<unk>"
CHAT_TEMPLATE = (
    "{% for m in messages %}"
    "{% if m['role'] == 'assistant' %}{{ m['content'] }}{{ eos_token }}"
    "{% else %}{{ m['content'] }}{% endif %}"
    "{% endfor %}"
)


def build_char_tokenizer(alphabet: str) -> PreTrainedTokenizerFast:
    chars = sorted(set(alphabet))
    if any(len(c) != 1 or c.isspace() and c != " " for c in chars):
        raise ValueError(f"alphabet must be single printable characters, got {alphabet!r}")
    vocab = {tok: i for i, tok in enumerate([PAD, EOS, UNK, *chars])}
    core = Tokenizer(models.WordLevel(vocab=vocab, unk_token=UNK))
    core.pre_tokenizer = pre_tokenizers.Split(Regex("."), behavior="isolated")
    core.decoder = decoders.Fuse()
    tok = PreTrainedTokenizerFast(
        tokenizer_object=core, pad_token=PAD, eos_token=EOS, unk_token=UNK, padding_side="left"
    )
    tok.chat_template = CHAT_TEMPLATE
    return tok
