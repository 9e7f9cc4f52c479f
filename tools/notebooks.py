"""Run the book's chapter notebooks: full renders (committed outputs), smoke runs, goldens, checks.

Each chapter has one source, its MyST markdown text `chapters/NN_name.md`, paired by jupytext
(`jupytext.toml`) with the notebook `book/NN_name.ipynb` that holds the rendered outputs.

  python tools/notebooks.py sync [CHAPTER ...]       copy the text sources' cells into the notebooks,
                                                     keeping their outputs (prose needs no re-run)
  python tools/notebooks.py render [CHAPTER ...]     sync, then execute at the seed's full budget, in place (each
                                                     run recorded in book/results/runs/CHAPTER/)
  python tools/notebooks.py render --reuse [CHAPTER ...]   the same with REUSE=True: redrawn from those records,
                                                     nothing trained (says when it took over a minute)
  python tools/notebooks.py smoke [CHAPTER ...] [--out DIR] [--reuse]   sync, then SMOKE=True into DIR (default: a
                                                     temp dir); --reuse runs it again from the smoke run's records
  python tools/notebooks.py goldens [CHAPTER ...]    sync, then SMOKE=True into tests/goldens/ (nbval compares them)
  python tools/notebooks.py estimate [CHAPTER ...]   run the install cell again (its estimate reads the run records
                                                     that `render` writes; render does this itself)
  python tools/notebooks.py check                    pairs in sync, goldens current, notebooks clean (no widget
                                                     text, errors)
  python tools/notebooks.py colab                    every chapter's install cell (from _config.yml, the version
                                                     and, for a chapter that trains, its recorded training time;
                                                     with its output run here) and Colab metadata

CHAPTER is a file stem or its number prefix (01, 02_convnets, ...); none means every chapter.
Executions use the kernel 'python3' of this environment, cwd book/, TQDM_DISABLE=1 and a fixed
thread count (OMP_NUM_THREADS, default 2): goldens are only comparable at a fixed count.
"""
from __future__ import annotations

import argparse
import hashlib
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import nbformat

REPO = Path(__file__).resolve().parents[1]
BOOK = REPO / "book"
# The chapters' text sources (MyST markdown), paired with book/ by jupytext.toml. They live outside
# book/ so that jupyter-book, whose toc names chapters without extension, never sees two files
# of the same stem (_config.yml excludes this folder too).
TEXT = REPO / "chapters"
TEXT_FORMAT = "md:myst"
GOLDENS = REPO / "tests" / "goldens"
SMOKE_PARAMS = {"SMOKE": True}
REUSE_PARAMS = {"REUSE": True}
REUSE_SECONDS = 60  # a chapter redrawn from its records takes under a minute (issue #15)
# Each golden writes its results to a folder of its own (relative to where nbval runs the goldens;
# ignored by git), so no golden reads what another wrote: a chapter that reads another chapter's
# results gets the book's committed ones, whatever ran before it.
GOLDEN_RESULTS = "smoke_results"
# Colab opens a chapter on a GPU runtime (a T4 on the free tier) when its metadata asks for one.
COLAB_METADATA = {"accelerator": "GPU", "colab": {"gpuType": "T4", "provenance": []}}
INSTALL_CELL = """# Colab or a fresh environment: install normlab once (it uses the torch already installed).
import importlib, importlib.util, subprocess, sys
if importlib.util.find_spec("normlab") is None:
    subprocess.run([sys.executable, "-m", "pip", "install", "-q",
                    "{requirement}"], check=True)
    importlib.invalidate_caches()  # let this running kernel see the new package
from normlab.devices import describe_device, resolve_device
from normlab.precision import choose_precision
print("device:", describe_device("auto"))
print("precision:", choose_precision(resolve_device("auto")))"""
# What the chapter's full budget costs, from its committed run records (normlab.records), so that a
# reader on a CPU knows what training starts; only in chapters that train.
ESTIMATE_LINES = """
from normlab import records
print(records.estimate("{chapter}"))"""


