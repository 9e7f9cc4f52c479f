"""The rendered book as readers see it: every page opened in headless Chromium (Debian's package,
driven by Playwright with its executable path; no browser download).

Screenshots of every page (light and dark) go to ``_build/screenshots/`` (or $NORMLAB_SCREENSHOTS).
"""
import functools
import http.server
import os
import re
import shutil
import threading
from pathlib import Path

import pytest

from normlab.repository import repository

REPO = Path(__file__).resolve().parents[1]
CHROMIUM = os.environ.get("NORMLAB_CHROMIUM") or shutil.which("chromium") or "/usr/bin/chromium"
SHOTS = Path(os.environ.get("NORMLAB_SCREENSHOTS") or REPO / "_build" / "screenshots")
# A word from each chapter's text that search must find it by.
SEARCH_WORDS = {"01_fully_connected": "SimpleNet", "05_lenet_mnist": "tairtahar", "06_lrn_vs_batchnorm": "LocalResponseNorm",
                "07_normalization_zoo": "erav1s8", "08_resnet_spec": "programmability"}
FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync"]


def chapter_pages() -> list[str]:
    toc = (REPO / "_toc.yml").read_text()
    return re.findall(r"file:\s*(\S+)", toc)


@pytest.fixture(scope="module")
def site(html):
    """The built book served on localhost (search needs http, not file://)."""
    class Quiet(http.server.SimpleHTTPRequestHandler):
        def log_message(self, *args):  # keep the test log readable
            pass

    handler = functools.partial(Quiet, directory=str(html))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()


@pytest.fixture(scope="module")
def browser():
    if not Path(CHROMIUM).exists():
        pytest.fail(f"no Chromium at {CHROMIUM}: install Debian's package (apt-get install -y chromium), "
                    "which `make test` does, or set NORMLAB_CHROMIUM")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, args=FLAGS)
        yield b
        b.close()


@pytest.fixture
def page(browser):
    ctx = browser.new_context(viewport={"width": 1280, "height": 900})
    pg = ctx.new_page()
    yield pg
    ctx.close()


def open_page(page, site, entry):
    errors = []
    page.on("pageerror", lambda e: errors.append(str(e)))
    resp = page.goto(f"{site}/{entry}.html", wait_until="load")
    assert resp is not None and resp.ok, f"{entry}: HTTP {resp and resp.status}"
    return errors


@pytest.mark.parametrize("entry", chapter_pages() + ["book/intro"])
def test_page_loads_renders_figures_and_has_its_buttons(page, site, entry):
    errors = open_page(page, site, entry)
    title = page.title()
    h1 = page.locator("main h1").first.inner_text()
    assert h1 and h1.split()[0] in title, (title, h1)
    # every image loaded (no broken figures), and none wider than the content column
    images = page.evaluate("""() => Array.from(document.querySelectorAll('main img')).map(i =>
        ({src: i.currentSrc.slice(0, 60), ok: i.complete && i.naturalWidth > 0, natural: i.naturalWidth,
          figure: !!i.closest('.cell_output'),
          w: i.getBoundingClientRect().width, col: i.closest('article, main').getBoundingClientRect().width}))""")
    assert all(i["ok"] for i in images), [i["src"] for i in images if not i["ok"]]
    assert all(i["w"] <= i["col"] + 1 for i in images), "an image is wider than the page's content column"
    # ... and none shrunk so far that its text is unreadable: matplotlib's 10 pt labels are 14 px at
    # 100 dpi, so below 0.45 of natural size they fall under ~6 px. book/_static/normlab.css widens
    # the column (854 px on a 1280 px screen); tools/CHAPTERS.md caps figures at 13 inches.
    figures = [i for i in images if i["figure"] and i["w"] > 0]  # not those in hidden tabs
    assert all(i["w"] >= 0.45 * i["natural"] for i in figures), \
        [(i["src"], round(i["w"] / i["natural"], 2)) for i in figures if i["w"] < 0.45 * i["natural"]]
    text = page.locator("main").inner_text()
    for bad in ("HBox(", "VBox(", "Traceback (most recent call last)", "application/vnd.jupyter.widget"):
        assert bad not in text, f"{entry}: {bad!r} shown on the page"
    assert not errors, errors
    if Path(entry).name[:2].isdigit():
        nb = f"{entry}.ipynb"
        hrefs = page.eval_on_selector_all("a[href]", "els => els.map(e => e.href)")
        branch = repository()["branch"]  # the release tag the install cells pin (_config.yml)
        assert any(h.startswith("https://colab.research.google.com/github/") and h.endswith(f"/blob/{branch}/{nb}")
                   for h in hrefs), f"{entry}: no Colab link to {nb} at {branch}"
        assert any(h.startswith("https://mybinder.org/v2/gh/") and nb in h for h in hrefs), f"{entry}: no Binder link"
        assert any(h.endswith(f"_sources/{nb}") for h in hrefs), f"{entry}: no download link for {nb}"
        assert len(images) >= 1, f"{entry}: a chapter without a single figure"
    SHOTS.mkdir(parents=True, exist_ok=True)
    name = Path(entry).name
    page.screenshot(path=str(SHOTS / f"{name}.png"), full_page=True)
    # dark mode, scrolled to the first figure: contrast of text, code and figures
    page.evaluate("document.documentElement.dataset.theme = 'dark'")
    page.evaluate("() => { const f = document.querySelector('.cell_output img'); if (f) f.scrollIntoView(); }")
    page.screenshot(path=str(SHOTS / f"{name}-dark.png"))


@pytest.mark.parametrize("chapter,word", sorted(SEARCH_WORDS.items()))
def test_search_finds_a_chapter_by_a_word_from_its_text(page, site, chapter, word):
    open_page(page, site, f"search")
    page.goto(f"{site}/search.html?q={word}")
    link = page.locator(f"#search-results a[href*='{chapter}']").first
    link.wait_for(timeout=20_000)
    assert chapter in link.get_attribute("href")


ZOO = "book/07_normalization_zoo"


@pytest.mark.skipif(ZOO not in chapter_pages(), reason="chapter 07 is not in the table of contents")
def test_zoo_grid_switches_tabs_without_a_kernel(page, site):
    """The static stand-in for the live panel: tabs of precomputed runs, switched by CSS alone."""
    open_page(page, site, ZOO)
    grid = page.locator(".normlab-grid").first
    grid.scroll_into_view_if_needed()
    labels, panes = grid.locator("label"), grid.locator(".nl-pane")
    assert labels.count() >= 2 and labels.count() == panes.count()
    assert panes.nth(0).is_visible() and not panes.nth(1).is_visible()
    labels.nth(1).click()
    assert panes.nth(1).is_visible() and not panes.nth(0).is_visible()
    shown = panes.nth(1).locator("img")
    assert shown.evaluate("i => i.complete && i.naturalWidth > 0 && i.getBoundingClientRect().width > 0")
    assert "The live panel appears here" in page.locator("main").inner_text()
    page.screenshot(path=str(SHOTS / "07_zoo_grid-tab2.png"))
