"""The training loop and the callbacks around it.

:class:`Learner` is the loop and nothing else (miniai's ``Learner`` is the model): for each epoch,
train on every batch, then evaluate. Everything else a run needs is a callback, an object with
some of these methods, each called with keyword arguments (``learner``, ``model``, ``history``,
``epochs``, ``epoch``, ``step``, ``loss``, ``lr``) from which it takes what it needs:

    before_fit, before_epoch, after_loss, after_step, after_train, after_evaluate, after_epoch, after_fit

Callbacks run in the order of their ``order`` attribute (default 0, the user's), then as given.
The built-in ones: :class:`DivergenceGuard` (-30), :class:`Recorder` (-20, the History),
:class:`MixedPrecision` (-25), :class:`ProgressBar` (-10), :class:`JsonLog` (-5),
:class:`Checkpointer` (-1). ``normlab.train.fit`` assembles them; ``normlab.lr_finder`` runs the
same loop with its own callback. A callback raises :class:`CancelFit` to end a run cleanly, or
:class:`Diverged` to end it as diverged (the guard restores the last good weights first).
"""
from __future__ import annotations

import contextlib
import math
import os
import random
import sys
import time
from typing import Callable, Iterable, Sequence

import torch
import torch.nn as nn
import torch.nn.functional as F

from .data import Loaders
from .files import save_atomic
from .history import History
from .precision import Precision, choose_precision
from .schedules import Schedule

EVENTS = ("before_fit", "before_epoch", "after_loss", "after_step", "after_train", "after_evaluate",
          "after_epoch", "after_fit")


class CancelFit(Exception):
    """Raised by a callback to end fit() early; fit returns the history so far."""


class Diverged(RuntimeError):
    """A non-finite loss; the run stops with its last good weights and says where."""


def _sum_dtype(device: torch.device) -> torch.dtype:
    """Accumulate metrics in float64 where the device has it (Apple's MPS does not)."""
    return torch.float32 if device.type == "mps" else torch.float64


@torch.no_grad()
def evaluate(model: nn.Module, batches: Iterable, loss_fn: Callable = F.cross_entropy,
             amp: bool | str | Precision = "auto", device=None) -> dict:
    """Mean loss and accuracy over `batches` in eval mode, plus "acc_batch_mean": the unweighted
    mean of the per-batch accuracies, the metric fastai 0.7 printed (its lesson notebooks' CIFAR-10
    accuracies are means over 39 batches of 256 and one of 16, so each is a multiple of 1/10,240)."""
    was_training = model.training
    model.eval()
    dev = device or next(model.parameters()).device
    ctx = choose_precision(torch.device(dev), amp).autocast()
    total_loss = torch.zeros((), device=dev, dtype=_sum_dtype(torch.device(dev)))
    correct = torch.zeros((), device=dev, dtype=torch.long)
    batch_acc_sum = torch.zeros((), device=dev, dtype=total_loss.dtype)
    n = n_batches = 0
    for x, y in batches:
        with ctx:
            out = model(x)
        total_loss += loss_fn(out.float(), y, reduction="sum")
        hits = (out.argmax(1) == y).sum()
        correct += hits
        batch_acc_sum += hits.to(batch_acc_sum.dtype) / len(y)
        n += len(y)
        n_batches += 1
    model.train(was_training)
    return {"loss": total_loss.item() / max(n, 1), "acc": correct.item() / max(n, 1), "n": n,
            "acc_batch_mean": batch_acc_sum.item() / max(n_batches, 1)}


