"""The chapters as notebooks: each in sync with its text source (chapters/NN_name.md), committed
outputs from full runs, goldens current and clean. (nbval re-executes the goldens in tests/goldens/
in this environment and compares the checked cells: see pyproject.toml and tests/README.md;
test_reader_profile.py runs every chapter as a reader does.)"""
import json
import os
import shutil
import sys
from pathlib import Path

import pytest
import yaml

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "tools"))
import notebooks  # noqa: E402

CHAPTERS = notebooks.chapters()


def test_there_are_chapters_and_each_has_a_golden():
    assert CHAPTERS, "no chapter notebooks found in book/"
    assert notebooks.stale_goldens() == []


# --------------------------------------------------------------------------- one source per chapter
@pytest.mark.parametrize("nb", CHAPTERS, ids=lambda p: p.stem)
def test_notebook_and_text_source_are_in_sync(nb):
    """chapters/NN_name.md, read by jupytext, has the notebook's cells: type, source and tags."""
    assert notebooks.out_of_sync(nb) == [], \
        f"{nb.name} and its text source differ: python tools/notebooks.py sync {nb.stem[:2]} (tools/CHAPTERS.md)"


def test_jupytext_pairs_each_chapter_both_ways_outside_the_book_build():
    from jupytext.config import load_jupytext_config
    from jupytext.paired_paths import paired_paths

    assert sorted(p.stem for p in notebooks.TEXT.glob("*.md")) == [nb.stem for nb in CHAPTERS]
    for nb in CHAPTERS:
        md = notebooks.text_source(nb)
        for path, fmt in ((nb, "ipynb"), (md, notebooks.TEXT_FORMAT)):
            formats = load_jupytext_config(str(path)).default_formats(str(path))
            assert [Path(p) for p, _ in paired_paths(str(path), fmt, formats)] == [nb, md], path
    for unpaired in sorted(notebooks.GOLDENS.glob("*.ipynb"))[:1] + [REPO / "book" / "intro.md"]:
        assert load_jupytext_config(str(unpaired)).default_formats(str(unpaired)) is None, unpaired
    # jupyter-book builds the toc's extension-less entries from book/ and never reads chapters/
    config = yaml.safe_load((REPO / "_config.yml").read_text())
    assert config["only_build_toc_files"] and notebooks.TEXT.name in config["exclude_patterns"]


def _pair(tmp_path, chapter="01"):
    nb = notebooks.chapters([chapter])[0]
    (tmp_path / "book").mkdir()
    (tmp_path / "chapters").mkdir()
    pair = shutil.copy(nb, tmp_path / "book" / nb.name), shutil.copy(notebooks.text_source(nb), tmp_path / "chapters")
    return map(Path, pair)


def _newer(path):
    t = path.stat().st_mtime + 10
    os.utime(path, (t, t))


def test_prose_edits_sync_into_the_notebook_and_keep_its_outputs(tmp_path):
    nb_path, md_path = _pair(tmp_path)
    before = json.loads(nb_path.read_text())
    sha = notebooks.source_sha(nb_path)
    prose = "This chapter is the baseline everything else"
    md_path.write_text(md_path.read_text().replace(prose, "This chapter is the yardstick everything else"))
    _newer(md_path)
    assert notebooks.out_of_sync(nb_path, md_path) == ["cell 0: the markdown cell differs"]
    assert "prose only, outputs kept" in notebooks.sync(nb_path, md_path)
    after = json.loads(nb_path.read_text())
    assert notebooks.out_of_sync(nb_path, md_path) == []
    assert "yardstick" in "".join(after["cells"][0]["source"])
    assert [(c.get("id"), c["metadata"], c.get("outputs")) for c in after["cells"]] == \
        [(c.get("id"), c["metadata"], c.get("outputs")) for c in before["cells"]]
    assert after["metadata"] == before["metadata"], "notebook metadata (kernelspec, Colab's GPU) must survive a sync"
    assert after["metadata"]["accelerator"] == "GPU" and after["metadata"]["kernelspec"]["name"] == "python3"
    assert notebooks.source_sha(nb_path) == sha, "a prose edit must not make the golden stale"
    assert notebooks.sync(nb_path, md_path).endswith("in sync")

    md_path.write_text(md_path.read_text().replace("SMOKE = False ", "SMOKE = False#"))
    _newer(md_path)
    assert "code changed" in notebooks.sync(nb_path, md_path)
    assert notebooks.source_sha(nb_path) != sha


def test_a_new_chapter_starts_as_its_text_source(tmp_path):
    nb_path, md_path = _pair(tmp_path, "09")
    nb_path.unlink()
    assert "missing" in notebooks.out_of_sync(nb_path, md_path)[0]
    notebooks.sync(nb_path, md_path)
    assert notebooks.out_of_sync(nb_path, md_path) == []
    meta = json.loads(nb_path.read_text())["metadata"]
    assert meta["kernelspec"]["name"] == "python3" and meta["accelerator"] == "GPU"
    assert "text_representation" not in meta.get("jupytext", {})


