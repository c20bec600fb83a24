"""Run records on disk: JSON and JSONL files written atomically, read back, and nested metrics
flattened to `a/b` keys.

Every file a run leaves (metrics.json, run.json, generations.jsonl, probe_*.jsonl, the candidate
index, the scaling samples) is written here: to a temporary file beside the target, then
`os.replace`d over it, so a reader (a resumed run, the sweep loader, the ETA) sees either the old
file or the new one, never half of one.
"""

from __future__ import annotations

import json
import math
import os
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from pathlib import Path


def plain(value):
    """`value` as plain dicts, lists and scalars, recursively (any mapping or sequence, e.g. a block of the
    composed config, whose interpolations resolve as it is read): what cache keys and JSON records hash."""
    if isinstance(value, Mapping):
        return {k: plain(v) for k, v in value.items()}
    if isinstance(value, Sequence) and not isinstance(value, (str, bytes)):
        return [plain(v) for v in value]
    return value


@contextmanager
def atomic_path(path: str | Path) -> Iterator[Path]:
    """A temporary path beside `path` to write to; moved over `path` when the block ends without
    an exception (removed otherwise)."""
    path = Path(path)
    tmp = path.with_name(path.name + ".tmp")
    try:
        yield tmp
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def write_json(path: str | Path, obj, indent: int | None = 2) -> None:
    """`obj` as JSON (values JSON cannot hold written as their `str`)."""
    with atomic_path(path) as tmp:
        tmp.write_text(json.dumps(obj, indent=indent, default=str))


def write_jsonl(path: str | Path, rows: Iterable[Mapping]) -> None:
    """One JSON object per line."""
    with atomic_path(path) as tmp, open(tmp, "w") as f:
        for r in rows:
            f.write(json.dumps(r) + "\n")


def write_lines(path: str | Path, lines: Iterable[str]) -> None:
    """Lines of text, each ended by a newline (already-serialised JSONL rows)."""
    with atomic_path(path) as tmp:
        tmp.write_text("".join(line + "\n" for line in lines))


def append_jsonl(path: str | Path, row: Mapping) -> None:
    """Append one row (a log that grows during a run; `trim`med on resume)."""
    with open(path, "a") as f:
        f.write(json.dumps(row) + "\n")


def read_json(path: str | Path):
    return json.loads(Path(path).read_text())


def read_jsonl(path: str | Path) -> list[dict]:
    """The rows of a JSONL file (blank lines skipped)."""
    with open(path) as f:
        return [json.loads(line) for line in f if line.strip()]


def flat_keys(d: Mapping, prefix: str = "", leaf: Callable[[str], bool] = lambda key: False) -> dict:
    """{'a': {'b': 1}} → {'a/b': 1}: every value that is not a mapping, and every mapping whose key
    `leaf(key)` accepts, under its path."""
    out = {}
    for k, v in d.items():
        if isinstance(v, Mapping) and not leaf(k):
            out.update(flat_keys(v, f"{prefix}{k}/", leaf))
        else:
            out[f"{prefix}{k}"] = v
    return out


def scalars(d: Mapping, prefix: str = "") -> dict[str, float]:
    """The numbers of a nested mapping under `a/b` keys (booleans as 0/1); lists, strings, None
    and NaN are left out (they go to files)."""
    out = {}
    for k, v in flat_keys(d, prefix).items():
        if isinstance(v, bool):
            out[k] = float(v)
        elif isinstance(v, (int, float)) and not (isinstance(v, float) and math.isnan(v)):
            out[k] = v
    return out
