"""Per-layer activation statistics over training, recorded by forward hooks.

The idea and the three plots come from fastai's course22p2 ``miniai.activations``
(``ActivationStats`` with ``plot_stats``, ``color_dim`` and ``dead_chart``); here the recorder is a
``normlab.train.fit`` callback, keeps the per-step numbers small (no activations are stored), can
also record each layer's gradient norm, and survives several fit calls (fastai 0.7's
``fit(lr, 2)`` then ``fit(lr, 2, cycle_len=1)``)::

    stats = ActivationStats(named_layers(model, BnLayer), every=2)
    history = train.fit(model, dl, 2, 1e-2, callbacks=[stats])
    history.extend(train.fit(model, dl, 2, 1e-2, schedule="sgdr", callbacks=[stats]))
    stats.plot_stats(); stats.color_dim(); stats.dead_chart(); stats.plot_grad_norms()

Every ``every`` training steps, for each hooked module, the hook summarises the module's output
``a`` (or ``fn(module, inputs, output)``) of that step's training forward pass into:

* ``mean`` and ``std`` of all its values (batch, channels and positions together, as fastai);
* ``dead``: the fraction of values with ``|a| < dead_below`` (default: the width of the first
  histogram bin, i.e. fastai's "fraction in the lowest bin");
* ``hist``: the fraction of values of ``|a|`` in each of ``bins`` equal bins over ``hist_range``
  (values above the range are counted in the last bin, so each histogram sums to 1);
* ``grad_norm`` and ``param_norm`` (``grads=True``): the L2 norms of the gradients of the module's
  parameters after that step's backward pass, and of the parameters themselves after the step.
  Their ratio is the size of a gradient step relative to the weights, which is what matters for a
  layer followed by a normalization (its output does not change when its weights are scaled).

Forward passes in eval mode (``fit``'s evaluation) are never recorded. The hooks exist only between
``before_fit`` and ``after_fit`` (or ``start()`` and ``stop()``).
"""
from __future__ import annotations

import math
from typing import Callable, Mapping, Sequence

import torch
import torch.nn as nn

__all__ = ["ActivationStats", "named_layers", "l2_norm", "plot_stats", "color_dim", "dead_chart", "plot_grad_norms"]

KEYS = ("mean", "std", "dead", "grad_norm", "param_norm")


def named_layers(model: nn.Module, *types: type) -> dict[str, nn.Module]:
    """``{name: module}`` for the submodules of ``model`` that are instances of ``types``, in
    registration order (e.g. every ``BnLayer`` of a ConvBnNet). No types: the direct children."""
    if not types:
        return dict(model.named_children())
    return {name: m for name, m in model.named_modules() if name and isinstance(m, types)}


def l2_norm(*tensors: torch.Tensor) -> float:
    """The L2 norm of all the values of ``tensors`` together, as a Python float, without underflow:
    each tensor is divided by its largest magnitude before squaring. A plain float32 norm squares
    first, so values below about 1e-19 (the gradients of a deep network without normalization at
    PyTorch's default initialization) give 0. Works on every device (no float64 needed); NaN if a
    value is not finite."""
    parts = []
    with torch.no_grad():
        for t in tensors:
            t = t.detach().float()
            if t.numel():
                scale = t.abs().max().clamp_min(torch.finfo(torch.float32).tiny)
                s, n = torch.stack([scale, (t / scale).norm()]).tolist()  # one device sync
                parts.append(s * n)
    return math.hypot(*parts)