def install_cell(chapter: str | None = None) -> str:
    """The first code cell of every chapter: normlab at this version's release tag, from the repository
    set in _config.yml (normlab.repository reads it); for a chapter that trains (`chapter`: its stem),
    also the estimate of its full-budget training time."""
    from normlab import repository

    cell = INSTALL_CELL.format(requirement=repository.requirement())
    return cell + ESTIMATE_LINES.format(chapter=chapter) if chapter else cell


def trains(nb_path: Path) -> bool:
    """Chapters that train go through normlab.runs.run (tools/CHAPTERS.md); the results chapter does not."""
    md = text_source(nb_path)
    return "runs.run(" in (md.read_text() if md.exists() else nb_path.read_text())


def has_reuse_parameter(nb_path: Path) -> bool:
    """Whether the chapter's parameters cell sets REUSE (papermill would inject it unused otherwise;
    a chapter that trains nothing needs none: it runs as it is)."""
    return any("parameters" in tags and any(line.startswith("REUSE") for line in source.splitlines())
               for kind, source, tags in cells(read_text(text_source(nb_path))))


def chapters(selection: list[str] | None = None) -> list[Path]:
    """The chapter notebooks book/NN_name.ipynb (also those a new text source will create)."""
    every = sorted({*BOOK.glob("[0-9][0-9]_*.ipynb"),
                    *(BOOK / f"{p.stem}.ipynb" for p in TEXT.glob("[0-9][0-9]_*.md"))})
    if not selection:
        return every
    picked = []
    for s in selection:
        match = [p for p in every if p.stem == s or p.stem.startswith(s + "_") or p.stem == Path(s).stem]
        if not match:
            raise SystemExit(f"no chapter {s!r}; chapters: {', '.join(p.stem for p in every)}")
        picked += match
    return picked


def writes_results(nb_path: Path) -> bool:
    """Chapters that train record their numbers with book.Results; the results chapter only reads them."""
    return "book.Results(" in nb_path.read_text()


def source_sha(nb_path: Path) -> str:
    """Hash of a notebook's code cells (what a golden depends on): prose edits, outputs and injected
    parameters leave it unchanged, so editing prose never asks for a re-run."""
    h = hashlib.sha256()
    for kind, source, _ in cells(json.loads(nb_path.read_text())):
        if kind == "code":
            h.update(kind.encode())
            h.update(source.encode())
    return h.hexdigest()


# --------------------------------------------------------------------------- the pairs: text source + notebook
def text_source(nb_path: Path) -> Path:
    """The text source of book/NN_name.ipynb: chapters/NN_name.md."""
    return TEXT / f"{nb_path.stem}.md"


def cells(nb) -> list[tuple[str, str, list[str]]]:
    """(type, source, tags) of each cell, as a pair must agree on them (papermill's injected cell aside)."""
    out = []
    for cell in nb["cells"]:
        tags = list(cell.get("metadata", {}).get("tags", []))
        if "injected-parameters" in tags:
            continue
        source = cell["source"] if isinstance(cell["source"], str) else "".join(cell["source"])
        out.append((cell["cell_type"], source, tags))
    return out


def read_text(md_path: Path):
    import jupytext

    return jupytext.read(md_path, fmt=TEXT_FORMAT)


def _config():
    from jupytext.config import load_jupytext_config

    return load_jupytext_config(str(BOOK))


def out_of_sync(nb_path: Path, md_path: Path | None = None) -> list[str]:
    """How a notebook's cells differ from its text source's (empty when the pair is in sync)."""
    md_path = md_path or text_source(nb_path)
    if not md_path.exists():
        return [f"{shown(md_path)} missing (the text source of {shown(nb_path)})"]
    if not nb_path.exists():
        return [f"{shown(nb_path)} missing: python tools/notebooks.py sync {nb_path.stem[:2]}"]
    text, notebook = cells(read_text(md_path)), cells(json.loads(nb_path.read_text()))
    diffs = [f"cell {i}: the {a[0]} cell differs" + (" (tags)" if a[:2] == b[:2] else "")
             for i, (a, b) in enumerate(zip(text, notebook)) if a != b]
    if len(text) != len(notebook):
        diffs.append(f"{len(text)} cells in the text, {len(notebook)} in the notebook")
    return diffs


