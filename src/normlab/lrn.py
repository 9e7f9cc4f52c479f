"""Local response normalization (AlexNet; the TF tutorial's ``tf.nn.lrn``) in tensor ops.

* :class:`LocalResponseNorm` -- ``nn.LocalResponseNorm`` with the same arguments and exactly its
  semantics (``alpha`` is torch's: divided by ``size``), several times faster on the CPU:
  a custom autograd Function with a hand-written backward (``benchmarks/bench_lrn.py``).
* :func:`tf_lrn` -- ``tf.nn.lrn``'s documented formula, a plain loop over the window in float64:
  the reference the tests and chapter 6 compare against.

The maths, for input x of shape (N, C, *) and window ``win(c) = [c - size//2, c + (size-1)//2]``
(torch's window; for odd sizes the symmetric ``[c - r, c + r]`` of TF with ``size = 2r + 1``)::

    d_c = k + alpha/size * sum_{j in win(c)} x_j^2            y_c = x_c * d_c^-beta
    dL/dx_j = g_j d_j^-beta - 2 alpha beta/size * x_j * sum_{c: j in win(c)} g_c x_c d_c^(-beta-1)

with g = dL/dy.  The second sum runs over the *transposed* window ``[j - (size-1)//2, j + size//2]``
(the same window when size is odd).
"""

from __future__ import annotations

import numbers
from typing import Any, Optional, Tuple

import torch
from torch import Tensor, nn
from torch.autograd.function import once_differentiable

from .precision import in_float32  # fp16/bf16 in: computed in float32, returned in the input's dtype

__all__ = ["LocalResponseNorm", "local_response_norm", "tf_lrn"]



def _check_size(size: Any) -> int:
    # bool is an int subclass; LocalResponseNorm(True) is always a mistake.
    if isinstance(size, bool) or not isinstance(size, int) or size <= 0:
        raise ValueError(f"size must be a positive int (the number of channels in the window), got {size!r}")
    return size


