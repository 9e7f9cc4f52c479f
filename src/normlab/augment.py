"""Batched data augmentation on tensors, one random draw per image.

Every op takes a batch (N, C, H, W) and the CPU `torch.Generator` that drives the run, and
returns a batch on the same device. Random parameters are drawn on the CPU (a few numbers per
image) and moved to the batch's device, so a seed gives the same augmentation on CPU and GPU.
Inputs may be uint8 or float; values stay on the 0..255 scale until `Normalize` (or
`PerImageStandardization`) turns them into model inputs. The geometric ops reproduce
torchvision's tensor kernels (tests/test_augment.py compares them image by image).
"""
from __future__ import annotations

import functools
import math
from typing import Sequence

import torch
import torch.nn.functional as F

PADDING_MODES = ("constant", "reflect", "symmetric", "replicate")


def _uniform(n: int, lo: float, hi: float, g: torch.Generator, device) -> torch.Tensor:
    return (torch.rand(n, generator=g, dtype=torch.float64) * (hi - lo) + lo).to(device=device)


def _coin(n: int, p: float, g: torch.Generator, device) -> torch.Tensor:
    return (torch.rand(n, generator=g) < p).to(device)


class Compose:
    def __init__(self, ops: Sequence):
        self.ops = list(ops)

    def __call__(self, x: torch.Tensor, g: torch.Generator) -> torch.Tensor:
        for op in self.ops:
            x = op(x, g)
        return x

    def __repr__(self) -> str:
        return "Compose(" + ", ".join(map(repr, self.ops)) + ")"


def _pad_index(n: int, pad: int, mode: str) -> torch.Tensor:
    """Source index of each position of a padded axis; -1 marks constant (zero) padding."""
    i = torch.arange(-pad, n + pad)
    if mode == "reflect":      # torch / numpy 'reflect': d c b | a b c d | c b a (edge not repeated)
        i = i.abs()
        return torch.where(i > n - 1, 2 * (n - 1) - i, i)
    if mode == "symmetric":    # OpenCV BORDER_REFLECT (fastai 0.7's AddPadding): c b a | a b c d | d c b
        i = torch.where(i < 0, -i - 1, i)
        return torch.where(i > n - 1, 2 * n - 1 - i, i)
    if mode == "replicate":
        return i.clamp(0, n - 1)
    return torch.where((i < 0) | (i > n - 1), -1, i)


class RandomCrop:
    """Pad by `padding` (constant zeros / reflect / symmetric / replicate), then crop `size` at a
    random offset per image. Padding and cropping are one gather: no padded copy is made.
    `hflip=p` also flips each crop horizontally with probability p inside the same gather; it
    draws its random numbers after the offsets, so it gives exactly what
    Compose([RandomCrop(...), RandomHorizontalFlip(p)]) gives, one pass over the batch faster."""

    def __init__(self, size: int, padding: int = 0, padding_mode: str = "constant", hflip: float = 0.0):
        if padding_mode not in PADDING_MODES:
            raise ValueError(f"unknown padding_mode {padding_mode!r}; accepted: {', '.join(PADDING_MODES)}")
        if padding < 0:
            raise ValueError(f"padding must be >= 0, got {padding}")
        if not 0.0 <= hflip <= 1.0:
            raise ValueError(f"hflip must be a probability in [0, 1], got {hflip}")
        self.size, self.padding, self.padding_mode, self.hflip = size, padding, padding_mode, hflip

    def __repr__(self) -> str:
        flip = f", hflip={self.hflip}" if self.hflip else ""
        return f"RandomCrop({self.size}, padding={self.padding}, padding_mode={self.padding_mode!r}{flip})"

    def __call__(self, x: torch.Tensor, g: torch.Generator) -> torch.Tensor:
        n, _, h, w = x.shape
        s, p = self.size, self.padding
        if s > h + 2 * p or s > w + 2 * p:
            raise ValueError(f"crop size {s} larger than the padded image {h + 2 * p}x{w + 2 * p}")
        oy = torch.randint(0, h + 2 * p - s + 1, (n,), generator=g)
        ox = torch.randint(0, w + 2 * p - s + 1, (n,), generator=g)
        flip = torch.rand(n, generator=g) < self.hflip if self.hflip else None
        return crop(x, oy, ox, s, p, self.padding_mode, flip)


