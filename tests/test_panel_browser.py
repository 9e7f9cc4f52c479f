"""Chapter 7's live training panel in a real front end, driven the way a reader drives it.

A Jupyter server runs on 127.0.0.1 with a random token, a temporary root and no browser of its own
(news, update checks and the extension manager off: nothing reaches for the internet). Headless
Chromium (Debian's, through Playwright, as in test_browser.py) opens a small notebook the test
writes, three cells of chapter 7 at SMOKE size: the ipywidgets version, the panel (1 epoch of 10
images per class), and a later cell that proves the kernel is alive. The test runs the cells from
the menu as a reader does, then:

1. checks the keyboard and screen reader basics: every control has a visible label and a
   description (hover text), Tab goes from the norm dropdown through the three sliders to Train and
   Shift+Tab back, the curve image has a text alternative naming what it shows;
2. picks another norm in the dropdown, moves the learning-rate slider (arrow keys), tabs to Train
   and presses Enter, and waits for the run: the status line reads "training ..." and then
   "done ... on <device>", the curve image shows other pixels, the results table gains a row with
   that norm and learning rate;
3. starts a long run (10 epochs, 2000 images per class), and during it picks norm "none" and the
   largest learning rate and presses Train: the long run is cancelled and the status line says so,
   the new run diverges and the status line shows the divergence message in red;
4. runs the later cell again: the kernel is alive and has the three runs.

Every assertion is on what the page shows: the status line's texts (recorded as they change: a
short run's "training ..." can last under a second), the curve image's pixels, the table's rows,
the cells' outputs. Screenshots of each step go next to the book's:
``_build/screenshots/07_panel-<front end>-<step>.png`` (or $NORMLAB_SCREENSHOTS).

Two front ends:

- JupyterLab from this environment (pinned in requirements.txt, with ipywidgets 8 and its
  extension): 20 to 30 s here, server start to server stop.
- The classic Notebook 6.5.7 with ipywidgets 7.7.1 and its front end (widgetsnbextension 3.6), the
  closest to Colab's that installs here (Colab ships ipywidgets 7.7.1 with a front end of its own,
  which installs nowhere else), in an environment the test creates once (tests/classic_notebook.py:
  about 30 s the first time, then 15 s a run). Differences: ipywidgets 7's Image has no tooltip,
  so the curve image there has no text alternative; its sliders are jQuery UI handles (focusable,
  keyboard-driven, but without the slider role).

What Python cannot give the controls in either front end: the sliders' labels are not linked to
their handles, so a screen reader announces a slider without its name, and (ipywidgets 8) the
learning-rate log slider's value as its exponent (-2 for 0.01); the readout beside it shows the value.
"""
from __future__ import annotations

import contextlib
import json
import os
import re
import secrets
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from dataclasses import dataclass
from pathlib import Path

import nbformat
import pytest

from test_browser import SHOTS, browser  # noqa: F401  (browser: a fixture)

REPO = Path(__file__).resolve().parents[1]
VENV_BIN = Path(sys.executable).parent
NOTEBOOK = "panel.ipynb"
VERSION_CELL = "import ipywidgets; print('ipywidgets', ipywidgets.__version__)"
# The panel at SMOKE size: one epoch over 10 images per class takes a few seconds on 2 cores.
# (The data come from $NORMLAB_DATA, which the server passes to its kernels.)
PANEL_CELL = ("from normlab import widgets\n"
              "panel = widgets.TrainingPanel('erav1s8', device='cpu', epochs=1, subset=10, test_subset=5)\n"
              "panel")
ALIVE_CELL = "print('kernel alive, runs so far:', len(panel.runs))"
RED = "rgb(207, 34, 46)"  # the panel's #cf222e


# ---------------------------------------------------------------------------------------- servers
def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def write_notebook(path: Path, kernel: str) -> None:
    nb = nbformat.v4.new_notebook()
    nb.metadata["kernelspec"] = {"name": kernel, "display_name": kernel, "language": "python"}
    nb.cells = [nbformat.v4.new_code_cell(c) for c in (VERSION_CELL, PANEL_CELL, ALIVE_CELL)]
    nbformat.write(nb, path)


