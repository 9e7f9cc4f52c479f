"""normlab.lrn: the fast LocalResponseNorm against nn.LocalResponseNorm and tf.nn.lrn's formula."""
import copy

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from normlab.lrn import LocalResponseNorm, local_response_norm, tf_lrn
from normlab.models import TFTutorialCNN
from normlab.norms import make_norm

# (alpha, beta, k): the book's LRN, and others that take every branch of the power (0.5, 1, any).
PARAMS = [(0.001, 0.75, 1.0), (0.3, 0.5, 2.0), (0.2, 1.0, 0.5), (0.5, 0.6, 1.5)]


def _layouts(shape):
    """(name, memory format) pairs that apply to an input of this rank."""
    out = [("contiguous", torch.contiguous_format)]
    if len(shape) == 4:
        out.append(("channels_last", torch.channels_last))
    if len(shape) == 5:
        out.append(("channels_last_3d", torch.channels_last_3d))
    return out


def _pair(x):
    return x.clone().requires_grad_(), x.clone().requires_grad_()


def _assert_same_layout(a, b):
    for fmt in (torch.channels_last, torch.channels_last_3d):
        try:
            want = b.is_contiguous(memory_format=fmt)
        except RuntimeError:  # wrong rank for this format
            continue
        assert a.is_contiguous(memory_format=fmt) == want, (a.stride(), b.stride())


# --------------------------------------------------------------------------- against torch, float64
@pytest.mark.parametrize("size", range(1, 10))
@pytest.mark.parametrize("shape", [(2, 1, 3, 4), (2, 4, 3, 4), (3, 12, 2, 5), (2, 6, 7), (2, 5, 2, 3, 2)])
def test_matches_torch_float64(size, shape):
    """Outputs and gradients within 1e-6 of nn.LocalResponseNorm, odd and even windows, C smaller
    and larger than the window, NCHW and channels_last, 3-D to 5-D input; same output layout."""
    torch.manual_seed(size)
    for alpha, beta, k in PARAMS:
        for _, fmt in _layouts(shape):
            x = (torch.randn(shape, dtype=torch.float64) * 4).contiguous(memory_format=fmt)
            xt, xo = _pair(x)
            yt = nn.LocalResponseNorm(size, alpha, beta, k)(xt)
            yo = LocalResponseNorm(size, alpha, beta, k)(xo)
            g = torch.randn_like(yt)
            yt.backward(g)
            yo.backward(g)
            torch.testing.assert_close(yo, yt, rtol=1e-6, atol=1e-6)
            torch.testing.assert_close(xo.grad, xt.grad, rtol=1e-6, atol=1e-6)
            assert yo.dtype == torch.float64
            _assert_same_layout(yo, x)
            _assert_same_layout(xo.grad, x)


def test_matches_torch_book_shapes_float64():
    """The TF-tutorial CNN's layer (size 9, 64 channels) at a 12x12 map, both layouts: the error
    is rounding only (far below 1e-6)."""
    torch.manual_seed(0)
    for fmt in (torch.contiguous_format, torch.channels_last):
        x = (torch.randn(4, 64, 12, 12, dtype=torch.float64) * 20).contiguous(memory_format=fmt)
        xt, xo = _pair(x)
        yt, yo = nn.LocalResponseNorm(9, 0.001, 0.75, 1.0)(xt), make_norm("lrn", 64)(xo)
        g = torch.randn_like(yt)
        yt.backward(g)
        yo.backward(g)
        assert (yo - yt).abs().max() < 1e-12
        assert (xo.grad - xt.grad).abs().max() < 1e-12


# --------------------------------------------------------------------------- against tf.nn.lrn's formula
@pytest.mark.parametrize("depth_radius,bias,alpha,beta", [
    (4, 1.0, 0.001 / 9, 0.75),  # the TF tutorial's call
    (5, 1.0, 1.0, 0.5),         # tf.nn.lrn's defaults
    (0, 2.0, 0.1, 0.75),
    (2, 0.5, 0.05, 1.0),
])
def test_matches_tf_formula(depth_radius, bias, alpha, beta):
    """tf.nn.lrn(r, bias, a, b) is LocalResponseNorm(2r + 1, a * (2r + 1), b, bias), gradients too."""
    size = 2 * depth_radius + 1
    torch.manual_seed(depth_radius)
    for fmt in (torch.contiguous_format, torch.channels_last):
        x = (torch.randn(2, 16, 3, 3, dtype=torch.float64) * 3).contiguous(memory_format=fmt)
        xt, xo = _pair(x)
        yt = tf_lrn(xt, depth_radius, bias, alpha, beta)
        yo = LocalResponseNorm(size, alpha * size, beta, bias)(xo)
        g = torch.randn_like(yt)
        yt.backward(g)
        yo.backward(g)
        torch.testing.assert_close(yo, yt, rtol=1e-6, atol=1e-6)
        torch.testing.assert_close(xo.grad, xt.grad, rtol=1e-6, atol=1e-6)