@functools.lru_cache(maxsize=64)
def _crop_sources(n: int, size: int, pad: int, mode: str) -> torch.Tensor:
    """(offsets, size): the source index along an axis of length n of each position of a crop of
    `size` at each offset into the axis padded by `pad` (-1: constant padding). Cached: a batch of
    crops then needs two row lookups instead of a dozen small tensor ops."""
    return _pad_index(n, pad, mode)[torch.arange(n + 2 * pad - size + 1)[:, None] + torch.arange(size)]


def crop(x: torch.Tensor, oy: torch.Tensor, ox: torch.Tensor, size: int, padding: int = 0,
         padding_mode: str = "constant", flip: torch.Tensor | None = None) -> torch.Tensor:
    """Crop size x size at per-image offsets (oy, ox) of the image padded by `padding`;
    images where `flip` is True come out mirrored left-right."""
    n, c, h, w = x.shape
    rows = _crop_sources(h, size, padding, padding_mode).index_select(0, oy)   # (N, S)
    cols = _crop_sources(w, size, padding, padding_mode).index_select(0, ox)
    if flip is not None:
        cols = torch.where(flip[:, None], cols.flip(1), cols)
    zeros = padding_mode == "constant" and padding > 0  # -1 marks a zero: gather a valid pixel, then mask
    r, cc = (rows.clamp(min=0), cols.clamp(min=0)) if zeros else (rows, cols)
    # Flat gather per (image, channel) plane: much cheaper than 4-D advanced indexing on CPU.
    flat = (r.to(x.device) * w)[:, :, None] + cc.to(x.device)[:, None, :]
    out = x.reshape(n, c, h * w).gather(2, flat.view(n, 1, -1).expand(n, c, -1)).view(n, c, size, size)
    if zeros:
        inside = ((rows >= 0)[:, :, None] & (cols >= 0)[:, None, :])[:, None]
        out = out * inside.to(out.device, out.dtype)
    return out


class CenterCrop:
    def __init__(self, size: int):
        self.size = size

    def __repr__(self) -> str:
        return f"CenterCrop({self.size})"

    def __call__(self, x: torch.Tensor, g: torch.Generator | None = None) -> torch.Tensor:
        h, w = x.shape[-2:]
        top, left = (h - self.size) // 2, (w - self.size) // 2
        return x[..., top:top + self.size, left:left + self.size]


class RandomHorizontalFlip:
    def __init__(self, p: float = 0.5):
        self.p = p

    def __repr__(self) -> str:
        return f"RandomHorizontalFlip(p={self.p})"

    def __call__(self, x: torch.Tensor, g: torch.Generator) -> torch.Tensor:
        flip = _coin(x.shape[0], self.p, g, x.device)
        return torch.where(flip[:, None, None, None], x.flip(3), x)


class RandomGrayscale:
    """PIL's RGB -> L -> RGB with probability p (ITU-R 601-2 luma, PIL's integer rounding)."""

    def __init__(self, p: float = 0.1):
        self.p = p

    def __repr__(self) -> str:
        return f"RandomGrayscale(p={self.p})"

    def __call__(self, x: torch.Tensor, g: torch.Generator) -> torch.Tensor:
        gray = _coin(x.shape[0], self.p, g, x.device)
        if x.dtype == torch.uint8:
            xi = x.to(torch.int32)
            lum = ((xi[:, 0] * 19595 + xi[:, 1] * 38470 + xi[:, 2] * 7471 + 0x8000) >> 16).to(torch.uint8)
        else:
            lum = x[:, 0] * 0.299 + x[:, 1] * 0.587 + x[:, 2] * 0.114
        return torch.where(gray[:, None, None, None], lum[:, None].expand_as(x), x)


