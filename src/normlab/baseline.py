"""The seeds' own pipelines, kept as the baselines that benchmarks/ and chapter 8 compare normlab
against: torchvision datasets of PIL images, per-image transforms and a DataLoader; and the prog-eval
reference's training loop (float arrays in memory, a shuffled index per epoch)."""
from __future__ import annotations

import json
import time

import numpy as np
import torch
import torch.nn.functional as F

from .data import CIFAR10_MEAN, CIFAR10_STD, MNIST_MEAN, MNIST_STD, resolve_data_dir, _ensure


def _transforms(name: str, train: bool, mean, std):
    import torchvision.transforms as T

    tail = [T.ToTensor(), T.Normalize(mean, std)]
    if not train:
        return T.Compose(tail)
    head = {
        # fastai 0.7: AddPadding(4, cv2.BORDER_REFLECT) = torchvision 'symmetric'; random crop; flip
        "fastai": [T.RandomCrop(32, padding=4, padding_mode="symmetric"), T.RandomHorizontalFlip()],
        "erav1s8": [T.RandomHorizontalFlip(0.5), T.RandomGrayscale(0.1), T.RandomRotation((-7, 7)),
                    T.RandomPerspective(distortion_scale=0.3, p=0.5)],
        "none": [],
    }
    if name not in head:
        raise ValueError(f"unknown seed pipeline {name!r}; accepted: {', '.join(head)}")
    return T.Compose(head[name] + tail)


def seed_style_loader(dataset: str = "cifar10", data_dir=None, *, train: bool = True, batch_size: int = 256,
                      pipeline: str = "fastai", num_workers: int = 0, seed: int = 0) -> torch.utils.data.DataLoader:
    """A torchvision DataLoader over PIL images, shuffled when training (as the seeds ran it)."""
    import torchvision

    root = resolve_data_dir(data_dir)
    if dataset == "cifar10":
        _ensure("cifar10", root, data_dir, download=False)

        class CIFAR10Local(torchvision.datasets.CIFAR10):
            def _check_integrity(self) -> bool:  # exact pixels, not byte-identical files
                return True

        ds = CIFAR10Local(str(root), train=train, transform=_transforms(pipeline, train, CIFAR10_MEAN, CIFAR10_STD))
    elif dataset == "mnist":
        _ensure("mnist", root, data_dir, download=False)
        ds = torchvision.datasets.MNIST(str(root), train=train, transform=_transforms("none", train, MNIST_MEAN, MNIST_STD))
    else:
        raise ValueError(f"unknown dataset {dataset!r} for the seed-style loader; accepted: cifar10, mnist")
    return torch.utils.data.DataLoader(ds, batch_size=batch_size, shuffle=train, num_workers=num_workers,
                                       generator=torch.Generator().manual_seed(seed))


def prog_eval_arrays(images: torch.Tensor, mean, std) -> np.ndarray:
    """The prog-eval reference's prep.py: uint8 NCHW images scaled to [0, 1], then normalized with the
    channel means and stds; one float32 NCHW array."""
    x = images.cpu().float() / 255
    return ((x - torch.tensor(mean).view(3, 1, 1)) / torch.tensor(std).view(3, 1, 1)).numpy()


def prog_eval_loop(model: torch.nn.Module, x_train: np.ndarray, y_train: np.ndarray, x_test: np.ndarray,
                   y_test: np.ndarray, *, epochs: int, total_epochs: int | None = None, batch_size: int = 128,
                   lr: float = 0.1, momentum: float = 0.9, order_rng=np.random, device="cpu",
                   log: bool = False) -> tuple[float, list[float]]:
    """The prog-eval reference's main.py loop, re-typed: per epoch a shuffled index
    (``order_rng.permutation``: the seeded ``np.random`` module as the reference, or a Generator), each
    batch copied out of the arrays, the learning rate set before each step to lr * (1 - progress) over
    `total_epochs` (default `epochs`; more times only the first epochs of that schedule), SGD with
    momentum, then the test pass in batches. Returns (seconds, test accuracy after each epoch); the time
    starts after the optimizer is built. `log` prints the reference's JSON line per epoch."""
    total_epochs = total_epochs or epochs
    opt = torch.optim.SGD(model.parameters(), lr=lr, momentum=momentum)
    n_batches = -(-len(x_train) // batch_size)
    accs, t0 = [], time.perf_counter()
    for epoch in range(epochs):
        model.train()
        order = order_rng.permutation(len(x_train))
        for i in range(n_batches):
            b = order[i * batch_size:(i + 1) * batch_size]
            for group in opt.param_groups:
                group["lr"] = lr * (1 - (epoch + i / n_batches) / total_epochs)
            loss = F.cross_entropy(model(torch.from_numpy(x_train[b]).to(device)),
                                   torch.from_numpy(y_train[b]).to(device))
            opt.zero_grad()
            loss.backward()
            opt.step()
        model.eval()
        with torch.no_grad():
            preds = np.concatenate([model(torch.from_numpy(x_test[i:i + batch_size]).to(device)).argmax(1).cpu().numpy()
                                    for i in range(0, len(x_test), batch_size)])
        accs.append(float((preds == y_test).mean()))
        if log:
            print(json.dumps({"epoch": epoch, "test_acc": accs[-1], "time": round(time.perf_counter() - t0, 2)}))
    return time.perf_counter() - t0, accs
