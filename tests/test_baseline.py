"""normlab.baseline's prog-eval reference loop (chapter 8 and benchmarks/bench_resnet_spec.py use it)."""
import subprocess
import sys

import numpy as np
import pytest
import torch
import torch.nn as nn

from normlab import baseline

SGD_STEP = torch.optim.SGD.step


def tiny(n=10, seed=0):
    g = torch.Generator().manual_seed(seed)
    images = torch.randint(0, 256, (n, 3, 4, 4), dtype=torch.uint8, generator=g)
    return images, torch.arange(n) % 2


def test_the_arrays_are_prep_py_scaled_then_normalized():
    images, _ = tiny()
    x = baseline.prog_eval_arrays(images, (0.5, 0.4, 0.3), (0.2, 0.25, 0.5))
    assert x.dtype == np.float32 and x.shape == (10, 3, 4, 4)
    assert x[3, 1, 2, 0] == pytest.approx((images[3, 1, 2, 0].item() / 255 - 0.4) / 0.25, rel=1e-6)


def run_loop(monkeypatch, epochs, total_epochs, order_rng):
    images, labels = tiny()
    x, y = baseline.prog_eval_arrays(images, (0.5,) * 3, (0.25,) * 3), labels.numpy()
    lrs = []  # the learning rate of every step
    monkeypatch.setattr(torch.optim.SGD, "step", lambda self, *a: (lrs.append(self.param_groups[0]["lr"]),
                                                                    SGD_STEP(self, *a))[1])
    torch.manual_seed(124)
    model = nn.Sequential(nn.Flatten(), nn.Linear(48, 2))
    secs, accs = baseline.prog_eval_loop(model, x, y, x[:6], y[:6], epochs=epochs, total_epochs=total_epochs,
                                         batch_size=4, lr=0.1, momentum=0.9, order_rng=order_rng)
    return secs, accs, lrs, model


def test_the_loop_sets_the_linear_schedule_before_each_step_and_is_seeded(monkeypatch):
    np.random.seed(123)  # the benchmark: the seeded np.random module, 5 epochs
    secs, accs, lrs, model = run_loop(monkeypatch, 5, None, np.random)
    assert secs > 0 and len(accs) == 5 and all(a in (0, 1 / 6, 2 / 6, 3 / 6, 4 / 6, 5 / 6, 1) for a in accs)
    n = 3  # batches of 4 out of 10 images: 4, 4, 2
    assert lrs == pytest.approx([0.1 * (1 - (e + i / n) / 5) for e in range(5) for i in range(n)])
    np.random.seed(123)
    assert run_loop(monkeypatch, 5, None, np.random)[1] == accs, "the same seeds give the same run"

    # the chapter: the first epoch of that schedule only, its order from a Generator
    _, first, lrs1, _ = run_loop(monkeypatch, 1, 5, np.random.default_rng(124))
    assert len(first) == 1 and lrs1 == pytest.approx(lrs[:n])


def test_baseline_imports_without_torchvision():
    code = "import sys; sys.modules['torchvision'] = None; import normlab.baseline"
    subprocess.run([sys.executable, "-c", code], check=True)
