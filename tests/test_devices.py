import contextlib

import pytest
import torch

from normlab import devices, train


def test_auto_picks_the_best_available():
    dev = devices.resolve_device("auto")
    expected = "cuda" if torch.cuda.is_available() else (
        "mps" if torch.backends.mps.is_available() else "cpu")
    assert dev.type == expected
    assert devices.resolve_device(None) == dev
    assert devices.resolve_device(torch.device("cpu")) == torch.device("cpu")


def test_bad_device_names_are_explained():
    with pytest.raises(ValueError, match="unknown device 'tpu'; accepted: auto, cpu, cuda, mps"):
        devices.resolve_device("tpu")
    if not torch.cuda.is_available():
        with pytest.raises(ValueError, match="CUDA is not available"):
            devices.resolve_device("cuda")


def test_describe_device_names_hardware_and_threads():
    text = devices.describe_device("cpu")
    assert text.startswith("CPU") and f"{torch.get_num_threads()} threads" in text


def test_amp_defaults_off_on_cpu_and_bf16_when_forced():
    ctx, scaler = train.autocast_for(torch.device("cpu"), "auto")
    assert isinstance(ctx, contextlib.nullcontext) and not scaler
    ctx, scaler = train.autocast_for(torch.device("cpu"), True)
    with ctx:
        out = torch.nn.Linear(4, 4)(torch.randn(2, 4))
    assert out.dtype == torch.bfloat16 and not scaler


def test_allocator_tuning_is_idempotent():
    first = devices.tune_cpu_allocator()
    assert devices.tune_cpu_allocator() == first