def api(url: str, token: str, path: str, body: dict | None = None, timeout: float = 5) -> dict:
    req = urllib.request.Request(f"{url}{path}", method="POST" if body is not None else "GET",
                                 data=None if body is None else json.dumps(body).encode(),
                                 headers={"Authorization": f"token {token}", "Content-Type": "application/json"})
    with urllib.request.urlopen(req, timeout=timeout) as r:
        return json.loads(r.read() or b"{}")


def server_env(home: Path, data_dir: Path, **extra) -> dict:
    """The environment of a server and its kernels: the test data, the Makefile's thread count, and
    Jupyter's and IPython's config, runtime and data folders under `home` (none of the user's)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("JUPYTER_", "JPY_", "PYTHONPATH"))}
    env.update(NORMLAB_DATA=str(data_dir), OMP_NUM_THREADS="2", TQDM_DISABLE="1", MPLBACKEND="Agg",
               JUPYTER_CONFIG_DIR=str(home / "config"), JUPYTER_RUNTIME_DIR=str(home / "runtime"),
               JUPYTER_DATA_DIR=str(home / "data"), IPYTHONDIR=str(home / "ipython"), **extra)
    return env


@contextlib.contextmanager
def jupyter_server(argv: list[str], env: dict, root: Path, log: Path, kernel: str, start_timeout: float = 120):
    """A Jupyter server (`argv` without address and token) serving `root` on 127.0.0.1, with a kernel
    `kernel` already started for NOTEBOOK (so the page attaches to it: no kernel picker racing the
    kernel list on a slow machine, and it imports normlab while the page loads); yields (url, token).
    The server runs in a process group of its own, ended afterwards with the kernels it started."""
    port, token = free_port(), secrets.token_hex(24)
    argv = [*argv, "--no-browser", "--ip=127.0.0.1", f"--port={port}", "--port-retries=0", f"--notebook-dir={root}"]
    if os.geteuid() == 0:  # containers and CI run as root
        argv.append("--allow-root")
    env = {**env, "JUPYTER_TOKEN": token}  # the token, kept off the command line (and out of `ps`)
    url = f"http://127.0.0.1:{port}"
    with open(log, "w") as out:
        proc = subprocess.Popen(argv, env=env, cwd=root, stdout=out, stderr=subprocess.STDOUT,
                                stdin=subprocess.DEVNULL, start_new_session=True)
    try:
        deadline = time.monotonic() + start_timeout
        while True:
            try:
                api(url, token, "/api/status", timeout=2)
                break
            except OSError:
                if proc.poll() is not None or time.monotonic() > deadline:
                    pytest.fail(f"{Path(argv[0]).name} did not start (exit {proc.poll()}):\n{log.read_text()[-3000:]}")
                time.sleep(0.25)  # a port that is not open yet: nothing to wait on but time
        api(url, token, "/api/sessions", {"path": NOTEBOOK, "type": "notebook", "name": NOTEBOOK,
                                           "kernel": {"name": kernel}}, timeout=60)
        yield url, token
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(20)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(5)


# ---------------------------------------------------------------------------------------- browser
# the `browser` fixture is test_browser's (imported above): one headless Chromium per module


# What the status line showed, every text in turn (with its colour): a short run's "training ..."
# can last under a second, and a cancelled run's message gives way to the next run's at once.
RECORD_STATUS = """el => {
    window.__status = [];
    const note = () => {
        const span = el.firstElementChild;
        const entry = {text: el.textContent, color: span ? getComputedStyle(span).color : ''};
        const last = window.__status[window.__status.length - 1];
        if (!last || last.text !== entry.text) window.__status.push(entry);
    };
    note();
    new MutationObserver(note).observe(el, {subtree: true, childList: true, characterData: true});
}"""
# The image's pixels (its src is a new blob: URL at every update, even for the same picture).
PIXELS = """img => { if (!img.complete || !img.naturalWidth) return '';
    const c = document.createElement('canvas'); c.width = img.naturalWidth; c.height = img.naturalHeight;
    c.getContext('2d').drawImage(img, 0, 0); return c.toDataURL(); }"""
# Where the focus is: "<kind>:<the label of the control holding it>".
FOCUSED = """() => { const a = document.activeElement;
    const kind = a.getAttribute('role') === 'slider' || a.classList.contains('ui-slider-handle') ? 'slider'
               : (a.getAttribute('role') || a.tagName.toLowerCase());
    const w = a.closest('.widget-inline-hbox, .widget-button');
    return kind + ':' + (w ? (w.querySelector('label') || w).textContent.trim() : ''); }"""


@dataclass
class Front:
    """How one front end shows a notebook: what differs between JupyterLab and the classic Notebook."""
    name: str            # in screenshot names
    url: str             # the notebook's page, from the server's root
    cells: str           # selector of the notebook's code cells
    output: str          # selector of a cell's output, inside the cell
    ipywidgets: str      # the version the version cell prints starts with
    image_title: bool    # ipywidgets 8 only: the curve image's text alternative

    def wait_kernel_idle(self, page):
        from playwright.sync_api import expect

        if self.name == "lab":  # the status bar: "Python 3 (ipykernel) | Idle"
            expect(page.get_by_text(re.compile(r"\|\s*Idle"))).to_be_visible(timeout=90_000)
        else:
            expect(page.locator("#kernel_indicator_icon.kernel_idle_icon")).to_be_attached(timeout=90_000)

    def run_all(self, page):
        if self.name == "lab":
            page.get_by_role("menuitem", name="Run", exact=True).click()
            page.get_by_role("menuitem", name="Run All Cells", exact=True).click()
        else:
            page.locator("#menus .dropdown-toggle", has_text=re.compile(r"^\s*Cell\s*$")).click()
            page.locator("#run_all_cells > a").click()


LAB = Front("lab", "lab/tree/" + NOTEBOOK, ".jp-Notebook .jp-CodeCell", ".jp-OutputArea-output", "8.", True)
CLASSIC = Front("classic", "notebooks/" + NOTEBOOK, "#notebook .cell.code_cell", ".output_area", "7.7.1", False)


class Panel:
    """The panel's parts on the page, found by what a reader sees (labels), not by Python names."""

    def __init__(self, output):
        self.root = output
        self.norm = output.locator(".widget-dropdown", has_text="norm")
        self.lr = output.locator(".widget-slider", has_text="learning rate")
        self.epochs = output.locator(".widget-slider", has_text="epochs")
        self.subset = output.locator(".widget-slider", has_text="images/class")
        self.train = output.get_by_role("button", name="Train")
        self.status = output.locator(".widget-html").nth(0).locator(".widget-html-content")
        self.image = output.locator("img.widget-image")
        self.table = output.locator("table.normlab-runs")

    @staticmethod
    def handle(slider):
        return slider.locator("[role=slider], .ui-slider-handle")  # ipywidgets 8's noUiSlider, 7's jQuery UI

    def rows(self) -> list[list[str]]:
        return self.table.evaluate("t => Array.from(t.querySelectorAll('tr')).slice(1).map("
                                   "r => Array.from(r.cells).map(c => c.textContent.trim()))")