# ----------------------------------------------------------------------------- the loop
class Learner:
    """Train `model` on `data.train`, then evaluate on `data.val` (if any) and `data.test`, each
    epoch; ``eval_every=None`` never evaluates (the LR finder)."""

    def __init__(self, model: nn.Module, data: Loaders, optimizer: torch.optim.Optimizer, schedule: Schedule,
                 loss_fn: Callable = F.cross_entropy, callbacks: Sequence = (), *,
                 precision: Precision | None = None, eval_every: int | None = 1, history: History | None = None):
        self.model, self.data, self.optimizer, self.schedule, self.loss_fn = model, data, optimizer, schedule, loss_fn
        self.callbacks = sorted(callbacks, key=lambda cb: getattr(cb, "order", 0))
        self.precision = precision or choose_precision(data.device, "fp32")
        self.autocast = contextlib.nullcontext()  # MixedPrecision sets these two
        self.scaler = torch.amp.GradScaler(data.device.type, enabled=False)
        self.eval_every, self.history = eval_every, History() if history is None else history
        self.epochs, self.epoch, self.step, self.iteration = 0, 0, -1, 0
        self.loss_value, self.lr, self.record = math.nan, math.nan, {}

    def emit(self, event: str) -> None:
        for cb in self.callbacks:
            method = getattr(cb, event, None)
            if method is not None:
                method(learner=self, model=self.model, history=self.history, epochs=self.epochs,
                       epoch=self.epoch, step=self.step, loss=self.loss_value, lr=self.lr)

    def fit(self, epochs: int, start_epoch: int = 0) -> History:
        self.epochs, self.iteration = epochs, start_epoch * len(self.data.train)
        try:
            self.emit("before_fit")
            for self.epoch in range(start_epoch, epochs):
                self.one_epoch()
        except CancelFit as e:
            self.history.stopped = f"cancelled: {e}" if str(e) else "cancelled"
        except Diverged as e:
            self.history.stopped = str(e)
        self.emit("after_fit")
        return self.history

    def one_epoch(self) -> None:
        self.model.train()
        self.record = {"epoch": self.epoch}
        self.emit("before_epoch")
        for self.step, (self.x, self.y) in enumerate(self.data.train):
            self.lr = self.schedule.lr(self.iteration)
            for group in self.optimizer.param_groups:
                group["lr"] = self.lr
            with self.autocast:
                self.out = self.model(self.x)
                self.loss = self.loss_fn(self.out.float(), self.y)
            self.loss_value = self.loss.item()
            self.emit("after_loss")
            self.optimizer.zero_grad(set_to_none=True)
            self.scaler.scale(self.loss).backward()
            self.scaler.step(self.optimizer)
            self.scaler.update()
            self.iteration += 1
            self.emit("after_step")
        self.emit("after_train")
        if self.eval_every and ((self.epoch + 1) % self.eval_every == 0 or self.epoch == self.epochs - 1):
            for split in ("val", "test"):  # val: the source's validation split (seed 001), like Keras' fit
                if getattr(self.data, split) is not None:
                    ev = evaluate(self.model, getattr(self.data, split), self.loss_fn, self.precision, self.data.device)
                    self.record.update({f"{split}_loss": ev["loss"], f"{split}_acc": ev["acc"],
                                        f"{split}_acc_batch_mean": ev["acc_batch_mean"]})
            self.emit("after_evaluate")
        self.emit("after_epoch")


# ----------------------------------------------------------------------------- callbacks
class DivergenceGuard:
    """Stops a run at a non-finite training or evaluation loss (or one above `max_loss`), puts
    back the weights (and float buffers) of the last good step, and says where: epoch, step,
    iteration, learning rate and loss."""
    order = -30

    def __init__(self, max_loss: float | None = None):
        self.max_loss = max_loss

    def before_fit(self, learner: Learner, **_) -> None:
        self.tensors = [t for t in [*learner.model.parameters(), *learner.model.buffers()] if t.is_floating_point()]
        self.copy = [t.detach().clone() for t in self.tensors]

    def _stop(self, what: str) -> None:
        with torch.no_grad():
            torch._foreach_copy_(self.tensors, self.copy)
        raise Diverged(f"{what}; stopped and restored the weights of the last good step. "
                       "Try a smaller learning rate.")

    def after_loss(self, learner: Learner, **_) -> None:
        value = learner.loss_value
        if not math.isfinite(value) or (self.max_loss is not None and value > self.max_loss):
            above = f" (above max_loss={self.max_loss:g})" if math.isfinite(value) else ""
            self._stop(f"loss became {value:.4g}{above} at epoch {learner.epoch}, step {learner.step} "
                       f"(iteration {learner.iteration}) with learning rate {learner.lr:.3g}")
        torch._foreach_copy_(self.copy, [t.detach() for t in self.tensors])  # this step is good

    def after_evaluate(self, learner: Learner, **_) -> None:
        # a finite training loss can still give a non-finite evaluation loss (eval-mode statistics,
        # a weight that blew up in the last step): that run has diverged too
        for key in ("val_loss", "test_loss"):
            value = learner.record.get(key)
            if value is not None and (not math.isfinite(value) or (self.max_loss is not None and value > self.max_loss)):
                above = f" (above max_loss={self.max_loss:g})" if math.isfinite(value) else ""
                self._stop(f"{key.replace('_', ' ')} became {value:.4g}{above} after epoch {learner.epoch} (last step "
                           f"{learner.step}, iteration {learner.iteration}) with learning rate {learner.lr:.3g}")


class MixedPrecision:
    """Autocast for the forward pass and, for fp16, a GradScaler for the backward pass."""
    order = -25

    def __init__(self, precision: Precision):
        self.precision, self.scaler = precision, precision.grad_scaler()

    def before_fit(self, learner: Learner, **_) -> None:
        learner.precision, learner.autocast, learner.scaler = self.precision, self.precision.autocast(), self.scaler