def write_notebook(path: Path, nb) -> None:
    """Write as nbformat (and jupytext) do, so that syncing and rendering change content only."""
    path.write_text(nbformat.writes(nbformat.from_dict(nb)) + "\n")


def sync(nb_path: Path, md_path: Path | None = None, force: bool = False) -> str:
    """Copy the text source's cells into the notebook, keeping the notebook's outputs, cell ids and
    metadata (jupytext's pairing). Refuses when the notebook is newer and differs (it was edited as a
    notebook): that edit would be lost silently."""
    from jupytext.combine import combine_inputs_with_outputs

    md_path = md_path or text_source(nb_path)
    diffs = out_of_sync(nb_path, md_path)
    if not diffs:
        return f"{shown(nb_path)}: in sync"
    if not md_path.exists():
        raise SystemExit(f"{diffs[0]}: write it with jupytext --sync {shown(nb_path)}")
    if nb_path.exists() and not force and nb_path.stat().st_mtime > md_path.stat().st_mtime:
        raise SystemExit(
            f"{shown(nb_path)} differs from {shown(md_path)} ({diffs[0]}) and is newer: it was edited as a "
            f"notebook. Keep that edit: jupytext --sync {shown(nb_path)} (copies it into the text source); "
            f"drop it: python tools/notebooks.py sync {nb_path.stem[:2]} --force")
    text = read_text(md_path)
    if nb_path.exists():
        before = json.loads(nb_path.read_text())
        nb = combine_inputs_with_outputs(text, nbformat.reads(nb_path.read_text(), as_version=4), fmt=TEXT_FORMAT)
    else:  # a new chapter: the notebook's metadata as `colab` would write it
        before = {"cells": []}
        nb = text
        nb.metadata.get("jupytext", {}).pop("text_representation", None)
        nb.metadata.update(COLAB_METADATA)
    write_notebook(nb_path, nb)
    code = [c[:2] for c in cells(nb) if c[0] == "code"] != [c[:2] for c in cells(before) if c[0] == "code"]
    return (f"{shown(nb_path)}: {len(diffs)} change(s) from {shown(md_path)}"
            + (f"; code changed: render it and make its golden (render {nb_path.stem[:2]}; goldens "
               f"{nb_path.stem[:2]})" if code else "; prose only, outputs kept"))


def _env() -> dict:
    env = dict(os.environ)
    env.setdefault("OMP_NUM_THREADS", "2")
    env["TQDM_DISABLE"] = "1"
    env.setdefault("MPLBACKEND", "module://matplotlib_inline.backend_inline")
    return env


def execute(src: Path, dst: Path, params: dict, timeout: int | None = None, *, kernel: str = "python3",
            cwd: Path = BOOK, env: dict | None = None) -> float:
    """papermill src -> dst with params, in a subprocess (by default this environment's kernel in book/);
    returns the seconds taken."""
    dst.parent.mkdir(parents=True, exist_ok=True)
    cmd = [sys.executable, "-m", "papermill", str(src), str(dst), "--kernel", kernel, "--cwd", str(cwd),
           "--no-progress-bar"]
    for k, v in params.items():
        cmd += ["-p", k, str(v)] if not isinstance(v, str) else ["-r", k, v]
    if timeout:
        cmd += ["--execution-timeout", str(timeout)]
    t = time.perf_counter()
    proc = subprocess.run(cmd, env=_env() if env is None else env, capture_output=True, text=True)
    if proc.returncode != 0:
        tail = "\n".join(proc.stderr.strip().splitlines()[-25:])
        raise RuntimeError(f"{src.name} failed (papermill exit {proc.returncode}); output in {dst}\n{tail}")
    return time.perf_counter() - t


