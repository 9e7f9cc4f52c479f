"""Device choice: "auto" picks CUDA, then Apple's MPS, then the CPU."""
from __future__ import annotations

import ctypes
import platform
import sys

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


_ALLOCATOR_TUNED = False


def tune_cpu_allocator() -> bool:
    """Keep freed memory inside the process instead of returning it to the OS (glibc only).

    glibc serves large blocks (activations of a batch) with mmap and unmaps them on free, so every
    training step pays page faults again; on the 2-core VMs this book is built on that made a
    ResNet-spec step ~1.6x slower (performance.md section 4 measured the same with tcmalloc).
    Raising the mmap and trim thresholds keeps those pages mapped. Returns True if applied."""
    global _ALLOCATOR_TUNED
    if _ALLOCATOR_TUNED or not sys.platform.startswith("linux"):
        return _ALLOCATOR_TUNED
    try:
        libc = ctypes.CDLL("libc.so.6")
        m_trim_threshold, m_mmap_threshold = -1, -3  # from glibc's malloc.h
        _ALLOCATOR_TUNED = bool(libc.mallopt(m_mmap_threshold, 1 << 30) and libc.mallopt(m_trim_threshold, 1 << 30))
    except (OSError, AttributeError):  # not glibc (musl, macOS): nothing to do
        _ALLOCATOR_TUNED = False
    return _ALLOCATOR_TUNED
