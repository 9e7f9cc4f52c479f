"""Device choice: "auto" picks CUDA, then Apple's MPS, then the CPU."""
from __future__ import annotations

import platform

import torch

DEVICE_CHOICES = ("auto", "cpu", "cuda", "mps")


def resolve_device(device: str | torch.device | None = "auto") -> torch.device:
    """'auto' (or None) -> the best available device; otherwise check the named one exists."""
    if isinstance(device, torch.device):
        return device
    name = "auto" if device is None else str(device)
    base = name.split(":")[0]
    if base not in DEVICE_CHOICES:
        raise ValueError(f"unknown device {name!r}; accepted: {', '.join(DEVICE_CHOICES)} (or 'cuda:N')")
    if base == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda")
        if getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available():
            return torch.device("mps")
        return torch.device("cpu")
    if base == "cuda" and not torch.cuda.is_available():
        raise ValueError(f"device {name!r} requested but CUDA is not available here; use 'auto' or 'cpu'")
    if base == "mps" and not (getattr(torch.backends, "mps", None) and torch.backends.mps.is_available()):
        raise ValueError(f"device {name!r} requested but MPS is not available here; use 'auto' or 'cpu'")
    return torch.device(name)


def describe_device(device: str | torch.device | None = "auto") -> str:
    """A one-line hardware description for results tables, e.g. 'CPU (2 threads, x86_64)'."""
    dev = resolve_device(device)
    if dev.type == "cuda":
        return f"GPU {torch.cuda.get_device_name(dev)}"
    if dev.type == "mps":
        return f"Apple GPU (MPS, {platform.machine()})"
    cpu = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo") as f:
            cpu = next(line.split(":", 1)[1].strip() for line in f if line.startswith("model name"))
    except (OSError, StopIteration):
        pass
    return f"CPU {cpu} ({torch.get_num_threads()} threads)"
