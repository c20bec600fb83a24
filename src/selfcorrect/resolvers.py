"""The configuration's own OmegaConf resolvers (`${sc.*}`), registered when the package is imported,
so that every process that composes `conf/` (a run, `make sweep`'s planner, a test) resolves them.

- `${sc.unique:}`: one token per process (pid + random), cached, so that Hydra copies the resolved value into
  every job of a sweep, including jobs that launchers (joblib, submitit) run in other processes or hosts.
- `${sc.add:a,b}`: a + b as integers (the experiment sweeps' seeds: `range(${first_seed},${sc.add:${first_seed},${seeds}})`).
"""

from __future__ import annotations

import os
import uuid

from omegaconf import OmegaConf

_UNIQUE = f"{os.getpid()}{uuid.uuid4().hex[:4]}"


def _add(a, b) -> int:
    try:
        return int(a) + int(b)
    except (TypeError, ValueError):
        raise ValueError(f"${{sc.add:...}} adds integers, got {a!r} and {b!r}") from None


OmegaConf.register_new_resolver("sc.unique", lambda: _UNIQUE, replace=True, use_cache=True)
OmegaConf.register_new_resolver("sc.add", _add, replace=True)
