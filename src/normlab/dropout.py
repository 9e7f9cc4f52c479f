"""Dropout with a cheaper sampler for small drop probabilities on the CPU.

``F.dropout`` draws one random number per value. On the CPU that is the cost: erav1s8's
``Dropout(0.01)`` after each of its 8 conv layers drew 1.5 million numbers per training step at
batch 32, about a quarter of the step (``benchmarks/bench_dropout.py``). With ``sampler="gaps"``
the dropped positions are drawn as the gaps between them instead: in a row of independent
Bernoulli(p) trials the distance from one drop to the next is geometric(p), so about ``p * n``
numbers give the same distribution of masks (each value dropped independently with probability
p, the kept ones scaled by ``1 / (1 - p)``).

It is the same layer in distribution but not the same random stream: a run with it does not
repeat, bit for bit, a run made with ``F.dropout``. ``sampler="auto"`` (erav1s8's default since
its registry revision 1, see ``normlab.models.ModelSpec``) takes the gaps on the CPU and torch's
sampler elsewhere: on a GPU a Bernoulli draw per value is cheap, while the gaps' refill check
(``drop_positions``) would wait for the device once per layer and step.
"""
from __future__ import annotations

import math

import torch
import torch.nn as nn
import torch.nn.functional as F

__all__ = ["SAMPLERS", "Dropout", "check_sampler", "dropout", "drop_positions", "resolve_sampler"]

SAMPLERS = ("auto", "torch", "gaps")


def check_sampler(sampler: str) -> str:
    if sampler not in SAMPLERS:
        raise ValueError(f"unknown dropout sampler {sampler!r}; accepted: {', '.join(SAMPLERS)}")
    return sampler


def resolve_sampler(sampler: str, device) -> str:
    """The sampler `sampler` means on `device`: "auto" is "gaps" on the CPU, "torch" elsewhere."""
    if check_sampler(sampler) != "auto":
        return sampler
    return "gaps" if torch.device(device).type == "cpu" else "torch"


def drop_positions(n: int, p: float, device=None, batch: int | None = None) -> torch.Tensor:
    """The sorted positions, in [0, n), of the values a Bernoulli(p) mask drops: cumulative sums of
    geometric(p) gaps, drawn from torch's generator of `device` (so ``torch.manual_seed`` repeats them).
    ``batch``: gaps drawn at a time (default: the mean number of drops plus 8 standard deviations and
    16, so another batch is almost never needed; the positions are the same for any batch)."""
    if not 0.0 < p < 1.0:
        raise ValueError(f"p must be in (0, 1) to draw gaps, got {p!r}")
    mean = n * p
    batch = batch or int(mean + 8.0 * math.sqrt(mean) + 16)
    ends = torch.empty(batch, dtype=torch.int64, device=device).geometric_(p).cumsum_(0)
    while int(ends[-1]) <= n:
        more = torch.empty(batch, dtype=torch.int64, device=device).geometric_(p).cumsum_(0).add_(ends[-1])
        ends = torch.cat([ends, more])
    positions = ends.sub_(1)
    return positions[positions < n]


def dropout(x: torch.Tensor, p: float = 0.5, training: bool = True, sampler: str = "torch") -> torch.Tensor:
    """``F.dropout(x, p, training)``; ``sampler="gaps"`` draws the mask as :func:`drop_positions`,
    "auto" picks by ``x``'s device (:func:`resolve_sampler`)."""
    sampler = resolve_sampler(sampler, x.device)
    if not 0.0 <= p <= 1.0:
        raise ValueError(f"dropout probability must be in [0, 1], got {p!r}")
    if sampler == "torch" or not training or p in (0.0, 1.0):
        return F.dropout(x, p, training)
    if not (x.is_contiguous() or x.is_contiguous(memory_format=torch.channels_last)):
        x = x.contiguous()
    # the multiplier F.dropout uses (a mask of 1s divided by 1 - p), laid out as x is, so that
    # its positions run through x's memory in order
    noise = torch.empty_like(x).fill_(1.0).div_(1.0 - p)
    noise.as_strided((x.numel(),), (1,)).index_fill_(0, drop_positions(x.numel(), p, x.device), 0.0)
    return x * noise


class Dropout(nn.Dropout):
    """``nn.Dropout`` with a choice of sampler (see the module doc)."""

    def __init__(self, p: float = 0.5, sampler: str = "torch"):
        super().__init__(p)
        self.sampler = check_sampler(sampler)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return dropout(x, self.p, self.training, self.sampler)

    def extra_repr(self) -> str:
        # torch's sampler reads as nn.Dropout does: a run record's model structure stays the same
        base = super().extra_repr()
        return base if self.sampler == "torch" else f"{base}, sampler={self.sampler!r}"
