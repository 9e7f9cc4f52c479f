"""Each seed's training setup, as data: one :class:`Recipe` per registered model.

Chapters, widgets and the command line all start from ``RECIPES[name]``, so the batch size,
optimizer, learning rate, schedule, epochs and augmentation of a seed are written down once::

    recipe = RECIPES["resnet_spec"]
    data = make_loaders(recipe, data_dir=..., device="auto", seed=0)
    history = fit(build_model("resnet_spec"), data, **fit_kwargs(recipe, seed=0))

A recipe describes **one fit call**. Where a source trained in several calls (fast.ai lesson 7:
``fit(lr, 2)`` at a constant rate, then ``fit(lr, n, cycle_len=1)``), the recipe holds the main
call (the cycle_len one, whose result the lesson reports) and ``calls`` lists the whole sequence
for chapters that replay it. Every number comes from ``reference/seeds-spec.md``; ``source``
names the seed and the place.
"""
from __future__ import annotations

import inspect
import math
from dataclasses import dataclass, replace
from typing import Any, Callable

from .augment import Compose, seed_augment
from .data import DATASETS, Loaders, loaders
from .models import MODELS, RESNET_NORMS
from .norms import NORM_KINDS
from .schedules import SCHEDULES
from .train import OPTIMIZERS, fit

__all__ = ["Recipe", "RECIPES", "AUGMENTS", "TEST_AUGMENTS", "get_recipe", "build_augment",
           "make_loaders", "fit_kwargs", "norm_choices", "default_norm"]

# Training pipelines are seed_augment's; evaluation pipelines live here.
AUGMENTS = ("fastai", "erav1s8", "tf_tutorial")
TEST_AUGMENTS: dict[str, Callable[[], Compose]] = {
    # satyaSK / TF tutorial `inputs()`: central 24x24 crop, then per_image_standardization.
    "tf_tutorial_eval": lambda: seed_augment("tf_tutorial", train=False),
}


def build_augment(name: str | None):
    """An augmentation pipeline by name: a seed's training pipeline (AUGMENTS, via
    ``seed_augment``) or an evaluation pipeline (TEST_AUGMENTS); None -> None."""
    if name is None:
        return None
    if name in TEST_AUGMENTS:
        return TEST_AUGMENTS[name]()
    if name in AUGMENTS:
        return seed_augment(name)
    raise ValueError(f"unknown augmentation {name!r}; accepted: {', '.join((*AUGMENTS, *TEST_AUGMENTS))}")


def _positive_int(what: str, v: Any) -> None:
    if isinstance(v, bool) or not isinstance(v, int) or v < 1:
        raise ValueError(f"{what} must be a positive int, got {v!r}")


@dataclass(frozen=True)
class Recipe:
    """One fit call of a seed: data, batches, optimizer, schedule, epochs, augmentation.

    - ``dataset``: a name of ``normlab.data.DATASETS``.
    - ``batch_size`` / ``test_batch_size``: train / evaluation batches (evaluation batch size
      matters for models whose BN uses the batch's statistics at test time).
    - ``opt``: "sgd" or "adam"; ``momentum``/``nesterov`` are SGD's, ``eps`` is Adam's
      (Keras 1e-7, TF1 and torch 1e-8); ``weight_decay`` both.
    - ``schedule``: a name of ``normlab.schedules.SCHEDULES``.
    - ``augment``: training pipeline name (``seed_augment``) or None; ``test_augment``: evaluation
      pipeline name (``TEST_AUGMENTS``) or None; ``normalize``: apply the dataset's mean/std after
      augmentation (False when the augmentation standardizes per image).
    - ``calls``: the source's full sequence of fit calls ``((lr, epochs, schedule), ...)`` when it
      made more than one; this recipe's own lr/epochs/schedule are the main call.
    - ``source``: one line naming the seed and where the numbers come from.
    """

    dataset: str
    batch_size: int
    test_batch_size: int
    epochs: int
    lr: float
    opt: str
    momentum: float
    nesterov: bool
    weight_decay: float
    eps: float
    schedule: str
    augment: str | None
    test_augment: str | None
    normalize: bool
    source: str
    calls: tuple[tuple[float, int, str], ...] = ()

    def __post_init__(self):
        if self.dataset not in DATASETS:
            raise ValueError(f"unknown dataset {self.dataset!r}; accepted: {', '.join(DATASETS)}")
        _positive_int("batch_size", self.batch_size)
        _positive_int("test_batch_size", self.test_batch_size)
        if isinstance(self.epochs, bool) or not isinstance(self.epochs, int) or self.epochs < 0:
            raise ValueError(f"epochs must be a non-negative int, got {self.epochs!r}")
        if not (isinstance(self.lr, (int, float)) and math.isfinite(self.lr) and self.lr > 0):
            raise ValueError(f"lr must be a positive finite number, got {self.lr!r}")
        if self.opt not in OPTIMIZERS:
            raise ValueError(f"unknown optimizer {self.opt!r}; accepted: {', '.join(OPTIMIZERS)}")
        if self.schedule not in SCHEDULES:
            raise ValueError(f"unknown schedule {self.schedule!r}; accepted: {', '.join(SCHEDULES)}")
        if self.augment is not None and self.augment not in AUGMENTS:
            raise ValueError(f"unknown augment {self.augment!r}; accepted: None, {', '.join(AUGMENTS)}")
        if self.test_augment is not None and self.test_augment not in TEST_AUGMENTS:
            raise ValueError(f"unknown test_augment {self.test_augment!r}; "
                             f"accepted: None, {', '.join(TEST_AUGMENTS)}")

    def replace(self, **changes) -> "Recipe":
        """A copy with some fields changed (validated again)."""
        return replace(self, **changes)