class ActivationStats:
    """Records per-layer activation statistics every ``every`` training steps (see the module doc).

    ``layers``: ``{name: module}`` (e.g. from :func:`named_layers`) or a list of modules (named
    "0", "1", ...). ``fn(module, inputs, output) -> tensor`` picks what to summarise (default: the
    output), e.g. ``lambda m, i, o: o.relu()`` on a conv records the ReLU after it.

    After training: ``steps`` (the global step of each record, counted over all fit calls),
    ``fit_starts`` (the global step where each fit call began), ``series(key)`` -> ``{name: [value
    per record]}`` for key in mean / std / dead / grad_norm / param_norm, ``hist(name)`` -> a (bins, records)
    tensor, ``summary()`` a text table, and the plots.
    """

    def __init__(self, layers: Mapping[str, nn.Module] | Sequence[nn.Module], *, every: int = 1,
                 bins: int = 40, hist_range: tuple[float, float] = (0.0, 10.0),
                 dead_below: float | None = None, fn: Callable | None = None, grads: bool = True):
        if isinstance(layers, nn.Module):
            raise TypeError("layers must be {name: module} or a list of modules; "
                            "use named_layers(model, SomeLayerType) to pick them")
        self.layers = dict(layers) if isinstance(layers, Mapping) else {str(i): m for i, m in enumerate(layers)}
        if not self.layers:
            raise ValueError("no layers to record")
        if not isinstance(every, int) or isinstance(every, bool) or every < 1:
            raise ValueError(f"every must be a positive int, got {every!r}")
        if not isinstance(bins, int) or bins < 1:
            raise ValueError(f"bins must be a positive int, got {bins!r}")
        lo, hi = map(float, hist_range)
        if not 0 <= lo < hi:
            raise ValueError(f"hist_range must be (lo, hi) with 0 <= lo < hi (it bins |activation|), got {hist_range!r}")
        self.every, self.bins, self.hist_range = every, bins, (lo, hi)
        self.dead_below = (hi - lo) / bins if dead_below is None else float(dead_below)
        self.fn, self.grads = fn, grads
        self.steps: list[int] = []
        self.fit_starts: list[int] = []
        self.records = {name: {k: [] for k in (*KEYS, "counts", "numel")} for name in self.layers}
        self._handles: list = []
        self._step = 0          # training steps seen, over all fit calls
        self._armed = False     # record the next training forward pass?
        self._pending: dict[str, dict] = {}

    # ------------------------------------------------------------------ hooks
    def start(self) -> "ActivationStats":
        """Register the forward hooks (idempotent) and arm recording if this step is due."""
        if not self._handles:
            self._handles = [m.register_forward_hook(self._hook(name)) for name, m in self.layers.items()]
        self._armed = self._step % self.every == 0
        return self

    def stop(self) -> None:
        """Remove the hooks; recorded numbers stay."""
        for h in self._handles:
            h.remove()
        self._handles = []
        self._armed = False
        self._pending = {}

    @property
    def hooked(self) -> bool:
        return bool(self._handles)

    def __enter__(self) -> "ActivationStats":
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()

    def _hook(self, name: str) -> Callable:
        def hook(module, inputs, output):
            if self._armed and module.training:
                with torch.no_grad():  # a summary, not part of the training graph
                    a = self.fn(module, inputs, output) if self.fn is not None else output
                    self._pending[name] = self._summarise(a.detach())
        return hook

    @torch.no_grad()
    def _summarise(self, a: torch.Tensor) -> dict:
        # No flatten (a channels_last output would be copied) and one temporary, reused: this runs
        # on every hooked layer of a recorded step, and with torch.histc it cost about 9 % of
        # chapter 4's training steps (2.9x faster this way at its first stage's size, same counts).
        a = a.float()
        n = max(a.numel(), 1)
        mean = a.mean().item()
        mags = a.abs()
        lo, hi = self.hist_range
        # float32 count / n: the division (bool).float().mean() made
        dead = (torch.count_nonzero(mags < self.dead_below).float() / n).item()
        if math.isnan(mean):  # a NaN somewhere: torch.histc leaves NaNs out of every bin
            counts = torch.histc(mags.clamp(lo, hi), self.bins, lo, hi).tolist()
        else:
            # torch.histc(mags.clamp(lo, hi), bins, lo, hi) in two cheap passes: its bin index is
            # (x - lo) * bins / (hi - lo) in float32, truncated, x = hi in the last bin (the same
            # roundings, in the same order, so the same counts; a test checks values at the edges)
            pos = (mags.sub_(lo) if lo else mags).mul_(self.bins).div_(hi - lo).clamp_(0, self.bins - 1)
            index = pos.to(torch.uint8 if self.bins <= 256 else torch.int64).flatten()
            counts = torch.bincount(index, minlength=self.bins).tolist()
        # Whole numbers, kept as a Python list: a small tensor kept from every record sits in the
        # holes the step's freed activations leave in glibc's heap, so the heap grew by about the
        # size of the activations with each record (a render of chapter 4 filled 23 GB).
        return {"mean": mean, "std": a.std().item() if a.numel() > 1 else 0.0, "dead": dead,
                "counts": counts, "numel": n}

    def end_step(self, model: nn.Module | None = None) -> None:
        """Close one training step: store what the hooks saw (if this step was due), advance the
        step counter, arm the next due step. ``fit`` calls it through ``after_step``."""
        if self._armed:
            for name, m in self.layers.items():
                rec, seen = self.records[name], self._pending.get(name)
                nan = float("nan")
                for k in ("mean", "std", "dead"):
                    rec[k].append(seen[k] if seen else nan)
                rec["counts"].append(seen["counts"] if seen else [nan] * self.bins)
                rec["numel"].append(seen["numel"] if seen else 1)
                g, w = _norms(m) if self.grads else (nan, nan)
                rec["grad_norm"].append(g)
                rec["param_norm"].append(w)
            self.steps.append(self._step)
        self._pending = {}
        self._step += 1
        self._armed = bool(self._handles) and self._step % self.every == 0

    # ------------------------------------------------------------------ fit() callback
    def before_fit(self, **kw) -> None:
        self.fit_starts.append(self._step)
        self.start()

    def after_step(self, model=None, history=None, epoch=None, step=None, loss=None, lr=None, **kw) -> None:
        self.end_step(model)

    def after_fit(self, **kw) -> None:
        self.stop()

    # ------------------------------------------------------------------ run records
    def state(self) -> dict:
        """What was recorded, JSON-ready: a run record keeps it (normlab.records) and REUSE loads it.
        Histograms are stored as whole counts with the number of values they counted (a third of
        the size of their fractions as decimals); ``hist`` divides them as it did when recording."""
        def whole(counts):  # NaN (a step the hook did not see) stays NaN: null in the record
            return [v if math.isnan(v) else int(v) for v in counts]
        return {"layers": self.names, "every": self.every, "bins": self.bins, "hist_range": list(self.hist_range),
                "steps": list(self.steps), "fit_starts": list(self.fit_starts), "step": self._step,
                "records": {n: {**{k: list(r[k]) for k in KEYS}, "counts": [whole(c) for c in r["counts"]],
                                "numel": list(r["numel"])}
                            for n, r in self.records.items()}}

    def load_state(self, state: dict) -> None:
        """Take what a run record kept (None stands for NaN: a record is strict JSON)."""
        mine = {"layers": self.names, "every": self.every, "bins": self.bins, "hist_range": list(self.hist_range)}
        theirs = {k: state.get(k) for k in mine}
        if theirs != mine:
            raise ValueError(f"the recorded ActivationStats was made with {theirs}, this one is {mine}")

        def numbers(xs):
            return [math.nan if v is None else v for v in xs]

        self.steps, self.fit_starts, self._step = list(state["steps"]), list(state["fit_starts"]), state["step"]
        # records written before 2026-11-29 kept the fractions ("hist"): as counts of 1 value, hist() gives them back
        self.records = {n: {**{k: numbers(r[k]) for k in KEYS},
                            **({"counts": [numbers(c) for c in r["counts"]], "numel": list(r["numel"])} if "counts" in r else
                               {"counts": [numbers(h) for h in r["hist"]], "numel": [1] * len(r["hist"])})}
                        for n, r in state["records"].items()}

    # ------------------------------------------------------------------ results
    @property
    def names(self) -> list[str]:
        return list(self.layers)

    def __len__(self) -> int:
        return len(self.steps)

    def series(self, key: str) -> dict[str, list[float]]:
        """``{layer: [value per record]}`` for key in mean / std / dead / grad_norm / param_norm."""
        if key not in KEYS:
            raise ValueError(f"unknown key {key!r}; accepted: {', '.join(KEYS)}")
        return {name: list(rec[key]) for name, rec in self.records.items()}

    def hist(self, name: str) -> torch.Tensor:
        """(bins, records): the fraction of |activation| per bin (row 0 = the bin at hist_range[0])."""
        rec = self.records[name]
        # float32 counts / the number of values: the division recording made
        h = [torch.tensor(c, dtype=torch.float32) / n for c, n in zip(rec["counts"], rec["numel"])]
        return torch.stack(h, 1) if h else torch.zeros(self.bins, 0)

    def summary(self, last: int = 10, digits: int = 3, keys: Sequence[str] = KEYS) -> str:
        """Mean of the last ``last`` records per layer (columns ``keys``): a fixed-width text table."""
        bad = [k for k in keys if k not in KEYS]
        if bad:
            raise ValueError(f"unknown key(s) {', '.join(map(repr, bad))}; accepted: {', '.join(KEYS)}")
        width = max(10, *(len(n) for n in self.names))
        lines = [f"{'layer':<{width}}" + "".join(f"{c:>11}" for c in keys)]
        for name in self.names:
            vals = []
            for k in keys:
                xs = [v for v in self.records[name][k][-last:] if not math.isnan(v)]
                vals.append(f"{sum(xs) / len(xs):>11.{digits}g}" if xs else f"{'-':>11}")
            lines.append(f"{name:<{width}}" + "".join(vals))
        return "\n".join(lines)

    # plots (see the module-level functions)
    def plot_stats(self, **kw):
        return plot_stats(self, **kw)

    def color_dim(self, **kw):
        return color_dim(self, **kw)

    def dead_chart(self, **kw):
        return dead_chart(self, **kw)

    def plot_grad_norms(self, **kw):
        return plot_grad_norms(self, **kw)


