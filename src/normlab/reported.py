"""Numbers the original experiments reported, each with its source, in one place.

Every number here is quoted, not measured: the chapters and the results chapter print them beside
what this book measured. Provenance: ../shared/reference/seeds-spec.md (tags [SEED] = the seed's
text or blog, [NB] = a stored notebook output or artifact of the original repository).
"""
from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Reported:
    seed: str          # "000".."004"
    experiment: str    # what ran, in the book's words
    metric: str        # e.g. "test accuracy"
    value: float | None  # None where the source states no number
    source: str        # where the number comes from
    note: str = ""


SOURCES = {  # key: (short label for tables, full reference)
    "003-blog": ("blog", "A. K. Panda's blog post on fast.ai lesson 7 (numbers from a Kaggle kernel)"),
    "003-nb": ("lesson notebook", "fastai/fastai courses/dl1/lesson7-cifar10.ipynb @00b2e10, last epoch"),
    "001-plot": ("Comparison.png", "tairtahar/batchnorm results/Comparison.png @3f33b79, read off the plot (+-0.003)"),
    "001-pickle": ("history pickle", "tairtahar/batchnorm temp_data/trainHistoryDict (the lenet_fc_bn2 run)"),
    "002-nb": ("S8 notebook", "swapniel99/erav1s8 S8.ipynb @c203522 (GPU Colab)"),
    "002-readme": ("erav1s8 README", "swapniel99/erav1s8 README.md receptive-field table"),
    "004-readme": ("prog-eval README", "prog-eval convnet README (reference run, 8 Xeon threads)"),
}

# Each seed's name and the data split its numbers are measured on (the book uses the same split).
SEEDS = {
    "003": ("fast.ai lesson 7", "CIFAR-10, 50,000 train / 10,000 test (the test set is the validation set)"),
    "001": ("tairtahar/batchnorm", "MNIST re-split: 51,000 train / 9,000 validation / 10,000 test, padded to 32x32"),
    "000": ("satyaSK/Modulated-ConvNet-CIFAR10", "CIFAR-10, 50,000 / 10,000, 24x24 crops"),
    "002": ("swapniel99/erav1s8", "CIFAR-10, 50,000 train / 10,000 test"),
    "004": ("prog-eval convnet (KaushikRoy94/Work)", "CIFAR-2 (airplane, automobile): 10,000 train / 2,000 test"),
}

REPORTED: list[Reported] = [
    # fast.ai lesson 7 (seed 003): validation = the CIFAR-10 test set
    Reported("003", "simplenet", "test accuracy", 0.4724, "003-blog"),
    Reported("003", "simplenet", "test accuracy", 0.46924, "003-nb"),
    Reported("003", "convnet", "test accuracy", 0.5817, "003-blog"),
    Reported("003", "convnet", "test accuracy", 0.59922, "003-nb"),
    Reported("003", "convnet2", "test accuracy", None, "003-blog", "\"doesn't improve much\" (no number)"),
    Reported("003", "convnet2", "test accuracy", 0.51787, "003-nb"),
    Reported("003", "convbnnet", "test accuracy", 0.7016, "003-blog"),
    Reported("003", "convbnnet", "test accuracy", 0.68135, "003-nb"),
    Reported("003", "convbnnet2", "test accuracy", 0.664, "003-blog", "\"~66.4 %\""),
    Reported("003", "convbnnet2", "test accuracy", 0.64609, "003-nb"),
    # tairtahar (seed 001): TRAIN accuracy after 10 epochs, read off the comparison plot
    Reported("001", "lenet", "train accuracy", 0.967, "001-plot", "final epoch, ~"),
    Reported("001", "lenet_bn1", "train accuracy", 0.972, "001-plot", "final epoch, ~"),
    Reported("001", "lenet_bn2", "train accuracy", 0.978, "001-plot", "final epoch, ~"),
    Reported("001", "lenet_fc_bn1", "train accuracy", 0.989, "001-plot", "final epoch, ~"),
    Reported("001", "lenet_fc_bn2", "train accuracy", 0.991, "001-plot", "final epoch, ~"),
    Reported("001", "lenet_fc_bn2", "validation accuracy", 0.9877, "001-pickle", "epoch 10"),
    # erav1s8 (seed 002): best test accuracy over 20 epochs (= final for BN and LN)
    Reported("002", "batch", "test accuracy", 0.7813, "002-nb", "best = final (epoch 20)"),
    Reported("002", "layer", "test accuracy", 0.7058, "002-nb", "best = final (epoch 20)"),
    Reported("002", "group", "test accuracy", 0.7284, "002-nb", "best (epoch 18); final 72.68 %"),
    Reported("002", "batch", "train accuracy", 0.7522, "002-nb", "best (epoch 19)"),
    Reported("002", "layer", "train accuracy", 0.6860, "002-nb", "best (epoch 19)"),
    Reported("002", "group", "train accuracy", 0.7081, "002-nb", "best (epoch 20)"),
    Reported("002", "receptive field", "pixels", 68, "002-readme", "final layer, jump 28"),
    # prog-eval (seed 004)
    Reported("004", "resnet_spec", "test accuracy", 0.965, "004-readme", "after 5 epochs; pass rule >= 0.95"),
    Reported("004", "resnet_spec", "time (s)", 40.27, "004-readme", "8 CPU threads, Xeon E5-2698 v4; ~5 s on a P100"),
]