class Recorder:
    """The History: loss and lr per step; per epoch the training loss and accuracy, the learning
    rate, the evaluation, and the times (training, epoch, cumulative). Ends each epoch of the
    schedule (ReduceLROnPlateau reads the test loss)."""
    order = -20

    def before_fit(self, learner: Learner, history: History, **_) -> None:
        self.elapsed = history.last.get("time", 0.0)  # on resume, time continues

    def before_epoch(self, learner: Learner, **_) -> None:
        self.t0 = time.perf_counter()
        device = learner.data.device
        self.loss_sum = torch.zeros((), device=device, dtype=_sum_dtype(device))
        self.correct = torch.zeros((), device=device, dtype=torch.long)
        self.seen = 0

    def after_step(self, learner: Learner, history: History, **_) -> None:
        n = len(learner.y)
        self.loss_sum += learner.loss.detach().to(self.loss_sum.dtype) * n
        self.correct += (learner.out.detach().argmax(1) == learner.y).sum()
        self.seen += n
        history.steps["loss"].append(learner.loss_value)
        history.steps["lr"].append(learner.lr)

    def accuracy(self) -> float:
        return self.correct.item() / max(self.seen, 1)

    def after_train(self, learner: Learner, **_) -> None:
        learner.record.update(train_loss=self.loss_sum.item() / max(self.seen, 1), train_acc=self.accuracy(),
                              lr=learner.lr)
        self.train_time = time.perf_counter() - self.t0

    def after_epoch(self, learner: Learner, history: History, **_) -> None:
        epoch_time = time.perf_counter() - self.t0
        self.elapsed += epoch_time
        learner.record.update(train_time=self.train_time, epoch_time=epoch_time, time=self.elapsed)
        history.epochs.append(learner.record)
        if "test_loss" in learner.record:
            learner.schedule.epoch_end(learner.record)


class ProgressBar:
    """A tqdm bar per epoch with the running loss, accuracy and learning rate."""
    order = -10

    def __init__(self, label: str = ""):
        self.label, self.bar = label, None

    def before_epoch(self, learner: Learner, **_) -> None:
        from tqdm.auto import tqdm

        desc = f"{self.label} epoch {learner.epoch + 1}/{learner.epochs}".strip()
        # explicit disable=False: TQDM_DISABLE only sets defaults
        self.bar = tqdm(total=len(learner.data.train), desc=desc, leave=False, disable=False)

    def after_step(self, learner: Learner, **_) -> None:
        self.bar.update()
        if learner.step % 10 == 0:
            recorder = next(cb for cb in learner.callbacks if isinstance(cb, Recorder))
            self.bar.set_postfix(loss=f"{learner.loss_value:.3f}", acc=f"{recorder.accuracy():.3f}",
                                 lr=f"{learner.lr:.2g}")

    def after_epoch(self, learner: Learner, **_) -> None:
        self.bar.set_postfix(loss=f"{learner.record['train_loss']:.3f}",
                             test_acc=f"{learner.record.get('test_acc', float('nan')):.3f}")
        self.close()

    def close(self, **_) -> None:
        if self.bar is not None:
            self.bar.close()
            self.bar = None

    after_fit = close


class JsonLog:
    """Prints each epoch: one JSON line like the prog-eval reference ("json") or a table row."""
    order = -5

    def __init__(self, log: str):
        self.log = log

    def after_epoch(self, history: History, **_) -> None:
        if self.log == "json":
            print(history.json_line(history.last), flush=True)
        else:
            print(history.table().splitlines()[-1] if len(history) > 1 else history.table(), flush=True)


# ----------------------------------------------------------------------------- checkpoints
def rng_state(data: Loaders) -> dict:
    state = {"torch": torch.get_rng_state(), "python": random.getstate(), "train": data.train.state_dict()}
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(data: Loaders, state: dict) -> None:
    torch.set_rng_state(state["torch"])
    random.setstate(state["python"])
    data.train.load_state_dict(state["train"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


class Checkpointer:
    """Writes everything a resumed run needs after every epoch, atomically; ``resume`` loads it
    (the finished run then equals an uninterrupted one, bit for bit on one machine)."""
    order = -1

    def __init__(self, path: str | os.PathLike):
        self.path = path

    def after_epoch(self, learner: Learner, history: History, epoch: int, **_) -> None:
        save_atomic({"model": learner.model.state_dict(), "optimizer": learner.optimizer.state_dict(),
                     "schedule": learner.schedule.state_dict(), "scaler": learner.scaler.state_dict(),
                     "history": history.to_dict(), "rng": rng_state(learner.data), "epoch": epoch}, self.path)

    @staticmethod
    def resume(learner: Learner, path: str | os.PathLike, scaler: torch.amp.GradScaler) -> int:
        """Load a checkpoint into the learner; returns the epoch to start from."""
        ck = torch.load(path, map_location=learner.data.device, weights_only=False)
        learner.model.load_state_dict(ck["model"])
        learner.optimizer.load_state_dict(ck["optimizer"])
        learner.schedule.load_state_dict(ck["schedule"])
        scaler.load_state_dict(ck["scaler"])
        learner.history = History.from_dict(ck["history"])
        set_rng_state(learner.data, ck["rng"])
        return ck["epoch"] + 1


def progress_enabled(progress) -> bool:
    if progress != "auto":
        return bool(progress)
    if os.environ.get("TQDM_DISABLE"):
        return False
    return sys.stderr.isatty() or "ipykernel" in sys.modules
