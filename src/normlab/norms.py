"""Normalization layers used throughout the book.

* :func:`make_norm` -- one factory for the norm toggle (none / batch / layer /
  group / instance / lrn / scratch_batch), following the erav1s8 mapping
  (layer = GroupNorm(1, C), instance = GroupNorm(C, C)).
* :class:`BatchNorm1d` / :class:`BatchNorm2d` -- BatchNorm written with tensor
  ops, numerically identical to ``nn.BatchNorm1d/2d`` (the tests check this).
* :class:`BnLayer` -- the fast.ai lesson 7 layer exactly as the lesson wrote it
  (conv -> ReLU -> BN with unbiased std, no eps, eval = last training batch),
  and :class:`BnLayerCorrected`, the same layer with a standard BN.
* :class:`TairBatchNorm2d` / :class:`TairBatchNorm1d` -- the tf.keras
  from-scratch layers of tairtahar/batchnorm (per-position gamma/beta for
  convs, scalar gamma/beta for dense layers) with three inference modes.
* :class:`BatchStatBN` and :class:`Scale` -- the two odd blocks of the DARPA
  ResNet spec (parameterless batch-statistics BN, fixed logit scale).
"""

from __future__ import annotations

from collections import deque
from typing import Any, Deque, Optional, Tuple

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch.autograd.function import once_differentiable

from .precision import in_float32  # fp16/bf16 in: computed in float32, returned in the input's dtype

from .lrn import LocalResponseNorm

__all__ = [
    "NORM_KINDS",
    "make_norm",
    "BatchNorm",
    "BatchNorm1d",
    "BatchNorm2d",
    "BnLayer",
    "BnLayerCorrected",
    "TairBatchNorm2d",
    "TairBatchNorm1d",
    "TAIR_INFERENCE_MODES",
    "BatchStatBN",
    "Scale",
    "LocalResponseNorm",
]

NORM_KINDS: Tuple[str, ...] = ("none", "batch", "layer", "group", "instance", "lrn", "scratch_batch")
TAIR_INFERENCE_MODES: Tuple[str, ...] = ("batch", "running", "window")


# --------------------------------------------------------------------------- helpers
def _check_positive_int(name: str, value: Any) -> int:
    # bool is an int subclass; BatchNorm2d(True) is always a mistake.
    if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
        raise ValueError(f"{name} must be a positive int, got {value!r}")
    return value


def _reduce_dims(x: Tensor) -> Tuple[int, ...]:
    """Every dim except the channel dim 1: batch and spatial positions share statistics."""
    return (0, *range(2, x.dim()))


def _per_channel(v: Tensor, x: Tensor) -> Tensor:
    """Reshape a (C,) vector so it broadcasts against x of shape (N, C, *)."""
    return v.view(1, -1, *([1] * (x.dim() - 2)))


def _mean_biased_var(x: Tensor, scratch: Optional[Tensor] = None) -> Tuple[Tensor, Tensor]:
    """(mean, biased var) per channel over every dim but 1, the way every BN here computes them.

    Plain means, not ``torch.var_mean``: over dims (0, 2, 3) var_mean is tens of times slower
    than a sum on the CPU (measured), in NCHW and channels_last alike.  Two passes over
    x - mean, not the one-pass E[x^2] - mean^2: that cancels catastrophically in float32 when
    |mean| >> std (1e-3 error at mean/std = 100, measured); torch's kernel is two-pass too.
    The residual mean d = mean(x - mean) is not exactly 0 in float32: adding it back
    ("corrected two-pass", Chan, Golub & LeVeque 1983) makes mean and var as accurate as
    torch's, which sums in float64.  ``scratch`` (x's shape and layout) receives x - mean
    squared, so a caller that has a full-size buffer to spare allocates nothing else.
    Not differentiable as written: gradients reach x through :class:`_BatchNormTrainFn`.
    """
    dims = _reduce_dims(x)
    mean = x.mean(dims)
    centered = torch.sub(x, _per_channel(mean, x), out=scratch)
    d = centered.mean(dims)
    # clamp: rounding can take a near-constant channel's variance a hair below 0, and with the
    # lesson's eps = 0 its rsqrt would be NaN
    var = (centered.square_().mean(dims) - d * d).clamp_min_(0.0)
    return mean + d, var