WIDGET_VIEW = "application/vnd.jupyter.widget-view+json"
LIVE_ONLY = ("<p><em>The live panel appears here when this notebook runs in Jupyter or Colab "
             "(launch buttons at the top of the page); the tabs above show runs made in advance.</em></p>")


def static_outputs(nb: dict) -> None:
    """A rendered book has no kernel: replace live-widget outputs by a note that says where the widget
    appears, and drop the widget state, so no page shows an empty widget or its text repr."""
    for cell in nb["cells"]:
        for i, out in enumerate(cell.get("outputs", [])):
            if WIDGET_VIEW in out.get("data", {}):
                cell["outputs"][i] = {"output_type": "display_data", "metadata": {},
                                      "data": {"text/html": LIVE_ONLY,
                                               "text/plain": "(live panel: run the notebook to use it)"}}
    nb["metadata"].pop("widgets", None)


def clean_metadata(path: Path, extra: dict | None = None) -> None:
    """Drop papermill's per-run noise (timestamps, environment) so diffs show content only, and
    live-widget outputs (see static_outputs)."""
    nb = json.loads(path.read_text())
    static_outputs(nb)
    pm = nb["metadata"].get("papermill", {})
    nb["metadata"]["papermill"] = {k: pm[k] for k in ("parameters", "default_parameters") if k in pm}
    for cell in nb["cells"]:
        cell.get("metadata", {}).pop("papermill", None)
        cell.get("metadata", {}).pop("execution", None)
    if extra:
        nb["metadata"].setdefault("normlab", {}).update(extra)
    write_notebook(path, nb)


def cmd_sync(args) -> None:
    for ch in chapters(args.chapters):
        print(sync(ch, force=args.force))


def _synced(selection) -> list[Path]:
    """The chapters picked, each synced from its text source first (what runs is the text source)."""
    picked = chapters(selection)
    for ch in picked:
        message = sync(ch)
        if not message.endswith("in sync"):
            print(message)
    return picked


def _need_reuse_parameter(chapters_: list[Path]) -> None:
    missing = [ch.stem for ch in chapters_ if trains(ch) and not has_reuse_parameter(ch)]
    if missing:
        raise SystemExit(f"no REUSE parameter in {', '.join(missing)}: add `REUSE = False` to the parameters cell "
                         f"and pass reuse=REUSE to book.setup (tools/CHAPTERS.md)")


def cmd_render(args) -> None:
    picked = _synced(args.chapters)
    if args.reuse:
        _need_reuse_parameter(picked)
    for ch in picked:
        with tempfile.TemporaryDirectory() as tmp:
            out = Path(tmp) / ch.name
            secs = execute(ch, out, REUSE_PARAMS if args.reuse else {}, args.timeout)
            clean_metadata(out)
            ch.write_text(out.read_text())
        if args.reuse:
            print(f"rendered {ch.name} from its records in {secs:.0f} s"
                  + (f": over {REUSE_SECONDS} s, see which cells take long" if secs > REUSE_SECONDS else ""))
            continue
        print(f"rendered {ch.name} in {secs:.0f} s")
        refresh_estimate(ch)
        report_stale_records(ch)


def run_install_cell(source: str) -> list[dict]:
    """The outputs of the install cell run here (normlab is installed, so it only reports device,
    precision and, where the chapter trains, the estimate from the committed run records)."""
    printed = subprocess.run([sys.executable, "-c", source], cwd=BOOK, env=_env(), capture_output=True, text=True,
                             check=True).stdout
    return [{"name": "stdout", "output_type": "stream", "text": printed.splitlines(keepends=True)}]


def refresh_estimate(ch: Path) -> None:
    """The install cell prints the estimate from the chapter's run records, which a render has just
    written: run that cell again, alone, so the page shows the records it is committed with."""
    nb = json.loads(ch.read_text())
    cell = next(c for c in nb["cells"] if c["cell_type"] == "code")
    if "records.estimate(" not in "".join(cell["source"]):
        return
    cell["outputs"] = run_install_cell("".join(cell["source"]))
    tmp = ch.with_suffix(".ipynb.tmp")
    write_notebook(tmp, nb)
    tmp.replace(ch)  # atomic: a failure leaves the rendered notebook as it was
    print(f"  {ch.name}, install cell run again: {cell['outputs'][0]['text'][-1].strip()}")


