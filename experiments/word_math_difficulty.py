"""Acc@t1 of SmolLM2-135M-Instruct on word_math VALIDATION problems, for the candidate difficulty
settings of experiments/word_math_difficulty.md (the rule that picks one is written there, before
any measurement).

    .venv/bin/python experiments/word_math_difficulty.py B            # one setting; prints a JSON line
    .venv/bin/python experiments/word_math_difficulty.py B A --n 128

Greedy first attempts only, fp32, batch 64, max_new_tokens from the task config
(`eval.max_new_tokens` of conf/task/word_math.yaml), through `Policy.attempt` on the converted
GGUF (`selfcorrect.models.loading.load_base_policy`, cache .cache/selfcorrect or $SELFCORRECT_CACHE_DIR),
checked by the task's own verifier. Only the val split is drawn. Each setting's attempts go to
outputs/word_math_difficulty/<name>.jsonl.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import time
from collections import Counter
from pathlib import Path

import torch
from hydra import compose, initialize_config_dir
from omegaconf import open_dict

from selfcorrect.models.loading import load_base_policy
from selfcorrect.models.policy import Sampling
from selfcorrect.paths import CONF_DIR
from selfcorrect.tasks import make_task
from selfcorrect.tasks.word_math import WORKED_EXAMPLE

ROOT = Path(__file__).resolve().parents[1]

# the candidates of experiments/word_math_difficulty.md (Hydra overrides of the task group)
SETTINGS = {
    "B": ["task.n_steps=1", "task.operations=[add,sub]", "task.max_number=99", "+task.max_operand=9",
          "task.split_fractions={train:0.7,val:0.1,test:0.2}"],
    "A": ["task.n_steps=1", "task.operations=[add,sub]", "task.max_number=99", "+task.max_operand=5",
          "task.split_fractions={train:0.5,val:0.15,test:0.35}"],
    "A2": ["task.n_steps=1", "task.operations=[add]", "task.max_number=99", "+task.max_operand=9",
           "task.split_fractions={train:0.5,val:0.15,test:0.35}"],
    "C": ["task.n_steps=1", "task.operations=[add,sub]", "task.max_number=99", "+task.max_operand=20",
          "task.split_fractions={train:0.7,val:0.1,test:0.2}"],
    # round two: the same knobs with the worked example in the user prompt (WITH_EXAMPLE)
    "E": ["task.n_steps=1", "task.operations=[add]", "task.max_number=99", "+task.max_operand=9",
          "task.split_fractions={train:0.5,val:0.15,test:0.35}"],
    "ES": ["task.n_steps=1", "task.operations=[add,sub]", "task.max_number=40", "+task.max_operand=9",
           "task.split_fractions={train:0.4,val:0.2,test:0.4}"],
    "EM": ["task.n_steps=1", "task.operations=[add,sub]", "task.max_number=60", "+task.max_operand=9",
           "task.split_fractions={train:0.5,val:0.15,test:0.35}"],
    "EB": ["task.n_steps=1", "task.operations=[add,sub]", "task.max_number=99", "+task.max_operand=9",
           "task.split_fractions={train:0.7,val:0.1,test:0.2}"],
}
WITH_EXAMPLE = {"E", "ES", "EM", "EB"}  # the others have none, whatever the config default is


def compose_setting(name: str):
    overrides = list(SETTINGS[name])
    with initialize_config_dir(config_dir=CONF_DIR, version_base="1.3"):
        cfg = compose("config", overrides=["model=smollm2_135m", "task=word_math"])
    if "max_operand" in cfg.task:  # the task config already has the knob: set it, do not add it
        overrides = [o.lstrip("+") for o in overrides]
    with initialize_config_dir(config_dir=CONF_DIR, version_base="1.3"):
        cfg = compose("config", overrides=["model=smollm2_135m", "task=word_math", "model.device=cpu",
                                           "model.dtype=float32", "model.batch_size=64", *overrides])
    with open_dict(cfg):  # set here, not as an override: the text has newlines and quotes
        cfg.task.worked_example = WORKED_EXAMPLE if name in WITH_EXAMPLE else ""
    return cfg


def measure(name: str, n_max: int, seed: int, cache: str) -> dict:
    cfg = compose_setting(name)
    task = make_task(cfg.task)
    n_skeletons = {s: len(task.skeletons(s)) for s in ("train", "val", "test")}
    n = min(n_max, n_skeletons["val"])
    problems = task.problems("val", n, seed=seed)
    assert len({p.id.split("#")[0] for p in problems}) == n, "validation facts repeat"
    policy = load_base_policy(cfg.model, task, cache)
    max_new = int(cfg.eval.max_new_tokens)
    t0 = time.time()
    turns = policy.attempt(problems, [()] * n, Sampling(0.0, max_new), seed=seed)
    wall = time.time() - t0
    verdicts = [task.verify(p, t.text) for p, t in zip(problems, turns)]
    correct = sum(v.correct for v in verdicts)
    p = correct / n
    out_dir = ROOT / "outputs" / "word_math_difficulty"
    out_dir.mkdir(parents=True, exist_ok=True)
    with open(out_dir / f"{name}.jsonl", "w") as f:
        for prob, t, v in zip(problems, turns, verdicts):
            f.write(json.dumps({"id": prob.id, "answer": prob.answer, "y1": t.text, "correct": v.correct,
                                "well_formed": v.well_formed, "error": v.error_type, "tokens": len(t.completion_ids)}) + "\n")
    tokens = sum(len(t.completion_ids) for t in turns)
    return {
        "setting": name, "overrides": SETTINGS[name], "worked_example": name in WITH_EXAMPLE, "skeletons": n_skeletons, "split": "val", "seed": seed, "n": n,
        "correct": correct, "acc_t1": round(p, 4), "se": round(math.sqrt(p * (1 - p) / n), 4),
        "well_formed": round(sum(v.well_formed for v in verdicts) / n, 4),
        "hit_max_new_tokens": sum(len(t.completion_ids) >= max_new for t in turns),
        "errors": dict(Counter(v.error_kind for v in verdicts if not v.correct).most_common()),
        "max_new_tokens": max_new, "generated_tokens": tokens, "wall_s": round(wall, 1),
        "tokens_per_s": round(tokens / wall, 1), "machine": f"{platform.processor() or platform.machine()}, "
        f"{os.cpu_count()} cores shared, torch threads {torch.get_num_threads()}, CPU fp32",
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("settings", nargs="+", choices=sorted(SETTINGS))
    ap.add_argument("--n", type=int, default=128, help="validation problems per setting (at most the val skeletons)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--threads", type=int, default=1)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    cache = os.environ.get("SELFCORRECT_CACHE_DIR", str(ROOT / ".cache/selfcorrect"))
    for name in args.settings:
        print(json.dumps(measure(name, args.n, args.seed, cache)), flush=True)


if __name__ == "__main__":
    main()