def _norms(module: nn.Module) -> tuple[float, float]:
    """(gradient norm, parameter norm) over the parameters that have a gradient; NaN if none."""
    ps = [p for p in module.parameters() if p.grad is not None]
    if not ps:
        return float("nan"), float("nan")
    return l2_norm(*(p.grad for p in ps)), l2_norm(*ps)


# ---------------------------------------------------------------------- plots
def _fit_lines(stats: ActivationStats, ax) -> None:
    for s in stats.fit_starts[1:]:  # where a later fit call began
        ax.axvline(s, color="0.5", ls=":", lw=1)


def _lines(stats: ActivationStats, key: str | dict, ax, title: str, ylabel: str, log: bool = False,
           cmap: str | None = None):
    import matplotlib

    series = stats.series(key) if isinstance(key, str) else key
    n = len(series)
    for i, (name, ys) in enumerate(series.items()):
        # with a colormap, colour encodes the layer's position (first -> last)
        color = matplotlib.colormaps[cmap](0.9 * i / max(n - 1, 1)) if cmap else None
        ax.plot(stats.steps, ys, lw=1, label=name, color=color)
    _fit_lines(stats, ax)
    ax.set(title=title, xlabel="training step", ylabel=ylabel)
    if log:
        ax.set_yscale("log")
    ax.grid(alpha=0.3)
    return ax