def test_tf_formula_itself():
    """tf_lrn written out by hand for one position: x_c / (bias + alpha * sum_{|j-c|<=r} x_j^2)^beta."""
    x = torch.arange(1.0, 6.0, dtype=torch.float64).view(1, 5, 1, 1)
    y = tf_lrn(x, depth_radius=1, bias=2.0, alpha=0.5, beta=0.75)
    sq = [v * v for v in range(1, 6)]
    want = [(c + 1) / (2.0 + 0.5 * sum(sq[max(0, c - 1):c + 2])) ** 0.75 for c in range(5)]
    torch.testing.assert_close(y.flatten(), torch.tensor(want, dtype=torch.float64))


def test_2d_input_matches_tf_formula():
    """(N, C) input is accepted (nn.LocalResponseNorm needs 3-D or more)."""
    x = torch.randn(5, 20, dtype=torch.float64) * 3
    torch.testing.assert_close(LocalResponseNorm(9, 0.9, 0.75, 1.0)(x), tf_lrn(x, 4, 1.0, 0.1, 0.75))


# --------------------------------------------------------------------------- gradcheck
@pytest.mark.parametrize("size", [1, 2, 5, 9])
@pytest.mark.parametrize("fmt", [torch.contiguous_format, torch.channels_last])
def test_gradcheck(size, fmt):
    torch.manual_seed(size)
    x = torch.randn(2, 6, 3, 2, dtype=torch.float64).contiguous(memory_format=fmt).requires_grad_()
    for alpha, beta, k in PARAMS[:2] + PARAMS[3:]:
        assert torch.autograd.gradcheck(lambda t: local_response_norm(t, size, alpha, beta, k), (x,))


def test_gradient_of_any_layout():
    """Gradients that come in another layout than the input (expanded, NCHW for channels_last)."""
    torch.manual_seed(1)
    x = torch.randn(3, 10, 4, 4, dtype=torch.float64).contiguous(memory_format=torch.channels_last)
    xt, xo = _pair(x)
    nn.LocalResponseNorm(5)(xt).sum().backward()  # expanded (stride 0) gradient
    LocalResponseNorm(5, 1e-4)(xo).sum().backward()
    torch.testing.assert_close(xo.grad, xt.grad)
    xt.grad = xo.grad = None
    g = torch.randn(3, 10, 4, 4, dtype=torch.float64)  # NCHW gradient for a channels_last output
    nn.LocalResponseNorm(5)(xt).backward(g)
    LocalResponseNorm(5, 1e-4)(xo).backward(g)
    torch.testing.assert_close(xo.grad, xt.grad)


def test_sliced_and_transposed_input():
    base = torch.randn(4, 12, 6, 6, dtype=torch.float64)
    for x in (base[:, 2:9], base.transpose(2, 3), base[::2, :, 1:5]):
        torch.testing.assert_close(LocalResponseNorm(4, 0.1)(x), nn.LocalResponseNorm(4, 0.1)(x))


def test_backward_twice_and_no_double_backward():
    """Saved tensors are not overwritten (retain_graph gives the same gradient twice); a second
    derivative raises instead of being silently wrong."""
    x = torch.randn(2, 8, 3, 3, dtype=torch.float64, requires_grad=True)
    y = LocalResponseNorm(3, 0.5)(x)
    g = torch.randn_like(y)
    (g1,) = torch.autograd.grad(y, x, g, retain_graph=True)
    (g2,) = torch.autograd.grad(y, x, g)
    assert torch.equal(g1, g2)
    y = LocalResponseNorm(3, 0.5)(x)
    (gx,) = torch.autograd.grad(y.sum(), x, create_graph=True)
    with pytest.raises(RuntimeError):
        gx.sum().backward()


# --------------------------------------------------------------------------- float32 and low precision
def test_float32_close_to_torch():
    torch.manual_seed(0)
    for fmt in (torch.contiguous_format, torch.channels_last):
        x = (torch.randn(8, 64, 12, 12) * 10).contiguous(memory_format=fmt)
        xt, xo = _pair(x)
        yt, yo = nn.LocalResponseNorm(9, 0.001, 0.75, 1.0)(xt), LocalResponseNorm()(xo)
        g = torch.randn_like(yt)
        yt.backward(g)
        yo.backward(g)
        assert yo.dtype == torch.float32
        torch.testing.assert_close(yo, yt, rtol=2e-6, atol=1e-6)
        torch.testing.assert_close(xo.grad, xt.grad, rtol=2e-6, atol=1e-6)
        # and to the float64 formula
        torch.testing.assert_close(yo.double(), tf_lrn(x, 4, 1.0, 0.001 / 9, 0.75), rtol=2e-6, atol=1e-6)


