"""Run a chapter's code cells in one Python process and time each cell: the chapter's own code,
top to bottom, without a Jupyter kernel. For machines that have torch but no Jupyter stack (a GPU
machine lent for a timing), and to see where a chapter's time goes.

  python benchmarks/run_chapter.py 08 --set SMOKE=True                 # quick check, CPU
  python benchmarks/run_chapter.py 08 --set 'DEVICE="cuda"' --json t.json   # full budget on a GPU

- `--set NAME=VALUE` (a Python literal) is applied right after the `parameters` cell, as papermill
  injects parameters; RESULTS_DIR defaults to a fresh temporary folder, so the book's committed
  records are neither read nor overwritten (REUSE stays False unless set).
- Cells starting with `# NBVAL_SKIP` are skipped: they are the live widgets, which wait for a
  reader's click (the live panel's default run is timed by benchmarks/bench_panel.py).
- Without IPython, `IPython.display` is replaced by a stand-in that prints text; figures go to
  matplotlib's Agg backend and are closed after each cell.
- The first failing cell stops the run (later cells need its results); the JSON says which.
Writes (with --json) the cells' times, the glued values, the device, the host and the error, if any.
"""
from __future__ import annotations

import argparse
import ast
import contextlib
import json
import os
import platform
import sys
import tempfile
import time
import traceback
import types
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))


def chapter_notebook(chapter: str) -> Path:
    """book/NN_*.ipynb for two digits NN, or the path of a notebook."""
    if chapter.endswith(".ipynb"):
        if not Path(chapter).is_file():
            raise SystemExit(f"{chapter}: no such notebook")
        return Path(chapter).resolve()
    found = sorted((ROOT / "book").glob(f"{chapter}_*.ipynb")) if chapter.isdigit() else []
    if len(found) != 1:
        names = ", ".join(p.name[:2] for p in sorted((ROOT / "book").glob("[0-9][0-9]_*.ipynb")))
        raise SystemExit(f"chapter {chapter!r}: no single book/{chapter}_*.ipynb; accepted: {names}")
    return found[0]


def parse_settings(pairs: list[str]) -> dict:
    settings = {}
    for pair in pairs:
        name, sep, value = pair.partition("=")
        if not sep or not name.isidentifier():
            raise SystemExit(f"--set {pair!r}: expected NAME=VALUE, e.g. SMOKE=True or 'DEVICE=\"cuda\"'")
        try:
            settings[name] = ast.literal_eval(value)
        except (ValueError, SyntaxError):
            raise SystemExit(f"--set {pair!r}: {value!r} is not a Python literal (strings need quotes)") from None
    return settings


def ipython_stand_in() -> None:
    """Let `from IPython.display import display, Markdown, HTML` work without IPython."""
    try:
        import IPython.display  # noqa: F401
        return
    except ImportError:
        pass

    class Shown:
        def __init__(self, data=None, **_):
            self.data = data

        def __repr__(self):
            return str(self.data)

    def display(*objs, **kwargs):
        if kwargs.get("raw"):  # glue's mime bundles: nothing to show in a terminal
            return
        for obj in objs:
            if hasattr(obj, "_ipython_display_"):
                obj._ipython_display_()
            else:
                print(obj)

    package, module = types.ModuleType("IPython"), types.ModuleType("IPython.display")
    module.display, module.Markdown, module.HTML, module.Image = display, Shown, Shown, Shown
    # matplotlib looks for a running IPython shell in sys.modules["IPython"]: say there is none
    package.display, package.get_ipython, package.version_info = module, lambda: None, (8, 24, 0)
    sys.modules.update({"IPython": package, "IPython.display": module})


def cell_tags(cell: dict) -> list[str]:
    return cell.get("metadata", {}).get("tags", [])


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("chapter", help="two digits, e.g. 08, or a notebook's path")
    p.add_argument("--set", nargs="*", default=[], metavar="NAME=VALUE", help="parameters (Python literals)")
    p.add_argument("--json", help="write the timings here (JSON)")
    args = p.parse_args()
    notebook = chapter_notebook(args.chapter)
    settings = parse_settings(args.set)
    settings.setdefault("RESULTS_DIR", tempfile.mkdtemp(prefix=f"normlab-{notebook.stem}-"))

    os.environ.setdefault("MPLBACKEND", "Agg")
    ipython_stand_in()
    import matplotlib.pyplot as plt

    cells = [c for c in json.loads(notebook.read_text())["cells"] if c["cell_type"] == "code"]
    namespace: dict = {"__name__": "__main__"}
    namespace["display"] = sys.modules["IPython.display"].display
    report = {"chapter": notebook.stem, "settings": settings, "python": platform.python_version(),
              "cells": [], "error": None}
    os.chdir(notebook.parent)  # the notebook's folder, as papermill runs it
    start = time.perf_counter()
    for index, cell in enumerate(cells):
        source = "".join(cell["source"])
        first = source.strip().splitlines()[0] if source.strip() else ""
        if first.startswith("# NBVAL_SKIP"):
            report["cells"].append({"index": index, "first_line": first, "skipped": True})
            continue
        print(f"\n=== cell {index}: {first[:90]}", flush=True)
        t = time.perf_counter()
        try:
            code = compile(source, f"<{notebook.stem} cell {index}>", "exec")
            exec(code, namespace)
            if "parameters" in cell_tags(cell):
                namespace.update(settings)
                print(f"(parameters set: {settings})")
        except BaseException as exc:  # noqa: BLE001 (KeyboardInterrupt too: keep what was timed)
            report["error"] = {"cell": index, "first_line": first,
                               "traceback": "".join(traceback.format_exception(exc))[-4000:]}
            print(report["error"]["traceback"], file=sys.stderr)
        finally:
            torch_module = namespace.get("torch")  # the cell's queued GPU work belongs to its time
            with contextlib.suppress(Exception):
                if torch_module is not None and torch_module.cuda.is_available():
                    torch_module.cuda.synchronize()
            seconds = time.perf_counter() - t
            report["cells"].append({"index": index, "first_line": first, "seconds": round(seconds, 3)})
            plt.close("all")
            print(f"--- cell {index}: {seconds:.2f} s", flush=True)
        if report["error"]:
            break
    report["seconds"] = round(time.perf_counter() - start, 3)
    with contextlib.suppress(Exception):
        from normlab.devices import describe_device
        from normlab.glue import glued
        from normlab.precision import choose_precision
        device = namespace.get("device", "cpu")
        report["device"] = describe_device(device)
        report["precision"] = str(choose_precision(device))
        report["glued"] = glued()
    print(f"\n{notebook.stem}: {report['seconds']:.1f} s for {sum('seconds' in c for c in report['cells'])} cells"
          + (f"; stopped by an error in cell {report['error']['cell']}" if report["error"] else ""))
    if args.json:
        from normlab.files import write_json_atomic
        write_json_atomic(args.json, report)
    sys.exit(1 if report["error"] else 0)


if __name__ == "__main__":
    main()