def _normalize(x: Tensor, mean: Tensor, var: Tensor, eps: float) -> Tensor:
    """(x - mean) / sqrt(var + eps); mean/var must already broadcast against x."""
    return (x - mean) * torch.rsqrt(var + eps)


# --------------------------------------------------------------------------- from-scratch BN
def _scale_shift(x: Tensor, a: Tensor, b: Tensor, out: Optional[Tensor] = None) -> Tensor:
    """``x * a + b`` with per-channel (C,) vectors a and b, in the fewest fast passes.

    torch's CPU loops are vectorized only when at most one operand is broadcast along the
    innermost memory dim.  With channels in that dim (channels_last, or (N, C)) the fused
    ``addcmul`` is one vectorized pass; in NCHW the innermost dim is W, a and b are both
    broadcast along it and ``addcmul`` falls back to scalar code (2-3x slower, measured),
    so a multiply then an in-place add is faster there.
    """
    a, b = _per_channel(a, x), _per_channel(b, x)
    if x.stride(1) == 1:
        return torch.addcmul(b, x, a, out=out)
    return torch.mul(x, a, out=out).add_(b)


class _BatchNormTrainFn(torch.autograd.Function):
    """Batch-statistics BN, ``y = (x - mean) / sqrt(var + eps) * weight + bias``, with a
    hand-written backward.  Still nothing but tensor ops; the point is speed.  Left to
    autograd, the same maths (var_mean, then subtract, multiply, multiply, add) allocates a
    fresh full-size tensor per op, keeps them all for the backward and differentiates each
    op separately: 4-12x torch's fused layer per forward+backward and 1.5-2.2x per training
    step of a small ConvNet on the 2-core CPU (``benchmarks/bench_batchnorm.py``).  Here each
    direction allocates exactly one full-size tensor (the result) and reuses it as scratch:
    fresh memory is expensive on the CPU (page faults).

    Returns (y, mean, var); mean and var (biased) are for the running statistics and are not
    differentiable (the gradient through them is already inside the backward formula).
    """

    @staticmethod
    def forward(ctx: Any, x: Tensor, weight: Optional[Tensor], bias: Optional[Tensor],
                eps: float) -> Tuple[Tensor, Tensor, Tensor]:
        # empty_like keeps x's memory format (channels_last in, channels_last out, like torch);
        # y doubles as the scratch buffer for the variance, so no other big temporary exists.
        y = torch.empty_like(x)
        mean, var = _mean_biased_var(x, scratch=y)
        rstd = torch.rsqrt(var + eps)
        # Fold normalize + affine into one per-channel scale and shift, y = x * a + b, so the
        # output is written in one or two passes instead of four ops (torch's CPU kernel
        # folds it the same way).
        a = rstd if weight is None else rstd * weight
        b = -mean * a if bias is None else bias - mean * a
        _scale_shift(x, a, b, out=y)
        ctx.save_for_backward(x, mean, rstd, weight)
        ctx.mark_non_differentiable(mean, var)
        return y, mean, var

    @staticmethod
    @once_differentiable  # no double backward: raise rather than return wrong 2nd derivatives
    def backward(ctx: Any, dy: Tensor, _dmean: Any, _dvar: Any) -> Tuple[Optional[Tensor], ...]:
        x, mean, rstd, weight = ctx.saved_tensors
        if dy.stride() != x.stride():
            # One copy into x's layout, so every pass below runs in a single layout.  Needed
            # under torch.compile, which hands a custom Function contiguous (NCHW) gradients:
            # with channels_last the backward would otherwise transpose twice (compiled
            # steps measured 1.03-1.04x native instead of 1.00x); inductor fuses this copy
            # away.  Rare in eager (e.g. the expanded gradient of y.sum()).
            dy = torch.empty_like(x).copy_(dy)
        dims = _reduce_dims(x)
        n = x.numel() // x.shape[1]
        dx = torch.empty_like(x)  # also the scratch buffer for dy * (x - mean)
        # The two per-channel sums every BN gradient needs (xhat = (x - mean) * rstd):
        sum_dy = dy.sum(dims)  # = grad of bias
        sum_dy_xhat = torch.sub(x, _per_channel(mean, x), out=dx).mul_(dy).sum(dims) * rstd  # = grad of weight
        # Standard BN backward, a = weight * rstd:
        #   dx = a * (dy - sum_dy / n - xhat * sum_dy_xhat / n)
        # The two subtracted terms are the gradient through the batch mean and the batch
        # variance: dropping them (as if mean/var were constants) is the classic bug.
        # Expanded as dx = dy * a + x * k + c with per-channel k, c: two or three passes.
        a = rstd if weight is None else rstd * weight
        k = -a * rstd * sum_dy_xhat / n
        c = -a * sum_dy / n - mean * k
        _scale_shift(dy, a, c, out=dx).addcmul_(x, _per_channel(k, x))
        return (dx if ctx.needs_input_grad[0] else None,
                sum_dy_xhat if ctx.needs_input_grad[1] else None,
                sum_dy if ctx.needs_input_grad[2] else None,
                None)


