"""Plots the chapters share: training curves, LR-finder curves, comparisons, image grids."""
from __future__ import annotations

from typing import Sequence

import matplotlib.pyplot as plt
from matplotlib.ticker import MaxNLocator
import torch


def _smooth(values: Sequence[float], k: int) -> list[float]:
    if k <= 1 or len(values) < k:
        return list(values)
    t = torch.tensor(values, dtype=torch.float64)
    kernel = torch.ones(1, 1, k, dtype=torch.float64) / k
    return torch.nn.functional.conv1d(t.view(1, 1, -1), kernel).flatten().tolist()


def plot_history(history, axes=None, label: str | None = None, smooth: int = 0):
    """Left: training loss per step (optionally smoothed) and test loss per epoch.
    Right: train and test accuracy per epoch."""
    if axes is None:
        _, axes = plt.subplots(1, 2, figsize=(10, 3.5), constrained_layout=True)
    ax_loss, ax_acc = axes
    spe = len(history.steps["loss"]) / max(len(history), 1)
    steps = _smooth(history.steps["loss"], smooth)
    off = (len(history.steps["loss"]) - len(steps)) / 2
    line, = ax_loss.plot([(i + off) / spe for i in range(len(steps))], steps, lw=0.8, alpha=0.8,
                         label=f"{label or ''} train".strip())
    ep = [e["epoch"] + 1 for e in history.epochs if "test_loss" in e]
    ax_loss.plot(ep, [e["test_loss"] for e in history.epochs if "test_loss" in e], "o--", color=line.get_color(),
                 label=f"{label or ''} test".strip())
    ax_loss.set(xlabel="epoch", ylabel="loss", title="Loss")
    ax_acc.plot([e["epoch"] + 1 for e in history.epochs], history["train_acc"], "-", color=line.get_color(), alpha=0.6,
                label=f"{label or ''} train".strip())
    ax_acc.plot(ep, [e["test_acc"] for e in history.epochs if "test_acc" in e], "o-", color=line.get_color(),
                label=f"{label or ''} test".strip())
    ax_acc.set(xlabel="epoch", ylabel="accuracy", title="Accuracy")
    for ax in axes:
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
    return axes


def plot_lr_find(result, ax=None, skip_start: int = 10, skip_end: int = 5):
    """Smoothed loss against learning rate on a log axis, as fastai's learn.sched.plot()."""
    if ax is None:
        _, ax = plt.subplots(figsize=(5, 3.5), constrained_layout=True)
    end = -skip_end or None
    ax.plot(result.lrs[skip_start:end], result.losses[skip_start:end])
    ax.set(xscale="log", xlabel="learning rate (log scale)", ylabel="smoothed loss", title="LR finder")
    ax.grid(alpha=0.3)
    return ax


def show_images(images: torch.Tensor, labels=None, classes=None, preds=None, ncols: int = 8,
                mean=None, std=None, size: float = 1.4, title: str | None = None):
    """A grid of images (uint8, or normalized floats with mean/std to undo), titled by class.
    With `preds`, titles read 'pred/truth' as in erav1s8's misclassified grids."""
    x = images.detach().cpu()
    if x.dtype == torch.uint8:
        x = x.float() / 255
    elif mean is not None:
        x = x * torch.tensor(std).view(-1, 1, 1) + torch.tensor(mean).view(-1, 1, 1)
    x = x.clamp(0, 1)
    n = len(x)
    nrows = -(-n // ncols)
    fig, axes = plt.subplots(nrows, ncols, figsize=(ncols * size, nrows * (size + 0.25)), squeeze=False)
    for i, ax in enumerate(axes.flat):
        ax.axis("off")
        if i >= n:
            continue
        img = x[i].permute(1, 2, 0).squeeze(-1)
        ax.imshow(img.numpy(), cmap="gray" if img.ndim == 2 else None, vmin=0, vmax=1)
        name = (lambda k: classes[k] if classes is not None else str(k))
        if preds is not None and labels is not None:
            ax.set_title(f"{name(int(preds[i]))}/{name(int(labels[i]))}", fontsize=8)
        elif labels is not None:
            ax.set_title(name(int(labels[i])), fontsize=8)
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    return fig


def compare_histories(histories: dict, metric: str = "test_acc", ax=None, reported: dict | None = None,
                      ylabel: str | None = None):
    """One line per run (name -> History) of a per-epoch metric; `reported` adds the source's
    values as dashed lines (name -> (epochs, values))."""
    if ax is None:
        _, ax = plt.subplots(figsize=(6, 3.8), constrained_layout=True)
    for name, h in histories.items():
        ep = [e["epoch"] + 1 for e in h.epochs if e.get(metric) is not None]
        line, = ax.plot(ep, [e[metric] for e in h.epochs if e.get(metric) is not None], "o-", ms=3, label=name)
        if reported and name in reported:
            rx, ry = reported[name]
            pts = [(a, b) for a, b in zip(rx, ry) if b is not None]
            ax.plot([a for a, _ in pts], [b for _, b in pts], "x--", color=line.get_color(), alpha=0.7,
                    label=f"{name} (reported)")
    ax.set(xlabel="epoch", ylabel=ylabel or metric.replace("_", " "))
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))  # epochs are whole numbers
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    return ax


# Which elements of an (N, C, H*W) activation each norm averages over (Wu & He 2018, figure 2).
NORM_AXES = {
    "batch": "every image of the batch, one channel",
    "layer": "one image, every channel",
    "group": "one image, a group of channels",
    "instance": "one image, one channel",
}


