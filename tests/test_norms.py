"""Tests for normlab.norms: the from-scratch layers against torch and the originals' semantics."""

from __future__ import annotations

import itertools

import pytest
import torch
from torch import nn

from normlab.norms import (
    NORM_KINDS,
    BatchNorm1d,
    BatchNorm2d,
    BatchStatBN,
    BnLayer,
    BnLayerCorrected,
    LocalResponseNorm,
    Scale,
    TairBatchNorm1d,
    TairBatchNorm2d,
    make_norm,
)

ATOL = 1e-5

# --------------------------------------------------------------------------- from-scratch BN vs torch
SHAPES = [("1d", (8, 3)), ("1d", (4, 3, 5)), ("2d", (4, 3, 5, 5)), ("2d", (2, 3, 4, 4)), ("2d", (2, 3, 1, 1))]
CONFIGS = list(itertools.product(("train", "eval"), (True, False), (0.1, 0.3, None), (True, False)))


def _pair(kind: str, c: int, **kw):
    ours = (BatchNorm1d if kind == "1d" else BatchNorm2d)(c, **kw).double()
    ref = (nn.BatchNorm1d if kind == "1d" else nn.BatchNorm2d)(c, **kw).double()
    if ours.affine:  # non-trivial affine params, identical in both
        with torch.no_grad():
            ours.weight.uniform_(0.5, 1.5)
            ours.bias.uniform_(-0.5, 0.5)
        ref.load_state_dict(ours.state_dict())
    return ours, ref


def _assert_close(a, b, what: str) -> None:
    assert (a is None) == (b is None), what
    if a is not None:
        torch.testing.assert_close(a, b, atol=ATOL, rtol=ATOL, msg=what)


@pytest.mark.parametrize("kind,shape", SHAPES)
@pytest.mark.parametrize("mode,affine,momentum,track", CONFIGS)
def test_scratch_bn_matches_torch(kind, shape, mode, affine, momentum, track):
    torch.manual_seed(0)
    ours, ref = _pair(kind, shape[1], affine=affine, momentum=momentum, track_running_stats=track)
    for _ in range(3):  # a few training steps with shifted/scaled inputs
        x = torch.randn(shape, dtype=torch.float64) * 2 + 0.5
        _assert_close(ours(x), ref(x), "train-step output")
    if mode == "eval":
        ours.eval(), ref.eval()
    x = torch.randn(shape, dtype=torch.float64) * 3 - 1
    xa, xb = x.clone().requires_grad_(), x.clone().requires_grad_()
    ya, yb = ours(xa), ref(xb)
    _assert_close(ya, yb, "output")
    g = torch.randn_like(ya)
    ya.backward(g), yb.backward(g)
    _assert_close(xa.grad, xb.grad, "input grad")
    if affine:
        _assert_close(ours.weight.grad, ref.weight.grad, "weight grad")
        _assert_close(ours.bias.grad, ref.bias.grad, "bias grad")
    _assert_close(ours.running_mean, ref.running_mean, "running_mean")
    _assert_close(ours.running_var, ref.running_var, "running_var")
    if track:
        assert int(ours.num_batches_tracked) == int(ref.num_batches_tracked) == 3 + (mode == "train")
    else:
        assert ours.num_batches_tracked is None


def test_scratch_bn_float32_and_unbiased_running_var():
    torch.manual_seed(1)
    ours, ref = BatchNorm2d(4), nn.BatchNorm2d(4)
    x = torch.randn(3, 4, 2, 2)
    torch.testing.assert_close(ours(x), ref(x), atol=ATOL, rtol=ATOL)
    unbiased = x.transpose(0, 1).reshape(4, -1).var(1, unbiased=True)
    torch.testing.assert_close(ours.running_var, 0.9 + 0.1 * unbiased)


@pytest.mark.parametrize("affine,track", [(True, True), (False, True), (True, False), (False, False)])
def test_scratch_bn_state_dict(affine, track):
    kw = dict(affine=affine, track_running_stats=track)
    ours, ref = BatchNorm2d(3, **kw), nn.BatchNorm2d(3, **kw)
    assert list(ours.state_dict()) == list(ref.state_dict())
    assert sum(p.numel() for p in ours.parameters()) == sum(p.numel() for p in ref.parameters())


