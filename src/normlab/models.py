"""Every model of every chapter, named after its source.

One builder per source architecture, with the normalization as a parameter (as in fastai's
``get_model(act, nfs, norm)``), never one class per variant with copied bodies. Each docstring names
the seed (see ``reference/seeds-spec.md``) and the quirks of the original that are kept.

Seeds: 000 satyaSK TF-tutorial CNN, 001 tairtahar LeNet, 002 swapniel99/erav1s8,
003 fast.ai dl1 lesson 7, 004 prog-eval convnet (simplified ResNet spec).

The registry ``MODELS`` maps a name to a :class:`ModelSpec`; ``build_model(name, **kwargs)`` builds it.
"""
from __future__ import annotations

import inspect
import math
from collections import OrderedDict
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any, Callable, Mapping, Sequence

import torch.nn as nn
import torch.nn.functional as F

from .dropout import SAMPLERS, Dropout
from .norms import (NORM_KINDS, TAIR_INFERENCE_MODES, BatchStatBN, BnLayer, BnLayerCorrected, Scale,
                    TairBatchNorm1d, TairBatchNorm2d, make_norm)

__all__ = [
    "SimpleNet", "ConvNet", "ConvNet2", "ConvBnNet", "ConvBnNet2", "LeNet", "LENET_VARIANTS", "LENET_BN_AFTER",
    "ConvLayer", "Erav1s8Net", "receptive_field_table", "TFTutorialCNN", "ResidualBlock", "ResNetSpec",
    "ModelSpec", "MODELS", "build_model", "list_models", "count_params",
]


def _check(arg: str, value: Any, accepted: Sequence[Any]) -> None:
    if value not in accepted:
        raise ValueError(f"{arg}={value!r} is not supported; accepted: {', '.join(map(repr, accepted))}")


class _Sequential(nn.Sequential):
    """``nn.Sequential`` with named layers whose slices are plain ``nn.Sequential`` (torch rebuilds a
    slice with ``self.__class__``, which a builder with its own ``__init__`` arguments cannot take)."""

    def __getitem__(self, idx):
        if isinstance(idx, slice):
            return nn.Sequential(OrderedDict(list(self._modules.items())[idx]))
        return super().__getitem__(idx)


def count_params(model: nn.Module) -> int:
    """Number of trainable parameters (what Keras/torchinfo call "trainable params")."""
    return sum(p.numel() for p in model.parameters() if p.requires_grad)


# --------------------------------------------------------------------------------------------------
# Seed 003: fast.ai dl1 lesson 7 (fastai 0.7), CIFAR-10 32x32. All models end in log_softmax.
# --------------------------------------------------------------------------------------------------

class SimpleNet(nn.Module):
    """Fully connected net of fast.ai lesson 7 (seed 003): flatten -> [Linear -> ReLU]* -> Linear.

    ``SimpleNet((3072, 40, 10))`` has 123,330 params. Ends in ``log_softmax`` (fastai used
    ``F.nll_loss``).
    """

    def __init__(self, layers: Sequence[int] = (3072, 40, 10)):
        super().__init__()
        self.layers = nn.ModuleList(nn.Linear(a, b) for a, b in zip(layers[:-1], layers[1:]))

    def forward(self, x):
        x = x.flatten(1)
        for i, layer in enumerate(self.layers):
            z = layer(x)
            # The original ran `x = F.relu(l_x)` for every layer, the last one included, and then
            # returned log_softmax(l_x): that last ReLU was computed and thrown away. We skip it.
            x = F.relu(z) if i < len(self.layers) - 1 else z
        return F.log_softmax(x, dim=-1)


class ConvNet(nn.Module):
    """Plain ConvNet of fast.ai lesson 7 (seed 003).

    ``len(layers)-1`` x [Conv2d k3 stride 2, bias -> ReLU], AdaptiveMaxPool2d(1), Linear, log_softmax.
    ``ConvNet`` uses **no padding** (32 -> 15 -> 7 -> 3), as in the notebook; ``ConvNet2`` pads by 1
    (32 -> 16 -> 8 -> 4). Both have 37,490 params with the default ``layers``.
    """

    padding = 0

    def __init__(self, layers: Sequence[int] = (3, 20, 40, 80), c: int = 10):
        super().__init__()
        self.layers = nn.ModuleList(nn.Conv2d(a, b, 3, stride=2, padding=self.padding)
                                    for a, b in zip(layers[:-1], layers[1:]))
        self.pool = nn.AdaptiveMaxPool2d(1)
        self.out = nn.Linear(layers[-1], c)

    def forward(self, x):
        for layer in self.layers:
            x = F.relu(layer(x))
        return F.log_softmax(self.out(self.pool(x).flatten(1)), dim=-1)


