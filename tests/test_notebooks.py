"""The chapters as notebooks: smoke-executed with papermill, goldens current and clean.
(nbval re-executes the goldens in tests/goldens/ and compares the checked cells: see pyproject.toml.)"""
import json
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "tools"))
import notebooks  # noqa: E402

CHAPTERS = notebooks.chapters()


def test_there_are_chapters_and_each_has_a_golden():
    assert CHAPTERS, "no chapter notebooks found in book/"
    assert notebooks.stale_goldens() == []


def writes_results(nb) -> bool:
    """Chapters that train record their numbers with book.Results; the results chapter only reads them."""
    return "book.Results(" in nb.read_text()


@pytest.mark.parametrize("nb", CHAPTERS + sorted(notebooks.GOLDENS.glob("*.ipynb")), ids=lambda p: p.parent.name + "/" + p.stem)
def test_committed_notebook_is_clean(nb):
    assert notebooks.problems(nb) == []


@pytest.mark.parametrize("nb", CHAPTERS, ids=lambda p: p.stem)
def test_committed_outputs_come_from_a_full_run(nb):
    """The book shows the seed's full budget: committed outputs must not be a smoke run."""
    meta = json.loads(nb.read_text())["metadata"].get("papermill", {})
    assert meta.get("parameters", {}).get("SMOKE", False) is False, f"{nb.name} was rendered with SMOKE=True"
    if not writes_results(nb):
        return
    results = REPO / "book" / "results" / f"{nb.stem}.json"
    assert results.exists(), f"{results} missing: render the chapter (python tools/notebooks.py render {nb.stem[:2]})"
    assert json.loads(results.read_text())["smoke"] is False


@pytest.mark.parametrize("nb", CHAPTERS, ids=lambda p: p.stem)
def test_chapter_runs_at_smoke_size(nb, tmp_path):
    out = tmp_path / nb.name
    notebooks.execute(nb, out, {**notebooks.SMOKE_PARAMS, "RESULTS_DIR": str(tmp_path / "results")}, timeout=300)
    if writes_results(nb):
        written = json.loads((tmp_path / "results" / f"{nb.stem}.json").read_text())
        assert written["smoke"] is True and written["rows"]
    notebooks.clean_metadata(out)  # as render does: live widgets become the static note
    assert notebooks.problems(out) == []


def test_colab_cell_installs_normlab_from_the_configured_repository():
    repo_url = next(line.split(":", 1)[1].strip() for line in (REPO / "_config.yml").read_text().splitlines()
                    if line.strip().startswith("url:"))
    for nb in CHAPTERS:
        first_code = next(c for c in json.loads(nb.read_text())["cells"] if c["cell_type"] == "code")
        src = "".join(first_code["source"])
        assert f"git+{repo_url}" in src, f"{nb.name}: the install cell must use {repo_url} (set in _config.yml)"
        assert 'find_spec("normlab") is None' in src, f"{nb.name}: install only when normlab is missing"
        assert "torch" not in src.replace("the torch already installed", ""), f"{nb.name}: never reinstall torch"
        assert 'describe_device("auto")' in src, f"{nb.name}: the first cell reports the device"
