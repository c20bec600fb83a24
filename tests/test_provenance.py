"""provenance: a run's code commit and dirty flag follow the checkout."""

import subprocess

import pytest

from selfcorrect.runtime import provenance


@pytest.fixture
def uncached():
    provenance.provenance.cache_clear()
    yield
    provenance.provenance.cache_clear()  # the other tests see this checkout's provenance again


def test_dirty_flag_follows_uncommitted_code(tmp_path, monkeypatch, uncached):
    repo = tmp_path / "repo"
    (repo / "src").mkdir(parents=True)
    (repo / "src" / "m.py").write_text("x = 1\n")
    (repo / "notes.md").write_text("n\n")
    git = ["git", "-C", str(repo), "-c", "user.name=t", "-c", "user.email=t@t"]
    subprocess.run([*git, "init", "-q"], check=True)
    subprocess.run([*git, "add", "."], check=True)
    subprocess.run([*git, "commit", "-qm", "c"], check=True)
    monkeypatch.setattr(provenance, "REPO", repo)

    def fresh():
        provenance.provenance.cache_clear()
        return provenance.provenance()

    clean = fresh()
    assert len(clean["commit"]) == 40 and clean["dirty"] is False and clean["dirty_paths"] == []
    (repo / "notes.md").write_text("a doc edit does not change a number\n")
    assert fresh()["dirty"] is False
    (repo / "src" / "m.py").write_text("x = 2\n")
    dirty = fresh()
    assert dirty["dirty"] is True and dirty["dirty_paths"] == ["src/m.py"] and dirty["commit"] == clean["commit"]
    monkeypatch.setattr(provenance, "REPO", tmp_path / "not-a-checkout")
    assert fresh()["commit"] is None and fresh()["dirty"] is None
