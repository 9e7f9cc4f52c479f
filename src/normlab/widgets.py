"""A live training panel for the notebooks, and its static stand-in for the rendered book.

``TrainingPanel`` trains a seed's model on a small subset with the norm type and learning rate the
reader picks, redraws the loss and accuracy curves after every epoch with a progress bar, and adds
each run to a table so runs can be compared::

    panel = TrainingPanel("erav1s8")   # norm dropdown, lr slider, epochs, subset size, Train
    panel                              # shows it; press Train (or panel.train(); panel.wait())

Training runs in a background thread so the notebook stays responsive; pressing Train during a run
cancels it (at the next step) and starts the new one. A diverging learning rate ends the run with
a message in the panel, never a traceback.

A rendered book has no kernel, so the panel cannot run there. ``static_grid(results)`` turns a grid
of real runs (norm type x learning rate, made by ``tools/zoo_grid.py``) into HTML tabs of figures
that switch with CSS alone, and ``run_grid`` is what that script calls.
"""
from __future__ import annotations

import base64
import hashlib
import html
import io
import math
import threading
import time
from dataclasses import dataclass, field

import torch
from matplotlib.figure import Figure  # not pyplot: figures are drawn off-screen, also from a thread

from .data import Loaders, load_dataset, loaders
from .devices import describe_device, resolve_device
from .history import History
from . import runs
from .models import MODELS
from .precision import choose_precision
from .recipes import build_augment, get_recipe, norm_choices
from .train import CancelFit

__all__ = ["PANEL_DEFAULTS", "PanelRun", "TrainingPanel", "curves_png", "run_grid", "static_grid"]

LR_MIN, LR_MAX = 1e-4, 10.0
BATCH_SIZES = (2, 4, 8, 16, 32, 64, 128, 256)
LIVE_FIRST_POINT, LIVE_REDRAW_S = 5, 2.0  # steps before the first live curve; seconds between redraws
# The default run (erav1s8, the chapter's norm and lr) takes under 10 s on 2 CPU cores
# (benchmarks/bench_panel.py); tools/zoo_grid.py's precomputed grid records the sizes it used.
PANEL_DEFAULTS = {"epochs": 4, "subset": 150, "test_subset": 50}
# What each control does: shown on hovering its label, and the description a screen reader reads
# where the front end links it (ipywidgets 8: a label's or button's title).
TIPS = {
    "norm": "the normalization layer after each convolution (none: no normalization)",
    "lr": "learning rate of SGD, on a log scale from 0.0001 to 10; too high a rate makes the loss diverge",
    "epochs": "passes over the training images",
    "subset": "training images per class (a seeded subset of the data set, the same for every run)",
    "batch": "images per training step; the learning rate is not rescaled, and batch norm's statistics "
             "come from this many images",
    "train": "train with these settings; pressing Train during a run cancels it and starts the new one",
    "progress": "training steps done in this run",
}


@dataclass
class PanelRun:
    """One run of the panel: what was asked, how it ended, its history."""
    norm: str
    lr: float
    epochs: int
    subset: int
    batch_size: int | None = None
    status: str = "running"   # running | done | diverged | cancelled | error
    message: str = ""
    seconds: float = 0.0
    history: History = field(default_factory=History)
    steps_per_epoch: int = 0  # for drawing the per-step training loss on the epoch axis

    @property
    def label(self) -> str:
        return f"{self.norm}, lr {self.lr:.3g}"

    def summary(self) -> dict:
        last = self.history.last if len(self.history) else {}
        return {"norm": self.norm, "lr": self.lr, "epochs": len(self.history), "subset": self.subset,
                "batch_size": self.batch_size, "train_acc": last.get("train_acc"), "test_acc": last.get("test_acc"),
                "seconds": round(self.seconds, 1), "status": self.status, "message": self.message}


def _check_lr(lr: float) -> float:
    lr = float(lr)
    if not (LR_MIN <= lr <= LR_MAX):
        raise ValueError(f"learning rate {lr:g} is outside the panel's range [{LR_MIN:g}, {LR_MAX:g}]")
    return lr