def test_sync_never_silently_drops_an_edit_made_in_the_notebook(tmp_path):
    nb_path, md_path = _pair(tmp_path)
    nb = json.loads(nb_path.read_text())
    nb["cells"][0]["source"] = ["# Edited in Jupyter\n"]
    nb_path.write_text(json.dumps(nb))
    _newer(nb_path)
    with pytest.raises(SystemExit, match="edited as a notebook"):
        notebooks.sync(nb_path, md_path)
    assert notebooks.sync(nb_path, md_path, force=True)
    assert notebooks.out_of_sync(nb_path, md_path) == []


@pytest.mark.parametrize("nb", CHAPTERS + sorted(notebooks.GOLDENS.glob("*.ipynb")), ids=lambda p: p.parent.name + "/" + p.stem)
def test_committed_notebook_is_clean(nb):
    assert notebooks.problems(nb) == []


@pytest.mark.parametrize("nb", CHAPTERS, ids=lambda p: p.stem)
def test_committed_outputs_come_from_a_full_run(nb):
    """The book shows the seed's full budget: committed outputs must not be a smoke run."""
    meta = json.loads(nb.read_text())["metadata"].get("papermill", {})
    assert meta.get("parameters", {}).get("SMOKE", False) is False, f"{nb.name} was rendered with SMOKE=True"
    if not notebooks.writes_results(nb):
        return
    results = REPO / "book" / "results" / f"{nb.stem}.json"
    assert results.exists(), f"{results} missing: render the chapter (python tools/notebooks.py render {nb.stem[:2]})"
    assert json.loads(results.read_text())["smoke"] is False


@pytest.mark.parametrize("golden", sorted(notebooks.GOLDENS.glob("*.ipynb")), ids=lambda p: p.stem)
def test_goldens_carry_no_figures_that_nothing_compares(golden):
    assert notebooks.golden_images(golden) == []


def test_each_golden_reads_and_writes_results_of_its_own():
    """A golden reads another chapter's results only from its own folder (empty) or the committed
    ones, so no golden depends on which goldens ran before it."""
    for golden in sorted(notebooks.GOLDENS.glob("*.ipynb")):
        params = json.loads(golden.read_text())["metadata"]["papermill"]["parameters"]
        assert params.get("RESULTS_DIR") == f"{notebooks.GOLDEN_RESULTS}/{golden.stem}", golden.name


# --------------------------------------------------------------------------- nbval's approximate cells
import nbval_approx  # noqa: E402

TABLE = """     epoch train_loss  train_acc  test_loss   test_acc         lr
         0     2.3207     0.0950     2.3145     0.1100     0.0100
         1     2.2890     0.1150     2.3144     0.1100     0.0001
"""


def test_approx_cells_pass_host_noise_and_fail_real_changes():
    same = nbval_approx.same_within_tolerance
    assert same(TABLE, TABLE)
    # what another host prints: a last digit across a rounding boundary, a column one digit wider,
    # one test image's prediction flipped
    assert same(TABLE.replace("2.3145", "2.3146").replace("0.1100     0.0001", "0.1200     0.0001"), TABLE)
    assert same("  loss  10.0000\n", "  loss   9.9999\n")
    # a real change: a loss off by 1 %, an accuracy off by three test images, a word, a line
    assert not same(TABLE.replace("2.3207", "2.3439"), TABLE)
    assert not same(TABLE.replace("0.1150", "0.1450"), TABLE)
    assert not same(TABLE.replace("epoch", "epochs"), TABLE)
    assert not same(TABLE + "         2     2.2000     0.1150     2.3144     0.1100     0.0001\n", TABLE)
    # outside a table no column is an accuracy: a flip-sized change fails
    assert not same("test accuracy 0.170\n", "test accuracy 0.160\n")
    assert same("loss 64432.29\n", "loss 64432.25\n") and not same("loss 64532.25\n", "loss 64432.25\n")


def test_snapping_keeps_nbval_comparison_exact_elsewhere():
    ref = [{"output_type": "stream", "name": "stdout", "text": TABLE}]
    noisy = [{"output_type": "stream", "name": "stdout", "text": TABLE.replace("2.3145", "2.3146")}]
    wrong = [{"output_type": "stream", "name": "stdout", "text": TABLE.replace("2.3145", "2.5145")}]
    assert nbval_approx.snap_to_reference(noisy, ref) == ref
    assert nbval_approx.snap_to_reference(wrong, ref) == wrong
    assert nbval_approx.is_approx("# NBVAL_CHECK_OUTPUT\n# NBVAL_APPROX  (why)\nprint(1)")
    assert not nbval_approx.is_approx("# NBVAL_CHECK_OUTPUT\nprint(1)")