def test_scratch_bn_to_and_load_state_dict():
    torch.manual_seed(2)
    ref = nn.BatchNorm2d(3)
    with torch.no_grad():
        ref.weight.uniform_(), ref.bias.uniform_()
    ref(torch.randn(4, 3, 2, 2) + 1)
    ours = BatchNorm2d(3)
    ours.load_state_dict(ref.state_dict())
    ours.eval(), ref.eval()
    x = torch.randn(2, 3, 2, 2)
    torch.testing.assert_close(ours(x), ref(x), atol=ATOL, rtol=ATOL)
    assert int(ours.num_batches_tracked) == 1
    ours.to(torch.float64)
    assert ours.running_mean.dtype == ours.running_var.dtype == ours.weight.dtype == torch.float64
    assert ours.num_batches_tracked.dtype == torch.long  # integer buffers keep their dtype, like torch
    assert ours(x.double()).dtype == torch.float64


def test_scratch_bn_mode_switch_uses_training_flag():
    # A training-mode forward under no_grad must still use (and update) batch stats.
    bn = BatchNorm2d(2)
    x = torch.randn(4, 2, 3, 3) * 5 + 3
    with torch.no_grad():
        y = bn(x)
    assert int(bn.num_batches_tracked) == 1
    assert y.mean().abs() < 1e-5


def test_scratch_bn_rank_and_batch_errors():
    with pytest.raises(ValueError, match="4D"):
        BatchNorm2d(3)(torch.randn(2, 3))
    with pytest.raises(ValueError, match="2D or 3D"):
        BatchNorm1d(3)(torch.randn(2, 3, 4, 4))
    with pytest.raises(ValueError, match="channels"):
        BatchNorm2d(3)(torch.randn(2, 4, 2, 2))
    with pytest.raises(ValueError, match="more than 1 value"):
        BatchNorm1d(3)(torch.randn(1, 3))
    with pytest.raises(ValueError):
        BatchNorm2d(0)


# --------------------------------------------------------------------------- make_norm
@pytest.mark.parametrize(
    "kind,cls,n_params",
    [
        ("none", nn.Identity, 0),
        ("batch", nn.BatchNorm2d, 16),
        ("layer", nn.GroupNorm, 16),
        ("group", nn.GroupNorm, 16),
        ("instance", nn.GroupNorm, 16),
        ("lrn", LocalResponseNorm, 0),  # normlab.lrn: nn.LocalResponseNorm's maths, faster
        ("scratch_batch", BatchNorm2d, 16),
    ],
)
def test_make_norm_kinds(kind, cls, n_params):
    layer = make_norm(kind, 8)
    assert type(layer) is cls
    assert sum(p.numel() for p in layer.parameters()) == n_params
    x = torch.randn(2, 8, 4, 4)
    assert layer(x).shape == x.shape


def test_make_norm_details():
    assert set(NORM_KINDS) == {"none", "batch", "layer", "group", "instance", "lrn", "scratch_batch"}
    assert make_norm("layer", 8).num_groups == 1
    assert make_norm("group", 8).num_groups == 4
    assert make_norm("group", 6, groups=3).num_groups == 3
    assert make_norm("instance", 8).num_groups == 8
    lrn = make_norm("lrn", 8)
    assert (lrn.size, lrn.alpha, lrn.beta, lrn.k) == (9, 0.001, 0.75, 1.0)
    assert type(make_norm("batch", 8, dim=1)) is nn.BatchNorm1d
    assert type(make_norm("scratch_batch", 8, dim=1)) is BatchNorm1d
    # kwargs reach the torch layer
    assert make_norm("batch", 8, momentum=0.3, affine=False).momentum == 0.3
    assert make_norm("group", 8, eps=1e-3).eps == 1e-3


def test_lrn_matches_tf_formula():
    # tf.nn.lrn: x / (bias + alpha * sum_{|j-c|<=4} x_j^2) ** beta, alpha per element = 0.001/9.
    torch.manual_seed(3)
    x = torch.randn(2, 12, 3, 3, dtype=torch.float64) * 4
    sq = torch.nn.functional.pad(x.pow(2), (0, 0, 0, 0, 4, 4))
    window_sum = torch.stack([sq[:, c : c + 9].sum(1) for c in range(12)], 1)
    expected = x / (1.0 + 0.001 / 9 * window_sum) ** 0.75
    torch.testing.assert_close(make_norm("lrn", 12)(x), expected)