def _loaders(recipe, splits, seed: int, device, batch_size: int | None = None) -> Loaders:
    """The recipe's batches over a subset already in memory (the panel keeps the dataset loaded)."""
    return loaders(splits, batch_size or recipe.batch_size, test_batch_size=recipe.test_batch_size,
                   augment=build_augment(recipe.augment), test_augment=build_augment(recipe.test_augment),
                   normalize=recipe.normalize, seed=seed, device=device)


def _train_one(model_name: str, norm: str, lr: float, epochs: int, data: Loaders, seed: int,
               callbacks=(), progress=False) -> tuple[History, str, str]:
    """Train one configuration through ``normlab.runs``; returns (history, status, message).
    Never raises for a diverging run."""
    # A loss 20x that of guessing (ln 10 = 2.3 for 10 classes) has diverged, even while finite.
    r = runs.run(model_name, norm=norm, lr=lr, epochs=epochs, data=data, seed=seed, callbacks=list(callbacks),
                 progress=progress, max_loss=20 * math.log(len(data.classes)),
                 record=False)  # the reader's own runs: never recorded, never reused (REUSE)
    if r.status == "cancelled":
        return r.history, "cancelled", "cancelled: Train was pressed again"
    return r.history, r.status, r.history.stopped or ""


def curves_figure(runs: list[PanelRun], title: str = "") -> Figure:
    """Loss (per epoch, train and test) and accuracy (train dashed, test solid) of several runs."""
    fig = Figure(figsize=(9.5, 3.4), layout="constrained")
    ax_loss, ax_acc = fig.subplots(1, 2)
    for i, run in enumerate(runs):
        ep = [e["epoch"] + 1 for e in run.history.epochs]
        color = f"C{i % 10}"
        losses = run.history.steps.get("loss", [])
        if run.steps_per_epoch and losses:  # live: the training loss of every step so far
            x = [(k + 1) / run.steps_per_epoch for k in range(len(losses))]
            ax_loss.plot(x, losses, "-", lw=0.7, color=color, alpha=0.45,
                         label=None if ep else run.label + " (training)")
        if not ep:
            continue
        ax_loss.plot(ep, [e["train_loss"] for e in run.history.epochs], "--", color=color, alpha=0.6)
        ax_loss.plot(ep, [e.get("test_loss") for e in run.history.epochs], "o-", ms=3, color=color,
                     label=run.label + ("" if run.status == "done" else f" ({run.status})"))
        ax_acc.plot(ep, [e["train_acc"] for e in run.history.epochs], "--", color=color, alpha=0.6)
        ax_acc.plot(ep, [e.get("test_acc") for e in run.history.epochs], "o-", ms=3, color=color)
    ax_loss.set(xlabel="epoch", ylabel="loss", title="loss (dashed: training)")
    ax_acc.set(xlabel="epoch", ylabel="accuracy", title="accuracy (dashed: training)", ylim=(0, 1))
    for ax in (ax_loss, ax_acc):
        ax.grid(alpha=0.3)
        ax.xaxis.get_major_locator().set_params(integer=True)
    if any(r.history.epochs or r.history.steps.get("loss") for r in runs):
        ax_loss.legend(fontsize=8)
    if title:
        fig.suptitle(title)
    return fig


def curves_png(runs: list[PanelRun], title: str = "", dpi: int = 80) -> bytes:
    buf = io.BytesIO()
    curves_figure(runs, title).savefig(buf, format="png", dpi=dpi)
    return buf.getvalue()


