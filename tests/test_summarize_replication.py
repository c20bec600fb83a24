"""experiments/summarize_replication.py: the confirmatory report reads the primary tables as written, refuses one
judged by another pre-registration or missing part of the family, and counts as the pre-registration says."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pandas as pd
import pytest

from selfcorrect.analysis import verdicts

ROOT = Path(__file__).resolve().parents[1]
spec = importlib.util.spec_from_file_location("summarize_replication", ROOT / "experiments" / "summarize_replication.py")
sr = importlib.util.module_from_spec(spec)
spec.loader.exec_module(sr)


def write(sweep: Path, testbed: str, seeds: range, verdict_of: dict[str, str], prereg=verdicts.CONFIRMATORY) -> Path:
    rows = []
    for i, (_, b, _) in enumerate(verdicts.PRIMARY):
        rows.append({"comparison": f"score − {b}", "b": b, "diff": 0.01 * (i - 3), "lo": 0.01 * (i - 5), "hi": 0.01 * (i - 1),
                     "p_holm": 0.5, "tost_p": 0.01 if prereg.predictions[testbed][b] == 0 else float("nan"),
                     "seeds": str(tuple(seeds)), "prediction": prereg.predictions[testbed][b],
                     "verdict": verdict_of.get(b, "not decided")})
    (sweep / "figures").mkdir(parents=True)
    pd.DataFrame(rows).to_csv(sweep / "figures" / "primary.csv", index=False)
    return sweep


def test_the_report_counts_replications_by_the_preregistered_rule(tmp_path, capsys):
    tb = "answer_first"
    v = {"base": "holds", "score_no_stage1": "equivalent within ±2 points", "score_no_shaping": "no difference detected",
         "star_plus": "does not hold (the opposite)"}
    conf = write(tmp_path / "conf", tb, range(10, 20), v)
    expl = write(tmp_path / "expl", tb, range(0, 10), {}, prereg=verdicts.TEN_SEED_SWEEP)
    assert sr.main(["--testbed", tb, "--exploratory", str(expl), "--confirmatory", str(conf)]) == 0
    out = capsys.readouterr().out
    assert "Of 8 predictions: 2 replicated, 4 not decided, 1 no difference detected, 1 does not hold." in out
    assert out.count("| yes |") == 2


def test_a_table_of_another_preregistration_seeds_or_a_partial_family_is_refused(tmp_path):
    tb = "arithmetic"
    expl = write(tmp_path / "expl", tb, range(0, 10), {}, prereg=verdicts.TEN_SEED_SWEEP)
    with pytest.raises(SystemExit, match="predictions differ"):  # the exploratory table as the confirmatory one
        sr.main(["--testbed", tb, "--exploratory", str(expl), "--confirmatory", str(expl)])
    wrong_seeds = write(tmp_path / "seeds", tb, range(5, 15), {})
    with pytest.raises(SystemExit, match="are not all of 10-19"):
        sr.main(["--testbed", tb, "--exploratory", str(expl), "--confirmatory", str(wrong_seeds)])
    partial = write(tmp_path / "partial", tb, range(10, 20), {})
    t = pd.read_csv(partial / "figures" / "primary.csv")
    t[t["b"] != "base"].to_csv(partial / "figures" / "primary.csv", index=False)
    with pytest.raises(SystemExit, match="lacks comparisons"):
        sr.main(["--testbed", tb, "--exploratory", str(expl), "--confirmatory", str(partial)])
    with pytest.raises(SystemExit, match="does not exist"):
        sr.main(["--testbed", tb, "--exploratory", str(expl), "--confirmatory", str(tmp_path / "none")])