def test_make_norm_errors():
    with pytest.raises(ValueError, match="unknown norm kind 'xyz'; accepted: none, batch, layer, group, instance, lrn"):
        make_norm("xyz", 8)
    with pytest.raises(ValueError, match=r"channels=10.*groups=4"):
        make_norm("group", 10)
    for bad in (0, -3, 2.0, True):
        with pytest.raises(ValueError, match="channels"):
            make_norm("batch", bad)


# --------------------------------------------------------------------------- fast.ai BnLayer
def _manual_stats(h: torch.Tensor):
    flat = h.transpose(0, 1).contiguous().view(h.size(1), -1)  # the lesson's formulation
    return flat.mean(1)[:, None, None], flat.std(1)[:, None, None]


def test_bnlayer_unbiased_std_no_eps():
    torch.manual_seed(4)
    layer = BnLayer(3, 5).double()
    with torch.no_grad():
        layer.a.uniform_(), layer.m.uniform_()
    x = torch.randn(4, 3, 8, 8, dtype=torch.float64)
    h = torch.relu(layer.conv(x))
    mean, std = _manual_stats(h)
    torch.testing.assert_close(layer(x), (h - mean) / std * layer.m + layer.a)
    torch.testing.assert_close(layer.stds, std)
    assert not layer.stds.requires_grad and not layer.means.requires_grad


def test_bnlayer_gradient_flows_through_stats():
    torch.manual_seed(5)
    layer = BnLayer(2, 3).double()
    x = torch.randn(4, 2, 6, 6, dtype=torch.float64, requires_grad=True)
    layer(x).sum().backward()
    # With m=1, a=0 the per-channel sum of a standardized output is constant, so
    # the input gradient vanishes only if the mean/std are part of the graph.
    assert x.grad.abs().max() < 1e-8


def test_bnlayer_gradients_match_the_lesson_formula():
    """The hand-written backward gives autograd's gradients of the lesson's own formula."""
    torch.manual_seed(15)
    layer = BnLayer(3, 4).double()
    with torch.no_grad():
        layer.a.uniform_(), layer.m.uniform_(0.5, 1.5)
    x = torch.randn(5, 3, 8, 8, dtype=torch.float64, requires_grad=True)
    g = torch.randn(5, 4, 4, 4, dtype=torch.float64)
    (layer(x) * g).sum().backward()
    ours = [t.grad.clone() for t in (x, layer.m, layer.a, layer.conv.weight)]
    x.grad = None
    layer.zero_grad()
    h = torch.relu(layer.conv(x))
    mean, std = _manual_stats(h)
    (((h - mean) / std * layer.m + layer.a) * g).sum().backward()
    for got, want in zip(ours, (x.grad, layer.m.grad, layer.a.grad, layer.conv.weight.grad)):
        torch.testing.assert_close(got, want)


def test_bnlayer_eval_uses_last_training_batch():
    torch.manual_seed(6)
    layer = BnLayer(3, 4).double()
    with pytest.raises(RuntimeError, match="train mode first"):
        layer.eval()(torch.randn(2, 3, 8, 8, dtype=torch.float64))
    layer.train()
    x1, x2, x3 = (torch.randn(4, 3, 8, 8, dtype=torch.float64) * s for s in (1.0, 2.0, 3.0))
    layer(x1), layer(x2)
    layer.eval()
    mean2, std2 = _manual_stats(torch.relu(layer.conv(x2)))
    h3 = torch.relu(layer.conv(x3))
    torch.testing.assert_close(layer(x3), (h3 - mean2) / std2 * layer.m + layer.a)
    # the stats are buffers: a fresh layer loaded from the state_dict can evaluate
    fresh = BnLayer(3, 4).double()
    fresh.load_state_dict(layer.state_dict())
    torch.testing.assert_close(fresh.eval()(x3), layer(x3))


def test_bnlayer_param_counts():
    assert sum(p.numel() for p in BnLayer(10, 20).parameters()) == 1800 + 40
    for before in (False, True):
        assert sum(p.numel() for p in BnLayerCorrected(10, 20, bn_before_relu=before).parameters()) == 1840