class ConvNet2(ConvNet):
    """ConvNet2 of fast.ai lesson 7 (seed 003): ConvNet with ``ConvLayer`` = Conv2d k3 s2 **padding 1**."""

    padding = 1


_CONVBN_KINDS = ("fastai", "corrected", "torch")


def _torch_bn_layer(ni: int, nf: int, stride: int = 2, kernel_size: int = 3) -> nn.Sequential:
    """BnLayer's layout with torch's BatchNorm: conv (no bias, padding 1) -> ReLU -> nn.BatchNorm2d."""
    return nn.Sequential(nn.Conv2d(ni, nf, kernel_size, stride=stride, padding=1, bias=False),
                         nn.ReLU(), nn.BatchNorm2d(nf))


class ConvBnNet(nn.Module):
    """ConvBnNet of fast.ai lesson 7 (seed 003).

    conv1 = Conv2d(3, L[0], k5, s1, p2, bias) with **no activation** (as in the notebook), then
    ``BnLayer(L[i], L[i+1], stride 2)`` for each pair (32 -> 16 -> 8 -> 4 -> 2), global max pool,
    Linear, log_softmax. 155,970 params (fastai's summary showed 155,370: it missed ``a`` and ``m``).

    ``bn`` picks the block: ``"fastai"`` the lesson's BnLayer (BN *after* the ReLU, unbiased std, no
    eps, eval reuses the last training batch's stats), ``"corrected"`` BnLayerCorrected (proper BN with
    running stats), ``"torch"`` conv -> ReLU -> ``nn.BatchNorm2d``. All three have the same count.
    ``ConvBnNet2`` (``deeper=True``) follows each stride-2 block with a stride-1 block of the same width.
    """

    deeper = False

    def __init__(self, layers: Sequence[int] = (10, 20, 40, 80, 160), c: int = 10, bn: str = "fastai"):
        super().__init__()
        _check("bn", bn, _CONVBN_KINDS)
        self.bn = bn
        block = {"fastai": BnLayer, "corrected": BnLayerCorrected, "torch": _torch_bn_layer}[bn]
        # The notebook hard-codes Conv2d(3, 10, ...); 10 == layers[0] for the default list.
        self.conv1 = nn.Conv2d(3, layers[0], kernel_size=5, stride=1, padding=2)
        self.layers = nn.ModuleList(block(a, b, 2) for a, b in zip(layers[:-1], layers[1:]))
        if self.deeper:
            self.layers2 = nn.ModuleList(block(b, b, 1) for b in layers[1:])
        self.out = nn.Linear(layers[-1], c)

    def forward(self, x):
        x = self.conv1(x)
        for i, layer in enumerate(self.layers):
            x = layer(x)
            if self.deeper:
                x = self.layers2[i](x)
        x = F.adaptive_max_pool2d(x, 1).flatten(1)
        return F.log_softmax(self.out(x), dim=-1)


class ConvBnNet2(ConvBnNet):
    """ConvBnNet2 of fast.ai lesson 7 (seed 003): after each ``BnLayer(L[i], L[i+1], stride 2)`` a
    ``BnLayer(L[i+1], L[i+1], stride 1)``. 462,570 params (461,370 in fastai's summary, without a, m).
    In the lesson this deeper net did *worse* than ConvBnNet at the same settings."""

    deeper = True


# --------------------------------------------------------------------------------------------------
# Seed 001: tairtahar/batchnorm, tf.keras LeNet on MNIST padded to 32x32.
# --------------------------------------------------------------------------------------------------