def drive_the_panel(browser, url: str, token: str, front: Front) -> None:
    """What a reader does with the panel, checked on the page (the module docstring has the steps)."""
    from playwright.sync_api import expect

    from normlab.devices import describe_device

    ctx = browser.new_context(viewport={"width": 1280, "height": 1000})
    if front.name == "classic":
        # Notebook 6.5's banner about Notebook 7, as after "Don't show anymore" (its show_banner=False
        # breaks the page's script: "Cannot read properties of null (reading 'addEventListener')").
        ctx.add_init_script("localStorage.setItem('showNotebookNews', 'false')")
    page = ctx.new_page()
    page.set_default_timeout(60_000)
    errors = []
    page.on("pageerror", lambda e: errors.append(str(e)))

    def shot(step: str):
        SHOTS.mkdir(parents=True, exist_ok=True)
        page.screenshot(path=str(SHOTS / f"07_panel-{front.name}-{step}.png"))

    def status_log() -> list[dict]:
        return page.evaluate("window.__status")

    def pixels() -> str:
        return panel.image.evaluate(PIXELS)

    def wait_new_pixels(before: str) -> str:
        page.wait_for_function(f"([img, before]) => {{ const d = ({PIXELS})(img); return d && d !== before; }}",
                               arg=[panel.image.element_handle(), before], timeout=120_000)
        return pixels()

    try:
        page.goto(f"{url}/{front.url}?token={token}", wait_until="domcontentloaded")
        cells = page.locator(front.cells)
        expect(cells).to_have_count(3, timeout=90_000)
        front.wait_kernel_idle(page)
        front.run_all(page)
        version, alive = cells.nth(0).locator(front.output), cells.nth(2).locator(front.output)
        panel = Panel(cells.nth(1).locator(front.output))
        expect(panel.train).to_be_visible(timeout=120_000)
        expect(version).to_contain_text(f"ipywidgets {front.ipywidgets}")
        expect(alive).to_have_text("kernel alive, runs so far: 0", timeout=60_000)
        expect(panel.status).to_have_text("Pick a norm and a learning rate, then press Train.")
        expect(panel.table.locator("tr")).to_have_count(1)  # the header only
        panel.status.evaluate(RECORD_STATUS)
        curves0 = pixels()
        shot("1-ready")

        # ---- 1. keyboard and screen reader basics, on the panel as displayed
        for control, label in [(panel.norm, "norm"), (panel.lr, "learning rate"), (panel.epochs, "epochs"),
                               (panel.subset, "images/class")]:
            text = control.locator("label.widget-label")
            expect(text).to_be_visible()
            expect(text).to_have_text(label)
            tip = text.evaluate("l => l.title || (l.querySelector('[title]') || {}).title || ''")
            assert len(tip.split()) >= 3, (label, tip)  # its description, shown on hovering the label
        expect(panel.root.get_by_role("combobox", name="norm")).to_be_visible()
        expect(panel.train).to_have_text("Train")
        expect(panel.train).to_have_accessible_description(re.compile(r"^train with these settings"))
        if front.image_title:
            expect(panel.image).to_have_accessible_name("Training curves: no runs yet")
        panel.norm.locator("select").focus()
        order = []
        while len(order) < 12 and not order[-1:] == ["button:Train"]:
            page.keyboard.press("Tab")
            order.append(page.evaluate(FOCUSED))
        assert [o for o in order if o.startswith("slider:")] == \
            ["slider:learning rate", "slider:epochs", "slider:images/class"], order
        assert order[-1] == "button:Train", order
        for _ in order:
            page.keyboard.press("Shift+Tab")
        assert page.evaluate(FOCUSED) == "select:norm"

        # ---- 2. a reader's run: another norm, the lr slider moved, Tab to Train and Enter
        panel.norm.locator("select").select_option("group")
        lr = Panel.handle(panel.lr)
        lr.focus()
        for _ in range(3):  # 3 steps of 0.1 on the log scale: 0.01 -> 0.02
            page.keyboard.press("ArrowRight")
        expect(panel.lr.locator(".widget-readout")).to_have_text("0.020")
        for _ in range(8):
            if page.evaluate(FOCUSED) == "button:Train":
                break
            page.keyboard.press("Tab")
        expect(panel.train).to_be_focused()
        shot("2-settings")
        page.keyboard.press("Enter")
        expect(panel.status).to_contain_text("done: group, lr 0.02: test accuracy", timeout=120_000)
        where = describe_device("cpu")
        texts = [s["text"] for s in status_log()]
        assert re.fullmatch(rf"done: group, lr 0\.02: test accuracy [\d.]+% after 1 epochs \(\d+ s on "
                            rf"{re.escape(where)}\)", texts[-1]), texts
        assert any(t.startswith(f"training group, lr 0.02 on 100 images for 1 epochs on {where}") for t in texts), texts
        wait_new_pixels(curves0)
        (row,) = panel.rows()
        assert row[:6] == ["1", "group", "0.02", "1", "10", "32"] and row[-1] == "done", row
        assert re.fullmatch(r"\d+\.\d %", row[7]), row  # a test accuracy
        if front.image_title:
            expect(panel.image).to_have_accessible_name(re.compile(r"^Training curves, loss .* of: group, lr 0\.02$"))
        shot("3-done")

        # ---- 3. a long run, and Train pressed during it with a learning rate that diverges
        Panel.handle(panel.epochs).focus()
        page.keyboard.press("End")
        Panel.handle(panel.subset).focus()
        page.keyboard.press("End")
        expect(panel.epochs.locator(".widget-readout")).to_have_text("10")
        expect(panel.subset.locator(".widget-readout")).to_have_text("2000")
        panel.train.click()
        expect(panel.status).to_contain_text("training group, lr 0.02 on 20000 images for 10 epochs",
                                             timeout=60_000)
        shot("4-training")
        panel.norm.locator("select").select_option("none")
        lr.focus()
        page.keyboard.press("End")
        expect(panel.lr.locator(".widget-readout")).to_have_text("10")
        panel.train.click()
        expect(panel.status).to_contain_text("loss became", timeout=120_000)
        log = status_log()
        texts = [s["text"] for s in log]
        cancelled = [t for t in texts if "cancelled" in t]
        assert cancelled and re.fullmatch(r"group, lr 0\.02: cancelled after \d+ epochs", cancelled[0]), texts
        assert re.fullmatch(r"none, lr 10: loss became .* at epoch \d+, step \d+ .*with learning rate 10\b.*",
                            texts[-1]), texts
        assert log[-1]["color"] == RED, log[-1]  # the divergence message, in red
        assert [(r[1], r[2], r[-1]) for r in panel.rows()] == \
            [("group", "0.02", "done"), ("group", "0.02", "cancelled"), ("none", "10", "diverged")], panel.rows()
        if front.image_title:
            expect(panel.image).to_have_accessible_name(re.compile(r"\(cancelled\); none, lr 10 \(diverged\)$"))
        shot("5-cancelled-diverged")

        # ---- 4. the kernel is alive: the later cell runs again
        cells.nth(2).locator(".CodeMirror, .cm-editor").first.click()
        page.keyboard.press("Control+Enter")
        expect(alive).to_have_text("kernel alive, runs so far: 3", timeout=60_000)
        shot("6-kernel-alive")
        text = page.locator(front.cells).first.locator("xpath=..").inner_text()
        assert "Traceback" not in text and "Error displaying widget" not in text
        assert not errors, errors
    finally:
        ctx.close()


