"""Shared fixtures: configs composed exactly as the CLI composes them, and a tiny base model
built in seconds (few pretraining steps) in a throwaway cache."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from hydra import compose, initialize_config_dir

from selfcorrect.run import CONF_DIR

os.environ.setdefault("WANDB_SILENT", "true")
os.environ.setdefault("GLIBC_TUNABLES", "glibc.malloc.mmap_threshold=4294967296:glibc.malloc.trim_threshold=4294967296")

TINY_OVERRIDES = [
    "model.pretrain.steps=20",
    "model.pretrain.batch_size=32",
    "model.pretrain.n_problems=2000",
    "eval.n_problems=48",
    "eval.n_monitor=16",
    "tracking.mode=disabled",
]


def compose_config(overrides: list[str] = ()):
    with initialize_config_dir(config_dir=CONF_DIR, version_base="1.3"):
        return compose("config", overrides=list(overrides))


@pytest.fixture(scope="session")
def tiny_cache(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("cache")


@pytest.fixture(scope="session")
def tiny_cfg(tiny_cache):
    """A composed config whose base model builds in a couple of seconds."""
    return compose_config([*TINY_OVERRIDES, f"paths.cache_dir={tiny_cache}"])


@pytest.fixture(scope="session")
def tiny_base(tiny_cfg, tiny_cache):
    """(task, policy, model_dir) for the tiny, briefly pretrained base model."""
    from selfcorrect.models import base_model_path, load_base_policy
    from selfcorrect.tasks import make_task

    task = make_task(tiny_cfg.task)
    return task, load_base_policy(tiny_cfg.model, task, tiny_cache), base_model_path(tiny_cfg.model, task, tiny_cache)
