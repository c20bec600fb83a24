"""Run labels: an arm plus what distinguishes a run from its seed-mates (`sft_teacher[error_model=mixed]`),
their display names and table order (the arm YAMLs' `display` and `order`, via `catalog`; the
teacher dial in each task's own order of its error models)."""

from __future__ import annotations

from itertools import zip_longest

from selfcorrect.tasks import error_model_classes
from selfcorrect.training import catalog

# Display order and names: the arm YAMLs' `order` and `display` (selfcorrect.training.catalog)
ARM_ORDER = tuple(catalog.arms())
ARM_NAMES = {name: arm.display for name, arm in catalog.arms().items()}
# the teacher dial's order: each task's teacher error models in its error model's own order
# (`teacher_models`), interleaved over the registered tasks that have an error model (to the longest list:
# a task with fewer teacher models must not cut the others' short)
ERROR_MODEL_ORDER = tuple(dict.fromkeys(
    m for ms in zip_longest(*(c.teacher_models for c in error_model_classes().values())) for m in ms if m is not None))


def run_label(run_name: str, config: dict) -> str:
    """The arm plus whatever else distinguishes the run from its seed-mates: the sweep's
    override directory name minus `arm` and `seed`, and the teacher's error model."""
    arm = config["arm"]["name"]
    variant: dict[str, str] = {}
    parts = run_name.split(",")
    if all("=" in p for p in parts):
        for p in parts:
            k, v = p.split("=", 1)
            if k.lstrip("+~") not in ("arm", "seed"):
                variant[k.lstrip("+~").split(".")[-1]] = v
    if "error_model" in config["arm"] and "error_model" not in variant:
        variant["error_model"] = str(config["arm"]["error_model"])
    return arm if not variant else f"{arm}[{','.join(f'{k}={v}' for k, v in sorted(variant.items()))}]"


def label_arm(label: str) -> str:
    return label.split("[", 1)[0]


def label_sort_key(label: str) -> tuple:
    arm = label_arm(label)
    rank = ARM_ORDER.index(arm) if arm in ARM_ORDER else len(ARM_ORDER)
    em = next((m for m in ERROR_MODEL_ORDER if f"error_model={m}" in label), None)
    return (rank, ERROR_MODEL_ORDER.index(em) if em else -1, label)


def display_name(label: str) -> str:
    arm = label_arm(label)
    name = ARM_NAMES.get(arm, arm)
    return name if label == arm else f"{name} {label[len(arm):].replace('error_model=', '')}"