# -------------------------------------------------------------------------------------- the tests
def test_the_panel_in_jupyterlab(browser, tmp_path, data_dir):
    """JupyterLab and its ipywidgets extension from this environment (requirements.txt)."""
    if not (VENV_BIN / "jupyter-lab").exists():
        pytest.fail(f"no jupyter-lab in {VENV_BIN}: install requirements.txt (`make setup`), which pins it")
    t0 = time.monotonic()
    root, home, settings = tmp_path / "root", tmp_path / "home", tmp_path / "settings"
    root.mkdir()
    write_notebook(root / NOTEBOOK, "python3")
    # No "official Jupyter news?" prompt (the flags below turn off the fetches themselves).
    notify = settings / "@jupyterlab" / "apputils-extension" / "notification.jupyterlab-settings"
    notify.parent.mkdir(parents=True)
    notify.write_text(json.dumps({"fetchNews": "false", "checkForUpdates": False}))
    argv = [str(VENV_BIN / "jupyter-lab"), "--LabApp.news_url=None",
            "--LabApp.check_for_updates_class=jupyterlab.NeverCheckForUpdate",
            "--LabApp.extension_manager=readonly", f"--LabApp.user_settings_dir={settings}",
            f"--LabApp.workspaces_dir={tmp_path / 'workspaces'}", "--ServerApp.terminals_enabled=False"]
    with jupyter_server(argv, server_env(home, data_dir), root, tmp_path / "server.log", "python3") as (url, token):
        drive_the_panel(browser, url, token, LAB)
    print(f"JupyterLab: {time.monotonic() - t0:.0f} s")


def test_the_panel_in_the_classic_notebook_with_ipywidgets_7(browser, tmp_path, data_dir):
    """The classic Notebook 6.5.7 with ipywidgets 7.7.1, what Colab ships (tests/classic_notebook.py)."""
    from classic_notebook import classic_notebook_env, write_ipywidgets7_kernel

    notebook = classic_notebook_env()
    t0 = time.monotonic()
    root, home, jupyter_path = tmp_path / "root", tmp_path / "home", tmp_path / "jupyter"
    root.mkdir()
    kernel = write_ipywidgets7_kernel(jupyter_path)
    write_notebook(root / NOTEBOOK, kernel)
    argv = [str(notebook), "--NotebookApp.terminals_enabled=False"]
    env = server_env(home, data_dir, JUPYTER_PATH=str(jupyter_path))
    with jupyter_server(argv, env, root, tmp_path / "server.log", kernel) as (url, token):
        drive_the_panel(browser, url, token, CLASSIC)
    print(f"classic Notebook: {time.monotonic() - t0:.0f} s")
