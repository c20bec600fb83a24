"""experiments/pool_sweeps.py: two sweeps of one testbed on different seeds read as one (links, not copies), and
the refusals that keep a seed from counting twice."""

import importlib.util
import json
from pathlib import Path

import pytest

from selfcorrect.analysis.results import load_sweep

from fixture_sweep import make_sweep

spec = importlib.util.spec_from_file_location("pool_sweeps", Path(__file__).parents[1] / "experiments/pool_sweeps.py")
pool_sweeps = importlib.util.module_from_spec(spec)
spec.loader.exec_module(pool_sweeps)


def test_the_pool_reads_both_sweeps_seeds_and_refuses_a_seed_twice(tmp_path):
    first = make_sweep(tmp_path / "a", runs=[(a, s) for a in ("base", "score") for s in (0, 1)])
    fresh = make_sweep(tmp_path / "b", runs=[(a, s) for a in ("base", "score") for s in (10, 11)])
    made = pool_sweeps.pool(tmp_path / "pool", [first, fresh])
    assert made["runs"] == 8 and [s["runs"] for s in made["pooled_from"]] == [4, 4]
    assert json.loads((tmp_path / "pool" / "pooled_from.json").read_text()) == made
    pooled = load_sweep(tmp_path / "pool", warn=False)
    assert sorted(pooled.runs[pooled.runs["label"] == "score"]["seed"]) == [0, 1, 10, 11]
    one = load_sweep(first, warn=False)
    got = pooled.runs.set_index(["label", "seed"])["delta"]
    assert all(got[(r.label, r.seed)] == r.delta for r in one.runs.itertuples())  # the same records, read through links
    assert all(p.is_symlink() for p in (tmp_path / "pool").iterdir() if p.name != "pooled_from.json")

    with pytest.raises(SystemExit, match="exists"):
        pool_sweeps.pool(tmp_path / "pool", [first, fresh])
    again = make_sweep(tmp_path / "c", runs=[("score", 1)])  # seed 1 of SCoRe is in `first` too
    with pytest.raises(SystemExit, match="count twice"):
        pool_sweeps.pool(tmp_path / "pool2", [first, again])
    assert not (tmp_path / "pool2").exists()
