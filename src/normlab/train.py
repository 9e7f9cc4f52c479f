"""fit(): the one training loop every chapter uses.

The loop itself is short; everything around it is a small, testable piece: the optimizers the
seeds used, schedules (normlab.schedules), the History it returns (normlab.history), a divergence
guard, atomic checkpoints with resume, a tqdm progress bar, and callbacks (`before_fit`,
`after_step`, `after_epoch`, `after_fit`) for live plots and widgets. A callback may raise
`CancelFit` to stop the run cleanly.
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
from .devices import tune_cpu_allocator
from .files import save_atomic  # noqa: F401  (part of this module's API: checkpoints)
from .history import History
from .precision import Precision, choose_precision
from .schedules import Schedule, make_schedule

OPTIMIZERS = ("sgd", "adam")


class CancelFit(Exception):
    """Raised by a callback to end fit() early; fit returns the history so far."""


class Diverged(RuntimeError):
    """A non-finite loss; fit() catches it, restores the last good weights and reports."""


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
    """SGD (momentum, nesterov, weight decay) or Adam, as the seeds configured them."""
    if opt == "sgd":
        return torch.optim.SGD(params, lr=lr, momentum=momentum, nesterov=nesterov, weight_decay=weight_decay)
    if opt == "adam":
        return torch.optim.Adam(params, lr=lr, betas=betas, eps=eps, weight_decay=weight_decay)
    raise ValueError(f"unknown optimizer {opt!r}; accepted: {', '.join(OPTIMIZERS)}")


# ----------------------------------------------------------------------------- device settings
def autocast_for(device: torch.device, amp: bool | str | Precision) -> tuple[contextlib.AbstractContextManager, bool]:
    """(autocast context, needs a GradScaler) for `amp`, as ``normlab.precision.choose_precision``
    decides it (bf16 on GPUs with native bf16, fp16 + GradScaler on older GPUs, off on the CPU)."""
    precision = choose_precision(device, amp)
    return precision.autocast(), precision.needs_scaler


def _sum_dtype(device: torch.device) -> torch.dtype:
    """Accumulate metrics in float64 where the device has it (Apple's MPS does not)."""
    return torch.float32 if device.type == "mps" else torch.float64


def _has_conv(model: nn.Module) -> bool:
    return any(isinstance(m, nn.Conv2d) for m in model.modules())


def _progress_enabled(progress) -> bool:
    if progress != "auto":
        return bool(progress)
    if os.environ.get("TQDM_DISABLE"):
        return False
    return sys.stderr.isatty() or "ipykernel" in sys.modules


# ----------------------------------------------------------------------------- evaluation
@torch.no_grad()
def evaluate(model: nn.Module, batches: Iterable, loss_fn: Callable = F.cross_entropy,
             amp: bool | str | Precision = "auto", device=None) -> dict:
    """Mean loss and accuracy over `batches` in eval mode."""
    was_training = model.training
    model.eval()
    dev = device or next(model.parameters()).device
    ctx = choose_precision(torch.device(dev), amp).autocast()
    total_loss = torch.zeros((), device=dev, dtype=_sum_dtype(torch.device(dev)))
    correct = torch.zeros((), device=dev, dtype=torch.long)
    n = 0
    for x, y in batches:
        with ctx:
            out = model(x)
        total_loss += loss_fn(out.float(), y, reduction="sum")
        correct += (out.argmax(1) == y).sum()
        n += len(y)
    model.train(was_training)
    return {"loss": total_loss.item() / max(n, 1), "acc": correct.item() / max(n, 1), "n": n}


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


# ----------------------------------------------------------------------------- checkpoints
def _rng_state(data: Loaders) -> dict:
    state = {"torch": torch.get_rng_state(), "python": random.getstate(), "train": data.train.state_dict()}
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def _set_rng_state(data: Loaders, state: dict) -> None:
    torch.set_rng_state(state["torch"])
    random.setstate(state["python"])
    data.train.load_state_dict(state["train"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


# ----------------------------------------------------------------------------- the loop
class _Guard:
    """Keeps a copy of the weights (and float buffers) at which the last finite loss was computed,
    so a diverging run can be put back to its last good state."""

    def __init__(self, model: nn.Module):
        self.tensors = [t for t in list(model.parameters()) + list(model.buffers()) if t.is_floating_point()]
        self.copy = [t.detach().clone() for t in self.tensors]

    def keep(self) -> None:
        torch._foreach_copy_(self.copy, [t.detach() for t in self.tensors])

    def restore(self) -> None:
        with torch.no_grad():
            torch._foreach_copy_(self.tensors, self.copy)


def _check_eval(record: dict, epoch: int, step: int, it: int, lr: float) -> None:
    """A finite training loss can still give a non-finite evaluation loss (eval-mode statistics,
    a weight that blew up in the last step): that run has diverged too."""
    for key in ("val_loss", "test_loss"):
        if key in record and not math.isfinite(record[key]):
            raise Diverged(f"{key.replace('_', ' ')} became {record[key]:.4g} after epoch {epoch} (last step "
                           f"{step}, iteration {it}) with learning rate {lr:.3g}; stopped and restored the "
                           f"weights of the last good step. Try a smaller learning rate.")


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
    if channels_last == "auto":  # a model may opt out where NHWC measured slower (bench_channels_last.py)
        cl = device.type in ("cuda", "cpu") and _has_conv(model) and getattr(model, "prefers_channels_last", True)
    else:
        cl = bool(channels_last)
    if cl:
        model.to(memory_format=torch.channels_last)
    for b in (data.train, data.test) + ((data.val,) if data.val is not None else ()):
        b.channels_last = cl
    optimizer = opt if isinstance(opt, torch.optim.Optimizer) else make_optimizer(
        model.parameters(), opt, lr, momentum=momentum, nesterov=nesterov, weight_decay=weight_decay,
        betas=betas, eps=eps)
    sched = make_schedule(schedule, lr)
    steps_per_epoch = len(data.train)
    sched.setup(epochs * steps_per_epoch, steps_per_epoch)
    precision = choose_precision(device, amp)
    autocast, scaler = precision.autocast(), precision.grad_scaler()
    history = History(meta={"label": label, "device": str(device), "channels_last": cl, "epochs": epochs,
                            "optimizer": type(optimizer).__name__, "schedule": repr(sched),
                            "precision": precision.name})
    start_epoch, elapsed = 0, 0.0
    if resume is not None:
        ck = torch.load(resume, map_location=device, weights_only=False)
        model.load_state_dict(ck["model"])
        optimizer.load_state_dict(ck["optimizer"])
        sched.load_state_dict(ck["schedule"])
        scaler.load_state_dict(ck["scaler"])
        history = History.from_dict(ck["history"])
        _set_rng_state(data, ck["rng"])
        start_epoch, elapsed = ck["epoch"] + 1, history.last.get("time", 0.0)

    show = _progress_enabled(progress)
    guard = _Guard(model)
    for cb in callbacks:
        getattr(cb, "before_fit", lambda **k: None)(model=model, history=history, epochs=epochs)
    it = start_epoch * steps_per_epoch
    bar = None
    try:
        for epoch in range(start_epoch, epochs):
            t0 = time.perf_counter()
            model.train()
            loss_sum = torch.zeros((), device=device, dtype=_sum_dtype(device))
            correct = torch.zeros((), device=device, dtype=torch.long)
            seen = 0
            bar = _bar(steps_per_epoch, f"{label} epoch {epoch + 1}/{epochs}".strip(), show)
            for step, (x, y) in enumerate(data.train):
                lr_now = sched.lr(it)
                for group in optimizer.param_groups:
                    group["lr"] = lr_now
                with autocast:
                    out = model(x)
                    loss = loss_fn(out.float(), y)
                loss_value = loss.item()
                if not math.isfinite(loss_value) or (max_loss is not None and loss_value > max_loss):
                    above = f" (above max_loss={max_loss:g})" if math.isfinite(loss_value) else ""
                    raise Diverged(f"loss became {loss_value:.4g}{above} at epoch {epoch}, step {step} "
                                   f"(iteration {it}) with learning rate {lr_now:.3g}; stopped and "
                                   f"restored the weights of the last good step. Try a smaller learning rate.")
                guard.keep()
                optimizer.zero_grad(set_to_none=True)
                scaler.scale(loss).backward()
                scaler.step(optimizer)
                scaler.update()
                n = len(y)
                loss_sum += loss.detach().to(loss_sum.dtype) * n
                correct += (out.detach().argmax(1) == y).sum()
                seen += n
                history.steps["loss"].append(loss_value)
                history.steps["lr"].append(lr_now)
                it += 1
                if bar is not None:
                    bar.update()
                    if step % 10 == 0:
                        bar.set_postfix(loss=f"{loss_value:.3f}", acc=f"{correct.item() / seen:.3f}", lr=f"{lr_now:.2g}")
                for cb in callbacks:
                    getattr(cb, "after_step", lambda **k: None)(
                        model=model, history=history, epoch=epoch, step=step, loss=loss_value, lr=lr_now)
            train_time = time.perf_counter() - t0
            record = {"epoch": epoch, "train_loss": loss_sum.item() / max(seen, 1),
                      "train_acc": correct.item() / max(seen, 1), "lr": lr_now}
            if (epoch + 1) % eval_every == 0 or epoch == epochs - 1:
                if data.val is not None:  # the source's validation split (seed 001), like Keras' fit
                    ev = evaluate(model, data.val, loss_fn, precision, device)
                    record.update(val_loss=ev["loss"], val_acc=ev["acc"])
                ev = evaluate(model, data.test, loss_fn, precision, device)
                record.update(test_loss=ev["loss"], test_acc=ev["acc"])
                _check_eval(record, epoch, step, it, lr_now)
            epoch_time = time.perf_counter() - t0
            elapsed += epoch_time
            record.update(train_time=train_time, epoch_time=epoch_time, time=elapsed)
            history.epochs.append(record)
            if "test_loss" in record:
                sched.epoch_end(record)
            if bar is not None:
                bar.set_postfix(loss=f"{record['train_loss']:.3f}", test_acc=f"{record.get('test_acc', float('nan')):.3f}")
                bar.close()
            if log == "json":
                print(history.json_line(record), flush=True)
            elif log == "table":
                print(history.table().splitlines()[-1] if len(history) > 1 else history.table(), flush=True)
            if checkpoint is not None:
                save_atomic({"model": model.state_dict(), "optimizer": optimizer.state_dict(),
                             "schedule": sched.state_dict(), "scaler": scaler.state_dict(),
                             "history": history.to_dict(), "rng": _rng_state(data), "epoch": epoch}, checkpoint)
            for cb in callbacks:
                getattr(cb, "after_epoch", lambda **k: None)(model=model, history=history, epoch=epoch)
    except Diverged as e:
        guard.restore()
        history.stopped = str(e)
        if bar is not None:
            bar.close()
        if show or log:
            print(f"Diverged: {e}", file=sys.stderr)
    except CancelFit as e:
        history.stopped = f"cancelled: {e}" if str(e) else "cancelled"
        if bar is not None:
            bar.close()
    if cl:  # hand the model back in the default layout
        model.to(memory_format=torch.contiguous_format)
    for cb in callbacks:
        getattr(cb, "after_fit", lambda **k: None)(model=model, history=history)
    return history


def _bar(total: int, desc: str, show: bool):
    if not show:
        return None
    from tqdm.auto import tqdm

    return tqdm(total=total, desc=desc, leave=False, disable=False)  # explicit: TQDM_DISABLE only sets defaults
