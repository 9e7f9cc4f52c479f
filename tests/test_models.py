"""Tests of normlab.models: parameter counts from the seeds' spec, shapes, quirks, registry."""
import math

import pytest
import torch
import torch.nn as nn

from normlab.models import (LENET_VARIANTS, MODELS, ConvBnNet, ConvBnNet2, ConvLayer, Erav1s8Net, LeNet,
                            ModelSpec, ResNetSpec, TFTutorialCNN, build_model, count_params, list_models,
                            receptive_field_table)
from normlab.norms import NORM_KINDS, TairBatchNorm1d, TairBatchNorm2d

torch.set_num_threads(2)

# Counts stated in reference/seeds-spec.md (seed notebooks / Keras summaries / computed there).
SPEC_COUNTS = {
    "simplenet": 123_330, "convnet": 37_490, "convnet2": 37_490, "convbnnet": 155_970, "convbnnet2": 462_570,
    "lenet": 81_290, "lenet_bn1": 90_698, "lenet_bn2": 95_306, "lenet_fc_bn1": 95_308, "lenet_fc_bn2": 95_310,
    "erav1s8": 47_818, "tf_tutorial_cnn": 1_068_298, "resnet_spec": 108_208,
}
LOG_SOFTMAX = {"simplenet", "convnet", "convnet2", "convbnnet", "convbnnet2", "erav1s8"}


def _x(name, n=3, seed=0):
    return torch.randn(n, *MODELS[name].input_shape, generator=torch.Generator().manual_seed(seed))


def test_registry_covers_every_model():
    assert set(MODELS) == set(SPEC_COUNTS)
    assert [n for n, _ in list_models()] == list(MODELS)
    for name, spec in MODELS.items():
        assert isinstance(spec, ModelSpec) and spec.name == name and spec.description
        assert spec.dataset in {"cifar10", "mnist_tairtahar", "cifar2", "cifar10_24"}
        assert spec.seed in {"000", "001", "002", "003", "004"}
        with pytest.raises(Exception):
            spec.name = "x"  # frozen


@pytest.mark.parametrize("name", list(SPEC_COUNTS))
def test_param_count_and_forward(name):
    torch.manual_seed(0)
    model = build_model(name)
    assert count_params(model) == SPEC_COUNTS[name]
    y = model(_x(name))  # train mode: BnLayer needs one training pass before eval
    assert y.shape == (3, 2 if name == "resnet_spec" else 10)
    assert torch.isfinite(y).all()
    if name in LOG_SOFTMAX:
        assert torch.allclose(y.exp().sum(1), torch.ones(3), atol=1e-5)
    model.eval()
    with torch.no_grad():
        assert torch.isfinite(model(_x(name, seed=1))).all()


@pytest.mark.parametrize("bn", ["fastai", "corrected", "torch"])
@pytest.mark.parametrize("cls, expected", [(ConvBnNet, 155_970), (ConvBnNet2, 462_570)])
def test_convbnnet_bn_kinds(cls, expected, bn):
    model = cls(bn=bn)
    assert count_params(model) == expected
    assert model(torch.randn(4, 3, 32, 32)).shape == (4, 10)


def test_convbnnet_bad_bn():
    with pytest.raises(ValueError, match="bn='keras'.*'fastai'"):
        ConvBnNet(bn="keras")


# Standard (per-channel) BN adds 2C per BN layer: c1 2*6 = 12 -> 81,302; c3 2*16 = 32 -> 81,334;
# c5 2*120 = 240 -> 81,574; f6 2*84 = 168 -> 81,742 (base lenet 81,290).
@pytest.mark.parametrize("variant, expected", list(zip(LENET_VARIANTS, [81_290, 81_302, 81_334, 81_574, 81_742])))
def test_lenet_standard_bn_counts(variant, expected):
    model = LeNet(variant, bn="standard")
    assert count_params(model) == expected
    assert model(torch.randn(2, 1, 32, 32)).shape == (2, 10)


def test_lenet_structure_softmax_init_and_inference():
    model = LeNet("lenet_fc_bn2", output="softmax")
    tair = model.tair_bn_layers()
    assert [type(m) for m in tair] == [TairBatchNorm2d, TairBatchNorm2d, TairBatchNorm1d, TairBatchNorm1d]
    assert tuple(model.c1_bn.gamma.shape) == (6, 28, 28) and tuple(model.c3_bn.gamma.shape) == (16, 12, 12)
    assert model.c5_bn.gamma.numel() == 1 and model.c1_bn.eps == 1e-8
    assert isinstance(model.c3_act, nn.Sigmoid) and model.c3.kernel_size == (3, 3)
    y = model(torch.randn(4, 1, 32, 32))
    assert torch.allclose(y.sum(1), torch.ones(4), atol=1e-5) and (y >= 0).all()
    # Keras init: glorot_uniform bound sqrt(6/(fan_in+fan_out)), zero biases
    assert model.c5.weight.abs().max() <= math.sqrt(6 / (576 + 120)) and (model.c5.bias == 0).all()
    assert model.set_inference("running") is model and all(m.inference == "running" for m in tair)
    with pytest.raises(ValueError):
        model.set_inference("moving")
    with pytest.raises(ValueError, match="standard"):
        LeNet("lenet_bn1", bn="standard").set_inference("running")
    LeNet("lenet").set_inference("window")  # no BN: a no-op
    assert LeNet("lenet_bn1", inference="window", window=3).c1_bn.window == 3
    with pytest.raises(ValueError, match="variant='lenet_bn3'"):
        LeNet("lenet_bn3")