def cmd_estimate(args) -> None:
    for ch in _synced(args.chapters):
        refresh_estimate(ch)


def report_stale_records(ch: Path) -> None:
    """Records this render did not rewrite: runs the chapter no longer makes (never deleted here)."""
    from normlab import records

    old = records.stale(BOOK / "results", ch.stem)
    if old:
        print(f"  {len(old)} record(s) of {ch.stem} not written by this render (runs it no longer makes?): "
              f"git rm {' '.join(shown(p) for p in old)} (and their .pt files)")


def cmd_smoke(args) -> None:
    out_dir = Path(args.out) if args.out else Path(tempfile.mkdtemp(prefix="normlab-smoke-"))
    results = out_dir / "results"
    picked = _synced(args.chapters)
    if args.reuse:
        _need_reuse_parameter(picked)
    for ch in picked:
        params = {**SMOKE_PARAMS, "RESULTS_DIR": str(results)}
        secs = execute(ch, out_dir / ch.name, params, args.timeout)
        print(f"smoke {ch.name}: {secs:.0f} s")
        if args.reuse:  # the same smoke run again, from the records the first one wrote
            secs = execute(ch, out_dir / "reuse" / ch.name, {**params, **REUSE_PARAMS}, args.timeout)
            print(f"smoke {ch.name} from its records: {secs:.0f} s")
    print(f"outputs in {out_dir}")


def cmd_goldens(args) -> None:
    for ch in _synced(args.chapters):
        dst = GOLDENS / ch.name
        secs = execute(ch, dst, {**SMOKE_PARAMS, "RESULTS_DIR": f"{GOLDEN_RESULTS}/{ch.stem}"}, args.timeout)
        clean_metadata(dst, {"source": f"book/{ch.name}", "source_sha256": source_sha(ch)})
        drop_unchecked_images(dst)
        print(f"golden {shown(dst)}: {secs:.0f} s")


def checked(cell: dict) -> bool:
    """Whether nbval compares this cell's output (its marker, as nbval reads it)."""
    return any(line.strip().lstrip("#").strip() == "NBVAL_CHECK_OUTPUT"
               for line in "".join(cell["source"]).splitlines() if line.strip().startswith("#"))


def is_image(out: dict) -> bool:
    return any(k.startswith("image/") for k in out.get("data", {}))


def drop_unchecked_images(path: Path) -> None:
    """nbval compares only the marked cells: figures elsewhere in a golden are dead weight."""
    nb = json.loads(path.read_text())
    for cell in nb["cells"]:
        if cell["cell_type"] == "code" and not checked(cell):
            cell["outputs"] = [o for o in cell["outputs"] if not is_image(o)]
    write_notebook(path, nb)


def cmd_colab(args) -> None:
    """Write the install cell (into the text source and the notebook) and the Colab metadata into every
    chapter. The cell's committed output is what it prints when run here (normlab is installed here,
    so it only reports device, precision and, where the chapter trains, its recorded time)."""
    import jupytext

    printed: dict[str, list[dict]] = {}
    for ch in _synced(None):
        source = install_cell(ch.stem if trains(ch) else None)
        if source not in printed:
            printed[source] = run_install_cell(source)
        md = text_source(ch)
        text = read_text(md)
        first = next(c for c in text.cells if c.cell_type == "code")
        if first.source != source:
            first.source = source
            jupytext.write(text, md, fmt=TEXT_FORMAT, config=_config())
        nb = json.loads(ch.read_text())
        cell = next(c for c in nb["cells"] if c["cell_type"] == "code")
        if "".join(cell["source"]) != source:
            cell["source"] = source.splitlines(keepends=True)
            cell["outputs"] = printed[source]
        nb["metadata"].update(COLAB_METADATA)
        write_notebook(ch, nb)
        print(f"{shown(ch)}: install cell and Colab metadata")