@pytest.mark.parametrize("bn_before_relu", [False, True])
def test_bnlayer_corrected_matches_torch_bn(bn_before_relu):
    torch.manual_seed(7)
    layer = BnLayerCorrected(3, 4, bn_before_relu=bn_before_relu)
    conv = nn.Conv2d(3, 4, 3, 2, padding=1, bias=False)
    conv.load_state_dict(layer.conv.state_dict())
    ref_bn = nn.BatchNorm2d(4)

    def ref(x):
        h = conv(x)
        return torch.relu(ref_bn(h)) if bn_before_relu else ref_bn(torch.relu(h))

    for _ in range(3):
        x = torch.randn(4, 3, 8, 8)
        torch.testing.assert_close(layer(x), ref(x), atol=ATOL, rtol=ATOL)
    layer.eval(), ref_bn.eval()
    x = torch.randn(4, 3, 8, 8)
    torch.testing.assert_close(layer(x), ref(x), atol=ATOL, rtol=ATOL)


# --------------------------------------------------------------------------- tairtahar layers
def test_tair_param_shapes():
    bn2 = TairBatchNorm2d(6, 28, 28)
    assert bn2.gamma.shape == bn2.beta.shape == (6, 28, 28)
    assert sum(p.numel() for p in bn2.parameters()) == 9408
    bn1 = TairBatchNorm1d(120)
    assert bn1.gamma.shape == bn1.beta.shape == (1,)
    assert sum(p.numel() for p in bn1.parameters()) == 2


def test_tair_training_output():
    torch.manual_seed(8)
    bn = TairBatchNorm2d(3, 4, 4)
    with torch.no_grad():
        bn.gamma.uniform_(), bn.beta.uniform_()
    x = torch.randn(5, 3, 4, 4, dtype=torch.float64)
    bn.double()
    mean = x.mean((0, 2, 3), keepdim=True)
    var = x.var((0, 2, 3), unbiased=False, keepdim=True)
    torch.testing.assert_close(bn(x), bn.gamma * (x - mean) / torch.sqrt(var + 1e-8) + bn.beta)


@pytest.mark.parametrize("make,shape", [(lambda: TairBatchNorm2d(3, 4, 4), (5, 3, 4, 4)),
                                        (lambda: TairBatchNorm1d(6), (5, 6))])
@pytest.mark.parametrize("training", [True, False])  # eval: inference="batch", the batch's own stats
def test_tair_gradients_match_autograd_of_the_formula(make, shape, training):
    torch.manual_seed(16)
    bn = make().double().train(training)
    with torch.no_grad():
        bn.gamma.uniform_(0.5, 1.5), bn.beta.uniform_()
    x = torch.randn(shape, dtype=torch.float64, requires_grad=True)
    g = torch.randn(shape, dtype=torch.float64)
    (bn(x) * g).sum().backward()
    ours = [t.grad.clone() for t in (x, bn.gamma, bn.beta)]
    x.grad = None
    bn.zero_grad()
    dims = (0, 2, 3) if x.dim() == 4 else (0,)
    mean, var = x.mean(dims, keepdim=True), x.var(dims, unbiased=False, keepdim=True)
    ((bn.gamma * (x - mean) / torch.sqrt(var + 1e-8) + bn.beta) * g).sum().backward()
    for got, want in zip(ours, (x.grad, bn.gamma.grad, bn.beta.grad)):
        torch.testing.assert_close(got, want)


def _train_tair(layer, shape, steps=4):
    layer.train()
    for _ in range(steps):
        layer(torch.randn(shape, dtype=torch.float64) * 2 + 1)
    return layer.eval()


@pytest.mark.parametrize("make,shape", [(lambda m: TairBatchNorm2d(3, 4, 4, inference=m), (6, 3, 4, 4)),
                                        (lambda m: TairBatchNorm1d(5, inference=m), (6, 5))])
def test_tair_batch_vs_running_eval(make, shape):
    torch.manual_seed(9)
    img = torch.randn((1, *shape[1:]), dtype=torch.float64)
    b1 = torch.cat([img, torch.randn((3, *shape[1:]), dtype=torch.float64)])
    b2 = torch.cat([img, 5 * torch.randn((3, *shape[1:]), dtype=torch.float64) + 2])
    batch = _train_tair(make("batch").double(), shape)
    assert not torch.allclose(batch(b1)[0], batch(b2)[0])  # depends on the batch composition
    running = _train_tair(make("running").double(), shape)
    torch.testing.assert_close(running(b1)[0], running(b2)[0])  # does not
    # switching modes later works: running stats are updated whatever the mode
    batch.inference = "running"
    torch.testing.assert_close(batch(b1)[0], batch(b2)[0])