# Per-epoch curves the sources published, for plotting beside ours.
CURVES = {
    ("001", "train_acc"): {  # Comparison.png, epochs 1, 2, 3 and 10 (+-0.003); None = below the plot's 0.70
        "epochs": [1, 2, 3, 10],
        "lenet": [None, 0.820, 0.862, 0.967],
        "lenet_bn1": [None, 0.760, 0.878, 0.972],
        "lenet_bn2": [None, 0.862, 0.948, 0.978],
        "lenet_fc_bn1": [0.70, 0.969, 0.977, 0.989],
        "lenet_fc_bn2": [0.844, 0.971, 0.981, 0.991],
    },
    ("001", "lenet_fc_bn2_pickle"): {
        "train_acc": [.8268, .9705, .9814, .9852, .9869, .9886, .9891, .9909, .9912, .9918],
        "val_acc": [.8810, .9808, .9829, .9867, .9860, .9872, .9888, .9866, .9891, .9877],
    },
    ("002", "batch_test_acc"): [53.75, 57.52, 63.78, 67.50, 70.09, 72.35, 72.93, 72.91, 75.59, 76.70,
                                76.65, 76.49, 77.45, 77.51, 77.66, 77.91, 77.75, 77.94, 77.92, 78.13],
    ("002", "lr_reductions"): {  # epochs (1-based) after which ReduceLROnPlateau cut the lr to x0.3
        "group": [7, 10, 13, 19, 20], "layer": [6, 12, 14], "batch": [8, 12, 15, 18]},
    ("004", "test_acc"): [0.878, 0.9445, 0.9525, 0.96, 0.965],
    ("004", "time"): [8.48, 16.88, 25.42, 33.07, 40.27],
    ("003", "convnet_nb_epochs"): [.53418, .56143, .58398, .59922],
    ("003", "convbnnet_nb_epochs"): [.61504, .65215, .67402, .68135],
}


def reported(seed: str, experiment: str | None = None) -> list[Reported]:
    """The reported numbers of a seed (and experiment)."""
    rows = [r for r in REPORTED if r.seed == seed and (experiment is None or r.experiment == experiment)]
    if not rows:
        known = sorted({(r.seed, r.experiment) for r in REPORTED})
        raise ValueError(f"nothing reported for seed {seed!r} experiment {experiment!r}; known: {known}")
    return rows


# Reading precision of each reported number: half a unit of the last digit its source printed, in
# the number's own units ("47.24 %" -> 0.00005; the notebook's 0.46924 -> 0.000005), or the
# reading error of a plot. Scoring (normlab.scoring) treats a gap this small as no gap.
PRECISION = {  # by source
    "003-blog": 0.00005,     # "47.24 %": two decimals of a percentage
    "003-nb": 0.000005,      # 0.46924: five decimals, as fastai 0.7 printed them
    "001-plot": 0.003,       # read off Comparison.png (seeds-spec: +-0.003)
    "001-pickle": 0.00005,   # .9877: four decimals
    "002-nb": 0.00005,       # "78.13": two decimals of a percentage
    "002-readme": 0.5,       # 68: an integer
    "004-readme": 0.0005,    # 0.965: three decimals
}
PRECISION_EXCEPTIONS = {  # (seed, experiment, metric, source): a number printed to other digits
    ("003", "convbnnet2", "test accuracy", "003-blog"): 0.0005,  # "~66.4 %": one decimal
    ("004", "resnet_spec", "time (s)", "004-readme"): 0.005,     # 40.27 s: two decimals
}


def precision(r: Reported) -> float | None:
    """The reading precision of a reported number (None where the source gave no number)."""
    if r.value is None:
        return None
    key = (r.seed, r.experiment, r.metric, r.source)
    if key in PRECISION_EXCEPTIONS:
        return PRECISION_EXCEPTIONS[key]
    if r.source not in PRECISION:
        raise ValueError(f"no reading precision for source {r.source!r}; known: {sorted(PRECISION)}")
    return PRECISION[r.source]