def plot_stats(stats: ActivationStats, axes=None, figsize=(11, 3.5), legend: bool = True,
               cmap: str | None = None):
    """Two panels: the mean and the std of each layer's activations over training. ``cmap``
    (e.g. "viridis") colours the layers from first to last."""
    import matplotlib.pyplot as plt

    if axes is None:
        _, axes = plt.subplots(1, 2, figsize=figsize, constrained_layout=True)
    _lines(stats, "mean", axes[0], "Means", "mean of activations", cmap=cmap)
    _lines(stats, "std", axes[1], "Standard deviations", "std of activations", cmap=cmap)
    if legend:
        axes[1].legend(fontsize=7, ncol=2)
    return axes


def dead_chart(stats: ActivationStats, ax=None, figsize=(6, 3.5), legend: bool = True,
               cmap: str | None = None):
    """The fraction of near-zero activations (|a| < dead_below) of each layer over training."""
    import matplotlib.pyplot as plt

    if ax is None:
        _, ax = plt.subplots(figsize=figsize, constrained_layout=True)
    _lines(stats, "dead", ax, f"Fraction of |activation| < {stats.dead_below:g}", "fraction", cmap=cmap)
    ax.set_ylim(0, 1)
    if legend:
        ax.legend(fontsize=7, ncol=2)
    return ax


def plot_grad_norms(stats: ActivationStats, ax=None, figsize=(6, 3.5), legend: bool = True,
                    relative: bool = False, cmap: str | None = None):
    """The gradient norm of each layer's parameters over training (log scale); ``relative=True``
    divides it by the norm of the parameters (the relative size of a gradient step)."""
    import matplotlib.pyplot as plt

    if ax is None:
        _, ax = plt.subplots(figsize=figsize, constrained_layout=True)
    if relative:
        w = stats.series("param_norm")
        ys = {n: [a / b for a, b in zip(g, w[n])] for n, g in stats.series("grad_norm").items()}
        _lines(stats, ys, ax, "Gradient norm / parameter norm", "ratio", log=True, cmap=cmap)
    else:
        _lines(stats, "grad_norm", ax, "Gradient norm of each layer's parameters", "L2 norm", log=True, cmap=cmap)
    if legend:
        ax.legend(fontsize=7, ncol=2)
    return ax


def color_dim(stats: ActivationStats, axes=None, ncols: int = 4, size=(3.0, 2.2), floor: float = 1e-4):
    """fastai's "colorful dimension": one image per layer, training step along x, |activation|
    along y (0 at the bottom), colour = log10 of the fraction of values in that bin (floored at
    ``floor``), one colour scale for all layers."""
    import matplotlib.pyplot as plt

    n = len(stats.names)
    if axes is None:
        nrows = -(-n // ncols)
        _, axes = plt.subplots(nrows, min(ncols, n), figsize=(size[0] * min(ncols, n), size[1] * nrows),
                               squeeze=False, constrained_layout=True)
    flat = list(getattr(axes, "flat", axes))
    lo, hi = stats.hist_range
    x0, x1 = (stats.steps[0], stats.steps[-1]) if stats.steps else (0, 1)
    im = None
    for ax, name in zip(flat, stats.names):
        img = stats.hist(name).clamp_min(floor).log10().numpy()
        im = ax.imshow(img, origin="lower", aspect="auto", extent=(x0, x1, lo, hi), cmap="viridis",
                       vmin=math.log10(floor), vmax=0, interpolation="nearest")
        _fit_lines(stats, ax)
        ax.set_title(name, fontsize=9)
        ax.set_xlabel("training step", fontsize=8)
        ax.set_ylabel("|activation|", fontsize=8)
        ax.tick_params(labelsize=7)
    for ax in flat[n:]:
        ax.axis("off")
    if im is not None:
        fig = flat[0].figure
        cb = fig.colorbar(im, ax=flat[:n], shrink=0.8)
        cb.set_label("log10 fraction of values", fontsize=8)
    return axes