def test_tair_running_stats_momentum():
    torch.manual_seed(10)
    bn = TairBatchNorm1d(4, inference="running", momentum=0.3).double()
    x = torch.randn(8, 4, dtype=torch.float64)
    bn(x)
    torch.testing.assert_close(bn.running_mean, 0.3 * x.mean(0))
    torch.testing.assert_close(bn.running_var, 0.7 + 0.3 * x.var(0, unbiased=True))
    assert set(bn.state_dict()) == {"gamma", "beta", "running_mean", "running_var"}
    bn2 = TairBatchNorm2d(3, 4, 4, momentum=0.3).double()  # per channel over (N, H, W)
    x2 = torch.randn(5, 3, 4, 4, dtype=torch.float64) * 2 + 1
    bn2(x2)
    torch.testing.assert_close(bn2.running_mean, 0.3 * x2.mean((0, 2, 3)))
    torch.testing.assert_close(bn2.running_var, 0.7 + 0.3 * x2.var((0, 2, 3), unbiased=True))


@pytest.mark.parametrize("layer_shape", [("2d", (4, 3, 2, 2)), ("1d", (4, 3))])
def test_tair_window_mode(layer_shape):
    kind, shape = layer_shape
    torch.manual_seed(11)
    layer = (TairBatchNorm2d(3, 2, 2, inference="window", window=3) if kind == "2d"
             else TairBatchNorm1d(3, inference="window", window=3)).double()
    _train_tair(layer, shape)
    dims = (0, 2, 3) if kind == "2d" else (0,)
    batches = [torch.randn(shape, dtype=torch.float64) * (i + 1) + i for i in range(5)]
    for i, x in enumerate(batches):
        y = layer(x)
        last = batches[max(0, i - 2) : i + 1]  # the last 3 eval batches, current one included
        mean = torch.stack([b.mean(dims) for b in last]).mean(0)
        var = torch.stack([b.var(dims, unbiased=False) for b in last]).mean(0) * (4 / 3)  # m/(m-1), m = batch size
        view = (1, 3, 1, 1) if kind == "2d" else (1, 3)
        expected = layer.gamma * (x - mean.view(view)) / torch.sqrt(var.view(view) + 1e-8) + layer.beta
        torch.testing.assert_close(y, expected)
    assert len(layer._window_stats) == 3
    layer.reset_window()
    assert len(layer._window_stats) == 0
    assert "_window_stats" not in str(list(layer.state_dict()))


def test_tair_errors():
    with pytest.raises(ValueError, match="'batch', 'running', 'window'"):
        TairBatchNorm1d(3, inference="moving")
    bn = TairBatchNorm2d(2, 3, 3)
    with pytest.raises(ValueError, match="'batch', 'running', 'window'"):
        bn.inference = "avg"
    assert bn.inference == "batch"
    with pytest.raises(ValueError, match="expected input"):
        bn(torch.randn(2, 2, 4, 4))
    with pytest.raises(ValueError, match="expected input"):
        TairBatchNorm1d(3)(torch.randn(2, 4))


# --------------------------------------------------------------------------- DARPA ResNet spec
def test_batch_stat_bn_and_scale():
    torch.manual_seed(12)
    ours, ref = BatchStatBN(4), nn.BatchNorm2d(4, affine=False, track_running_stats=False)
    assert sum(p.numel() for p in ours.parameters()) == 0 and not list(ours.buffers())
    for train in (True, False):
        ours.train(train), ref.train(train)
        x = torch.randn(5, 4, 3, 3) * 2 + 1
        xa, xb = x.clone().requires_grad_(), x.clone().requires_grad_()
        torch.testing.assert_close(ours(xa), ref(xb), atol=ATOL, rtol=ATOL)
        g = torch.randn_like(x)
        ours(xa).backward(g), ref(xb).backward(g)
        torch.testing.assert_close(xa.grad, xb.grad, atol=ATOL, rtol=ATOL)
    scale = Scale()
    x = torch.randn(3, 2)
    torch.testing.assert_close(scale(x), x * 0.125)
    assert Scale(0.5)(x).equal(x * 0.5)
    assert "alpha=0.125" in repr(scale) and not list(scale.parameters()) and not list(scale.buffers())