def _sample(x: torch.Tensor, grid: torch.Tensor, mode: str, apply: torch.Tensor | None = None) -> torch.Tensor:
    """grid_sample on the 0..255 float scale, zero fill; images where `apply` is False are kept."""
    xf = x.float() if x.dtype == torch.uint8 else x
    out = F.grid_sample(xf, grid.to(xf.dtype), mode=mode, padding_mode="zeros", align_corners=False)
    if apply is not None:
        out = torch.where(apply[:, None, None, None], out, xf)
    return out


def _base_grid(h: int, w: int, centered: bool) -> torch.Tensor:
    """(H*W, 3) homogeneous pixel-centre coordinates, as torchvision builds them."""
    d = 0.5
    if centered:
        xs, ys = torch.linspace(-w * 0.5 + d, w * 0.5 + d - 1, w), torch.linspace(-h * 0.5 + d, h * 0.5 + d - 1, h)
    else:
        xs, ys = torch.linspace(d, w + d - 1.0, w), torch.linspace(d, h + d - 1.0, h)
    gy, gx = torch.meshgrid(ys, xs, indexing="ij")
    return torch.stack([gx, gy, torch.ones_like(gx)], -1).view(-1, 3).double()


class RandomRotation:
    """Rotate each image by an angle drawn from U(-degrees, degrees) about its centre
    (torchvision RandomRotation: nearest-neighbour, no expansion, zero fill)."""

    def __init__(self, degrees: float | tuple[float, float], interpolation: str = "nearest"):
        self.degrees = (-degrees, degrees) if isinstance(degrees, (int, float)) else tuple(degrees)
        self.interpolation = interpolation

    def __repr__(self) -> str:
        return f"RandomRotation({self.degrees})"

    def __call__(self, x: torch.Tensor, g: torch.Generator) -> torch.Tensor:
        angle = _uniform(x.shape[0], *self.degrees, g, "cpu")
        return rotate(x, angle, self.interpolation)


def rotate(x: torch.Tensor, angle: torch.Tensor, interpolation: str = "nearest") -> torch.Tensor:
    """Counter-clockwise rotation by `angle` degrees per image (torchvision's convention)."""
    n, _, h, w = x.shape
    r = torch.deg2rad(angle.double())
    cos, sin = torch.cos(r), torch.sin(r)
    zero = torch.zeros_like(r)
    # inverse map: output pixel -> input pixel, in centred pixel units
    theta = torch.stack([torch.stack([cos, -sin, zero], 1), torch.stack([sin, cos, zero], 1)], 1)  # (N, 2, 3)
    scale = torch.tensor([0.5 * w, 0.5 * h], dtype=torch.float64)
    grid = _base_grid(h, w, centered=True) @ (theta.transpose(1, 2) / scale)  # (N, H*W, 2)
    return _sample(x, grid.view(n, h, w, 2).to(x.device), interpolation)