class BatchNorm(nn.Module):
    """BatchNorm from tensor ops with exactly the semantics of ``nn.BatchNorm{1,2,3}d``.

    ``dim`` is the number of spatial dims: 1 accepts (N, C) or (N, C, L), 2 accepts
    (N, C, H, W), 3 accepts (N, C, D, H, W).  The pitfalls of typical from-scratch
    versions are avoided on purpose (each is commented where it matters):

    * running statistics are *buffers*, not plain tensor attributes, so they are
      in ``state_dict`` and follow ``.to()`` / ``.cuda()`` (d2l-zh PR #1265);
    * the running variance is updated with the *unbiased* batch variance while
      the batch is normalized with the *biased* one (pytorch #19916);
    * PyTorch's momentum convention ``running = (1 - m) * running + m * batch``
      (the opposite of Keras / the old d2l ``0.9``);
    * the train/eval switch reads ``self.training``, not ``torch.is_grad_enabled()``
      (evaluating under no_grad must not be the only way to get eval behaviour,
      and training-mode forward under no_grad must still use batch statistics).

    With batch statistics the maths runs in :class:`_BatchNormTrainFn`, a forward and a
    hand-written backward in tensor ops; gradients through the mean and variance are
    included, and double backward is not supported (torch's layer supports it).
    """

    _EXPECTED_RANKS = {1: (2, 3), 2: (4,), 3: (5,)}

    def __init__(
        self,
        num_features: int,
        eps: float = 1e-5,
        momentum: Optional[float] = 0.1,
        affine: bool = True,
        track_running_stats: bool = True,
        dim: int = 2,
    ) -> None:
        super().__init__()
        if dim not in self._EXPECTED_RANKS:
            raise ValueError(f"dim must be 1, 2 or 3 (spatial dims), got {dim!r}")
        self.num_features = _check_positive_int("num_features", num_features)
        self.eps = eps
        self.momentum = momentum
        self.affine = affine
        self.track_running_stats = track_running_stats
        self.dim = dim
        if affine:
            self.weight = nn.Parameter(torch.ones(num_features))
            self.bias = nn.Parameter(torch.zeros(num_features))
        else:  # registered as None, like torch, so state_dict keys match
            self.register_parameter("weight", None)
            self.register_parameter("bias", None)
        if track_running_stats:
            # Buffers, not plain attributes: saved in state_dict, moved by .to().
            self.register_buffer("running_mean", torch.zeros(num_features))
            self.register_buffer("running_var", torch.ones(num_features))
            self.register_buffer("num_batches_tracked", torch.tensor(0, dtype=torch.long))
        else:
            self.register_buffer("running_mean", None)
            self.register_buffer("running_var", None)
            self.register_buffer("num_batches_tracked", None)

    def reset_running_stats(self) -> None:
        if self.track_running_stats:
            self.running_mean.zero_()
            self.running_var.fill_(1.0)
            self.num_batches_tracked.zero_()

    def reset_parameters(self) -> None:
        self.reset_running_stats()
        if self.affine:
            nn.init.ones_(self.weight)
            nn.init.zeros_(self.bias)

    def _check_input(self, x: Tensor) -> None:
        ranks = self._EXPECTED_RANKS[self.dim]
        if x.dim() not in ranks:
            want = " or ".join(f"{r}D" for r in ranks)
            raise ValueError(
                f"{type(self).__name__} expected {want} input, got {x.dim()}D input of shape {tuple(x.shape)}"
            )
        if x.shape[1] != self.num_features:
            raise ValueError(f"{type(self).__name__}: expected {self.num_features} channels in dim 1, got {x.shape[1]}")

    def forward(self, x: Tensor) -> Tensor:
        self._check_input(x)
        return self._forward(in_float32(x)).to(x.dtype)

    def _forward(self, x: Tensor) -> Tensor:
        # Mode switch on self.training (not is_grad_enabled); without running
        # stats torch uses batch statistics in eval too.
        use_batch_stats = self.training or self.running_mean is None
        if not use_batch_stats:
            # Eval: BN is a fixed per-channel affine map, y = x * a + b (the same folding
            # that lets deployment merge BN into the preceding conv); autograd handles it.
            a = torch.rsqrt(self.running_var + self.eps)
            b = -self.running_mean * a
            if self.affine:
                a, b = a * self.weight, b * self.weight + self.bias
            return _scale_shift(x, a, b)
        n = x.numel() // self.num_features  # values per channel
        if self.training and n <= 1:
            raise ValueError(
                f"Expected more than 1 value per channel when training, got input size {tuple(x.shape)}"
            )
        # Not under no_grad: gradients must flow through the batch statistics
        # (computing them without gradient is a classic bug); the Function's backward does it.
        y, mean, var = _BatchNormTrainFn.apply(x, self.weight, self.bias, self.eps)  # var: biased
        if self.training and self.running_mean is not None:
            with torch.no_grad():  # the running averages are not part of the graph
                self.num_batches_tracked.add_(1)
                # momentum=None: cumulative moving average (factor 1/t).
                f = 1.0 / float(self.num_batches_tracked) if self.momentum is None else self.momentum
                # PyTorch convention: running = (1 - f) * running + f * batch  (== lerp).
                self.running_mean.lerp_(mean, f)
                # Running var stores the UNBIASED estimate n/(n-1) * biased var.
                self.running_var.lerp_(var * (n / (n - 1)), f)
        return y

    def extra_repr(self) -> str:
        return (
            f"{self.num_features}, eps={self.eps}, momentum={self.momentum}, "
            f"affine={self.affine}, track_running_stats={self.track_running_stats}"
        )