def test_reprs():
    for module in (BatchNorm2d(3), BnLayer(2, 3), BnLayerCorrected(2, 3), TairBatchNorm2d(2, 3, 3),
                   TairBatchNorm1d(4), BatchStatBN(3), Scale()):
        assert module.extra_repr()


# --------------------------------------------------------------------------- from-scratch BN: fast path
# BatchNorm's batch-statistics path is a custom autograd.Function with a hand-written backward
# (speed); these pin what that must not change: layouts, odd gradients, float32 accuracy, compile.
@pytest.mark.parametrize("mode", ["train", "eval"])
@pytest.mark.parametrize("affine", [True, False])
def test_scratch_bn_channels_last_matches_torch(mode, affine):
    torch.manual_seed(13)
    ours, ref = _pair("2d", 4, affine=affine)
    cl = torch.channels_last
    for _ in range(2):
        x = (torch.randn(3, 4, 5, 6, dtype=torch.float64) * 2 + 0.5).contiguous(memory_format=cl)
        _assert_close(ours(x), ref(x), "train-step output")
    if mode == "eval":
        ours.eval(), ref.eval()
    x = (torch.randn(3, 4, 5, 6, dtype=torch.float64) * 3 - 1).contiguous(memory_format=cl)
    xa, xb = x.clone().requires_grad_(), x.clone().requires_grad_()
    ya, yb = ours(xa), ref(xb)
    _assert_close(ya, yb, "output")
    assert ya.is_contiguous(memory_format=cl) and yb.is_contiguous(memory_format=cl)
    for g in (torch.randn_like(ya), torch.randn(3, 4, 5, 6, dtype=torch.float64)):  # CL and NCHW grads
        xa.grad = xb.grad = None
        if affine:
            ours.weight.grad = ours.bias.grad = ref.weight.grad = ref.bias.grad = None
        ours(xa).backward(g), ref(xb).backward(g)
        _assert_close(xa.grad, xb.grad, "input grad")
        assert xa.grad.is_contiguous(memory_format=cl)
        if affine:
            _assert_close(ours.weight.grad, ref.weight.grad, "weight grad")
            _assert_close(ours.bias.grad, ref.bias.grad, "bias grad")
    _assert_close(ours.running_mean, ref.running_mean, "running_mean")
    _assert_close(ours.running_var, ref.running_var, "running_var")


def test_scratch_bn_gradcheck():
    # First-order gradients of the hand-written backward against finite differences,
    # for the input and the affine parameters, in 2d and both 1d layouts.
    torch.manual_seed(14)
    for kind, shape in (("2d", (3, 2, 3, 2)), ("1d", (5, 3)), ("1d", (3, 2, 4))):
        bn = (BatchNorm1d if kind == "1d" else BatchNorm2d)(shape[1]).double()
        x = torch.randn(shape, dtype=torch.float64, requires_grad=True)
        w = torch.rand(shape[1], dtype=torch.float64).add_(0.5).requires_grad_()
        b = torch.randn(shape[1], dtype=torch.float64, requires_grad=True)

        def f(x, w, b, bn=bn):
            return torch.func.functional_call(bn, {"weight": w, "bias": b}, (x,))

        assert torch.autograd.gradcheck(f, (x, w, b))


def test_scratch_bn_odd_gradients_match_torch():
    torch.manual_seed(15)
    ours, ref = _pair("2d", 3)
    x = torch.randn(4, 3, 3, 3, dtype=torch.float64) + 1
    # expanded (stride-0) output gradient, as from y.sum().backward()
    xa, xb = x.clone().requires_grad_(), x.clone().requires_grad_()
    (ours(xa) ** 2).sum().backward(), (ref(xb) ** 2).sum().backward()
    _assert_close(xa.grad, xb.grad, "input grad, squared sum")
    xa.grad = xb.grad = None
    ours(xa).sum().backward(), ref(xb).sum().backward()
    _assert_close(xa.grad, xb.grad, "input grad, expanded dy")
    # frozen affine parameters and an input that needs no gradient
    for p in (*ours.parameters(), *ref.parameters()):
        p.requires_grad_(False)
        p.grad = None
    xa = x.clone().requires_grad_()
    xb = x.clone().requires_grad_()
    g = torch.randn_like(x)
    ours(xa).backward(g), ref(xb).backward(g)
    _assert_close(xa.grad, xb.grad, "input grad, frozen affine")
    assert ours.weight.grad is None and ours.bias.grad is None
    ours.weight.requires_grad_(True)
    y = ours(x)  # x needs no grad: only the weight gets one
    y.backward(g)
    assert ours.weight.grad is not None and ours.bias.grad is None