def _table_html(rows: list[dict]) -> str:
    head = ("<tr><th>#</th><th>norm</th><th>lr</th><th>epochs</th><th>images/class</th><th>batch</th>"
            "<th>train acc</th><th>test acc</th><th>time</th><th>status</th></tr>")
    pct = lambda v: "" if v is None else f"{100 * v:.1f} %"  # noqa: E731
    body = "".join(
        f"<tr><td>{i + 1}</td><td>{html.escape(r['norm'])}</td><td>{r['lr']:.3g}</td><td>{r['epochs']}</td>"
        f"<td>{r['subset']}</td><td>{r.get('batch_size') or ''}</td><td>{pct(r['train_acc'])}</td>"
        f"<td>{pct(r['test_acc'])}</td>"
        f"<td>{r['seconds']:.0f} s</td><td title=\"{html.escape(r['message'])}\">{html.escape(r['status'])}</td></tr>"
        for i, r in enumerate(rows))
    # cellpadding: front ends without table CSS (the classic notebook) would run the cells together
    return f'<table class="normlab-runs" cellpadding="4">{head}{body}</table>'


def _describe(widget, text: str) -> None:
    """Give a control its description (hover text) in ipywidgets 8 (``tooltip``) and 7 (a Button's
    ``tooltip``, other controls' ``description_tooltip``)."""
    if widget.has_trait("tooltip"):
        widget.tooltip = text
        if widget.has_trait("options") and widget.has_trait("description_allow_html") and widget.description:
            # ipywidgets 8 shows a Dropdown's tooltip only when it has no description (then on the
            # <select>): put it on the label's text instead, where the sliders' labels have theirs.
            widget.description_allow_html = True
            widget.description = f'<span title="{html.escape(text)}">{html.escape(widget.description)}</span>'
    elif widget.has_trait("description_tooltip"):
        widget.description_tooltip = text


def _curves_alt(runs: list[PanelRun]) -> str:
    """The curve image's alternative text: what it plots, and of which runs."""
    if not runs:
        return "Training curves: no runs yet"
    shown = "; ".join(r.label + ("" if r.status == "done" else f" ({r.status})") for r in runs)
    return f"Training curves, loss (left) and accuracy (right) per epoch, dashed training, solid test, of: {shown}"


def _curve_image(W, alt: str):
    """An ipywidgets Image for the curves whose ``<img>`` carries ``alt`` as its title, which is what
    a screen reader announces for an image without an alt attribute (ipywidgets has none).

    ipywidgets 8 renders a widget's ``tooltip`` as that title, but only after reading the model's
    ``description``, which an Image lacks: an Image given a tooltip fails to render ("Could not create
    a view"). This one syncs an empty description so it renders. ipywidgets 7's Image has no tooltip
    at all: there the image goes without (the panel's other controls keep their descriptions)."""
    if "tooltip" not in W.Image.class_trait_names():
        return W.Image(format="png", layout=W.Layout(max_width="100%"))
    from traitlets import Unicode

    class CurveImage(W.Image):
        description = Unicode("").tag(sync=True)

    return CurveImage(format="png", layout=W.Layout(max_width="100%"), tooltip=alt)