EXPECTED_ERAV1S8 = {"none": 47_418, "lrn": 47_418, "batch": 47_818, "layer": 47_818, "group": 47_818,
                    "instance": 47_818, "scratch_batch": 47_818}


@pytest.mark.parametrize("norm", NORM_KINDS)
def test_erav1s8_every_norm(norm):
    model = Erav1s8Net(norm=norm)
    assert count_params(model) == EXPECTED_ERAV1S8[norm]
    y = model(torch.randn(2, 3, 32, 32))
    assert y.shape == (2, 10) and torch.allclose(y.exp().sum(1), torch.ones(2), atol=1e-5)


def test_erav1s8_layout():
    model = Erav1s8Net(norm="group", skip=True)
    assert [layer.skip for layer in model.cblock1] == [False, False]
    assert all(layer.skip for b in (model.cblock2, model.cblock3) for layer in b)
    assert all(layer.conv.padding_mode == "replicate" and layer.conv.bias is None
               for b in (model.cblock1, model.cblock2, model.cblock3) for layer in b)
    assert model.cblock2[0].norm.num_groups == 4
    assert not any(layer.skip for layer in Erav1s8Net(skip=False).cblock2)
    with pytest.raises(ValueError, match="skip"):
        ConvLayer(16, 16, padding=0, skip=True)
    with pytest.raises(ValueError, match="norm='weight'"):
        Erav1s8Net(norm="weight")


def test_receptive_field_table():
    rows = receptive_field_table(Erav1s8Net())
    assert [r["rf"] for r in rows] == [1, 3, 5, 5, 6, 10, 14, 18, 18, 20, 28, 36, 44, 68, 68]
    assert [r["n_out"] for r in rows][:5] == [32, 30, 28, 28, 14]
    last = rows[-1]
    assert last["rf"] == 68 and last["jump"] == 28 and last["n_out"] == 1  # GAP over 7x7 at jump 4
    assert set(last) == {"layer", "kind", "kernel", "stride", "padding", "n_out", "jump", "rf"}
    assert len(receptive_field_table(Erav1s8Net(), include_input=False)) == 14


def test_tf_tutorial_cnn_faithful_dropout_and_relu_logits():
    x = torch.randn(4, 3, 24, 24)
    faithful = TFTutorialCNN(norm="lrn", faithful=True).eval()
    with torch.no_grad():
        a, b = faithful(x), faithful(x)
    assert not torch.equal(a, b)  # dropout still active in eval mode
    assert (a >= 0).all()  # ReLU on the logits
    assert faithful.conv1.weight.std() > 0.5 and faithful.conv1.weight.abs().max() <= 2  # TF stddev 1.0
    assert (faithful.fc1.bias == 0).all()
    fixed = TFTutorialCNN(norm="lrn").eval()
    with torch.no_grad():
        assert torch.equal(fixed(x), fixed(x))
    assert fixed.conv1.weight.std() < 0.2 and not hasattr(fixed, "out_relu")
    # separate flags override the shortcut
    only_relu = TFTutorialCNN(faithful=True, dropout_at_eval=False, init="torch").eval()
    with torch.no_grad():
        assert torch.equal(only_relu(x), only_relu(x))
    assert only_relu.relu_logits and count_params(TFTutorialCNN(norm="batch")) == 1_068_298 + 4 * 64
    with pytest.raises(ValueError, match="init='xavier'"):
        TFTutorialCNN(init="xavier")


def test_resnet_spec_batch_dependence():
    torch.manual_seed(0)
    x, other = torch.randn(4, 3, 32, 32), torch.randn(4, 3, 32, 32)
    model = ResNetSpec().eval()
    with torch.no_grad():
        alone, mixed = model(x), model(torch.cat([x[:2], other[:2]]))
    assert not torch.allclose(alone[:2], mixed[:2])  # batch-stat BN, also in eval
    ablation = ResNetSpec(norm="batch")
    assert count_params(ablation) == 108_208 + 2 * (16 + 32 + 64 + 128)
    ablation.train()(torch.randn(8, 3, 32, 32))  # update running stats once
    ablation.eval()
    with torch.no_grad():
        assert torch.allclose(ablation(x)[:2], ablation(torch.cat([x[:2], other[:2]]))[:2], atol=1e-6)
    assert hasattr(model, "scale") and not hasattr(ResNetSpec(scale=None), "scale")
    assert len(ResNetSpec(scale=1)) == len(model) - 1
    with torch.no_grad():  # Scale(0.125) multiplies the logits
        assert torch.allclose(model(x), model[:-1](x) * 0.125)
    assert type(model[:-1]) is nn.Sequential and len(LeNet()[:2]) == 2


def test_build_model_errors_are_clear():
    with pytest.raises(ValueError, match="unknown model 'lenet5'.*simplenet.*resnet_spec"):
        build_model("lenet5")
    with pytest.raises(TypeError, match="'erav1s8'.*colour"):
        build_model("erav1s8", colour="red")
    with pytest.raises(TypeError, match="'lenet_bn1'.*variant"):
        build_model("lenet_bn1", variant="lenet")
    with pytest.raises(ValueError, match="'resnet_spec'.*norm='fancy'"):
        build_model("resnet_spec", norm="fancy")
    assert count_params(build_model("erav1s8", norm="none")) == 47_418
    assert count_params(MODELS["lenet_bn2"].build(bn="standard")) == 81_334