def plot_norm_axes(kinds=("batch", "layer", "group", "instance"), n: int = 6, c: int = 8, groups: int = 4,
                   axes=None):
    """The group-norm paper's cube figure: a batch of activations drawn as N x C x (H, W) cells, the
    cells that one norm averages together (for one mean and variance) shaded."""
    from matplotlib.patches import Polygon

    unknown = [k for k in kinds if k not in NORM_AXES]
    if unknown:
        raise ValueError(f"unknown norm kind(s) {unknown}; accepted: {', '.join(NORM_AXES)}")
    if axes is None:
        _, axes = plt.subplots(1, len(kinds), figsize=(3.1 * len(kinds), 3.3), constrained_layout=True)
    axes = [axes] if not hasattr(axes, "__len__") else list(axes)
    dx, dy = 0.45, 0.35  # oblique offset of the H, W depth
    per = c // groups
    for ax, kind in zip(axes, kinds):
        def shaded(i, j):  # i: image (x axis), j: channel (y axis)
            return {"batch": j == 0, "layer": i == 0, "group": i == 0 and j < per,
                    "instance": i == 0 and j == 0}[kind]
        for i in range(n):
            for j in range(c):
                color = "#4a90d9" if shaded(i, j) else "#f2f2f2"
                ax.add_patch(Polygon([(i, j), (i + 1, j), (i + 1, j + 1), (i, j + 1)], fc=color, ec="#555", lw=0.6))
                if j == c - 1:  # top face
                    ax.add_patch(Polygon([(i, c), (i + 1, c), (i + 1 + dx, c + dy), (i + dx, c + dy)],
                                         fc=color, ec="#555", lw=0.6, alpha=0.8))
                if i == n - 1:  # side face
                    ax.add_patch(Polygon([(n, j), (n + dx, j + dy), (n + dx, j + 1 + dy), (n, j + 1)],
                                         fc=color, ec="#555", lw=0.6, alpha=0.8))
        ax.set(xlim=(-0.6, n + dx + 0.3), ylim=(-0.9, c + dy + 0.3), aspect="equal")
        ax.axis("off")
        ax.text(n / 2, -0.6, "N (images)", ha="center", va="center", fontsize=9)
        ax.text(-0.35, c / 2, "C (channels)", ha="center", va="center", rotation=90, fontsize=9)
        ax.text(n + dx + 0.15, c + dy + 0.1, "H, W", ha="left", va="bottom", fontsize=8)
        ax.set_title(f"{kind} norm\n{NORM_AXES[kind]}", fontsize=9)
    return axes


def batch_size_errors(grid: dict, key: str = "test_acc") -> dict:
    """Test error of every finished run of a batch-size grid (``tools/batch_size_grid.py``), as
    {(norm, batch size): [error of each seed]}; ``key="batch_stats_test_acc"`` gives batch norm's
    error with batch statistics instead of running ones. Runs that did not finish are left out."""
    out: dict = {}
    for r in grid["runs"]:
        if r.get("status") == "done" and r.get(key) is not None:
            out.setdefault((r["norm"], r["batch_size"]), []).append(1 - r[key])
    return out


def plot_batch_size_grid(grid: dict, axes=None, norms=None):
    """The group-norm paper's figure 1 at small scale, from a batch-size grid. Left: test error
    against the training batch size for each norm (line: mean over seeds; dots: each seed).
    Right: batch norm's test error with its running statistics (eval mode) and with the statistics
    of test batches as large as the training batches. Batch sizes on a log2 axis."""
    if axes is None:
        _, axes = plt.subplots(1, 2, figsize=(11, 3.9), constrained_layout=True)
    ax_err, ax_bn = axes
    sizes = sorted(grid["batch_sizes"])
    norms = list(norms or grid["norms"])

    def draw(ax, errors, label, color, marker="o", ls="-"):
        xs = [b for b in sizes if errors.get(b)]
        if not xs:
            return
        ax.plot(xs, [sum(errors[b]) / len(errors[b]) for b in xs], ls, marker=marker, color=color, label=label)
        for b in xs:  # every seed's own point
            ax.plot([b] * len(errors[b]), errors[b], marker, color=color, alpha=0.35, ms=4, ls="none")

    running = batch_size_errors(grid)
    for i, norm in enumerate(norms):
        draw(ax_err, {b: running.get((norm, b)) for b in sizes}, f"{norm} norm", f"C{i}")
    batch_stats = batch_size_errors(grid, "batch_stats_test_acc")
    if "batch" in norms:
        c = f"C{norms.index('batch')}"
        draw(ax_bn, {b: running.get(("batch", b)) for b in sizes}, "running statistics (eval mode)", c)
        draw(ax_bn, {b: batch_stats.get(("batch", b)) for b in sizes},
             "batch statistics (test batches of the training size)", c, marker="s", ls="--")
    n = len(grid.get("seeds", []))
    ax_err.set_title(f"Test error against batch size (line: mean of {n} seed{'s' * (n != 1)}; dots: each)",
                     fontsize=10)
    ax_bn.set_title("Batch norm: running against batch statistics", fontsize=10)
    for ax in (ax_err, ax_bn):
        ax.set_xscale("log", base=2)
        ax.set_xticks(sizes, [str(b) for b in sizes])
        ax.minorticks_off()
        ax.set(xlabel="training batch size (log scale)", ylabel="test error")
        ax.yaxis.set_major_formatter(plt.FuncFormatter(lambda v, _: f"{v:.0%}"))
        ax.grid(alpha=0.3)
        if ax.lines:
            ax.legend(fontsize=8)
    return axes
