"""The precision policy: one function decides whether a run uses autocast, in which dtype, and
whether it needs a GradScaler.

- CUDA with native bf16 (compute capability >= 8.0: A100, L4, H100, RTX 30xx and newer): bf16
  autocast, no scaler (bf16 has float32's exponent range, so gradients do not underflow).
- Older CUDA GPUs (Colab's free T4 is sm_75): fp16 autocast with a GradScaler.  Not bf16:
  ``torch.cuda.is_bf16_supported()`` answers True there by emulation (its default
  ``including_emulation=True``), and emulated bf16 sends convolutions to slow kernels, so the
  decision asks the compute capability instead.
- CPU and Apple's MPS: no autocast unless asked (bf16 on a CPU helps only with AVX512-BF16/AMX and
  changes the numbers; the book's committed outputs are float32).

``requested`` overrides "auto": "fp32" (off), "bf16", "fp16" (True means "the device's autocast
dtype": bf16 on a CPU).  The environment variable ``NORMLAB_PRECISION`` replaces "auto" for a
whole session (the tests use it to force CPU autocast the way a GPU run would use it).
"""
from __future__ import annotations

import contextlib
import os
from dataclasses import dataclass

import torch

PRECISION_ENV = "NORMLAB_PRECISION"
PRECISIONS = ("auto", "fp32", "bf16", "fp16")
_DTYPES = {"bf16": torch.bfloat16, "fp16": torch.float16}


@dataclass(frozen=True)
class Precision:
    """What a run computes in. ``name`` is "fp32", "bf16" or "fp16"; ``reason`` says why."""
    name: str
    device_type: str
    reason: str

    @property
    def dtype(self) -> torch.dtype | None:
        """The autocast dtype, or None for plain float32."""
        return _DTYPES.get(self.name)

    @property
    def enabled(self) -> bool:
        return self.dtype is not None

    @property
    def needs_scaler(self) -> bool:
        """fp16's narrow exponent range lets small gradients underflow: scale the loss."""
        return self.name == "fp16"

    def autocast(self) -> contextlib.AbstractContextManager:
        if not self.enabled:
            return contextlib.nullcontext()
        return torch.autocast(self.device_type, dtype=self.dtype)

    def grad_scaler(self) -> torch.amp.GradScaler:
        return torch.amp.GradScaler(self.device_type, enabled=self.needs_scaler)

    def __str__(self) -> str:
        what = "float32 (no autocast)" if not self.enabled else f"{self.name} autocast" + (
            " with a GradScaler" if self.needs_scaler else "")
        return f"{what}: {self.reason}"


def in_float32(x: torch.Tensor) -> torch.Tensor:
    """x in float32 if autocast (or the caller) handed over fp16/bf16, else x itself.

    The book's own norm layers compute in float32 under autocast, as torch's norms do: statistics of
    half-precision activations lose digits (bf16 keeps 8 bits of mantissa), and float32 running
    buffers cannot be updated from them. float32 and float64 inputs are untouched (bit-identical)."""
    return x.float() if x.dtype in (torch.float16, torch.bfloat16) else x


def _native_bf16(device: torch.device) -> tuple[bool, str]:
    major, minor = torch.cuda.get_device_capability(device)
    name = torch.cuda.get_device_name(device)
    return (major, minor) >= (8, 0), f"{name}, compute capability {major}.{minor}"


def choose_precision(device: str | torch.device, requested: str | bool | Precision | None = "auto") -> Precision:
    """Decide the precision of a run on `device` (see the module docstring for the policy)."""
    if isinstance(requested, Precision):
        return requested
    device = torch.device(device)
    if requested is None or requested == "auto":
        requested = os.environ.get(PRECISION_ENV) or "auto"
        if requested not in PRECISIONS:
            raise ValueError(f"${PRECISION_ENV}={requested!r} is not a precision; accepted: {', '.join(PRECISIONS)}")
        source = f"${PRECISION_ENV}" if requested != "auto" else ""
    else:
        source = "asked for"
    if requested is True:
        requested = "auto-on"
    elif requested is False:
        requested = "fp32"
    if requested not in PRECISIONS + ("auto-on",):
        raise ValueError(f"unknown precision {requested!r}; accepted: {', '.join(PRECISIONS)} (or True/False)")
    kind = device.type

    if requested == "fp32":
        return Precision("fp32", kind, source or "asked for")
    if requested in ("auto", "auto-on"):
        if kind == "cuda":
            native, gpu = _native_bf16(device)
            if native:
                return Precision("bf16", kind, f"{gpu} has native bf16")
            return Precision("fp16", kind, f"{gpu} has no native bf16 (needs >= 8.0)")
        if requested == "auto":
            return Precision("fp32", kind, f"the default on the {kind.upper()}: autocast only where asked")
        return Precision("bf16", kind, "asked for")
    # an explicit dtype
    if requested == "bf16" and kind == "cuda":
        native, gpu = _native_bf16(device)
        if not native:
            raise ValueError(f"precision 'bf16' was requested but {gpu} has no native bf16 "
                             "(it would be emulated, with slow convolutions); use 'fp16' or 'auto'")
    if kind == "mps" and requested == "bf16":
        raise ValueError("precision 'bf16' is not supported on Apple's MPS; use 'fp16', 'fp32' or 'auto'")
    return Precision(requested, kind, source)
