"""Count a run's generation work per stage (the measured input of README.md's GPU estimate).

    PROFILE_OUT=/tmp/prof .venv/bin/python experiments/device/profile_counts.py -m <the usual selfcorrect overrides>

Runs `python -m selfcorrect` in this process (the basic launcher: jobs run here, one after the
other) with `Policy.generate` and `Policy.token_logprobs` wrapped, and writes, per job, a JSON list
of calls: the stage (selfcorrect.runtime.timing) that made it, the prompts it got, the generation batch, the
decode steps each batch took (its longest completion) and the seconds it took. On a GPU a decode
step of this 135M model costs about the same at any batch up to the generation batch (it is
launch-bound), so decode steps, not tokens, are what the estimate counts.
"""

from __future__ import annotations

import json
import os
import sys
import time
from pathlib import Path

from selfcorrect.models import policy as policy_mod
from selfcorrect.runtime import timing

CALLS: list[dict] = []
_generate = policy_mod.Policy.generate
_logprobs = policy_mod.Policy.token_logprobs


def _stage() -> str | None:
    return timing._active.current if timing._active is not None else None  # noqa: SLF001


def generate(self, prompts, sampling, seed=0):
    t0 = time.perf_counter()
    out = _generate(self, prompts, sampling, seed)
    order = sorted(range(len(prompts)), key=lambda i: len(prompts[i]))
    bs = self.batch_size
    steps = [max((len(out[i]) for i in order[s:s + bs]), default=0) for s in range(0, len(order), bs)]
    CALLS.append({"kind": "generate", "stage": _stage(), "n": len(prompts), "batch": bs, "max_new": sampling.max_new_tokens,
                  "greedy": sampling.greedy, "steps": steps, "s": round(time.perf_counter() - t0, 3)})
    return out


def token_logprobs(self, prompts, completions, *args, **kwargs):
    t0 = time.perf_counter()
    out = _logprobs(self, prompts, completions, *args, **kwargs)
    CALLS.append({"kind": "logprobs", "stage": _stage(), "n": len(prompts),
                  "tokens": int(sum(len(p) + len(c) for p, c in zip(prompts, completions))), "s": round(time.perf_counter() - t0, 3)})
    return out


policy_mod.Policy.generate = generate
policy_mod.Policy.token_logprobs = token_logprobs

_run = None


def _wrap_run():
    """Write CALLS per job: selfcorrect.run.run is called once per job by the Hydra task function."""
    from selfcorrect import run as run_mod

    global _run
    _run = run_mod.run

    def run(cfg, *args, **kwargs):
        CALLS.clear()
        t0 = time.perf_counter()
        try:
            return _run(cfg, *args, **kwargs)
        finally:
            out = Path(os.environ.get("PROFILE_OUT", "profile_counts"))
            out.mkdir(parents=True, exist_ok=True)
            name = f"{cfg.arm.name}_s{cfg.seed}.json"
            (out / name).write_text(json.dumps({"arm": cfg.arm.name, "seed": cfg.seed, "wall_s": round(time.perf_counter() - t0, 2),
                                                "calls": CALLS}, indent=0))

    run_mod.run = run
    return run_mod


if __name__ == "__main__":
    run_mod = _wrap_run()
    sys.argv[0] = "selfcorrect"
    run_mod.main()