class RandomPerspective:
    """torchvision RandomPerspective(distortion_scale, p): random corner displacements per image,
    bilinear sampling, zero fill."""

    def __init__(self, distortion_scale: float = 0.5, p: float = 0.5):
        self.distortion_scale, self.p = distortion_scale, p

    def __repr__(self) -> str:
        return f"RandomPerspective(distortion_scale={self.distortion_scale}, p={self.p})"

    def __call__(self, x: torch.Tensor, g: torch.Generator) -> torch.Tensor:
        n, _, h, w = x.shape
        apply = _coin(n, self.p, g, x.device)
        dw, dh = int(self.distortion_scale * (w // 2)), int(self.distortion_scale * (h // 2))

        def ri(lo, hi):
            return torch.randint(lo, hi, (n,), generator=g)

        end = torch.stack([
            torch.stack([ri(0, dw + 1), ri(0, dh + 1)], 1),
            torch.stack([ri(w - dw - 1, w), ri(0, dh + 1)], 1),
            torch.stack([ri(w - dw - 1, w), ri(h - dh - 1, h)], 1),
            torch.stack([ri(0, dw + 1), ri(h - dh - 1, h)], 1)], 1)  # (N, 4, 2)
        start = torch.tensor([[0, 0], [w - 1, 0], [w - 1, h - 1], [0, h - 1]]).expand(n, 4, 2)
        return perspective(x, start, end, apply=apply)


def perspective_coeffs(start: torch.Tensor, end: torch.Tensor) -> torch.Tensor:
    """(N, 8) coefficients of the homography mapping end points to start points (torchvision's)."""
    n = start.shape[0]
    pe, ps = end.double(), start.double()
    a = torch.zeros(n, 8, 8, dtype=torch.float64)
    x, y, u, v = pe[..., 0], pe[..., 1], ps[..., 0], ps[..., 1]
    one, zero = torch.ones_like(x), torch.zeros_like(x)
    a[:, 0::2] = torch.stack([x, y, one, zero, zero, zero, -u * x, -u * y], -1)
    a[:, 1::2] = torch.stack([zero, zero, zero, x, y, one, -v * x, -v * y], -1)
    return torch.linalg.solve(a, ps.reshape(n, 8)).float()


def perspective(x: torch.Tensor, start: torch.Tensor, end: torch.Tensor,
                apply: torch.Tensor | None = None, interpolation: str = "bilinear") -> torch.Tensor:
    n, _, h, w = x.shape
    c = perspective_coeffs(start, end).double()
    base = _base_grid(h, w, centered=False)                       # (H*W, 3)
    num = base @ c[:, :6].view(n, 2, 3).transpose(1, 2)           # (N, H*W, 2)
    den = base @ torch.cat([c[:, 6:8], torch.ones(n, 1, dtype=c.dtype)], 1)[:, :, None]  # (N, H*W, 1)
    grid = num / den / torch.tensor([0.5 * w, 0.5 * h], dtype=c.dtype) - 1.0
    return _sample(x, grid.view(n, h, w, 2).to(x.device), interpolation, apply)


# ---------------------------------------------------------------- TensorFlow CIFAR-10 tutorial ops
class RandomBrightness:
    """tf.image.random_brightness: add U(-max_delta, max_delta) per image (0..255 scale, no clip)."""

    def __init__(self, max_delta: float = 63.0):
        self.max_delta = max_delta

    def __repr__(self) -> str:
        return f"RandomBrightness({self.max_delta})"

    def __call__(self, x: torch.Tensor, g: torch.Generator) -> torch.Tensor:
        delta = _uniform(x.shape[0], -self.max_delta, self.max_delta, g, x.device).float()
        return x.float() + delta[:, None, None, None]


class RandomContrast:
    """tf.image.random_contrast: (x - channel mean) * f + channel mean, f ~ U(lower, upper) per image."""

    def __init__(self, lower: float = 0.2, upper: float = 1.8):
        self.lower, self.upper = lower, upper

    def __repr__(self) -> str:
        return f"RandomContrast({self.lower}, {self.upper})"

    def __call__(self, x: torch.Tensor, g: torch.Generator) -> torch.Tensor:
        f = _uniform(x.shape[0], self.lower, self.upper, g, x.device).float()[:, None, None, None]
        x = x.float()
        mean = x.mean(dim=(2, 3), keepdim=True)
        return (x - mean) * f + mean


class PerImageStandardization:
    """tf.image.per_image_standardization: zero mean, unit std per image (std floored at 1/sqrt(n))."""

    def __repr__(self) -> str:
        return "PerImageStandardization()"

    def __call__(self, x: torch.Tensor, g: torch.Generator | None = None) -> torch.Tensor:
        x = x.float()
        n = x[0].numel()
        std, mean = torch.std_mean(x.reshape(x.shape[0], -1), dim=1, correction=0)
        std = std.clamp(min=1.0 / math.sqrt(n))
        return (x - mean[:, None, None, None]) / std[:, None, None, None]


class Normalize:
    """(x / 255 - mean) / std per channel, with mean and std given on the [0, 1] scale."""

    def __init__(self, mean: Sequence[float], std: Sequence[float]):
        if len(mean) != len(std):
            raise ValueError(f"mean {tuple(mean)} and std {tuple(std)} have different lengths")
        if any(s <= 0 for s in std):
            raise ValueError(f"std must be positive, got {tuple(std)}")
        self.mean, self.std = tuple(float(m) for m in mean), tuple(float(s) for s in std)
        self._scale = torch.tensor([1.0 / (255.0 * s) for s in self.std]).view(-1, 1, 1)
        self._shift = torch.tensor([m / s for m, s in zip(self.mean, self.std)]).view(-1, 1, 1)
        self._neg_shift = -self._shift

    def __repr__(self) -> str:
        return f"Normalize(mean={self.mean}, std={self.std})"

    def __call__(self, x: torch.Tensor, g: torch.Generator | None = None, *,
                 channels_last: bool = False) -> torch.Tensor:
        if x.shape[1] != len(self.mean):
            raise ValueError(f"batch has {x.shape[1]} channels but Normalize has {len(self.mean)}")
        if self._scale.device != x.device:
            self._scale, self._shift = self._scale.to(x.device), self._shift.to(x.device)
            self._neg_shift = -self._shift
        fmt = torch.channels_last if channels_last else torch.contiguous_format
        if x.dtype == torch.uint8:
            # uint8 in, float32 out, then the model's layout. Writing channels_last straight from
            # the NCHW batch (one strided pass) took 0.8-1.2 ms per CIFAR-10 batch of 256 inside
            # fit(), this 0.5-0.9 ms; the same fused multiply-add, so the same numbers.
            return torch.addcmul(self._neg_shift, x, self._scale).contiguous(memory_format=fmt)
        return (x * self._scale - self._shift).contiguous(memory_format=fmt)

    def denormalize(self, x: torch.Tensor) -> torch.Tensor:
        """Model input -> [0, 1] images, for showing them."""
        mean = torch.tensor(self.mean, device=x.device).view(-1, 1, 1)
        std = torch.tensor(self.std, device=x.device).view(-1, 1, 1)
        return (x * std + mean).clamp(0, 1)


# ------------------------------------------------------------------------- the seeds' pipelines
def seed_augment(seed_name: str, train: bool = True) -> Compose | None:
    """The augmentation of a seed, by name: 'fastai' (003), 'erav1s8' (002), 'tf_tutorial' (000).
    train=False gives its evaluation pipeline (None where the seed used none).
    (tairtahar 001 and the ResNet spec 004 use no augmentation.)"""
    pipelines = {
        "fastai": (lambda: Compose([RandomCrop(32, 4, "symmetric", hflip=0.5)]), None),
        "erav1s8": (lambda: Compose([RandomHorizontalFlip(), RandomGrayscale(0.1), RandomRotation(7),
                                     RandomPerspective(0.3, 0.5)]), None),
        # TF tutorial `distorted_inputs()` / `inputs()`: eval = central 24x24 crop + standardization
        "tf_tutorial": (lambda: Compose([RandomCrop(24), RandomHorizontalFlip(), RandomBrightness(63),
                                         RandomContrast(0.2, 1.8), PerImageStandardization()]),
                        lambda: Compose([CenterCrop(24), PerImageStandardization()])),
    }
    if seed_name not in pipelines:
        raise ValueError(f"unknown seed pipeline {seed_name!r}; accepted: {', '.join(pipelines)}")
    make = pipelines[seed_name][0 if train else 1]
    return make() if make is not None else None
