"""What every chapter notebook does the same way: set up (seed, threads, device) and record its
results beside the numbers the original reported, in a small JSON file per chapter that later
chapters and the results chapter read."""
from __future__ import annotations

import json
import os
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import torch

from . import __version__, records, repository
from .devices import describe_device, resolve_device
from .files import write_json_atomic
from .reported import SOURCES, Reported, reported
from .train import seed_everything

def setup(seed: int = 0, device: str = "auto", threads: int | None = None, *, chapter: str | None = None,
          reuse: bool = False, results_dir: str | os.PathLike | None = None, smoke: bool = False) -> torch.device:
    """Seed everything, fix the thread count if asked, pick the device and say which.

    With `chapter` (the notebook's stem) every ``runs.run`` that follows is recorded in
    `results_dir`/runs/`chapter`/ (``normlab.records``), marked as a smoke run if `smoke`; with
    reuse=True it is loaded from its record (or the book's committed copy) instead of trained."""
    if chapter is None and (reuse or results_dir is not None):
        raise ValueError("reuse= and results_dir= need chapter= (the notebook's stem, e.g. '07_normalization_zoo')")
    if threads:
        torch.set_num_threads(int(threads))
    seed_everything(seed)
    dev = resolve_device(device)
    print(f"normlab {__version__}, torch {torch.__version__}, {describe_device(dev)}, seed {seed}")
    if chapter is not None:
        print(records.start(chapter, results_dir, reuse=reuse, smoke=smoke).describe())
    else:
        records.stop()  # a setup without a chapter records nothing, whatever ran before in this kernel
    return dev


class Timer:
    """with Timer() as t: ...; t.seconds"""

    def __enter__(self):
        self.start = time.perf_counter()
        self.seconds = 0.0
        return self

    def __exit__(self, *exc):
        self.seconds = time.perf_counter() - self.start
        return False


def close(p: torch.Tensor, q: torch.Tensor, tol: float = 1e-5) -> bool:
    """Whether `p` equals the reference `q` up to float rounding: the largest difference is at most
    `tol` times q's largest magnitude (how chapters check a layer they wrote against the library's)."""
    return (p - q).abs().max().item() <= tol * q.abs().max().item()


def fmt_pct(v: float | None, digits: int = 2) -> str:
    return "n/a" if v is None else f"{100 * v:.{digits}f} %"


def fmt_points(d: float | None, digits: int = 2) -> str:
    """The size of a difference of two accuracies in percentage points: 0.0051 -> '0.51 points'
    (the prose says which way; glue that word too)."""
    return "n/a" if d is None else f"{100 * abs(d):.{digits}f} points"


def fmt_vs(d: float, digits: int = 2) -> str:
    """A difference of two accuracies with its direction, for '... {vs} the source's 68.14 %':
    0.0074 -> '0.74 points above', -0.0128 -> '1.28 points below', equal at the shown digits -> 'equal to'."""
    return "equal to" if round(100 * d, digits) == 0 else f"{fmt_points(d, digits)} {'above' if d > 0 else 'below'}"


def fmt_reported(rows: list[Reported]) -> str:
    """'47.24 % (blog); 46.92 % (original notebook)' from reported rows."""
    parts = []
    for r in rows:
        value = r.note if r.value is None else (fmt_pct(r.value) if r.metric.endswith("accuracy") else f"{r.value:g}")
        parts.append(f"{value} ({SOURCES[r.source][0]})")
    return "; ".join(parts)


@dataclass
class Row:
    experiment: str
    metric: str
    measured: float
    reported: str
    hardware: str
    time_s: float
    full_run: bool
    epochs: int | None = None
    note: str = ""