def _check_real(name: str, value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise ValueError(f"{name} must be a real number, got {value!r}")
    return float(value)


def _check_input(x: Any, who: str) -> None:
    if not isinstance(x, Tensor):
        raise TypeError(f"{who} expects a tensor, got {type(x).__name__}")
    if x.dim() < 2:
        raise ValueError(f"{who} expects input of shape (N, C, *) with at least 2 dims (channels in dim 1), "
                         f"got {x.dim()}-D input of shape {tuple(x.shape)}")
    if not x.is_floating_point():
        raise TypeError(f"{who} expects a floating-point input (float16, bfloat16, float32, float64), "
                        f"got {x.dtype}")


# --------------------------------------------------------------------------- layout
def _canonical(x: Tensor) -> Tuple[Tensor, bool]:
    """x as a contiguous 3-D view (A, C, B) with the channels in dim 1, and whether the channels
    are the innermost dim (channels_last: A = N*H*W, B = 1; NCHW: A = N, B = H*W).

    Every pass below runs on these views, so a channels_last input is never copied to NCHW and
    its result comes back channels_last.  Any other layout (a transposed or sliced tensor) is
    copied to NCHW once."""
    n, c = x.shape[:2]
    if x.dim() > 2 and not x.is_contiguous() and x.movedim(1, -1).is_contiguous():
        return x.movedim(1, -1).view(-1, c, 1), True
    return x.contiguous().view(n, c, -1), False


def _uncanonical(t: Tensor, shape: torch.Size, channels_inner: bool) -> Tensor:
    """Inverse of :func:`_canonical` for a result t of the same canonical shape."""
    if channels_inner:
        return t.view(shape[0], *shape[2:], shape[1]).movedim(-1, 1)
    return t.view(shape)


# --------------------------------------------------------------------------- the two kernels
def _window_sum(s: Tensor, size: int, out: Tensor) -> Tensor:
    """``out[:, c] = s[:, c] + ... + s[:, c + size - 1]`` for (A, C + size - 1, B) s (padded).

    Two strategies, chosen by the layout (measured on the 2-core CPU: ``bench_lrn.py
    --window-sums`` times these two, a banded GEMM and a cumulative sum, in both layouts):

    * B > 1 (NCHW: each channel is a contiguous run of H*W values): one ``sum`` over the
      ``unfold`` view with the window as a last dim, :func:`_window_sum_unfold`.
    * B == 1 (channels_last: the channels are the innermost dim): there the same reduction runs
      along the innermost dim with overlapping windows, which torch does not vectorize (3-6x
      slower, measured), so sums of shifted slices by doubling, :func:`_window_sum_doubling`.

    Both only ever add non-negative terms (no cumulative sum and difference, whose cancellation
    would lose digits in float32), so the result matches torch's avg_pool to rounding.
    """
    if size == 1:
        return out.copy_(s)
    if s.shape[2] > 1:
        return _window_sum_unfold(s, size, out)
    return _window_sum_doubling(s, size, out)


def _window_sum_unfold(s: Tensor, size: int, out: Tensor) -> Tensor:
    """One reduction pass: the loop accumulates ``size`` rows of B values, vectorized along B."""
    return torch.sum(s.unfold(1, size, 1), dim=-1, out=out)


def _window_sum_doubling(s: Tensor, size: int, out: Tensor) -> Tensor:
    """Sums of shifted slices by doubling: s2 = s[c] + s[c+1], s4 = s2[c] + s2[c+2], s8 = s4[c] +
    s4[c+4], then size 9 = 8 + 1 is s8[c] + s[c+8]: log2(size) + popcount(size) - 1 vectorized
    passes (4 for size 9) instead of the size - 1 of a plain sum of shifted slices."""
    c, length = out.shape[1], s.shape[1]
    blocks = {1: s}  # blocks[w][:, j] = sum of the w channels j .. j + w - 1 (as many as fit)
    w = 1
    while 2 * w <= size:
        if 2 * w == size:  # size is a power of two: the last doubling is the answer
            return torch.add(blocks[w].narrow(1, 0, c), blocks[w].narrow(1, w, c), out=out)
        n = length - (2 * w - 1)
        nxt = s.new_empty((s.shape[0], n, s.shape[2]))
        torch.add(blocks[w].narrow(1, 0, n), blocks[w].narrow(1, w, n), out=nxt)
        w *= 2
        blocks[w] = nxt
    # size = the sum of its binary digits: chain the blocks, largest first.
    parts = [b for b in sorted(blocks, reverse=True) if size & b]
    torch.add(blocks[parts[0]].narrow(1, 0, c), blocks[parts[1]].narrow(1, parts[0], c), out=out)
    offset = parts[0] + parts[1]
    for b in parts[2:]:
        out.add_(blocks[b].narrow(1, offset, c))
        offset += b
    return out


def _neg_power(d: Tensor, beta: float, out: Tensor) -> Tensor:
    """``out = d ** -beta``.  A general ``pow`` costs 5-9x a plain multiply on this CPU (exp and
    log per element); the beta of every LRN in the book, 0.75, is done as ``r * sqrt(r)`` with
    ``r = rsqrt(d)``: three cheap passes, over 2x faster, within 3 ulp in float32 (pow: 1-2 ulp;
    ``rsqrt(sqrt(d)) ** 3`` would be 4 ulp), and without the overflow of ``rsqrt(d * sqrt(d))``
    (d^1.5 is inf in float32 for d > 1e25)."""
    if beta == 0.75:
        torch.rsqrt(d, out=out)
        return out.mul_(torch.sqrt(out))
    if beta == 0.5:
        return torch.rsqrt(d, out=out)
    if beta == 1.0:
        return torch.reciprocal(d, out=out)
    return torch.pow(d, -beta, out=out)


class _LRNFn(torch.autograd.Function):
    """``y = x * d^-beta``, ``d = k + alpha/size * windowsum(x^2)``, with a hand-written backward.

    Why it is fast.  torch's ``F.local_response_norm`` squares x, pads the square into a new 5-D
    tensor, runs ``avg_pool3d`` over it (a generic pooling kernel, slow along the channel dim),
    then ``mul``, ``add``, ``pow`` (exp and log per element) and a division, each a fresh
    full-size tensor that autograd keeps and differentiates one by one (the backward of
    avg_pool3d and of pad included): 7-9x the time of the passes below per forward + backward
    at the TF-tutorial CNN's shapes on the 2-core CPU, in NCHW and channels_last alike.

    Here the forward is 1 pass that writes ``alpha/size * x^2 + k/size`` into a padded buffer
    (the pads hold ``k/size`` too, so every window of ``size`` values sums to exactly
    ``k + alpha/size * S`` and d needs no extra pass), the window sum (1 pass in NCHW, 4 in
    channels_last), 3 cheap passes for ``d^-0.75`` and the output multiply.  The backward reuses
    d and ``p = d^-beta`` saved by the forward: ``dx = g*p`` (1 pass), ``u = dx * x / d`` into a
    zero-padded buffer (2), the transposed window sum of u (1 or 4), and
    ``dx -= 2 alpha beta/size * x * windowsum(u)`` (1, in place).
    """

    @staticmethod
    def forward(ctx: Any, x: Tensor, size: int, alpha: float, beta: float, k: float) -> Tensor:
        shape = x.shape
        x3, channels_inner = _canonical(x)
        a, c, b = x3.shape
        front, back = size // 2, (size - 1) // 2  # torch's window: [c - size//2, c + (size-1)//2]
        s = x3.new_empty((a, c + size - 1, b))
        s.narrow(1, 0, front).fill_(k / size)
        s.narrow(1, front + c, back).fill_(k / size)
        torch.addcmul(x3.new_full((), k / size), x3, x3, value=alpha / size, out=s.narrow(1, front, c))
        d = _window_sum(s, size, x3.new_empty((a, c, b)))
        del s  # its memory goes back to the allocator before the next big buffer
        p = _neg_power(d, beta, torch.empty_like(d))
        y = torch.mul(x3, p)
        ctx.save_for_backward(x3, d, p)
        ctx.cfg = (shape, channels_inner, size, alpha, beta)
        return _uncanonical(y, shape, channels_inner)

    @staticmethod
    @once_differentiable  # no double backward: raise rather than return wrong 2nd derivatives
    def backward(ctx: Any, g: Tensor) -> Tuple[Optional[Tensor], ...]:
        x3, d, p = ctx.saved_tensors
        shape, channels_inner, size, alpha, beta = ctx.cfg
        a, c, b = x3.shape
        # The gradient in the same canonical layout as x (a copy only when autograd hands over
        # another layout, e.g. the expanded gradient of y.sum() or NCHW under torch.compile).
        if channels_inner:
            g3 = g.movedim(1, -1).contiguous().view(a, c, 1)
        else:
            g3 = g.contiguous().view(a, c, b)
        dx = torch.mul(g3, p)  # first term g * d^-beta; the result buffer, finished in place below
        # u = g * x * d^(-beta-1) = (g * p) * x / d, in a buffer zero-padded for the transposed
        # window [j - (size-1)//2, j + size//2].
        front, back = (size - 1) // 2, size // 2
        u = x3.new_empty((a, c + size - 1, b))
        u.narrow(1, 0, front).zero_()
        u.narrow(1, front + c, back).zero_()
        um = u.narrow(1, front, c)
        torch.mul(dx, x3, out=um).div_(d)
        v = _window_sum(u, size, torch.empty_like(d))
        del u
        dx.addcmul_(x3, v, value=-2.0 * alpha * beta / size)
        return _uncanonical(dx, shape, channels_inner), None, None, None, None


def local_response_norm(x: Tensor, size: int, alpha: float = 1e-4, beta: float = 0.75,
                        k: float = 1.0) -> Tensor:
    """Functional form of :class:`LocalResponseNorm` (same arguments as ``F.local_response_norm``).

    fp16/bf16 input (e.g. under autocast) is computed in float32 and returned in its own dtype,
    as the book's other norms do; float32/float64 stay in their dtype."""
    _check_input(x, "local_response_norm")
    size = _check_size(size)
    alpha, beta, k = (_check_real(n, v) for n, v in (("alpha", alpha), ("beta", beta), ("k", k)))
    if x.numel() == 0:  # nothing to normalize (torch returns the input itself)
        return x.clone()
    xf = in_float32(x)
    return _LRNFn.apply(xf, size, alpha, beta, k).to(x.dtype)


class LocalResponseNorm(nn.LocalResponseNorm):
    """``nn.LocalResponseNorm(size, alpha, beta, k)`` with exactly its semantics, faster.

    ``y_c = x_c / (k + alpha/size * sum_{j=c-size//2}^{c+(size-1)//2} x_j^2) ** beta`` over the
    channels (dim 1) of an (N, C, *) input, zero beyond the first and last channel.  ``alpha`` is
    torch's, divided by ``size``: TF's ``tf.nn.lrn(depth_radius=r, bias=k, alpha=a, beta=b)`` is
    ``LocalResponseNorm(2*r + 1, a * (2*r + 1), b, k)``.

    A subclass of ``nn.LocalResponseNorm`` (same attributes, repr, and isinstance checks) whose
    forward is :class:`_LRNFn`: tensor ops with a hand-written backward.  Differences from torch:
    it also accepts 2-D (N, C) input; fp16/bf16 input is computed in float32 (returned in the
    input's dtype); double backward is not supported.  Keeps channels_last: channels_last in,
    channels_last out.

    The defaults are the book's LRN (``make_norm("lrn")``, the TF tutorial's), not torch's
    ``alpha=1e-4``; ``size`` may be omitted.
    """

    def __init__(self, size: int = 9, alpha: float = 0.001, beta: float = 0.75, k: float = 1.0) -> None:
        size = _check_size(size)
        alpha, beta, k = (_check_real(n, v) for n, v in (("alpha", alpha), ("beta", beta), ("k", k)))
        super().__init__(size, alpha, beta, k)

    def forward(self, x: Tensor) -> Tensor:
        return local_response_norm(x, self.size, self.alpha, self.beta, self.k)


# --------------------------------------------------------------------------- reference
def tf_lrn(x: Tensor, depth_radius: int = 5, bias: float = 1.0, alpha: float = 1.0,
           beta: float = 0.5) -> Tensor:
    """``tf.nn.lrn``'s documented formula, written out as a loop, in float64.

    TF documents, for channels in the last dim::

        sqr_sum[a, b, c, d] = sum(input[a, b, c, d - depth_radius : d + depth_radius + 1] ** 2)
        output = input / (bias + alpha * sqr_sum) ** beta

    Here the channels are dim 1 of an (N, C, *) tensor (the book's NCHW); the window is clipped
    at the first and last channel.  Defaults are TF's (5, 1, 1, 0.5); the TF tutorial uses
    ``tf_lrn(x, 4, 1.0, 0.001 / 9, 0.75)``.  Slow on purpose (one slice per channel): a
    reference for tests, not a layer.  Differentiable (autograd through the loop); the result is
    float64 and NCHW whatever the input.
    """
    _check_input(x, "tf_lrn")
    if isinstance(depth_radius, bool) or not isinstance(depth_radius, int) or depth_radius < 0:
        raise ValueError(f"depth_radius must be a non-negative int, got {depth_radius!r}")
    x = x.to(torch.float64)  # differentiable: the tests compare gradients through it too
    channels = x.shape[1]
    out = []
    for c in range(channels):
        lo, hi = max(0, c - depth_radius), min(channels, c + depth_radius + 1)
        sqr_sum = x[:, lo:hi].pow(2).sum(dim=1)
        out.append(x[:, c] / (bias + alpha * sqr_sum) ** beta)
    return torch.stack(out, dim=1)