def shown(path: Path) -> str:
    """A path as a message shows it: relative to the repo when inside it (smoke runs write to /tmp)."""
    return str(path.relative_to(REPO)) if path.is_relative_to(REPO) else str(path)


def problems(nb_path: Path) -> list[str]:
    """What must never be in a committed notebook."""
    text = nb_path.read_text()
    nb = json.loads(text)
    bad = []
    if "HBox(" in text:
        bad.append("progress-bar widget text (HBox) in outputs")
    for cell in nb["cells"]:
        for out in cell.get("outputs", []):
            if out.get("output_type") == "error" or "Traceback" in json.dumps(out):
                bad.append("an error or traceback in outputs")
    if WIDGET_VIEW in text:
        bad.append("a live-widget output (empty in the static book): run it through tools/notebooks.py")
    widgets = nb["metadata"].get("widgets")
    if widgets is not None and "application/vnd.jupyter.widget-state+json" not in widgets:
        bad.append("widget metadata without state")
    if not any("parameters" in c.get("metadata", {}).get("tags", []) for c in nb["cells"]):
        bad.append("no papermill parameters cell")
    return [f"{shown(nb_path)}: {b}" for b in dict.fromkeys(bad)]


def unsynced() -> list[str]:
    """Chapters whose notebook and text source disagree (or one of them is missing)."""
    return [f"{shown(ch)}: {d}" for ch in chapters() for d in out_of_sync(ch)]


def stale_goldens() -> list[str]:
    out = []
    for ch in chapters():
        golden = GOLDENS / ch.name
        if not golden.exists():
            out.append(f"{shown(golden)} missing: run python tools/notebooks.py goldens {ch.stem[:2]}")
            continue
        meta = json.loads(golden.read_text())["metadata"].get("normlab", {})
        if meta.get("source_sha256") != source_sha(ch):
            out.append(f"{shown(golden)} is stale (the code of book/{ch.name} changed): "
                       f"run python tools/notebooks.py goldens {ch.stem[:2]}")
    return out


def golden_images(path: Path) -> list[str]:
    nb = json.loads(path.read_text())
    if any(is_image(o) for c in nb["cells"] if c["cell_type"] == "code" and not checked(c) for o in c["outputs"]):
        return [f"{shown(path)}: a figure in a cell nbval does not compare (python tools/notebooks.py goldens drops them)"]
    return []


def cmd_check(args) -> None:
    goldens = sorted(GOLDENS.glob("*.ipynb"))
    issues = unsynced() + stale_goldens() + [p for nb in chapters() + goldens for p in problems(nb)] + \
        [p for g in goldens for p in golden_images(g)]
    print("\n".join(issues) or "notebooks OK")
    raise SystemExit(1 if issues else 0)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = p.add_subparsers(dest="cmd", required=True)
    for name, fn in (("sync", cmd_sync), ("render", cmd_render), ("smoke", cmd_smoke), ("goldens", cmd_goldens),
                     ("check", cmd_check), ("colab", cmd_colab), ("estimate", cmd_estimate)):
        s = sub.add_parser(name)
        s.set_defaults(fn=fn)
        if name not in ("check", "colab"):
            s.add_argument("chapters", nargs="*")
        if name not in ("check", "colab", "sync", "estimate"):
            s.add_argument("--timeout", type=int, default=None, help="per-cell timeout in seconds")
        if name == "sync":
            s.add_argument("--force", action="store_true",
                           help="overwrite a notebook edited after its text source (its edits are lost)")
        if name == "smoke":
            s.add_argument("--out", default=None)
        if name in ("render", "smoke"):
            s.add_argument("--reuse", action="store_true",
                           help="REUSE=True: redraw from the chapter's run records instead of training")
    args = p.parse_args()
    args.fn(args)


if __name__ == "__main__":
    main()