class BatchNorm1d(BatchNorm):
    """From-scratch ``nn.BatchNorm1d``: input (N, C) or (N, C, L)."""

    def __init__(self, num_features: int, eps: float = 1e-5, momentum: Optional[float] = 0.1,
                 affine: bool = True, track_running_stats: bool = True) -> None:
        super().__init__(num_features, eps, momentum, affine, track_running_stats, dim=1)


class BatchNorm2d(BatchNorm):
    """From-scratch ``nn.BatchNorm2d``: input (N, C, H, W)."""

    def __init__(self, num_features: int, eps: float = 1e-5, momentum: Optional[float] = 0.1,
                 affine: bool = True, track_running_stats: bool = True) -> None:
        super().__init__(num_features, eps, momentum, affine, track_running_stats, dim=2)


# --------------------------------------------------------------------------- factory
def make_norm(kind: str, channels: int, *, groups: int = 4, dim: int = 2, **kwargs: Any) -> nn.Module:
    """Build the normalization layer named ``kind`` for ``channels`` channels.

    ``dim`` only matters for the BatchNorm kinds (1 -> BatchNorm1d, 2 -> BatchNorm2d);
    GroupNorm and LocalResponseNorm accept any (N, C, *) input.  ``kwargs`` are
    passed to the layer's constructor (e.g. ``eps``, ``affine``, ``momentum``).
    """
    if kind not in NORM_KINDS:
        raise ValueError(f"unknown norm kind {kind!r}; accepted: {', '.join(NORM_KINDS)}")
    _check_positive_int("channels", channels)
    if dim not in (1, 2):
        raise ValueError(f"dim must be 1 or 2, got {dim!r}")
    if kind == "none":
        return nn.Identity(**kwargs)
    if kind == "batch":
        return (nn.BatchNorm1d if dim == 1 else nn.BatchNorm2d)(channels, **kwargs)
    if kind == "scratch_batch":
        return (BatchNorm1d if dim == 1 else BatchNorm2d)(channels, **kwargs)
    if kind == "layer":  # one group = LayerNorm over (C, H, W), per-channel affine
        return nn.GroupNorm(1, channels, **kwargs)
    if kind == "group":
        _check_positive_int("groups", groups)
        if channels % groups:
            raise ValueError(f"group norm needs channels divisible by groups: channels={channels}, groups={groups}")
        return nn.GroupNorm(groups, channels, **kwargs)
    if kind == "instance":  # one channel per group = InstanceNorm with affine
        return nn.GroupNorm(channels, channels, **kwargs)
    # kind == "lrn": TF tutorial tf.nn.lrn(depth_radius=4, bias=1.0, alpha=0.001/9, beta=0.75).
    # Window = 2*depth_radius+1 = 9.  TF's alpha multiplies the plain sum of squares
    # (per element), PyTorch divides alpha by size, so torch alpha = 9 * 0.001/9 = 0.001.
    # normlab.lrn.LocalResponseNorm: nn.LocalResponseNorm's maths (a subclass), several times
    # faster forward + backward on the CPU (benchmarks/bench_lrn.py).
    return LocalResponseNorm(**{"size": 9, "alpha": 0.001, "beta": 0.75, "k": 1.0, **kwargs})


