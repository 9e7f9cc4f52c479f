"""Benchmark 1: the fit() loop against model-only throughput and against the seed-style loop.

For one chapter model at its seed's batch size, in one run:
  - model-only: the same number of training steps on one synthetic in-memory batch (same model,
    memory format and batch size) plus the same test forward passes: the ceiling for any loop;
  - fit(): one epoch of CIFAR-10 with the seed's augmentation plus the test pass, through
    normlab.data (uint8 tensors, batched augmentation) and normlab.runs.run (the fit() loop);
  - seed-style: torchvision transforms over PIL images + DataLoader, the same model and steps.
Prints times and the ratios (throughput of fit / model-only; seed-style / fit).
"""
from __future__ import annotations

import argparse

import torch
import torch.nn.functional as F

from common import hardware_line, timed
from normlab import augment, data, models, runs
from normlab.devices import tune_cpu_allocator
from normlab.baseline import seed_style_loader


def model_only(model, n_train: int, n_test: int, bs: int, channels_last: bool, lr: float):
    x = torch.randn(bs, 3, 32, 32)
    y = torch.randint(0, 10, (bs,))
    if channels_last:
        model = model.to(memory_format=torch.channels_last)
        x = x.contiguous(memory_format=torch.channels_last)
    opt = torch.optim.SGD(model.parameters(), lr=lr, momentum=0.9)
    model.train()
    for i in range(-(-n_train // bs)):
        xb, yb = (x, y) if (i + 1) * bs <= n_train else (x[: n_train - i * bs], y[: n_train - i * bs])
        loss = F.cross_entropy(model(xb), yb)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
    model.eval()
    with torch.no_grad():
        for i in range(-(-n_test // bs)):
            model(x)


def seed_style(model, data_dir, bs: int, lr: float, workers: int):
    opt = torch.optim.SGD(model.parameters(), lr=lr, momentum=0.9)
    model.train()
    for xb, yb in seed_style_loader("cifar10", data_dir, train=True, batch_size=bs, num_workers=workers):
        loss = F.cross_entropy(model(xb), yb)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
    model.eval()
    correct = 0
    with torch.no_grad():
        for xb, yb in seed_style_loader("cifar10", data_dir, train=False, batch_size=bs, num_workers=workers):
            correct += (model(xb).argmax(1) == yb).sum().item()
    return correct / 10_000


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--model", default="convnet")
    p.add_argument("--batch-size", type=int, default=256)
    p.add_argument("--lr", type=float, default=0.1)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--workers", type=int, default=0, help="DataLoader workers of the seed-style loop")
    p.add_argument("--data-dir", default=None)
    p.add_argument("--repeats", type=int, default=2)
    args = p.parse_args()
    torch.set_num_threads(args.threads)
    tune_cpu_allocator()  # the same allocator settings fit() uses, for every loop
    print(hardware_line())
    dl = data.loaders("cifar10", args.batch_size, data_dir=args.data_dir, augment=augment.seed_augment("fastai"))
    n_train, n_test = len(dl.train.data), len(dl.test.data)
    rows = {"model-only": [], "fit": [], "seed-style": []}
    for r in range(args.repeats):  # interleaved, best of repeats: the machine may be shared
        torch.manual_seed(r)
        t, _ = timed(model_only, models.build_model(args.model), n_train, n_test, args.batch_size, True, args.lr)
        rows["model-only"].append(t)
        torch.manual_seed(r)
        t, h = timed(lambda: runs.run(args.model, data=dl, lr=args.lr, epochs=1, calls="main", seed=r,
                                      progress=False).history)
        rows["fit"].append(t)
        fit_acc = h.last["test_acc"]
        torch.manual_seed(r)
        t, seed_acc = timed(seed_style, models.build_model(args.model), args.data_dir, args.batch_size, args.lr, args.workers)
        rows["seed-style"].append(t)
    best = {k: min(v) for k, v in rows.items()}
    print(f"\n{args.model}, batch {args.batch_size}, one CIFAR-10 epoch ({n_train:,} images, fastai augmentation) "
          f"+ test pass ({n_test:,}); best of {args.repeats}")
    print(f"{'loop':<12}{'time (s)':>10}{'img/s':>10}")
    for k, v in best.items():
        print(f"{k:<12}{v:>10.2f}{n_train / v:>10.0f}")
    print(f"\nfit() throughput / model-only: {best['model-only'] / best['fit']:.2f}x  (goal >= 0.9x)")
    print(f"fit() speed-up over the seed-style DataLoader loop: {best['seed-style'] / best['fit']:.2f}x")
    print(f"test accuracy after the epoch: fit {fit_acc:.4f}, seed-style {seed_acc:.4f} (one epoch, different random streams)")


if __name__ == "__main__":
    main()