# ----------------------------------------------------------------------------- the seeds' settings
def _fastai(lr: float, epochs: int, calls: tuple, source: str) -> Recipe:
    # Seed 003 (fastai 0.7): ConvLearner.from_model_data -> SGD momentum 0.9, no weight decay;
    # ImageClassifierData bs 256 for train and val (= the 10k test set); tfms_from_stats with
    # pad=4 (reflect) + RandomFlip, CIFAR-10 stats.
    return Recipe(dataset="cifar10", batch_size=256, test_batch_size=256, epochs=epochs, lr=lr, opt="sgd",
                  momentum=0.9, nesterov=False, weight_decay=0.0, eps=1e-8, schedule="sgdr",
                  augment="fastai", test_augment=None, normalize=True, calls=calls, source=source)


def _tairtahar(variant: str) -> Recipe:
    # Seed 001: compile(optimizer='adam') = Keras Adam lr 1e-3, eps 1e-7; batch 64; 10 epochs;
    # ReduceLROnPlateau/EarlyStopping (patience 15) never fire in 10 epochs -> constant lr.
    # The data is only /255 (mean 0, std 1 in DATASETS, so normalize=True changes nothing).
    # Evaluation batch 64 = fit's validation batch (evaluate() used Keras' default 32).
    return Recipe(dataset="mnist_tairtahar", batch_size=64, test_batch_size=64, epochs=10, lr=1e-3, opt="adam",
                  momentum=0.0, nesterov=False, weight_decay=0.0, eps=1e-7, schedule="constant",
                  augment=None, test_augment=None, normalize=True,
                  source=f"seed 001 tairtahar/batchnorm main.py+lenet.py ({variant}): Keras Adam 1e-3 "
                         "(eps 1e-7), bs 64, 10 epochs, no augmentation [seeds-spec 001, SRC]")


_F = "seed 003 fast.ai dl1 lesson7-cifar10.ipynb: bs 256, SGD m0.9, pad-4 reflect crop + flip"
RECIPES: dict[str, Recipe] = {
    "simplenet": _fastai(1e-2, 2, ((1e-2, 2, "constant"), (1e-2, 2, "sgdr")),
                         f"{_F}; main call fit(1e-2, 2, cycle_len=1) after fit(1e-2, 2) [seeds-spec 003, SRC+NB]"),
    "convnet": _fastai(1e-1, 4, ((1e-1, 2, "constant"), (1e-1, 4, "sgdr")),
                       f"{_F}; main call fit(1e-1, 4, cycle_len=1) after fit(1e-1, 2) [seeds-spec 003, SRC+NB]"),
    "convnet2": _fastai(1e-1, 2, ((1e-1, 2, "constant"), (1e-1, 2, "sgdr")),
                        f"{_F}; main call fit(1e-1, 2, cycle_len=1) after fit(1e-1, 2) [seeds-spec 003, SRC+NB]"),
    "convbnnet": _fastai(1e-1, 4, ((3e-2, 2, "constant"), (1e-1, 4, "sgdr")),
                         f"{_F}; main call fit(1e-1, 4, cycle_len=1) after fit(3e-2, 2) [seeds-spec 003, SRC+NB]"),
    "convbnnet2": _fastai(1e-2, 2, ((1e-2, 2, "constant"), (1e-2, 2, "sgdr")),
                          f"{_F}; main call fit(1e-2, 2, cycle_len=1) after fit(1e-2, 2) [seeds-spec 003, SRC+NB]"),
    **{v: _tairtahar(v) for v in ("lenet", "lenet_bn1", "lenet_bn2", "lenet_fc_bn1", "lenet_fc_bn2")},
    "erav1s8": Recipe(
        dataset="cifar10", batch_size=32, test_batch_size=32, epochs=20, lr=0.01, opt="sgd", momentum=0.9,
        nesterov=False, weight_decay=0.0, eps=1e-8, schedule="plateau", augment="erav1s8", test_augment=None,
        normalize=True,
        source="seed 002 swapniel99/erav1s8 S8.ipynb+backprop.py+datasets/: bs 32, SGD 0.01 m0.9, "
               "ReduceLROnPlateau(patience 0, factor 0.3) on test loss, 20 epochs, flip/gray/rot/persp "
               "[seeds-spec 002, SRC+NB]"),
    "tf_tutorial_cnn": Recipe(
        dataset="cifar10", batch_size=128, test_batch_size=128, epochs=11, lr=1e-3, opt="adam", momentum=0.0,
        nesterov=False, weight_decay=0.0, eps=1e-8, schedule="constant", augment="tf_tutorial",
        test_augment="tf_tutorial_eval", normalize=False,
        source="seed 000 satyaSK myCifar10.py+cifar10_input.py: bs 128, TF1 Adam 1e-3 (eps 1e-8), "
               "range(epochs+1) = 11 epochs, 24x24 distorted crops / centre crop + per-image "
               "standardization [seeds-spec 000, SRC]"),
    "resnet_spec": Recipe(
        dataset="cifar2", batch_size=128, test_batch_size=128, epochs=5, lr=0.1, opt="sgd", momentum=0.9,
        nesterov=False, weight_decay=0.0, eps=1e-8, schedule="linear", augment=None, test_augment=None,
        normalize=True,
        source="seed 004 prog-eval convnet README+main-redacted.py: CIFAR-2, bs 128, SGD m0.9 no nesterov, "
               "lr 0.1 linearly to 0 per iteration, 5 epochs, no augmentation [seeds-spec 004, SRC]"),
}
assert set(RECIPES) == set(MODELS), "every registered model needs a recipe"


