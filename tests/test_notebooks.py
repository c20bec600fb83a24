"""Every notebook executes, top to bottom, on the fixture sweep (a broken notebook fails CI)."""

from pathlib import Path

import nbformat
import pytest
from nbclient import NotebookClient

from fixture_sweep import make_sweep

NOTEBOOKS = sorted((Path(__file__).resolve().parents[1] / "notebooks").glob("*.ipynb"))


@pytest.fixture(scope="module")
def fixture_sweep(tmp_path_factory) -> Path:
    return make_sweep(tmp_path_factory.mktemp("nb"))


def test_there_is_a_notebook_per_figure_group():
    assert [p.stem[:2] for p in NOTEBOOKS] == ["01", "02", "03", "04", "05", "06"]


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_notebook_executes_and_draws(path, fixture_sweep, monkeypatch):
    monkeypatch.setenv("SELFCORRECT_SWEEP", str(fixture_sweep))  # the kernel inherits the environment
    nb = nbformat.read(path, as_version=4)
    # "python3" is ipykernel's own kernel; jupyter_client launches it with this interpreter
    NotebookClient(nb, timeout=120, kernel_name="python3", resources={"metadata": {"path": str(path.parent)}}).execute()
    outputs = [o for c in nb.cells if c.cell_type == "code" for o in c.get("outputs", [])]
    assert not [o for o in outputs if o.get("output_type") == "error"]
    text = "".join(o.get("text", "") for o in outputs)
    assert str(fixture_sweep) in text and "[skipped" not in text  # the fixture has every arm a figure needs
    assert any("image/png" in o.get("data", {}) for o in outputs)
