"""The precision policy, one case per kind of device (the GPU queries are mocked)."""
import contextlib

import pytest
import torch

from normlab import precision as P
from normlab.precision import choose_precision


@pytest.fixture
def gpu(monkeypatch):
    """Pretend to be a GPU of a given compute capability; returns a setter."""
    monkeypatch.delenv(P.PRECISION_ENV, raising=False)

    def set_gpu(capability, name):
        monkeypatch.setattr(torch.cuda, "get_device_capability", lambda device=None: capability)
        monkeypatch.setattr(torch.cuda, "get_device_name", lambda device=None: name)
        # what torch answers on a T4 by default: emulated bf16 counts as supported
        monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda including_emulation=True: True)
    return set_gpu


@pytest.fixture(autouse=True)
def _no_env(monkeypatch):
    monkeypatch.delenv(P.PRECISION_ENV, raising=False)


def test_gpu_with_native_bf16_gets_bf16_without_scaler(gpu):
    gpu((9, 0), "NVIDIA H100")
    p = choose_precision(torch.device("cuda"))
    assert (p.name, p.dtype, p.needs_scaler) == ("bf16", torch.bfloat16, False)
    assert "NVIDIA H100, compute capability 9.0 has native bf16" in str(p)
    gpu((8, 0), "NVIDIA A100")
    assert choose_precision("cuda").name == "bf16"


def test_t4_gets_fp16_with_a_grad_scaler_although_bf16_is_emulated(gpu):
    gpu((7, 5), "Tesla T4")
    assert torch.cuda.is_bf16_supported()  # the trap: True by emulation
    p = choose_precision("cuda")
    assert (p.name, p.dtype, p.needs_scaler) == ("fp16", torch.float16, True)
    assert "Tesla T4, compute capability 7.5 has no native bf16" in str(p)
    assert "GradScaler" in str(p)


def test_bf16_asked_for_on_a_t4_is_refused_with_the_fix(gpu):
    gpu((7, 5), "Tesla T4")
    with pytest.raises(ValueError, match="'bf16'.*Tesla T4.*use 'fp16' or 'auto'"):
        choose_precision("cuda", "bf16")
    assert choose_precision("cuda", "fp16").needs_scaler
    assert not choose_precision("cuda", "fp32").enabled


def test_cpu_uses_no_autocast_unless_asked():
    p = choose_precision("cpu")
    assert (p.name, p.enabled, p.needs_scaler) == ("fp32", False, False)
    assert isinstance(p.autocast(), contextlib.nullcontext)
    assert choose_precision("cpu", False).name == "fp32"
    assert choose_precision("cpu", True).name == "bf16"
    assert choose_precision("cpu", "bf16").dtype == torch.bfloat16
    fp16 = choose_precision("cpu", "fp16")
    assert fp16.dtype == torch.float16 and fp16.needs_scaler
    with choose_precision("cpu", "bf16").autocast():
        assert torch.nn.Linear(4, 4)(torch.randn(2, 4)).dtype == torch.bfloat16


def test_mps_defaults_to_fp32_and_refuses_bf16():
    assert choose_precision(torch.device("mps")).name == "fp32"
    with pytest.raises(ValueError, match="not supported on Apple's MPS"):
        choose_precision(torch.device("mps"), "bf16")


def test_the_environment_variable_replaces_auto(monkeypatch):
    monkeypatch.setenv(P.PRECISION_ENV, "bf16")
    p = choose_precision("cpu")
    assert p.name == "bf16" and "$NORMLAB_PRECISION" in str(p)
    assert choose_precision("cpu", "fp32").name == "fp32"  # an explicit choice wins
    monkeypatch.setenv(P.PRECISION_ENV, "half")
    with pytest.raises(ValueError, match=r"\$NORMLAB_PRECISION='half'.*accepted: auto, fp32, bf16, fp16"):
        choose_precision("cpu")


def test_bad_values_are_named():
    with pytest.raises(ValueError, match="unknown precision 'fp8'; accepted: auto, fp32, bf16, fp16"):
        choose_precision("cpu", "fp8")


def test_fit_records_and_uses_the_chosen_precision(data_dir):
    from normlab import data, models, train

    dl = data.loaders("cifar10", 32, data_dir=data_dir, subset=4, test_subset=2, device="cpu")
    torch.manual_seed(0)
    h = train.fit(models.build_model("convnet"), dl, epochs=1, lr=0.01, amp="bf16", progress=False)
    assert h.meta["precision"] == "bf16" and h.stopped is None
    h = train.fit(models.build_model("convnet"), dl, epochs=1, lr=0.01, progress=False)
    assert h.meta["precision"] == "fp32"
