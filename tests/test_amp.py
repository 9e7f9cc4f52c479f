"""Mixed precision: every norm layer and every registered model trains and evaluates under autocast.

On CUDA, fit() turns autocast on by itself; these tests run the same autocast on the CPU (bf16 and
fp16), which reproduced the CUDA crash of the from-scratch norms ("expected dtype float for 'end'").
"""
import pytest
import torch
import torch.nn as nn
import torch.nn.functional as F

from normlab import norms
from normlab.models import LENET_VARIANTS, MODELS, build_model
from normlab.norms import TAIR_INFERENCE_MODES
from normlab.precision import choose_precision
from normlab.recipes import norm_choices

DTYPES = [torch.bfloat16, torch.float16]
IDS = ["bf16", "fp16"]


def _float_state(module: nn.Module) -> dict:
    return {k: v.dtype for k, v in module.state_dict().items() if v.is_floating_point()}


def configurations():
    """(model name, builder kwargs) for every model x every norm kind it accepts."""
    out = []
    for name in MODELS:
        if name in LENET_VARIANTS:
            kinds = [{"bn": "original", "inference": m} for m in TAIR_INFERENCE_MODES] + [{"bn": "standard"}]
            out += [(name, kw) for kw in (kinds if name != "lenet" else [{}])]
        elif name in ("convbnnet", "convbnnet2"):
            out += [(name, {"bn": kind}) for kind in ("fastai", "corrected", "torch")]
        elif norm_choices(name):
            out += [(name, {"norm": kind}) for kind in norm_choices(name)]
        else:
            out.append((name, {}))
    return out


CONFIGS = configurations()


def test_every_model_is_covered():
    assert {name for name, _ in CONFIGS} == set(MODELS)


@pytest.mark.parametrize("dtype", DTYPES, ids=IDS)
@pytest.mark.parametrize("name,kwargs", CONFIGS, ids=[f"{n}-{'-'.join(map(str, k.values())) or 'default'}"
                                                      for n, k in CONFIGS])
def test_model_trains_and_evaluates_under_cpu_autocast(name, kwargs, dtype):
    torch.manual_seed(0)
    model = build_model(name, **kwargs)
    spec = MODELS[name]
    x = torch.randn(8, *spec.input_shape)
    y = torch.randint(0, 2 if spec.dataset == "cifar2" else 10, (8,))
    dtypes_before = _float_state(model)
    precision = choose_precision("cpu", "bf16" if dtype == torch.bfloat16 else "fp16")
    scaler = precision.grad_scaler()
    opt = torch.optim.SGD(model.parameters(), lr=0.01)
    before = [p.detach().clone() for p in model.parameters()]
    model.train()
    # fp16 uses a GradScaler: its first scale (65536) may overflow the half-precision gradients, and
    # then it skips the step and halves the scale. A few tries find a scale that fits.
    for _ in range(20):
        with precision.autocast():
            out = model(x)
            loss = F.cross_entropy(out.float(), y)
        assert out.dtype in (dtype, torch.float32)
        assert torch.isfinite(loss)
        opt.zero_grad()
        scaler.scale(loss).backward()
        scaler.unscale_(opt)
        finite = all(torch.isfinite(p.grad).all() for p in model.parameters() if p.grad is not None)
        scaler.step(opt)
        scaler.update()
        if finite:
            break
    assert finite, "no finite gradients in 20 steps"
    assert precision.needs_scaler or _ == 0, "bf16 needs no loss scaling"
    assert any(not torch.equal(a, b.detach()) for a, b in zip(before, model.parameters())), "no step was taken"
    model.eval()
    with torch.no_grad(), precision.autocast():
        out = model(x)
    assert torch.isfinite(out.float()).all()
    # statistics, running buffers and weights stay float32
    assert _float_state(model) == dtypes_before


def _layers():
    """(name, layer factory, input shape) for every layer of normlab.norms."""
    return [
        ("BatchNorm2d", lambda: norms.BatchNorm2d(6), (8, 6, 5, 5)),
        ("BatchNorm1d", lambda: norms.BatchNorm1d(6), (8, 6)),
        ("BatchNorm1d-3d", lambda: norms.BatchNorm1d(6), (8, 6, 7)),
        ("BnLayer", lambda: norms.BnLayer(3, 6), (8, 3, 8, 8)),
        ("BnLayerCorrected", lambda: norms.BnLayerCorrected(3, 6), (8, 3, 8, 8)),
        ("BnLayerCorrected-before-relu", lambda: norms.BnLayerCorrected(3, 6, bn_before_relu=True), (8, 3, 8, 8)),
        *[(f"TairBatchNorm2d-{m}", lambda m=m: norms.TairBatchNorm2d(6, 5, 5, inference=m), (8, 6, 5, 5))
          for m in TAIR_INFERENCE_MODES],
        *[(f"TairBatchNorm1d-{m}", lambda m=m: norms.TairBatchNorm1d(6, inference=m), (8, 6))
          for m in TAIR_INFERENCE_MODES],
        ("BatchStatBN", lambda: norms.BatchStatBN(6), (8, 6, 5, 5)),
        ("Scale", lambda: norms.Scale(), (8, 6)),
        *[(f"make_norm-{k}", lambda k=k: norms.make_norm(k, 8), (8, 8, 5, 5)) for k in norms.NORM_KINDS],
    ]


@pytest.mark.parametrize("dtype", DTYPES, ids=IDS)
@pytest.mark.parametrize("name,factory,shape", _layers(), ids=[n for n, _, _ in _layers()])
def test_norm_layer_returns_input_dtype_and_keeps_float32_state(name, factory, shape, dtype):
    """Fed a half-precision tensor (what autocast hands a norm after a conv), each layer returns
    that dtype, as torch's own norms do, and keeps its statistics in float32."""
    torch.manual_seed(0)
    layer = factory()
    x = torch.randn(shape).to(dtype).requires_grad_()
    with torch.autocast("cpu", dtype=dtype):
        y = layer(x)
        layer.eval()
        y_eval = layer(x.detach())
    if name.startswith(("BnLayer",)):  # the conv inside runs under autocast
        assert y.dtype == dtype
    elif not name.startswith("make_norm-") or name.endswith(("scratch_batch", "none", "batch")):
        assert y.dtype == dtype and y_eval.dtype == dtype
    y.float().square().sum().backward()
    assert x.grad is not None and torch.isfinite(x.grad.float()).all()
    assert all(t.dtype == torch.float32 for t in layer.state_dict().values() if t.is_floating_point())


@pytest.mark.parametrize("dtype", DTYPES, ids=IDS)
def test_scratch_batchnorm_in_low_precision_matches_torch(dtype):
    """Under autocast the from-scratch BN computes its statistics in float32, like nn.BatchNorm2d:
    the outputs agree to the half-precision rounding of the result, the running buffers closely."""
    torch.manual_seed(0)
    x = (torch.randn(16, 4, 6, 6) * 3 + 5).to(dtype)
    ours, ref = norms.BatchNorm2d(4), nn.BatchNorm2d(4)
    y, y_ref = ours(x), ref(x)
    assert y.dtype == y_ref.dtype == dtype
    tol = 1e-2 if dtype == torch.bfloat16 else 2e-3
    torch.testing.assert_close(y.float(), y_ref.float(), rtol=tol, atol=tol)
    torch.testing.assert_close(ours.running_mean, ref.running_mean, rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(ours.running_var, ref.running_var, rtol=1e-4, atol=1e-4)