# --------------------------------------------------------------------------- fast.ai lesson 7
class BnLayer(nn.Module):
    """fast.ai dl1 lesson 7 ``BnLayer``, as the lesson wrote it.

    conv (no bias) -> ReLU -> normalize, with per-channel mean and the *unbiased*
    std of the training batch, *no epsilon* (a dead ReLU channel gives std 0 and
    a division by zero), learnable shift ``a`` and scale ``m``.  Eval reuses the
    statistics of the *last training batch* (no running average).

    Port changes: the original stored ``self.means``/``self.stds`` as plain
    attributes (not in state_dict; eval before any training step raised
    AttributeError).  Here they are buffers initialised to zeros/ones, holding
    detached copies, and a ``stats_ready`` flag buffer makes eval before any
    training step raise a clear RuntimeError instead of silently using 0/1.
    """

    def __init__(self, ni: int, nf: int, stride: int = 2, kernel_size: int = 3) -> None:
        super().__init__()
        self.conv = nn.Conv2d(ni, nf, kernel_size=kernel_size, stride=stride, bias=False, padding=1)
        self.a = nn.Parameter(torch.zeros(nf, 1, 1))
        self.m = nn.Parameter(torch.ones(nf, 1, 1))
        self.register_buffer("means", torch.zeros(nf, 1, 1))
        self.register_buffer("stds", torch.ones(nf, 1, 1))
        self.register_buffer("stats_ready", torch.tensor(False))

    def forward(self, x: Tensor) -> Tensor:
        x = F.relu(self.conv(x))
        return self._normalize(in_float32(x)).to(x.dtype)

    def _normalize(self, x: Tensor) -> Tensor:
        if self.training:
            # Lesson: x.transpose(0,1).contiguous().view(nf,-1).mean(1) / .std(1);
            # same numbers in one pass. Unbiased (correction=1), no eps, not detached.
            # Left to autograd on purpose. Through _BatchNormTrainFn (tried 2026-11-29) a
            # ConvBnNet2 step was 1.3x faster, but with no eps 68 of these layers are
            # ill-conditioned: chapter 4's gradient ratio across them came out 11-26 % above its
            # float64 value (one batch, and it scaled by 1 ± 2^-22), against 3-4 % this way.
            var, mean = torch.var_mean(x, dim=_reduce_dims(x), correction=1)
            means, stds = mean[:, None, None], var.sqrt()[:, None, None]
            with torch.no_grad():
                self.means.copy_(means)
                self.stds.copy_(stds)
                self.stats_ready.fill_(True)
        else:
            if not bool(self.stats_ready):
                raise RuntimeError(
                    "BnLayer has no statistics yet: eval mode reuses the last training batch's "
                    "mean/std, so run at least one forward pass in train mode first"
                )
            means, stds = self.means, self.stds
        return (x - means) / stds * self.m + self.a

    def extra_repr(self) -> str:
        return f"{self.a.shape[0]}, order=conv->relu->bn, std=unbiased, eps=0, eval=last training batch stats"


class BnLayerCorrected(nn.Module):
    """``BnLayer`` with a standard BN: the from-scratch :class:`BatchNorm2d`
    (eps, biased variance for normalization, running statistics in eval).

    ``bn_before_relu=True`` gives the standard conv -> BN -> ReLU placement; the
    default keeps the lesson's conv -> ReLU -> BN.  Same parameter count as
    BnLayer: the BN weight/bias play the role of m/a.
    """

    def __init__(self, ni: int, nf: int, stride: int = 2, kernel_size: int = 3, bn_before_relu: bool = False) -> None:
        super().__init__()
        self.conv = nn.Conv2d(ni, nf, kernel_size=kernel_size, stride=stride, bias=False, padding=1)
        self.bn = BatchNorm2d(nf)
        self.bn_before_relu = bn_before_relu

    def forward(self, x: Tensor) -> Tensor:
        x = self.conv(x)
        return F.relu(self.bn(x)) if self.bn_before_relu else self.bn(F.relu(x))

    def extra_repr(self) -> str:
        return f"order={'conv->bn->relu' if self.bn_before_relu else 'conv->relu->bn'}"