class TrainingPanel:
    """Norm-type dropdown, learning-rate log slider, epochs and subset size, a Train button; live
    curves, a progress bar, a status line and a table of the runs so far.

    ``subset`` = training images per class (a seeded stratified subset; the test subset is
    ``test_subset`` per class). Defaults: erav1s8 and ``PANEL_DEFAULTS`` (sized for a run of about 10 s
    on 2 CPU cores: benchmarks/bench_panel.py); ``batch_size``: the recipe's.
    """

    def __init__(self, model: str = "erav1s8", *, norm: str | None = None, lr: float | None = None,
                 epochs: int = PANEL_DEFAULTS["epochs"], subset: int = PANEL_DEFAULTS["subset"],
                 test_subset: int = PANEL_DEFAULTS["test_subset"], batch_size: int | None = None,
                 data_dir=None, device="auto", seed: int = 0, threaded: bool = True):
        import ipywidgets as W

        recipe = get_recipe(model)
        choices = norm_choices(model)
        if not choices:
            with_norm = [m for m in MODELS if norm_choices(m)]
            raise ValueError(f"model {model!r} has no norm argument; models with one: {', '.join(with_norm)}")
        norm = norm or ("batch" if "batch" in choices else choices[0])
        if norm not in choices:
            raise ValueError(f"unknown norm {norm!r} for {model}; accepted: {', '.join(choices)}")
        lr = _check_lr(lr or recipe.lr)
        self.model_name, self.recipe, self.seed, self.threaded = model, recipe, seed, threaded
        self.test_subset = test_subset
        # Train where the chapter chose (a GPU runtime on Colab): the data live there, so does the model.
        self.device = resolve_device(device)
        self.where = describe_device(self.device)
        self._splits = load_dataset(recipe.dataset, data_dir, device=self.device, download=True)
        self.runs: list[PanelRun] = []
        self._thread: threading.Thread | None = None
        self._cancel = threading.Event()
        self._lock = threading.Lock()

        self.norm = W.Dropdown(options=list(choices), value=norm, description="norm")
        self.lr = W.FloatLogSlider(value=lr, base=10, min=-4, max=1, step=0.1,
                                   description="learning rate", readout_format=".2g",
                                   style={"description_width": "initial"})
        self.epochs = W.IntSlider(value=epochs, min=1, max=10, description="epochs")
        self.subset = W.IntSlider(value=subset, min=10, max=2000, step=10, description="images/class",
                                  style={"description_width": "initial"})
        batch_size = batch_size or recipe.batch_size
        if batch_size not in BATCH_SIZES:
            raise ValueError(f"batch size {batch_size!r} is not one of the panel's: {', '.join(map(str, BATCH_SIZES))}")
        self.batch_size = W.Dropdown(options=list(BATCH_SIZES), value=batch_size, description="batch size",
                                     style={"description_width": "initial"}, layout=W.Layout(width="170px"))
        self.train_button = W.Button(description="Train", button_style="primary", icon="play")
        self.progress = W.IntProgress(value=0, min=0, max=1, description="idle",
                                      style={"description_width": "initial"})
        for control, key in ((self.norm, "norm"), (self.lr, "lr"), (self.epochs, "epochs"),
                             (self.subset, "subset"), (self.batch_size, "batch"), (self.train_button, "train"),
                             (self.progress, "progress")):
            _describe(control, TIPS[key])
        self.status = W.HTML("Pick a norm and a learning rate, then press Train.")
        self.plot = _curve_image(W, _curves_alt([]))
        self.table = W.HTML(_table_html([]))
        self.train_button.on_click(lambda _: self.train())
        controls = W.VBox([W.HBox([self.norm, self.lr]), W.HBox([self.epochs, self.subset, self.batch_size]),
                           W.HBox([self.train_button, self.progress])])
        self.widget = W.VBox([controls, self.status, self.plot, self.table])
        self._draw([])

    # ------------------------------------------------------------------ display
    # ipywidgets 8 displays a widget through _repr_mimebundle_, ipywidgets 7 (what Colab ships)
    # through _ipython_display_ and has no _repr_mimebundle_: forward both, so the panel shows on
    # either (IPython calls _ipython_display_ first when it exists).
    def _ipython_display_(self):
        from IPython.display import display

        display(self.widget)

    def _repr_mimebundle_(self, **kwargs):
        forward = getattr(self.widget, "_repr_mimebundle_", None)
        return forward(**kwargs) if forward is not None else None

    def _draw(self, runs: list[PanelRun]) -> None:
        self.plot.value = curves_png(runs[-5:], title="" if runs else "no runs yet")
        if self.plot.has_trait("tooltip"):
            self.plot.tooltip = _curves_alt(runs[-5:])

    def _set_status(self, text: str, kind: str = "info") -> None:
        color = {"info": "inherit", "ok": "#1a7f37", "error": "#cf222e"}[kind]
        self.status.value = f'<span style="color:{color}">{html.escape(text)}</span>'

    # ------------------------------------------------------------------ running
    @property
    def running(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    def train(self) -> PanelRun:
        """Start a run with the current settings; a run in progress is cancelled first."""
        self.cancel()
        run = PanelRun(self.norm.value, _check_lr(self.lr.value), int(self.epochs.value), int(self.subset.value),
                       int(self.batch_size.value))
        self.runs.append(run)
        self._cancel = threading.Event()
        self.table.value = _table_html([r.summary() for r in self.runs])
        if self.threaded:
            self._thread = threading.Thread(target=self._run, args=(run, self._cancel), daemon=True)
            self._thread.start()
        else:
            self._run(run, self._cancel)
        return run

    def cancel(self) -> None:
        """Stop the run in progress (at its next training step) and wait for it."""
        if self.running:
            self._cancel.set()
            self._thread.join()

    def wait(self, timeout: float | None = None) -> None:
        if self._thread is not None:
            self._thread.join(timeout)

    def _run(self, run: PanelRun, cancel: threading.Event) -> None:
        panel = self
        t0 = time.perf_counter()
        try:
            splits = self._splits.subset(run.subset, self.test_subset, seed=self.seed)
            data = _loaders(self.recipe, splits, self.seed, self.device, run.batch_size)
            run.steps_per_epoch = len(data.train)
            steps = len(data.train) * run.epochs
            self.progress.max, self.progress.value, self.progress.description = steps, 0, "training"
            self._set_status(f"training {run.label} on {len(splits.train)} images for {run.epochs} epochs "
                             f"on {self.where}, {choose_precision(self.device).name} ...")

            class Live:
                drawn = t0  # the first live curve comes after LIVE_FIRST_POINT steps

                def after_step(self, history, **_):
                    if cancel.is_set():
                        raise CancelFit("Train pressed again")
                    panel.progress.value = min(panel.progress.value + 1, steps)
                    run.history = history
                    # the curve after the first few steps, then at most once a second: drawing
                    # costs tens of milliseconds, in the training thread
                    first = len(history.steps["loss"]) == LIVE_FIRST_POINT
                    if first or time.perf_counter() - self.drawn > LIVE_REDRAW_S:
                        self.draw()

                def draw(self):
                    self.drawn = time.perf_counter()
                    with panel._lock:
                        panel._draw(panel.runs)

                def after_epoch(self, history, epoch, **_):
                    run.history = history
                    run.seconds = time.perf_counter() - t0
                    if epoch < run.epochs - 1:  # the last epoch is drawn once the run ends
                        self.draw()

            h, run.status, run.message = _train_one(self.model_name, run.norm, run.lr, run.epochs, data,
                                                    self.seed, callbacks=[Live()])
            run.history = h
        except Exception as e:  # shown in the panel, never as a traceback
            run.status, run.message = "error", f"{type(e).__name__}: {e}"
        run.seconds = time.perf_counter() - t0
        with self._lock:
            self._draw(self.runs)
            self.table.value = _table_html([r.summary() for r in self.runs])
        self.progress.description = run.status
        if run.status == "done":
            self._set_status(f"done: {run.label}: test accuracy {run.history.last['test_acc']:.1%} "
                             f"after {run.epochs} epochs ({run.seconds:.0f} s on {self.where})", "ok")
        elif run.status == "cancelled":
            self._set_status(f"{run.label}: cancelled after {len(run.history)} epochs")
        else:
            self._set_status(f"{run.label}: {run.message}", "error")


# ---------------------------------------------------------------------------- the static grid
def run_grid(model: str, norms, lrs, *, epochs: int, subset: int, test_subset: int, batch_size: int | None = None,
             data_dir=None, seed: int = 0, log=print) -> dict:
    """Train every (norm, lr) pair as the panel would; returns a JSON-ready dict of the runs."""
    recipe = get_recipe(model)
    splits = load_dataset(recipe.dataset, data_dir).subset(subset, test_subset, seed=seed)
    out = {"model": model, "model_revision": MODELS[model].revision, "epochs": epochs, "subset": subset,
           "test_subset": test_subset, "seed": seed,
           "torch": torch.__version__, "threads": torch.get_num_threads(), "runs": []}
    for norm in norms:
        for lr in lrs:
            data = _loaders(recipe, splits, seed, "cpu", batch_size)
            t0 = time.perf_counter()
            h, status, message = _train_one(model, norm, lr, epochs, data, seed)
            run = PanelRun(norm, lr, epochs, subset, data.train.batch_size, status, message,
                           time.perf_counter() - t0, h)
            out["runs"].append({**run.summary(), "history": {"epochs": h.epochs}})
            acc = run.summary()["test_acc"]
            log(f"{run.label:24s} {status:9s} test acc {'-' if acc is None else f'{acc:.3f}':>5s} {run.seconds:5.1f} s")
    return out


def _runs_from(results: dict) -> list[PanelRun]:
    runs = []
    for r in results["runs"]:
        runs.append(PanelRun(r["norm"], r["lr"], r["epochs"], r["subset"], r.get("batch_size"), r["status"],
                             r["message"], r["seconds"], History(epochs=r["history"]["epochs"])))
    return runs


def static_grid(results: dict, group_by: str = "norm") -> "StaticGrid":
    """Tabs of figures from a ``run_grid`` result (one tab per norm, or per lr with
    ``group_by="lr"``), switchable without a kernel: radio buttons and CSS only."""
    if group_by not in ("norm", "lr"):
        raise ValueError(f"group_by must be 'norm' or 'lr', got {group_by!r}")
    return StaticGrid(results, group_by)


class StaticGrid:
    def __init__(self, results: dict, group_by: str):
        self.results, self.group_by = results, group_by
        self.runs = _runs_from(results)

    def groups(self) -> dict[str, list[PanelRun]]:
        out: dict[str, list[PanelRun]] = {}
        for run in self.runs:
            key = run.norm if self.group_by == "norm" else f"lr {run.lr:g}"
            out.setdefault(key, []).append(run)
        return out

    def _repr_html_(self) -> str:
        # a stable id (not hash(): strings hash differently in every process), unique per grid
        key = f"{self.results['model']}|{self.group_by}|{len(self.runs)}".encode()
        uid = f"nlgrid{hashlib.sha1(key).hexdigest()[:8]}"
        r = self.results
        tabs, panes, css = [], [], []
        for i, (name, group) in enumerate(self.groups().items()):
            img = base64.b64encode(curves_png(group, dpi=72)).decode()
            rows = _table_html([x.summary() for x in group])
            tid = f"{uid}-{i}"
            tabs.append(f'<input type="radio" name="{uid}" id="{tid}" {"checked" if i == 0 else ""}>'
                        f'<label for="{tid}">{html.escape(name)}</label>')
            panes.append(f'<div class="nl-pane nl-pane-{i}"><img alt="curves for {html.escape(name)}" '
                         f'src="data:image/png;base64,{img}">{rows}</div>')
            css.append(f"#{tid}:checked ~ .nl-panes .nl-pane-{i} {{display:block}}")
        style = (f"<style>.{uid} input{{display:none}} .{uid} label{{display:inline-block;padding:4px 12px;"
                 f"margin-right:2px;border:1px solid #8886;border-bottom:none;border-radius:4px 4px 0 0;"
                 f"cursor:pointer}} .{uid} input:checked + label{{background:#8883;font-weight:bold}} "
                 f".{uid} .nl-pane{{display:none;border:1px solid #8886;padding:6px}} "
                 f".{uid} .nl-pane img{{max-width:100%;height:auto}} "
                 f".{uid} table.normlab-runs{{font-size:0.85em}} {' '.join(css)}</style>")
        caption = (f"<p><em>Precomputed runs of <code>{html.escape(r['model'])}</code>: "
                   f"{r['subset']} training and {r['test_subset']} test images per class, {r['epochs']} "
                   f"epochs, seed {r['seed']}, torch {html.escape(r['torch'])} on {r['threads']} CPU threads "
                   f"(tools/zoo_grid.py). Pick a tab.</em></p>")
        return (f'<div class="{uid} normlab-grid">{style}{caption}{"".join(tabs)}'
                f'<div class="nl-panes">{"".join(panes)}</div></div>')
