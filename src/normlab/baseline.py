"""The seeds' own data pipeline: torchvision datasets of PIL images, per-image transforms and a
DataLoader. Kept as the baseline that benchmarks/ compares the tensor pipeline against."""
from __future__ import annotations

import torch

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