# --------------------------------------------------------------------------- tairtahar (seed 001)
class _TairBatchNorm(nn.Module):
    """Shared logic of the tairtahar layers (tf.keras originals).

    Training: statistics of the current batch, *biased* variance, eps 1e-8.
    Eval, by ``inference``:

    * ``"batch"``: the current eval batch's statistics.  This is what the
      original actually ran: Keras traced the Python list append once, so the
      window never grew past the current batch.  Outputs depend on the batch.
    * ``"running"``: exponential running averages updated in every training
      step (PyTorch momentum convention, default 0.01 = Keras momentum 0.99;
      unbiased variance as in the BN paper's Alg. 2 and PyTorch).  They are
      updated whatever the mode, so the mode can be switched after training.
    * ``"window"``: what the README meant.  The current eval batch's stats are
      appended to a deque of the last ``window`` eval batches; mean = average
      of the means, var = m/(m-1) * average of the biased variances, with m =
      the *batch size* (as the original wrote it, not the N*H*W values per
      channel).  Kept per channel: the original's ``K.mean(list)`` would have
      collapsed the variance to one scalar, and crashed in eager mode anyway.
      The window is plain Python state (not in state_dict); see ``reset_window``.
    """

    def __init__(self, num_features: int, param_shape: Tuple[int, ...], eps: float,
                 inference: str, window: int, momentum: float) -> None:
        super().__init__()
        self.num_features = _check_positive_int("features", num_features)
        self.eps = eps
        self.momentum = momentum
        self.window = _check_positive_int("window", window)
        self.inference = inference  # validated by the property setter
        self.gamma = nn.Parameter(torch.ones(param_shape))
        self.beta = nn.Parameter(torch.zeros(param_shape))
        self.register_buffer("running_mean", torch.zeros(num_features))
        self.register_buffer("running_var", torch.ones(num_features))
        self._window_stats: Deque[Tuple[Tensor, Tensor]] = deque()

    @property
    def inference(self) -> str:
        return self._inference

    @inference.setter
    def inference(self, value: str) -> None:
        if value not in TAIR_INFERENCE_MODES:
            raise ValueError(f"inference must be one of {', '.join(map(repr, TAIR_INFERENCE_MODES))}; got {value!r}")
        self._inference = value

    def reset_window(self) -> None:
        """Forget the stored eval-batch statistics of the ``"window"`` mode."""
        self._window_stats.clear()

    def _check_input(self, x: Tensor) -> None:  # overridden by subclasses
        raise NotImplementedError

    def _update_running(self, mean: Tensor, var: Tensor, x: Tensor) -> None:
        with torch.no_grad():
            n = x.numel() // self.num_features
            unbiased = var * (n / (n - 1)) if n > 1 else var
            self.running_mean.lerp_(mean, self.momentum)
            self.running_var.lerp_(unbiased, self.momentum)

    def _window_stats_of(self, x: Tensor) -> Tuple[Tensor, Tensor]:
        """(mean, var) of the "window" mode: the last ``window`` eval batches' statistics."""
        m = x.shape[0]
        if m < 2:
            raise ValueError("inference='window' needs eval batches of size >= 2 (variance factor m/(m-1))")
        with torch.no_grad():
            self._window_stats.append(_mean_biased_var(x))
        while len(self._window_stats) > self.window:
            self._window_stats.popleft()
        # .to(x): stored stats may be on another device/dtype after a .to() call.
        means = torch.stack([s[0].to(x) for s in self._window_stats])
        vars_ = torch.stack([s[1].to(x) for s in self._window_stats])
        return means.mean(0), vars_.mean(0) * (m / (m - 1))

    def _normalized(self, x: Tensor) -> Tensor:
        """(x - mean) / sqrt(var + eps) with the statistics the mode asks for."""
        if self.training or self.inference == "batch":
            # The current batch's statistics, gradient through them included, in
            # _BatchNormTrainFn's hand-written backward (faster than autograd over var_mean and
            # the elementwise ops: benchmarks/bench_tair_bn.py).
            xhat, mean, var = _BatchNormTrainFn.apply(x, None, None, self.eps)
            if self.training:
                self._update_running(mean, var, x)
            return xhat
        mean, var = ((self.running_mean, self.running_var) if self.inference == "running"
                     else self._window_stats_of(x))
        return _normalize(x, _per_channel(mean, x), _per_channel(var, x), self.eps)

    def forward(self, x: Tensor) -> Tensor:
        self._check_input(x)
        xf = in_float32(x)
        # gamma and beta are per position (C, H, W) or one scalar: not the per-channel affine
        # the Function folds in, so autograd takes them.
        return torch.addcmul(self.beta, self._normalized(xf), self.gamma).to(x.dtype)

    def extra_repr(self) -> str:
        return (
            f"gamma={tuple(self.gamma.shape)}, eps={self.eps}, inference={self.inference!r}, "
            f"window={self.window}, momentum={self.momentum}"
        )


