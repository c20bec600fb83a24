"""The arms, as their YAML files declare them: `conf/arm/<name>.yaml` is an arm's only declaration.

Each arm file (with the files its `defaults` pull in, `offline/common`, `rl/common`, another arm)
names the arm's training function (`train: module:function`), its family (`none`, `offline`,
`rl`), its display name, its place in tables (`order`) and where its training data comes from
(`data`, a key of `DATA_SOURCES`). This module reads those keys from the
YAML alone (no Hydra, no torch), so the runner, the results layer, the figures and the tests share
one list: adding an arm is adding one YAML file.
"""

from __future__ import annotations

import functools
import importlib
from dataclasses import dataclass
from pathlib import Path

import yaml

from selfcorrect.paths import CONF_DIR

FAMILIES = ("none", "offline", "rl")
# where an arm's training data comes from (its `data` key), for the on-policy vs off-policy table
DATA_SOURCES = {
    "none": "no training",
    "teacher": "teacher-written first attempts",
    "base": "sampled once from the base, filtered",
    "own_rounds": "own samples, refreshed each round, filtered",
    "own_online": "own on-policy samples, every step",
}
ARM_DIR = Path(CONF_DIR) / "arm"


@dataclass(frozen=True)
class Arm:
    name: str
    train: str       # "module:function"
    family: str      # none | offline | rl
    display: str
    order: int
    data: str        # where its training data comes from: a key of DATA_SOURCES

    def trainer(self):
        module, attr = self.train.split(":")
        return getattr(importlib.import_module(module), attr)


def _load(path: Path, seen: tuple[Path, ...] = ()) -> dict:
    """The file's keys over those of its `defaults` (`x@_here_` entries, in order, then `_self_`)."""
    if path in seen:
        raise ValueError(f"arm config {path} includes itself through its defaults ({' → '.join(map(str, seen))})")
    raw = yaml.safe_load(path.read_text()) or {}
    merged: dict = {}
    for entry in raw.pop("defaults", []) or []:
        if entry == "_self_":
            continue
        if not isinstance(entry, str) or not entry.endswith("@_here_"):
            raise ValueError(f"{path}: defaults entry {entry!r} is not of the form '<config>@_here_'")
        merged.update(_load(ARM_DIR / f"{entry[: -len('@_here_')]}.yaml", (*seen, path)))
    merged.update(raw)
    return merged


@functools.lru_cache(maxsize=None)
def arms() -> dict[str, Arm]:
    """Every arm of `conf/arm/` (the shared `offline/`, `rl/` files are not arms), in table order."""
    out = []
    for path in sorted(ARM_DIR.glob("*.yaml")):
        keys = _load(path)
        missing = [k for k in ("name", "train", "family", "display", "order", "data") if k not in keys]
        if missing:
            raise ValueError(f"arm config {path} lacks {missing} (an arm names its training function, family, display name, "
                             "order and data source)")
        if keys["name"] != path.stem:
            raise ValueError(f"arm config {path} is named {keys['name']!r}: an arm's name is its file name")
        if keys["family"] not in FAMILIES:
            raise ValueError(f"arm {keys['name']!r}: family must be one of {FAMILIES}, got {keys['family']!r}")
        if keys["data"] not in DATA_SOURCES:
            raise ValueError(f"arm {keys['name']!r}: data must be one of {sorted(DATA_SOURCES)}, got {keys['data']!r}")
        out.append(Arm(keys["name"], str(keys["train"]), keys["family"], str(keys["display"]), int(keys["order"]), keys["data"]))
    return {a.name: a for a in sorted(out, key=lambda a: (a.order, a.name))}


def arm(name: str) -> Arm:
    known = arms()
    if name not in known:
        raise ValueError(f"unknown arm {name!r}; known arms: {sorted(known)}")
    return known[name]


def of_family(family: str) -> tuple[str, ...]:
    return tuple(a.name for a in arms().values() if a.family == family)
