"""Shared bits of the benchmark scripts: the hardware line and a timer."""
from __future__ import annotations

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
    if sync_device is not None and torch.device(sync_device).type == "cuda":
        torch.cuda.synchronize()
    t = time.perf_counter()
    out = fn(*args, **kwargs)
    if sync_device is not None and torch.device(sync_device).type == "cuda":
        torch.cuda.synchronize()
    return time.perf_counter() - t, out


def best_step_seconds(model: torch.nn.Module, x: torch.Tensor, y: torch.Tensor, steps: int) -> float:
    """The best of `steps` SGD training steps on one batch, after 2 warm-up steps (the optimizer
    fit() makes)."""
    opt = make_optimizer(model.parameters(), "sgd", 1e-3, momentum=0.9)
    best = float("inf")
    for i in range(steps + 2):
        t = time.perf_counter()
        loss = torch.nn.functional.cross_entropy(model(x), y)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
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


def conv_peak_gflops(repeats: int = 5) -> tuple[float, str]:
    """This machine's measured fp32 convolution throughput (GFLOP/s): the best of `repeats`
    forward + backward passes of a large 3x3 convolution in channels_last (oneDNN's fastest case
    here), counted like train_step_flops. Returns (GFLOP/s, what was measured)."""
    conv = torch.nn.Conv2d(128, 128, 3, padding=1).to(memory_format=torch.channels_last)
    x = torch.randn(64, 128, 32, 32).contiguous(memory_format=torch.channels_last).requires_grad_()
    from torch.utils.flop_counter import FlopCounterMode
    counter = FlopCounterMode(display=False)
    with counter:
        conv(x).sum().backward()
    flops, best = counter.get_total_flops(), float("inf")
    for _ in range(repeats):
        t = time.perf_counter()
        conv(x).sum().backward()
        best = min(best, time.perf_counter() - t)
    return flops / best / 1e9, "Conv2d(128, 128, 3x3) on 64x128x32x32, channels_last, forward + backward"
