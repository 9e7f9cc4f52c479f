"""Benchmark 1: the fit() loop against model-only throughput and against the seed-style loop.

For one chapter model at its seed's batch size, in one run:
  - model-only: the same number of training steps on one synthetic in-memory batch (same model,
    optimizer, memory format and batch size) plus the same evaluation forward passes: the ceiling
    for any loop;
  - fit(): one epoch plus the evaluation passes through normlab.data (uint8 tensors, batched
    augmentation) and normlab.runs.run (the fit() loop);
  - seed-style (CIFAR-10 only): torchvision transforms over PIL images + DataLoader, the same model
    and steps.
The data: `--data fastai` (default) is CIFAR-10 with the fast.ai lesson's augmentation whatever the
model; `--data recipe` is the model's own recipe (dataset, augmentation, batch size, learning rate),
e.g. the tairtahar LeNets on their MNIST split.
Prints times and the ratios (throughput of fit / model-only; seed-style / fit).
"""
from __future__ import annotations

import argparse
import statistics

import torch
import torch.nn.functional as F

from common import hardware_line, timed
from normlab import augment, data, models, recipes, runs, train
from normlab.devices import tune_cpu_allocator
from normlab.baseline import seed_style_loader


def eval_images(dl: data.Loaders) -> int:
    """The images fit() evaluates after an epoch: the test set, and the validation set if any."""
    return len(dl.test.data) + (len(dl.val.data) if dl.val is not None else 0)


def model_only(model, dl: data.Loaders, recipe: recipes.Recipe, lr: float):
    """The steps of one epoch and the evaluation passes of `dl`, on one synthetic batch of each size."""
    x0, _ = next(iter(dl.train))
    bs, tbs = dl.train.batch_size, dl.test.batch_size
    x, y = torch.randn(x0.shape), torch.randint(0, len(dl.classes), (bs,))
    xt = torch.randn(tbs, *x0.shape[1:])
    if train.picks_channels_last(model, "cpu"):  # the memory format fit() picks
        model = model.to(memory_format=torch.channels_last)
        x, xt = (t.contiguous(memory_format=torch.channels_last) for t in (x, xt))
    opt = train.make_optimizer(model.parameters(), recipe.opt, lr, momentum=recipe.momentum,
                               nesterov=recipe.nesterov, weight_decay=recipe.weight_decay, eps=recipe.eps)
    n_train, n_eval = len(dl.train.data), eval_images(dl)
    model.train()
    for i in range(-(-n_train // bs)):
        xb, yb = (x, y) if (i + 1) * bs <= n_train else (x[: n_train - i * bs], y[: n_train - i * bs])
        loss = F.cross_entropy(model(xb), yb)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
    model.eval()
    with torch.no_grad():
        for i in range(-(-n_eval // tbs)):
            model(xt)


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
    p.add_argument("--data", choices=("fastai", "recipe"), default="fastai",
                   help="fastai: CIFAR-10 with the fast.ai lesson's augmentation; recipe: the model's own recipe")
    p.add_argument("--batch-size", type=int, default=None, help="default: 256 (fastai), the recipe's (recipe)")
    p.add_argument("--lr", type=float, default=None, help="default: 0.1 (fastai), the recipe's (recipe)")
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--workers", type=int, default=0, help="DataLoader workers of the seed-style loop")
    p.add_argument("--data-dir", default=None)
    p.add_argument("--repeats", type=int, default=2)
    args = p.parse_args()
    torch.set_num_threads(args.threads)
    tune_cpu_allocator()  # the same allocator settings fit() uses, for every loop
    print(hardware_line())
    recipe = recipes.get_recipe(args.model)
    if args.data == "recipe":
        dl = recipes.make_loaders(recipe, data_dir=args.data_dir, device="cpu", batch_size=args.batch_size)
        lr = recipe.lr if args.lr is None else args.lr
    else:
        dl = data.loaders("cifar10", args.batch_size or 256, data_dir=args.data_dir,
                          augment=augment.seed_augment("fastai"))
        lr = 0.1 if args.lr is None else args.lr
    bs, seed_style_too = dl.train.batch_size, dl.name == "cifar10"
    n_train, n_eval = len(dl.train.data), eval_images(dl)
    rows = {"model-only": [], "fit": []} | ({"seed-style": []} if seed_style_too else {})
    for r in range(args.repeats):  # interleaved, best of repeats: the machine may be shared
        torch.manual_seed(r)
        t, _ = timed(model_only, models.build_model(args.model), dl, recipe, lr)
        rows["model-only"].append(t)
        torch.manual_seed(r)
        t, h = timed(lambda: runs.run(args.model, data=dl, lr=lr, epochs=1, calls="main", seed=r,
                                      progress=False).history)
        rows["fit"].append(t)
        fit_acc = h.last["test_acc"]
        if seed_style_too:
            torch.manual_seed(r)
            t, seed_acc = timed(seed_style, models.build_model(args.model), args.data_dir, bs, lr, args.workers)
            rows["seed-style"].append(t)
    best = {k: min(v) for k, v in rows.items()}
    print(f"\n{args.model}, batch {bs}, one {dl.name} epoch ({n_train:,} images, {args.data} data) "
          f"+ evaluation passes ({n_eval:,}); best of {args.repeats}")
    print(f"{'loop':<12}{'time (s)':>10}{'img/s':>10}")
    for k, v in best.items():
        print(f"{k:<12}{v:>10.2f}{n_train / v:>10.0f}")
    # each repeat times the two loops back to back: the median of those ratios is less at the mercy
    # of a host whose speed drifts between repeats than the ratio of the two bests
    paired = statistics.median(m / f for m, f in zip(rows["model-only"], rows["fit"]))
    print(f"\nfit() throughput / model-only: {best['model-only'] / best['fit']:.2f}x (bests), "
          f"{paired:.2f}x (median of the {args.repeats} back-to-back pairs)  (goal >= 0.9x)")
    if seed_style_too:
        print(f"fit() speed-up over the seed-style DataLoader loop: {best['seed-style'] / best['fit']:.2f}x")
        print(f"test accuracy after the epoch: fit {fit_acc:.4f}, seed-style {seed_acc:.4f} "
              "(one epoch, different random streams)")
    else:
        print(f"test accuracy after the epoch: fit {fit_acc:.4f}")


if __name__ == "__main__":
    main()
