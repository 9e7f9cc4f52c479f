"""Shared bits of the benchmark scripts: the hardware line and a timer."""
from __future__ import annotations

import contextlib
import platform
import sys
import time

import torch

from normlab.devices import describe_device
from normlab.train import make_optimizer


def hardware_line(device="cpu") -> str:
    return (f"{describe_device(device)}; torch {torch.__version__}; Python {platform.python_version()}; "
            f"command: {' '.join(['python'] + sys.argv)}")


def timed(fn, *args, sync_device=None, **kwargs):
    """(seconds, result) of one call; synchronizes CUDA so GPU work is counted."""
    if sync_device is not None:
        sync(sync_device)
    t = time.perf_counter()
    out = fn(*args, **kwargs)
    if sync_device is not None:
        sync(sync_device)
    return time.perf_counter() - t, out


def sync(device) -> None:
    """Wait for the device's queued work (CUDA runs asynchronously; the CPU needs nothing)."""
    if torch.device(device).type == "cuda":
        torch.cuda.synchronize()


def best_step_seconds(model: torch.nn.Module, x: torch.Tensor, y: torch.Tensor, steps: int,
                      precision=None) -> float:
    """The best of `steps` SGD training steps on one batch, after 2 warm-up steps (the optimizer
    fit() makes), on x's device; `precision` (a ``normlab.precision.Precision``) adds its autocast
    and GradScaler, as fit() does."""
    opt = make_optimizer(model.parameters(), "sgd", 1e-3, momentum=0.9)
    autocast = precision.autocast if precision is not None else contextlib.nullcontext
    scaler = precision.grad_scaler() if precision is not None else None
    best = float("inf")
    for i in range(steps + 2):
        sync(x.device)
        t = time.perf_counter()
        with autocast():
            loss = torch.nn.functional.cross_entropy(model(x), y)
        opt.zero_grad(set_to_none=True)
        if scaler is not None and scaler.is_enabled():
            scaler.scale(loss).backward()
            scaler.step(opt)
            scaler.update()
        else:
            loss.backward()
            opt.step()
        sync(x.device)
        if i >= 2:  # warm-up steps excluded
            best = min(best, time.perf_counter() - t)
    return best


def train_step_flops(model: torch.nn.Module, x: torch.Tensor, y: torch.Tensor) -> int:
    """Floating-point operations of one training step (forward + backward; a multiply-add counts
    2), as torch's FlopCounterMode counts them: convolutions and matrix products only, which is
    where the time goes in these nets. The optimizer step and the norms' elementwise work are not
    counted, so the fraction of peak computed from it is a lower bound."""
    from torch.utils.flop_counter import FlopCounterMode
    counter = FlopCounterMode(display=False)
    with counter:
        loss = torch.nn.functional.cross_entropy(model(x), y)
        loss.backward()
    model.zero_grad(set_to_none=True)
    return counter.get_total_flops()


def conv_peak_gflops(repeats: int = 5, device="cpu", precision=None) -> tuple[float, str]:
    """This machine's measured convolution throughput (GFLOP/s): the best of `repeats` forward +
    backward passes of a large 3x3 convolution in channels_last (oneDNN's fastest case on the CPU,
    cuDNN's on a GPU), counted like train_step_flops, in float32 or under `precision`'s autocast.
    A GPU gets a 4x larger batch, so that launches do not hide its peak. On CUDA, float32
    convolutions use TF32 tensor cores unless torch.backends.cudnn.allow_tf32 is off (torch's
    default leaves it on). Returns (GFLOP/s, what was measured)."""
    batch = 256 if torch.device(device).type == "cuda" else 64
    conv = torch.nn.Conv2d(128, 128, 3, padding=1).to(device, memory_format=torch.channels_last)
    x = torch.randn(batch, 128, 32, 32, device=device).contiguous(memory_format=torch.channels_last).requires_grad_()
    autocast = precision.autocast if precision is not None else contextlib.nullcontext
    from torch.utils.flop_counter import FlopCounterMode
    counter = FlopCounterMode(display=False)
    with counter, autocast():
        conv(x).float().sum().backward()
    flops, best = counter.get_total_flops(), float("inf")
    for _ in range(repeats):
        sync(device)
        t = time.perf_counter()
        with autocast():
            conv(x).float().sum().backward()
        sync(device)
        best = min(best, time.perf_counter() - t)
    kind = "float32" if precision is None or not precision.enabled else f"{precision.name} autocast"
    return flops / best / 1e9, (f"Conv2d(128, 128, 3x3) on {batch}x128x32x32, channels_last, forward + backward, "
                                f"{kind}, {torch.device(device).type}")