def test_scratch_bn_float32_accuracy_with_large_mean():
    # The variance is computed in two passes: the one-pass E[x^2] - mean^2 cancels in float32
    # when |mean| >> std (about 2e-3 error here).  Compare with a float64 reference; torch's
    # own float32 kernel is off by about 1e-5 on y here (the input's rounding alone is 6e-6).
    torch.manual_seed(16)
    x64 = torch.randn(64, 8, 6, 6, dtype=torch.float64) + 100
    g64 = torch.randn_like(x64)
    ref = nn.BatchNorm2d(8).double()
    xr = x64.clone().requires_grad_()
    ref(xr).backward(g64)
    ours = BatchNorm2d(8)
    x = x64.float().requires_grad_()
    y = ours(x)
    y.backward(g64.float())
    y_ref = nn.BatchNorm2d(8).double()(x64)
    torch.testing.assert_close(y.double(), y_ref, atol=2e-5, rtol=0)
    torch.testing.assert_close(x.grad.double(), xr.grad, atol=5e-6, rtol=0)
    torch.testing.assert_close(ours.running_var.double(), ref.running_var, atol=1e-6, rtol=1e-6)


def test_scratch_bn_double_backward_raises():
    # Not supported (torch's layer does support it): it must fail loudly, not return zeros.
    bn = BatchNorm2d(2).double()
    x = torch.randn(3, 2, 2, 2, dtype=torch.float64, requires_grad=True)
    (gx,) = torch.autograd.grad(bn(x).pow(2).sum(), x, create_graph=True)
    with pytest.raises(RuntimeError):
        gx.sum().backward()


@pytest.mark.parametrize("channels_last", [False, True])
def test_scratch_bn_compiles_without_graph_breaks(channels_last):
    if not torch._dynamo.is_dynamo_supported():
        pytest.skip("torch.compile is not supported on this Python/platform")
    torch.manual_seed(17)
    net = nn.Sequential(nn.Conv2d(3, 4, 3, bias=False), BatchNorm2d(4), nn.ReLU())
    x = torch.randn(2, 3, 6, 6)
    if channels_last:  # compile hands the Function NCHW gradients: the backward re-layouts them
        net, x = net.to(memory_format=torch.channels_last), x.contiguous(memory_format=torch.channels_last)
    torch._dynamo.reset()
    explained = torch._dynamo.explain(net)(x)
    assert explained.graph_break_count == 0, explained.break_reasons
    # aot_eager traces forward and backward like inductor does, without C++ codegen (fast).
    ref = nn.Sequential(nn.Conv2d(3, 4, 3, bias=False), nn.BatchNorm2d(4), nn.ReLU())
    ref.load_state_dict(net.state_dict())
    if channels_last:
        ref = ref.to(memory_format=torch.channels_last)
    compiled = torch.compile(net, backend="aot_eager")
    for _ in range(2):
        xa, xb = x.clone().requires_grad_(), x.clone().requires_grad_()
        ya, yb = compiled(xa), ref(xb)
        torch.testing.assert_close(ya, yb, atol=ATOL, rtol=ATOL)
        ya.pow(2).sum().backward(), yb.pow(2).sum().backward()
        torch.testing.assert_close(xa.grad, xb.grad, atol=ATOL, rtol=ATOL)
    torch.testing.assert_close(net[1].weight.grad, ref[1].weight.grad, atol=ATOL, rtol=ATOL)
    torch.testing.assert_close(net[1].bias.grad, ref[1].bias.grad, atol=ATOL, rtol=ATOL)
    torch.testing.assert_close(net[1].running_var, ref[1].running_var, atol=ATOL, rtol=ATOL)
    torch._dynamo.reset()