# variant -> the layers followed by a BN layer (layer -> BN -> sigmoid; the layer's bias is kept).
LENET_BN_AFTER = {
    "lenet": (),
    "lenet_bn1": ("c1",),
    "lenet_bn2": ("c1", "c3"),
    "lenet_fc_bn1": ("c1", "c3", "c5"),
    "lenet_fc_bn2": ("c1", "c3", "c5", "f6"),
}
LENET_VARIANTS = tuple(LENET_BN_AFTER)
_TAIR_INFERENCE = TAIR_INFERENCE_MODES


def _keras_init_(model: nn.Module) -> None:
    """Keras defaults: glorot_uniform kernels (= xavier_uniform_, same fans for convs), zero biases."""
    for m in model.modules():
        if isinstance(m, (nn.Conv2d, nn.Linear)):
            nn.init.xavier_uniform_(m.weight)
            if m.bias is not None:
                nn.init.zeros_(m.bias)


class LeNet(_Sequential):
    """tairtahar's LeNet (seed 001), all five variants from one builder. Input (N, 1, 32, 32).

    c1 Conv 1->6 5x5 valid -> s2 AvgPool 2 -> c3 Conv 6->16 **3x3** (classic LeNet: 5x5) -> s4 AvgPool 2
    -> 6x6x16 = 576 -> c5 Dense 120 -> f6 Dense 84 -> out Dense 10. Sigmoid activations. In a BN variant
    the named layer keeps its (redundant) bias and is followed by BN, then the sigmoid.

    ``bn="original"``: the author's from-scratch BN, ``TairBatchNorm2d(C, H, W)`` with a
    per-position-and-channel gamma/beta of shape (C, H, W) after convs and ``TairBatchNorm1d`` with a
    *scalar* gamma/beta after dense layers, eps 1e-8. Params: lenet 81,290; lenet_bn1 90,698;
    lenet_bn2 95,306; lenet_fc_bn1 95,308; lenet_fc_bn2 95,310.
    ``bn="standard"``: per-channel ``nn.BatchNorm2d`` / ``nn.BatchNorm1d`` with the Keras
    ``BatchNormalization`` defaults the author's validation/tests.py used (momentum 0.99 -> torch
    momentum 0.01, eps 1e-3).

    ``inference`` ("batch" | "running" | "window") and ``window`` go to the Tair BN layers: "batch"
    is what actually ran (every eval batch normalized with its own stats), "window" is what the code
    documented (average of the last ``window`` inference batches), "running" the paper's running
    stats. ``set_inference(mode)`` changes it on all of them at once.

    ``output="softmax"`` ends in a softmax as the original did: a cross-entropy-from-logits loss on
    top of it reproduces the original's double softmax (loss floor ~1.461). ``output="logits"``
    (default) returns logits. Weights use the Keras initialization (glorot_uniform, zero biases).
    """

    def __init__(self, variant: str = "lenet", bn: str = "original", output: str = "logits",
                 inference: str = "batch", window: int = 5):
        _check("variant", variant, LENET_VARIANTS)
        _check("bn", bn, ("original", "standard"))
        _check("output", output, ("logits", "softmax"))
        _check("inference", inference, _TAIR_INFERENCE)
        with_bn = LENET_BN_AFTER[variant]
        layers: list[tuple[str, nn.Module]] = []

        def block(name: str, layer: nn.Module, channels: int, hw: int | None = None) -> None:
            layers.append((name, layer))
            if name in with_bn:
                if bn == "original":
                    norm = (TairBatchNorm2d(channels, hw, hw, inference=inference, window=window) if hw
                            else TairBatchNorm1d(channels, inference=inference, window=window))
                else:
                    norm = (nn.BatchNorm2d(channels, eps=1e-3, momentum=0.01) if hw
                            else nn.BatchNorm1d(channels, eps=1e-3, momentum=0.01))
                layers.append((f"{name}_bn", norm))
            layers.append((f"{name}_act", nn.Sigmoid()))

        block("c1", nn.Conv2d(1, 6, 5), 6, hw=28)
        layers.append(("s2", nn.AvgPool2d(2)))
        block("c3", nn.Conv2d(6, 16, 3), 16, hw=12)
        # Keras flattens NHWC, we flatten NCHW: a fixed permutation of c5's input features. It does
        # not change the param count nor (with an i.i.d. init) the model family.
        layers += [("s4", nn.AvgPool2d(2)), ("flatten", nn.Flatten())]
        block("c5", nn.Linear(576, 120), 120)
        block("f6", nn.Linear(120, 84), 84)
        layers.append(("out", nn.Linear(84, 10)))
        if output == "softmax":
            layers.append(("softmax", nn.Softmax(dim=1)))
        super().__init__(OrderedDict(layers))
        self.variant, self.bn, self.output = variant, bn, output
        # fit(channels_last="auto") reads this: with a BN layer, the author's or torch's, a
        # training step measured 0.66-0.78x in channels_last (bench_channels_last.py); the plain
        # net gains (1.44x).
        self.prefers_channels_last = variant == "lenet"
        _keras_init_(self)

    def tair_bn_layers(self) -> list[nn.Module]:
        return [m for m in self.modules() if isinstance(m, (TairBatchNorm1d, TairBatchNorm2d))]

    def set_inference(self, mode: str) -> "LeNet":
        """Set ``inference`` ("batch" | "running" | "window") on every Tair BN layer; returns self.

        A no-op for the plain ``lenet`` (no BN). With ``bn="standard"`` there is no such switch
        (``nn.BatchNorm`` uses running stats in eval), so asking for it is an error.
        """
        _check("mode", mode, _TAIR_INFERENCE)
        if self.bn == "standard" and LENET_BN_AFTER[self.variant]:
            raise ValueError("set_inference applies to bn='original' (TairBatchNorm); bn='standard' "
                             "uses nn.BatchNorm running statistics in eval mode")
        for m in self.tair_bn_layers():
            m.inference = mode
        return self