@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16])
def test_low_precision_under_cpu_autocast(dtype):
    """fp16/bf16 activations (a conv under CPU autocast) are normalized in float32 and returned in
    their own dtype; channels_last is kept; the gradient reaches the conv."""
    torch.manual_seed(0)
    conv = nn.Conv2d(3, 16, 3, padding=1).to(memory_format=torch.channels_last)
    x = torch.randn(4, 3, 8, 8).contiguous(memory_format=torch.channels_last)
    lrn = LocalResponseNorm(5, 0.01)
    with torch.autocast("cpu", dtype=dtype):
        h = conv(x)
        assert h.dtype == dtype
        y = lrn(h)
    assert y.dtype == dtype
    assert y.is_contiguous(memory_format=torch.channels_last)
    want = nn.LocalResponseNorm(5, 0.01)(h.float())
    torch.testing.assert_close(y.float(), want, rtol=1e-2, atol=1e-2)
    y.float().square().sum().backward()
    assert conv.weight.grad is not None and torch.isfinite(conv.weight.grad).all()
    # plain half input without autocast: same dtype back
    assert LocalResponseNorm(5)(h.detach()).dtype == dtype


def test_empty_input():
    x = torch.randn(0, 8, 3, 3, requires_grad=True)
    y = LocalResponseNorm()(x)
    assert y.shape == x.shape
    y.sum().backward()


# --------------------------------------------------------------------------- errors
@pytest.mark.parametrize("bad", [0, -3, 2.0, True, "9", None])
def test_bad_size(bad):
    with pytest.raises(ValueError, match=r"size must be a positive int .*got " + repr(bad).replace("(", r"\(")):
        LocalResponseNorm(bad)


@pytest.mark.parametrize("name", ["alpha", "beta", "k"])
def test_bad_constants(name):
    with pytest.raises(ValueError, match=f"{name} must be a real number, got 'x'"):
        LocalResponseNorm(9, **{name: "x"})


def test_bad_inputs():
    lrn = LocalResponseNorm()
    with pytest.raises(ValueError, match=r"\(N, C, \*\) with at least 2 dims.*got 1-D input of shape \(5,\)"):
        lrn(torch.randn(5))
    with pytest.raises(ValueError, match="got 0-D input"):
        lrn(torch.tensor(1.0))
    with pytest.raises(TypeError, match="floating-point input.*got torch.int64"):
        lrn(torch.ones(2, 3, 4, dtype=torch.long))
    with pytest.raises(TypeError, match="expects a tensor, got list"):
        lrn([1.0, 2.0])
    with pytest.raises(ValueError, match="depth_radius must be a non-negative int, got -1"):
        tf_lrn(torch.randn(2, 3, 4), depth_radius=-1)


# --------------------------------------------------------------------------- in the book's model
def test_make_norm_builds_it():
    layer = make_norm("lrn", 64)
    assert type(layer) is LocalResponseNorm
    assert isinstance(layer, nn.LocalResponseNorm)  # chapter 6 hooks and repr still work
    assert (layer.size, layer.alpha, layer.beta, layer.k) == (9, 0.001, 0.75, 1.0)
    assert repr(layer) == repr(nn.LocalResponseNorm(9, 0.001, 0.75, 1.0))
    assert make_norm("lrn", 64, size=5).size == 5


def test_tf_tutorial_cnn_matches_torch_layer():
    """TFTutorialCNN(norm="lrn") with this layer and the same net with nn.LocalResponseNorm (same
    weights): same loss, logits and parameter gradients in float32, channels_last as fit() runs it."""
    torch.manual_seed(0)
    ours = TFTutorialCNN(norm="lrn").to(memory_format=torch.channels_last)
    ref = copy.deepcopy(ours)
    ref.norm1 = nn.LocalResponseNorm(9, 0.001, 0.75, 1.0)
    ref.norm2 = nn.LocalResponseNorm(9, 0.001, 0.75, 1.0)
    assert type(ours.norm1) is LocalResponseNorm
    x = torch.randn(16, 3, 24, 24).contiguous(memory_format=torch.channels_last)
    target = torch.randint(0, 10, (16,))
    losses, logits = [], []
    for model in (ours, ref):
        torch.manual_seed(1)  # the same dropout masks
        out = model(x)
        loss = F.cross_entropy(out, target)
        loss.backward()
        losses.append(loss.detach())
        logits.append(out.detach())
    torch.testing.assert_close(logits[0], logits[1], rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(losses[0], losses[1], rtol=1e-5, atol=1e-6)
    for (name, p), q in zip(ours.named_parameters(), ref.parameters()):
        torch.testing.assert_close(p.grad, q.grad, rtol=1e-4, atol=1e-5, msg=lambda m, n=name: f"{n}: {m}")
