"""Shared bits of the benchmark scripts: the hardware line and a timer."""
from __future__ import annotations

import platform
import sys
import time

import torch

from normlab.devices import describe_device


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
