"""Content-addressed cache for expensive artifacts (base models, trace datasets).

An artifact lives in ``<root>/<kind>/<hash>/`` where the hash covers the config that made it.
It is built in a temporary sibling and renamed into place only when complete, under a file
lock, so parallel sweep jobs build it once and nobody ever reads a half-written artifact.
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import os
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

COMPLETE = "artifact.json"


def config_hash(spec: Any) -> str:
    blob = json.dumps(spec, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(blob.encode()).hexdigest()[:16]


def cached_artifact(root: str | Path, kind: str, spec: dict, build: Callable[[Path], dict]) -> Path:
    """Return the directory of the artifact for `spec`, building it with `build(tmpdir)` once.

    `build` writes into the directory it is given and returns a dict of facts about the build
    (timings, losses) that is stored beside the artifact with the spec.
    """
    key = config_hash(spec)
    final = Path(root) / kind / key
    if (final / COMPLETE).exists():
        return final
    final.parent.mkdir(parents=True, exist_ok=True)
    with open(final.parent / f"{key}.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            if (final / COMPLETE).exists():  # built by another process while we waited
                return final
            tmp = final.parent / f"{key}.tmp-{os.getpid()}"
            shutil.rmtree(tmp, ignore_errors=True)
            shutil.rmtree(final, ignore_errors=True)  # an incomplete leftover
            tmp.mkdir()
            try:
                facts = build(tmp)
                (tmp / COMPLETE).write_text(json.dumps({"spec": spec, "hash": key, "facts": facts}, indent=2, default=str))
                os.rename(tmp, final)
            finally:
                shutil.rmtree(tmp, ignore_errors=True)
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)
    return final


def artifact_facts(path: str | Path) -> dict:
    return json.loads((Path(path) / COMPLETE).read_text())