# --------------------------------------------------------------------------------------------------
# Seed 002: swapniel99/erav1s8, CIFAR-10, batch / layer / group norm with residual adds.
# --------------------------------------------------------------------------------------------------

class ConvLayer(nn.Module):
    """erav1s8 building block (seed 002): Conv2d 3x3 (bias=False, **padding_mode='replicate'**) ->
    norm -> (+ x if skip; after the norm, before the ReLU, no projection) -> ReLU -> Dropout(p) if p>0.

    A skip needs an unchanged shape (in == out and padding 1); asking for one otherwise is an error
    (the original would fail at the add)."""

    def __init__(self, in_c: int, out_c: int, padding: int = 1, *, norm: str | None = "batch",
                 groups: int = 4, dropout: float = 0.0, skip: bool = False, dropout_sampler: str = "auto"):
        super().__init__()
        if skip and (in_c != out_c or padding != 1):
            raise ValueError(f"skip needs in_c == out_c and padding 1, got {in_c}->{out_c}, padding {padding}")
        self.skip = skip
        self.conv = nn.Conv2d(in_c, out_c, 3, padding=padding, bias=False, padding_mode="replicate")
        self.norm = make_norm(norm or "none", out_c, groups=groups)
        self.act = nn.ReLU()
        self.drop = Dropout(dropout, dropout_sampler) if dropout > 0 else nn.Identity()

    def forward(self, x):
        y = self.norm(self.conv(x))
        if self.skip:
            y = y + x  # the original's `x += x_`, written out-of-place (same value, autograd-safe)
        return self.drop(self.act(y))


