"""Plots the chapters share: training curves, LR-finder curves, comparisons, image grids."""
from __future__ import annotations

from typing import Sequence

import matplotlib.pyplot as plt
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
