"""fit(): the one friendly entry point for training, used by every chapter.

fit() builds the optimizer and schedule the seeds used, picks the precision and memory layout, and
hands the run to ``normlab.learner.Learner``, a short loop whose every extra is a callback: the
divergence guard, mixed precision, the History (``normlab.history``), a tqdm progress bar, JSON
lines, atomic checkpoints with resume. Your own callbacks (``before_fit``, ``after_step``,
``after_epoch``, ``after_fit``, ...) receive keyword arguments such as ``model``, ``history``,
``epoch``, ``step``, ``loss`` and ``lr``; one may raise ``CancelFit`` to stop the run cleanly.
"""
from __future__ import annotations

import contextlib
import os
import random
import sys
from typing import Callable, Iterable, Sequence

import torch
import torch.nn as nn
import torch.nn.functional as F

from .data import Loaders
from .devices import tune_cpu_allocator
from .files import save_atomic  # noqa: F401  (part of this module's API: checkpoints)
from .history import History
from .learner import (CancelFit, Checkpointer, DivergenceGuard, Diverged, JsonLog, Learner, MixedPrecision,
                      ProgressBar, Recorder, evaluate, progress_enabled)
from .precision import Precision, choose_precision
from .schedules import Schedule, make_schedule

__all__ = ["fit", "evaluate", "predict", "accuracy_by_batch_size", "make_optimizer", "seed_everything",
           "state_hash", "autocast_for", "picks_channels_last", "CancelFit", "Diverged", "OPTIMIZERS"]

OPTIMIZERS = ("sgd", "adam")


# ----------------------------------------------------------------------------- reproducibility
def seed_everything(seed: int) -> None:
    """Seed Python, NumPy and torch (every device). One seed drives a whole chapter."""
    if not isinstance(seed, int) or isinstance(seed, bool):
        raise ValueError(f"seed must be an int, got {seed!r}")
    random.seed(seed)
    torch.manual_seed(seed)
    try:
        import numpy as np

        np.random.seed(seed % 2**32)
    except ImportError:  # pragma: no cover
        pass


def state_hash(model: nn.Module) -> str:
    """A short sha256 of a model's state_dict bytes (exact regression on one machine kind)."""
    import hashlib

    h = hashlib.sha256()
    for k, v in model.state_dict().items():
        h.update(k.encode())
        h.update(v.detach().cpu().contiguous().numpy().tobytes())
    return h.hexdigest()[:12]


# ----------------------------------------------------------------------------- optimizers
def make_optimizer(params, opt: str = "sgd", lr: float = 0.01, *, momentum: float = 0.9,
                   nesterov: bool = False, weight_decay: float = 0.0, betas=(0.9, 0.999),
                   eps: float = 1e-8) -> torch.optim.Optimizer:
    """SGD (momentum, nesterov, weight decay) or Adam, as the seeds configured them.

    ``foreach=True`` everywhere: torch picks it by itself only on CUDA, and on the CPU its for-loop
    over the parameters cost twice as long per step (0.5-1.1 ms against 0.2-0.8 ms, the book's
    models) for the same arithmetic: tests/test_train.py checks the weights stay bitwise equal."""
    if opt == "sgd":
        return torch.optim.SGD(params, lr=lr, momentum=momentum, nesterov=nesterov, weight_decay=weight_decay,
                               foreach=True)
    if opt == "adam":
        return torch.optim.Adam(params, lr=lr, betas=betas, eps=eps, weight_decay=weight_decay, foreach=True)
    raise ValueError(f"unknown optimizer {opt!r}; accepted: {', '.join(OPTIMIZERS)}")


# ----------------------------------------------------------------------------- device settings
def autocast_for(device: torch.device, amp: bool | str | Precision) -> tuple[contextlib.AbstractContextManager, bool]:
    """(autocast context, needs a GradScaler) for `amp`, as ``normlab.precision.choose_precision``
    decides it (bf16 on GPUs with native bf16, fp16 + GradScaler on older GPUs, off on the CPU)."""
    precision = choose_precision(device, amp)
    return precision.autocast(), precision.needs_scaler


def picks_channels_last(model: nn.Module, device) -> bool:
    """What ``fit(channels_last="auto")`` picks: NHWC on CUDA, and on the CPU for conv nets (oneDNN is
    faster in NHWC), unless the model opts out (``prefers_channels_last = False``, where NHWC measured
    slower: benchmarks/bench_channels_last.py)."""
    return (torch.device(device).type in ("cuda", "cpu") and any(isinstance(m, nn.Conv2d) for m in model.modules())
            and getattr(model, "prefers_channels_last", True))


# ----------------------------------------------------------------------------- evaluation (evaluate: normlab.learner)
def accuracy_by_batch_size(model: nn.Module, batches, sizes: Sequence[int], before=None) -> dict[int, float]:
    """Test accuracy of `model` when `batches` (a ``normlab.data.Batches``) are cut into each
    batch size of `sizes`. Differs between sizes only if the model looks at the batch in eval mode
    (batch-statistics BN). `before()` runs before each size (e.g. to reset a window of statistics)."""
    out = {}
    for size in sizes:
        if before is not None:
            before()
        out[int(size)] = evaluate(model, batches.with_batch_size(int(size)))["acc"]
    return out