class Erav1s8Net(nn.Module):
    """swapniel99/erav1s8 ``Model`` (seed 002) for CIFAR-10 32x32; 47,818 params with batch / layer /
    group / instance norm (all affine), 47,418 with ``norm="none"``.

    ========  ==============================================================  ==========
    cblock1   ConvLayer 3->16 p0; ConvLayer 16->16 p0 (both without skip)      30, 28 x16
    tblock1   Conv2d 1x1 16->24 no bias; MaxPool2d(2)                           14 x24
    cblock2   3x ConvLayer 24->24 p1, skip                                      14 x24
    tblock2   Conv2d 1x1 24->32 no bias; MaxPool2d(2)                           7 x32
    cblock3   3x ConvLayer 32->32 p1, skip                                      7 x32
    oblock    AdaptiveAvgPool2d(1); Conv2d 1x1 32->10 bias; Flatten; LogSoftmax  10
    ========  ==============================================================  ==========

    The source builds cblock1 with ``skip=False`` for *both* layers whatever ``skip`` says; with
    padding 0 the shapes change (3->16 channels; 30->28 pixels), so no skip could apply there anyway.
    Norms come from ``make_norm`` (``layer`` = GroupNorm(1, C), ``group`` = GroupNorm(groups, C),
    ``instance`` = GroupNorm(C, C), as in the source). The seed's runs used dropout 0.01, skip True. ``norm="none"`` (or None) is an
    Identity here: the source's ``norm_type=None`` (its default) leaves ``normlayer = None`` and its forward skips the norm
    (``if self.normlayer is not None``), the same computation; the seed never ran it.
    ``dropout_sampler``: "auto" (the default since the registry's revision 1) draws the dropout masks
    on the CPU as geometric gaps, the same distribution from about 1 % of the random numbers
    (``normlab.dropout``; a step 1.2-1.3x faster, another random stream than torch's), and with
    torch's ``F.dropout`` on other devices; "torch" or "gaps" fixes one.
    """

    def __init__(self, norm: str | None = "batch", groups: int = 4, dropout: float = 0.01, skip: bool = True,
                 dropout_sampler: str = "auto"):
        super().__init__()
        norm = norm or "none"
        _check("norm", norm, NORM_KINDS)
        _check("dropout_sampler", dropout_sampler, SAMPLERS)
        self.norm_kind = norm
        kw = dict(norm=norm, groups=groups, dropout=dropout, dropout_sampler=dropout_sampler)

        def cblock(in_c, out_c, reps, padding, skip):
            return nn.Sequential(*(ConvLayer(in_c if i == 0 else out_c, out_c, padding, skip=skip, **kw)
                                   for i in range(reps)))

        def tblock(in_c, out_c):
            return nn.Sequential(nn.Conv2d(in_c, out_c, 1, bias=False), nn.MaxPool2d(2, 2))

        self.cblock1 = cblock(3, 16, 2, 0, skip=False)  # forced False, as in the source
        self.tblock1 = tblock(16, 24)
        self.cblock2 = cblock(24, 24, 3, 1, skip=skip)
        self.tblock2 = tblock(24, 32)
        self.cblock3 = cblock(32, 32, 3, 1, skip=skip)
        self.oblock = nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Conv2d(32, 10, 1, bias=True),
                                    nn.Flatten(), nn.LogSoftmax(-1))

    def forward(self, x):
        for block in (self.cblock1, self.tblock1, self.cblock2, self.tblock2, self.cblock3, self.oblock):
            x = block(x)
        return x


def _pair0(v) -> int:
    return v[0] if isinstance(v, (tuple, list)) else v


