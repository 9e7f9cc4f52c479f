"""The rendered book: builds offline with warnings as errors; launch links point at tracked notebooks."""
import re
import subprocess
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def tracked_files() -> set[str]:
    return set(subprocess.run(["git", "ls-files"], cwd=REPO, capture_output=True, text=True, check=True).stdout.split())


def test_every_toc_chapter_is_built(html):
    toc = (REPO / "_toc.yml").read_text()
    for entry in re.findall(r"file:\s*(\S+)", toc):
        assert (html / f"{entry}.html").exists(), entry
    assert (html / "book" / "intro.html").exists() and (html / "searchindex.js").exists()


def test_launch_links_point_at_tracked_notebooks(html):
    tracked = tracked_files()
    pages = sorted(html.glob("book/[0-9][0-9]_*.html"))
    assert pages, "no chapter pages built"
    for page in pages:
        text = page.read_text()
        colab = re.findall(r'href="https://colab\.research\.google\.com/github/[^/]+/[^/]+/blob/[^/]+/([^"]+)"', text)
        binder = re.findall(r'href="https://mybinder\.org/v2/gh/[^"]*?urlpath=tree/([^"&]+)"', text)
        assert colab, f"{page.name}: no Colab button"
        assert binder, f"{page.name}: no Binder button"
        for path in colab + binder:
            assert path in tracked, f"{page.name}: launch link to {path}, which is not a tracked file"
            assert path.endswith(".ipynb")


def test_no_widget_text_or_tracebacks_in_pages(html):
    for page in html.rglob("*.html"):
        text = page.read_text(errors="replace")
        assert "HBox(" not in text, page
        assert "Traceback (most recent call last)" not in text, page


# --------------------------------------------------------------------------- setup and the run records
def test_setup_turns_recording_on_for_a_chapter_and_off_without_one(tmp_path, capsys):
    import pytest

    from normlab import book, records

    try:
        book.setup(0, "cpu", chapter="07_normalization_zoo", results_dir=tmp_path, reuse=True)
        ctx = records.active()
        assert (ctx.chapter, ctx.folder, ctx.reuse, ctx.smoke) == ("07_normalization_zoo", tmp_path, True, False)
        assert "REUSE = True: every run is loaded from its record" in capsys.readouterr().out
        book.setup(0, "cpu", chapter="07_normalization_zoo", results_dir=tmp_path, smoke=True)
        assert not records.active().reuse and records.active().smoke
        assert "runs are recorded in" in capsys.readouterr().out
        book.setup(0, "cpu")  # the old signature: nothing recorded
        assert records.active() is None
        with pytest.raises(ValueError, match="reuse= and results_dir= need chapter="):
            book.setup(0, "cpu", reuse=True)
        with pytest.raises(ValueError, match="results_dir is required with chapter="):
            book.setup(0, "cpu", chapter="07_normalization_zoo")
        with pytest.raises(ValueError, match="reuse must be True or False, got 'yes'"):
            book.setup(0, "cpu", chapter="07_normalization_zoo", results_dir=tmp_path, reuse="yes")
    finally:
        records.stop()


def test_percent_and_points_are_written_as_the_book_writes_them():
    from normlab.book import fmt_pct, fmt_points
    assert fmt_pct(0.72689) == "72.69 %" and fmt_pct(0.5, 1) == "50.0 %" and fmt_pct(None) == "n/a"
    assert fmt_points(-0.0051) == "0.51 points" == fmt_points(0.0051) and fmt_points(0.0123, 1) == "1.2 points"
    from normlab.book import fmt_vs
    assert fmt_vs(0.0074) == "0.74 points above" and fmt_vs(-0.0128) == "1.28 points below"
    assert fmt_vs(0.00004) == "equal to" and fmt_vs(0.004, 1) == "0.4 points above"


def test_close_compares_the_largest_difference_with_the_references_largest_value():
    import torch
    from normlab import book
    ref = torch.tensor([100.0, -1.0, 0.0])
    assert book.close(ref + torch.tensor([0.0, 0.0009, 0.0]), ref, tol=1e-5)  # 0.0009 <= 1e-5 * 100
    assert not book.close(ref + torch.tensor([0.0, 0.0011, 0.0]), ref, tol=1e-5)
    assert not book.close(ref, torch.zeros(3)), "against an all-zero reference only equality is close"
    assert book.close(torch.zeros(3), torch.zeros(3))