@dataclass
class Results:
    """The measured results of one chapter. `smoke=True` marks them as not comparable."""
    chapter: str
    seed: str
    smoke: bool
    hardware: str = field(default_factory=lambda: describe_device("auto"))
    rows: list[Row] = field(default_factory=list)

    def add(self, experiment: str, measured: float, time_s: float, *, metric: str = "test accuracy",
            epochs: int | None = None, reported_as: str | None = None, note: str = "") -> Row:
        """Record one measured number beside what the seed reported for `reported_as` (default:
        the same experiment name); no reported number -> 'new result'."""
        try:
            rep = fmt_reported([r for r in reported(self.seed, reported_as or experiment) if r.metric == metric])
        except ValueError:
            rep = ""
        ctx = records.active()
        # a redrawn chapter's numbers and times are the recorded runs': name their hardware, not this one's
        hardware = f"{', '.join(ctx.reused_on)} (recorded)" if ctx is not None and ctx.reuse and ctx.reused_on \
            else self.hardware
        row = Row(experiment, metric, float(measured), rep or "none (new result)", hardware,
                  round(float(time_s), 1), not self.smoke, epochs, note)
        self.rows = [r for r in self.rows if not (r.experiment == experiment and r.metric == metric)] + [row]
        return row

    def markdown(self) -> str:
        head = "| experiment | reported by the seed (source) | measured here | hardware | time |\n|---|---|---|---|---|"
        lines = [head]
        for r in self.rows:
            measured = fmt_pct(r.measured) if r.metric.endswith("accuracy") else f"{r.measured:g}"
            run = f"{r.epochs} epochs" if r.epochs else ""
            kind = "" if r.full_run else " (smoke run)"
            lines.append(f"| {r.experiment}{' — ' + r.note if r.note else ''} | {r.reported} | {measured} "
                         f"{r.metric}{kind} | {r.hardware} | {r.time_s:.0f} s {run} |")
        return "\n".join(lines)

    def show(self):
        from IPython.display import Markdown, display

        display(Markdown(self.markdown()))

    def save(self, folder: str | os.PathLike) -> Path:
        """Write results/<chapter>.json atomically."""
        folder = Path(folder)
        folder.mkdir(parents=True, exist_ok=True)
        path = folder / f"{self.chapter}.json"
        payload = {**asdict(self), "normlab": __version__, "torch": torch.__version__}
        write_json_atomic(path, payload)
        return path


COMMITTED = "book/results"  # where the repository keeps the chapters' results (normlab ships a copy)


def _where_to_get(path: str) -> str:
    try:
        return repository.web_url(path)
    except FileNotFoundError:  # neither a checkout nor a package copy of _config.yml
        return f"{path} in the book's repository"


def results_file(name: str, folder: str | os.PathLike) -> Path | None:
    """`folder`/`name` where a run wrote it, else the book's committed copy of it (saying so), else
    None after saying what is missing and where to get it. `name` is relative to a results folder,
    such as "grids/07_zoo_grid.json"."""
    here = Path(folder) / name
    if here.exists():
        return here
    committed = repository.committed_file(f"{COMMITTED}/{name}")
    if committed is not None:
        print(f"{name} is not in {folder}/: using the book's committed copy (normlab {__version__})")
        return committed
    print(f"{name} is neither in {folder}/ nor in this installation of normlab: "
          f"download {_where_to_get(f'{COMMITTED}/{name}')} into {folder}/")
    return None


def _read_results(path: Path) -> Results:
    d = json.loads(path.read_text())
    rows = [Row(**r) for r in d.pop("rows")]
    return Results(d["chapter"], d["seed"], d["smoke"], d["hardware"], rows)


def load_results(folder: str | os.PathLike, chapters: list[str] | None = None) -> list[Results]:
    """The results of `chapters` (default: every chapter found), each from `folder` where a run wrote
    it, else from the book's committed results that normlab ships (a reader who opens one chapter
    on Colab has no results folder). Prints which came from the committed copy and, for a chapter
    found in neither, what is missing and where to get it; prints nothing when `folder` has all."""
    def found(d):
        return {p.stem: p for p in sorted(Path(d).glob("*.json"))} if d is not None and Path(d).is_dir() else {}

    committed_dir = repository.committed_file(COMMITTED)
    here, committed = found(folder), found(committed_dir)
    if chapters is None:
        if committed_dir is None:
            print(f"this installation of normlab carries no committed results: download the files of "
                  f"{_where_to_get(COMMITTED)} into {folder}/ to read every chapter's")
        chapters = sorted(here.keys() | committed.keys())
    out, fallback = [], []
    for name in chapters:
        path = here.get(name) or committed.get(name)
        if path is None:
            print(f"no results of {name}: neither in {folder}/ nor in this installation of normlab; run that "
                  f"chapter (it writes {folder}/{name}.json) or download {_where_to_get(f'{COMMITTED}/{name}.json')}")
            continue
        if name not in here:
            fallback.append(name)
        out.append(_read_results(path))
    if fallback:
        print(f"not in {folder}/, so from the book's committed results (normlab {__version__}): {', '.join(fallback)}")
    return out