class TairBatchNorm2d(_TairBatchNorm):
    """tairtahar ``BatchNormLayer``: per-channel stats over (N, H, W), but gamma/beta
    of shape (C, H, W) -- a per-position-and-channel affine (why lenet_bn1 has
    2*6*28*28 = 9,408 extra parameters).  Input (N, C, H, W) with fixed C, H, W."""

    def __init__(self, channels: int, height: int, width: int, eps: float = 1e-8,
                 inference: str = "batch", window: int = 5, momentum: float = 0.01) -> None:
        dims = (("channels", channels), ("height", height), ("width", width))
        shape = tuple(_check_positive_int(name, v) for name, v in dims)
        super().__init__(channels, shape, eps, inference, window, momentum)

    def _check_input(self, x: Tensor) -> None:
        if x.dim() != 4 or tuple(x.shape[1:]) != tuple(self.gamma.shape):
            want = ", ".join(map(str, self.gamma.shape))
            raise ValueError(f"TairBatchNorm2d expected input (N, {want}), got {tuple(x.shape)}")


class TairBatchNorm1d(_TairBatchNorm):
    """tairtahar ``BatchNormFCLayer``: per-feature stats over the batch, but gamma
    and beta are ONE scalar each (shape [1]).  Input (N, features)."""

    def __init__(self, features: int, eps: float = 1e-8, inference: str = "batch",
                 window: int = 5, momentum: float = 0.01) -> None:
        super().__init__(features, (1,), eps, inference, window, momentum)

    def _check_input(self, x: Tensor) -> None:
        if x.dim() != 2 or x.shape[1] != self.num_features:
            raise ValueError(f"TairBatchNorm1d expected input (N, {self.num_features}), got {tuple(x.shape)}")

    def extra_repr(self) -> str:
        return f"{self.num_features}, " + super().extra_repr()


# --------------------------------------------------------------------------- DARPA ResNet spec (seed 004)
class BatchStatBN(nn.BatchNorm2d):
    """Parameterless BN that always uses the current batch's mean and biased
    variance, in train *and* eval (so predictions depend on the test batch).

    It *is* ``nn.BatchNorm2d(C, affine=False, track_running_stats=False)``: the
    spec's layer needs nothing else, so it uses torch's fused kernel (the same maths
    in tensor ops is :class:`BatchNorm2d`)."""

    def __init__(self, channels: int, eps: float = 1e-5) -> None:
        super().__init__(_check_positive_int("channels", channels), eps=eps, affine=False,
                         track_running_stats=False)

    @property
    def channels(self) -> int:
        return self.num_features

    def forward(self, x: Tensor) -> Tensor:
        # without affine weights torch would not notice a channel mismatch
        if x.dim() < 2 or x.shape[1] != self.num_features:
            raise ValueError(f"BatchStatBN expected input (N, {self.num_features}, ...), got {tuple(x.shape)}")
        return super().forward(x)

    def extra_repr(self) -> str:
        return f"{self.num_features}, eps={self.eps}, stats=current batch (train and eval)"


class Scale(nn.Module):
    """Multiply by a fixed constant (the spec's alpha = 0.125 before the softmax,
    i.e. a softmax temperature of 8).  A plain float: not learned, not a buffer."""

    def __init__(self, alpha: float = 0.125) -> None:
        super().__init__()
        self.alpha = float(alpha)

    def forward(self, x: Tensor) -> Tensor:
        return x * self.alpha

    def extra_repr(self) -> str:
        return f"alpha={self.alpha}"