@torch.no_grad()
def predict(model: nn.Module, batches: Iterable) -> tuple[torch.Tensor, torch.Tensor]:
    """(predicted class, true label) for every image of `batches`, in order, on the CPU."""
    was_training = model.training
    model.eval()
    preds, labels = [], []
    for x, y in batches:
        preds.append(model(x).argmax(1).cpu())
        labels.append(y.cpu())
    model.train(was_training)
    return torch.cat(preds), torch.cat(labels)


# ----------------------------------------------------------------------------- fit
def fit(model: nn.Module, data: Loaders, epochs: int, lr: float = 0.01, *,
        opt: str | torch.optim.Optimizer = "sgd", momentum: float = 0.9, nesterov: bool = False,
        weight_decay: float = 0.0, betas: tuple[float, float] = (0.9, 0.999), eps: float = 1e-8,
        schedule: str | Schedule = "constant", loss_fn: Callable = F.cross_entropy,
        seed: int | None = None, amp: bool | str | Precision = "auto", channels_last: bool | str = "auto",
        progress: bool | str = "auto", callbacks: Sequence = (), log: str | None = None,
        checkpoint: str | os.PathLike | None = None, resume: str | os.PathLike | None = None,
        eval_every: int = 1, label: str = "", max_loss: float | None = None) -> History:
    """Train `model` on `data.train` for `epochs`, evaluating on `data.val` (when the dataset has
    one) and `data.test` after each epoch.

    - opt: "sgd" (momentum, nesterov, weight_decay) or "adam" (betas, eps), or an optimizer.
    - schedule: "constant", "sgdr" (fastai 0.7 cycle_len=1), "linear" (to 0 per iteration),
      "plateau" (ReduceLROnPlateau on the test loss, factor 0.3, patience 0), "onecycle", or a Schedule.
    - seed: seeds torch/python and the data order (model init happens before fit: seed that too).
    - amp: the precision, decided by ``normlab.precision.choose_precision`` ("auto": bf16 autocast on
      GPUs with native bf16, fp16 with a GradScaler on older ones, float32 on the CPU; or "fp32",
      "bf16", "fp16", True/False, a Precision). history.meta["precision"] says what was used.
    - channels_last: "auto" = on CUDA, and for conv nets on the CPU too (oneDNN is faster in NHWC).
    - log="json" prints one JSON line per epoch like the prog-eval reference.
    - checkpoint: path written atomically after every epoch; resume: a checkpoint to continue from
      (the finished run equals an uninterrupted one).
    A non-finite loss (or one above `max_loss`, if given) stops the run: the model is put back to
    its last good weights, the history so far is returned with `history.stopped` saying where
    (epoch, step, learning rate, loss).
    """
    if not isinstance(epochs, int) or epochs < 0:
        raise ValueError(f"epochs must be a non-negative int, got {epochs!r}")
    if not isinstance(data, Loaders):
        raise TypeError(f"data must be normlab.data.Loaders (from normlab.data.loaders(...)), got {type(data).__name__}")
    if log not in (None, "json", "table"):
        raise ValueError(f"unknown log {log!r}; accepted: None, 'json', 'table'")
    device = data.device
    if device.type == "cpu":
        tune_cpu_allocator()
    model.to(device)
    if seed is not None:
        seed_everything(seed)
        data.train.generator.manual_seed(seed)
    cl = picks_channels_last(model, device) if channels_last == "auto" else bool(channels_last)
    if cl:
        model.to(memory_format=torch.channels_last)
    for b in (data.train, data.test) + ((data.val,) if data.val is not None else ()):
        b.channels_last = cl
    optimizer = opt if isinstance(opt, torch.optim.Optimizer) else make_optimizer(
        model.parameters(), opt, lr, momentum=momentum, nesterov=nesterov, weight_decay=weight_decay,
        betas=betas, eps=eps)
    sched = make_schedule(schedule, lr)
    sched.setup(epochs * len(data.train), len(data.train))
    precision = MixedPrecision(choose_precision(device, amp))
    show = progress_enabled(progress)
    extras = [ProgressBar(label)] if show else []
    extras += [JsonLog(log)] if log else []
    extras += [Checkpointer(checkpoint)] if checkpoint is not None else []
    learner = Learner(model, data, optimizer, sched, loss_fn,
                      [DivergenceGuard(max_loss), precision, Recorder(), *extras, *callbacks],
                      eval_every=eval_every, history=History(meta={
                          "label": label, "device": str(device), "channels_last": cl, "epochs": epochs,
                          "optimizer": type(optimizer).__name__, "schedule": repr(sched),
                          "precision": precision.precision.name}))
    start_epoch = 0 if resume is None else Checkpointer.resume(learner, resume, precision.scaler)
    history = learner.fit(epochs, start_epoch)
    if history.stopped and not history.stopped.startswith("cancelled") and (show or log):
        print(f"Diverged: {history.stopped}", file=sys.stderr)
    if cl:  # hand the model back in the default layout
        model.to(memory_format=torch.contiguous_format)
    return history