def receptive_field_table(model: nn.Module, input_size: int = 32, include_input: bool = True) -> list[dict]:
    """Receptive field of every conv / pool layer, computed by walking ``model.modules()``.

    Assumes the modules are registered in forward order and form a chain (true for ``Erav1s8Net`` and
    the other models here; shortcut convs of a residual block would be counted as if in series).
    Square inputs. Per layer with kernel k, stride s, padding p (dilation d: k_eff = d(k-1)+1):
    ``n_out = floor((n_in + 2p - k_eff)/s) + 1``, ``jump_out = jump_in * s``,
    ``rf_out = rf_in + (k_eff - 1) * jump_in``. An adaptive pool to size o acts as k = ceil(n/o),
    s = floor(n/o). Rows: dicts with layer, kind, kernel, stride, padding, n_out, jump, rf.

    For ``Erav1s8Net`` the RF column is 1 (input), 3, 5, 5, 6, 10, 14, 18, 18, 20, 28, 36, 44, 68, 68
    (15 rows, as in the erav1s8 README); the global average pool sees the whole 7x7 map at jump 4,
    so the final jump is 4 * 7 = 28.
    """
    n, jump, rf = input_size, 1, 1
    rows = [dict(layer="input", kind="input", kernel=None, stride=None, padding=None,
                 n_out=n, jump=jump, rf=rf)] if include_input else []
    for name, m in model.named_modules():
        if isinstance(m, nn.Conv2d):
            k = _pair0(m.dilation) * (_pair0(m.kernel_size) - 1) + 1
            s, p, ceil = _pair0(m.stride), _pair0(m.padding), False
        elif isinstance(m, (nn.MaxPool2d, nn.AvgPool2d)):
            k, s, p = _pair0(m.kernel_size), _pair0(m.stride or m.kernel_size), _pair0(m.padding)
            if isinstance(m, nn.MaxPool2d):
                k = _pair0(m.dilation) * (k - 1) + 1
            ceil = m.ceil_mode
        elif isinstance(m, (nn.AdaptiveAvgPool2d, nn.AdaptiveMaxPool2d)):
            o = _pair0(m.output_size) or n
            k, s, p, ceil = math.ceil(n / o), n // o, 0, False
        else:
            continue
        span = n + 2 * p - k
        n = (math.ceil(span / s) if ceil else span // s) + 1
        rf, jump = rf + (k - 1) * jump, jump * s
        rows.append(dict(layer=name, kind=type(m).__name__, kernel=k, stride=s, padding=p,
                         n_out=n, jump=jump, rf=rf))
    return rows


# --------------------------------------------------------------------------------------------------
# Seed 000: satyaSK/Modulated-ConvNet-CIFAR10, the TF-tutorial CNN on 24x24 crops.
# --------------------------------------------------------------------------------------------------

class _Dropout(nn.Dropout):
    """Dropout that can stay active in eval mode (``always=True``), as the TF1 original's constant
    keep_prob 0.5 did."""

    def __init__(self, p: float = 0.5, always: bool = False):
        super().__init__(p)
        self.always = always

    def forward(self, x):
        return F.dropout(x, self.p, training=self.training or self.always)


class TFTutorialCNN(_Sequential):
    """satyaSK's TF-tutorial CNN (seed 000) for 24x24x3 CIFAR-10 crops. 1,068,298 params without BN.

    conv1 5x5 3->64 SAME, bias -> norm -> ReLU -> maxpool 2 (24 -> 12) -> conv2 5x5 64->64 -> norm ->
    ReLU -> maxpool (-> 6x6x64) -> flatten 2304 -> fc1 384, ReLU, dropout 0.5 -> fc2 192, ReLU,
    dropout 0.5 -> out 10. The norm sits between conv+bias and ReLU, where the code put ``tf.nn.lrn``.
    ``norm``: "none" (commit a3199d2), "lrn" (HEAD; what the code did, although the README says
    "batch normalization"), "batch" (what the README claimed); any ``make_norm`` kind is accepted.

    ``faithful=True`` keeps the original's bugs: ReLU on the logits, dropout active in eval mode,
    weights ~ TF's default ``truncated_normal_initializer()`` (stddev **1.0**, cut at 2 std) with zero
    biases. ``faithful=False``: logits, standard dropout, PyTorch default init. Each can be set on its
    own with ``relu_logits``, ``dropout_at_eval``, ``init`` ("tf_stddev1" | "torch"); an explicit flag
    overrides the one ``faithful`` implies.

    TF flattens NHWC and we flatten NCHW: a permutation of fc1's inputs, same param count.
    """

    def __init__(self, norm: str | None = "none", faithful: bool = False, *, relu_logits: bool | None = None,
                 dropout_at_eval: bool | None = None, init: str | None = None, dropout: float = 0.5):
        norm = norm or "none"
        _check("norm", norm, NORM_KINDS)
        relu_logits = faithful if relu_logits is None else relu_logits
        dropout_at_eval = faithful if dropout_at_eval is None else dropout_at_eval
        init = init or ("tf_stddev1" if faithful else "torch")
        _check("init", init, ("tf_stddev1", "torch"))
        layers: list[tuple[str, nn.Module]] = []
        for i, c_in in enumerate((3, 64), start=1):
            layers += [(f"conv{i}", nn.Conv2d(c_in, 64, 5, padding=2)),  # 'SAME' for 5x5, stride 1
                       (f"norm{i}", make_norm(norm, 64)),
                       (f"relu{i}", nn.ReLU()),
                       # TF 'SAME' 2x2/2 pooling = ceil mode (identical for the even sizes 24, 12)
                       (f"pool{i}", nn.MaxPool2d(2, 2, ceil_mode=True))]
        layers.append(("flatten", nn.Flatten()))
        for i, (a, b) in enumerate(((6 * 6 * 64, 384), (384, 192)), start=1):
            layers += [(f"fc{i}", nn.Linear(a, b)), (f"fc{i}_relu", nn.ReLU()),
                       (f"fc{i}_drop", _Dropout(dropout, always=dropout_at_eval))]
        layers.append(("out", nn.Linear(192, 10)))
        if relu_logits:
            layers.append(("out_relu", nn.ReLU()))  # the original's bug: ReLU on the "predictions"
        super().__init__(OrderedDict(layers))
        self.norm_kind, self.relu_logits, self.dropout_at_eval, self.init = norm, relu_logits, dropout_at_eval, init
        if init == "tf_stddev1":
            for m in self.modules():
                if isinstance(m, (nn.Conv2d, nn.Linear)):
                    nn.init.trunc_normal_(m.weight, mean=0.0, std=1.0, a=-2.0, b=2.0)
                    nn.init.zeros_(m.bias)


# --------------------------------------------------------------------------------------------------
# Seed 004: prog-eval "convnet", the simplified ResNet spec on CIFAR-2.
# --------------------------------------------------------------------------------------------------

RESNET_NORMS = ("batchstat",) + tuple(k for k in NORM_KINDS if k != "batchstat")


def _resnet_norm(kind: str, channels: int) -> nn.Module:
    return BatchStatBN(channels) if kind == "batchstat" else make_norm(kind, channels)


class ResidualBlock(nn.Module):
    """Spec block (seed 004): ``y = ReLU(norm(Conv3x3(x))) + Conv1x1(x)``, convs without bias, the
    1x1 projection always present, no norm on the shortcut, no activation after the add."""

    def __init__(self, in_c: int, out_c: int, norm: str = "batchstat"):
        super().__init__()
        self.conv = nn.Conv2d(in_c, out_c, 3, padding=1, bias=False)
        self.norm = _resnet_norm(norm, out_c)
        self.relu = nn.ReLU()
        self.shortcut = nn.Conv2d(in_c, out_c, 1, bias=False)

    def forward(self, x):
        return self.relu(self.norm(self.conv(x))) + self.shortcut(x)


class ResNetSpec(_Sequential):
    """The prog-eval convnet spec (seed 004), CIFAR-2 32x32, 108,208 params with ``norm="batchstat"``.

    conv 3->16 3x3 p1 no bias -> norm -> ReLU -> ResidualBlock(16->32) -> MaxPool2d(2) ->
    ResidualBlock(32->64) -> MaxPool2d(2) -> ResidualBlock(64->128) -> global max pool (the
    reference's MaxPool2d(8); here AdaptiveMaxPool2d(1) + flatten) -> Linear 128->2 no bias ->
    Scale(0.125), a fixed softmax temperature of 8. Returns the scaled logits (the reference applied
    ``F.cross_entropy`` to them).

    ``norm="batchstat"`` is the spec's BN: no affine, no running stats, always the current batch's
    mean and biased variance, *also in eval mode*, so predictions depend on the rest of the test
    batch. ``norm="batch"`` (ablation) is ``nn.BatchNorm2d`` with running stats and affine; any
    ``make_norm`` kind works. ``scale=None`` or 1 drops the Scale layer. PyTorch's default init
    equals the spec's uniform init, so none is applied.
    """

    def __init__(self, norm: str = "batchstat", scale: float | None = 0.125,
                 channels: Sequence[int] = (16, 32, 64, 128), num_classes: int = 2):
        _check("norm", norm, RESNET_NORMS)
        layers: list[tuple[str, nn.Module]] = [
            ("conv", nn.Conv2d(3, channels[0], 3, padding=1, bias=False)),
            ("norm", _resnet_norm(norm, channels[0])), ("relu", nn.ReLU())]
        pairs = list(zip(channels[:-1], channels[1:]))
        for i, (a, b) in enumerate(pairs, start=1):
            layers.append((f"block{i}", ResidualBlock(a, b, norm)))
            if i < len(pairs):
                layers.append((f"pool{i}", nn.MaxPool2d(2)))
        layers += [("global_pool", nn.AdaptiveMaxPool2d(1)), ("flatten", nn.Flatten()),
                   ("fc", nn.Linear(channels[-1], num_classes, bias=False))]
        if scale is not None and scale != 1:
            layers.append(("scale", Scale(scale)))
        super().__init__(OrderedDict(layers))
        self.norm_kind, self.alpha = norm, scale


# --------------------------------------------------------------------------------------------------
# Registry
# --------------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class ModelSpec:
    """A registered model: ``builder(**fixed, **kwargs)`` builds it.

    ``dataset`` names the data the source used (a name of ``normlab.data.DATASETS``; the TF tutorial
    CNN crops CIFAR-10 to 24x24 in its augmentation);
    ``input_shape`` is one sample's (C, H, W); ``seed`` the seed id ("000".."004").
    ``revision`` counts the changes of a builder's defaults that change what the default model
    computes (erav1s8's dropout sampler: revision 1). A registry-built run's record identity holds
    only the caller's arguments, so it holds the revision too (when non-zero, leaving every other
    record's key as it was): a record made before such a change is not reused for the model after it.
    """

    name: str
    builder: Callable[..., nn.Module]
    description: str
    dataset: str
    input_shape: tuple[int, int, int]
    seed: str
    fixed: Mapping[str, Any] = field(default_factory=lambda: MappingProxyType({}))
    revision: int = 0

    def build(self, **kwargs) -> nn.Module:
        return build_model(self.name, **kwargs)


def _spec(name, builder, description, dataset, input_shape, seed, *, revision: int = 0, **fixed) -> ModelSpec:
    return ModelSpec(name, builder, description, dataset, input_shape, seed, MappingProxyType(fixed), revision)


_CIFAR = (3, 32, 32)
MODELS: dict[str, ModelSpec] = {s.name: s for s in [
    _spec("simplenet", SimpleNet, "fast.ai lesson 7 fully connected net 3072-40-10", "cifar10", _CIFAR, "003"),
    _spec("convnet", ConvNet, "fast.ai lesson 7 ConvNet: 3 stride-2 convs, no padding", "cifar10", _CIFAR, "003"),
    _spec("convnet2", ConvNet2, "fast.ai lesson 7 ConvNet2: 3 stride-2 convs, padding 1", "cifar10", _CIFAR, "003"),
    _spec("convbnnet", ConvBnNet, "fast.ai lesson 7 ConvBnNet: conv5x5 + 4 BnLayers (BN after ReLU)",
          "cifar10", _CIFAR, "003"),
    _spec("convbnnet2", ConvBnNet2, "fast.ai lesson 7 ConvBnNet2: ConvBnNet with an extra stride-1 BnLayer per stage",
          "cifar10", _CIFAR, "003"),
    *(_spec(v, LeNet, f"tairtahar LeNet, sigmoid, BN after {', '.join(LENET_BN_AFTER[v]) or 'no layer'}",
            "mnist_tairtahar", (1, 32, 32), "001", variant=v) for v in LENET_VARIANTS),
    _spec("erav1s8", Erav1s8Net, "erav1s8 CIFAR-10 net with batch/layer/group/instance norm and skips",
          "cifar10", _CIFAR, "002", revision=1),  # 1: dropout_sampler "auto" (was "torch")
    _spec("tf_tutorial_cnn", TFTutorialCNN, "satyaSK TF-tutorial CNN on 24x24 crops: none / LRN / BN",
          "cifar10", (3, 24, 24), "000"),
    _spec("resnet_spec", ResNetSpec, "prog-eval simplified ResNet spec, batch-statistics BN, scale 1/8",
          "cifar2", _CIFAR, "004"),
]}


def list_models() -> list[tuple[str, str]]:
    """``[(name, description), ...]`` in registry order."""
    return [(s.name, s.description) for s in MODELS.values()]


def build_model(name: str, **kwargs) -> nn.Module:
    """Build the registered model ``name`` with the builder's keyword arguments.

    Unknown names raise ``ValueError`` listing the accepted ones; unknown or fixed arguments raise
    ``TypeError`` and bad values ``ValueError``, both naming the model.
    """
    if name not in MODELS:
        raise ValueError(f"unknown model {name!r}; accepted: {', '.join(MODELS)}")
    spec = MODELS[name]
    params = [p for p in inspect.signature(spec.builder).parameters if p not in spec.fixed]
    bad = [k for k in kwargs if k not in params]
    if bad:
        raise TypeError(f"model {name!r} ({spec.builder.__name__}) got unexpected argument(s) "
                        f"{', '.join(bad)}; accepted: {', '.join(params) or 'none'}")
    try:
        return spec.builder(**spec.fixed, **kwargs)
    except ValueError as e:
        raise ValueError(f"model {name!r}: {e}") from e