def get_recipe(name: str) -> Recipe:
    """``RECIPES[name]`` with an error naming the accepted models."""
    if name not in RECIPES:
        raise ValueError(f"unknown model {name!r}; accepted: {', '.join(RECIPES)}")
    return RECIPES[name]


# ----------------------------------------------------------------------------- norms a model takes
def norm_choices(name: str) -> tuple[str, ...]:
    """The values the model's ``norm`` argument accepts; () for models without one."""
    get_recipe(name)  # unknown names -> ValueError listing the models
    spec = MODELS[name]
    if "norm" not in inspect.signature(spec.builder).parameters or "norm" in spec.fixed:
        return ()
    return tuple(RESNET_NORMS) if name == "resnet_spec" else tuple(NORM_KINDS)


def default_norm(name: str) -> str | None:
    """The builder's default ``norm`` (None for models without one)."""
    if not norm_choices(name):
        return None
    default = inspect.signature(MODELS[name].builder).parameters["norm"].default
    return default or "none"


# ----------------------------------------------------------------------------- recipe -> objects
def make_loaders(recipe: Recipe, *, data_dir=None, device="auto", subset: int | None = None,
                 test_subset: int | None = None, seed: int = 0, batch_size: int | None = None,
                 download: bool = False, drop_last: bool = False) -> Loaders:
    """``normlab.data.loaders`` for a recipe: its dataset, batch sizes, augmentations and
    normalization. ``subset``/``test_subset`` keep that many images per class (seeded);
    ``download=True`` fetches a missing dataset through torchvision (Colab); ``drop_last`` drops
    a last incomplete training batch (the TF tutorial's queue ran int(50000/128) = 390 steps)."""
    return loaders(recipe.dataset, batch_size or recipe.batch_size, test_batch_size=recipe.test_batch_size,
                   augment=build_augment(recipe.augment), test_augment=build_augment(recipe.test_augment),
                   normalize=recipe.normalize, data_dir=data_dir, device=device, subset=subset,
                   test_subset=test_subset, seed=seed, download=download,
                   drop_last=drop_last)


_FIT_PARAMS = tuple(p for p in inspect.signature(fit).parameters if p not in ("model", "data"))


def fit_kwargs(recipe: Recipe, **overrides) -> dict:
    """The keyword arguments of ``fit()`` for a recipe (epochs, lr, opt, momentum, nesterov,
    weight_decay, eps, schedule); ``overrides`` replace or add any of fit's keyword arguments."""
    bad = [k for k in overrides if k not in _FIT_PARAMS]
    if bad:
        raise TypeError(f"fit() has no argument(s) {', '.join(bad)}; accepted: {', '.join(_FIT_PARAMS)}")
    kw = dict(epochs=recipe.epochs, lr=recipe.lr, opt=recipe.opt, momentum=recipe.momentum,
              nesterov=recipe.nesterov, weight_decay=recipe.weight_decay, eps=recipe.eps,
              schedule=recipe.schedule)
    kw.update(overrides)
    return kw
