"""LoRA through `peft`, one adapter configuration for every trained arm (`model.lora`).

With `model.lora.enabled`, every trainable policy (`loading.policy_factory`) is the base model with
the same fresh LoRA adapter (`peft.get_peft_model`, seeded by the run's seed), so both families
train the same parameters; the reference policy of the RL arms is the base itself (the adapter's
B matrices start at zero, so the adapter-free model is exactly π_ref). A kept policy is merged
(`merged`) before it is evaluated, saved or compared with the base: what leaves training is a
plain model with the base's parameter names.
"""

from __future__ import annotations

from collections.abc import Mapping

import torch

DEFAULT_TARGETS = ("q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj")


def lora_settings(cfg: Mapping | None) -> dict | None:
    """The validated `model.lora` block (None when absent or disabled)."""
    if not cfg or not cfg.get("enabled", False):
        return None
    r, alpha, dropout = cfg.get("r", 16), cfg.get("alpha", 32), cfg.get("dropout", 0.0)
    if not isinstance(r, int) or isinstance(r, bool) or r <= 0:
        raise ValueError(f"model.lora.r must be a positive integer, got {r!r}")
    if not isinstance(alpha, (int, float)) or alpha <= 0:
        raise ValueError(f"model.lora.alpha must be a number > 0, got {alpha!r}")
    if dropout != 0.0:
        raise ValueError(f"model.lora.dropout must be 0 (sampling and training forwards must agree), got {dropout!r}")
    targets = tuple(cfg.get("target_modules") or DEFAULT_TARGETS)
    return {"r": r, "lora_alpha": alpha, "lora_dropout": 0.0, "target_modules": list(targets)}


def with_adapter(model: torch.nn.Module, settings: dict, seed: int) -> torch.nn.Module:
    """`model` wrapped with a fresh LoRA adapter (A drawn with `seed`, B zero: the same function)."""
    from peft import LoraConfig, get_peft_model

    found = {name.rsplit(".", 1)[-1] for name, _ in model.named_modules()}
    missing = [t for t in settings["target_modules"] if t not in found]
    if missing:
        raise ValueError(f"model.lora.target_modules {missing} are not modules of {type(model).__name__}")
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        return get_peft_model(model, LoraConfig(task_type="CAUSAL_LM", bias="none", **settings))


def is_adapted(model: torch.nn.Module) -> bool:
    from peft import PeftModel

    return isinstance(model, PeftModel)


def merged(model: torch.nn.Module) -> torch.nn.Module:
    """A plain model with the adapter's update folded into the base weights (the model itself when it
    has no adapter). The adapted model is not kept: merging is the last thing done to it."""
    return model.merge_and_unload() if is_adapted(model) else model
