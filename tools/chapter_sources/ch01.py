import os, sys; sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from nbbuild import BOOK, TMP, build

COLAB = '''# Colab or a fresh environment: install normlab once (it uses the torch already installed).
import importlib.util, subprocess, sys
if importlib.util.find_spec("normlab") is None:
    subprocess.run([sys.executable, "-m", "pip", "install", "-q",
                    "normlab @ git+https://github.com/normlab-book/normlab"], check=True)'''

cells = [
("md", r"""
# 1. A fully connected baseline

Lesson 7 of fast.ai's 2018 course {cite}`seed_fastai_lesson7` builds a CIFAR-10 classifier in steps:
a fully connected net, then ConvNets, then a batch-norm layer written by hand, then deeper nets.
Chapters 1 to 4 re-run those steps with the lesson's settings and put the numbers next to the ones
the lesson's notebook and a popular blog post about it reported.

This chapter is the baseline everything else is measured against: a two-layer fully connected
network, `SimpleNet([3072, 40, 10])`, trained exactly as the lesson trained it.

You will see:
- the lesson's data pipeline (and why its padding is not the "black padding" the blog describes),
- how a model that ignores image structure does on CIFAR-10,
- fastai 0.7's two training calls: a constant learning rate, then cosine cycles with restarts.
"""),
("code", COLAB),
("md", r"""
The next cell holds the chapter's parameters. Its defaults are the lesson's full budget; the book's
tests run the notebook with `SMOKE = True`, which keeps 20 training and 10 test images per class
and one epoch per call, so that every chapter runs in seconds.
"""),
("code", '''SMOKE = False           # tiny data and epochs (used by the tests)
EPOCHS = (2, 2)         # the lesson's calls: fit(lr, 2), then fit(lr, 2, cycle_len=1)
LR = 1e-2
BATCH_SIZE = 256
SEED = 0
DEVICE = "auto"         # "auto" picks CUDA, then MPS, then the CPU
DATA_DIR = None         # folder holding cifar-10-batches-py/; None: $NORMLAB_DATA or ~/.cache/normlab/data
RESULTS_DIR = "results" # where this chapter writes its measured results
THREADS = None          # CPU threads (None: torch's default)''', ["parameters"]),
("code", '''import torch
import torch.nn as nn
import torch.nn.functional as F
import matplotlib.pyplot as plt

from normlab import augment, book, data, models, plots, train

device = book.setup(SEED, DEVICE, THREADS)
epochs = (1, 1) if SMOKE else EPOCHS
subset = dict(subset=20, test_subset=10) if SMOKE else {}'''),
("md", r"""
## The data

CIFAR-10 {cite}`krizhevsky2009learning` has 50,000 training and 10,000 test images of 32×32 pixels
in ten classes. The lesson used the **test set as its validation set**, so every "validation
accuracy" it printed is a test accuracy; we do the same, so the numbers compare.

Training images are augmented the way fastai 0.7's `tfms_from_stats(stats, 32, aug_tfms=[RandomFlip()], pad=4)`
did it: pad by 4 pixels, take a random 32×32 crop, flip half of the images horizontally, then
normalize each channel with the training set's mean and standard deviation.
`normlab.data` keeps the whole dataset as one `uint8` tensor on the device and does all of this on
batches of tensors, which is why an epoch here is several times faster than a `DataLoader` over
PIL images (see `benchmarks/`).
"""),
("code", '''dl = data.loaders("cifar10", BATCH_SIZE, augment=augment.seed_augment("fastai"), device=device,
                  data_dir=DATA_DIR, download=True, seed=SEED, **subset)
print(dl.name, "train", len(dl.train.data), "test", len(dl.test.data), "batches/epoch", len(dl.train))
print("mean", [round(m, 4) for m in dl.mean], "std", [round(s, 4) for s in dl.std])
print(augment.seed_augment("fastai"))'''),
("md", r"""
**A quirk of the sources.** The blog post says the images get "4 pixels of black padding". The
fastai 0.7 source pads with `cv2.BORDER_REFLECT`, which mirrors the border *including* the edge
pixel (numpy and torchvision call this `symmetric`). We follow the source. The figure shows one
training image padded both ways before the random crop picks a 32×32 window.
"""),
("code", '''img = dl.train.data.images[:1].cpu()
full = 40  # 32 + 2 * 4: the whole padded image
views = [augment.crop(img, torch.tensor([0]), torch.tensor([0]), full, 4, mode)
         for mode in ("constant", "symmetric")]
fig, axes = plt.subplots(1, 3, figsize=(6.5, 2.4))
for ax, x, title in zip(axes, [img] + views, ["original 32×32", "black padding (blog)", "reflect padding (fastai source)"]):
    ax.imshow(x[0].permute(1, 2, 0).numpy()); ax.set_title(title, fontsize=9); ax.axis("off")
plt.tight_layout(); plt.show()'''),
("code", '''x, y = next(iter(dl.train))
plots.show_images(x[:16], y[:16], dl.classes, mean=dl.mean, std=dl.std, ncols=8,
                  title="A training batch after crop, flip and normalization (shown de-normalized)")
plt.show()'''),
("md", r"""
## The model

The lesson's fully connected net, as written there: flatten the 3×32×32 image to 3,072 numbers,
one hidden layer of 40 units with a ReLU, ten outputs, `log_softmax`.
"""),
("code", '''class SimpleNet(nn.Module):
    def __init__(self, layers):
        super().__init__()
        self.layers = nn.ModuleList([nn.Linear(layers[i], layers[i + 1]) for i in range(len(layers) - 1)])

    def forward(self, x):
        x = x.view(x.size(0), -1)
        for l in self.layers:
            l_x = l(x)
            x = F.relu(l_x)
        return F.log_softmax(l_x, dim=-1)'''),
("md", r"""
Notice the loop: it applies the ReLU after *every* layer, the last one included, and then returns
`log_softmax(l_x)`, the value *before* that last ReLU. The last ReLU is computed and thrown away:
harmless, but a trap for anyone who moves the `return` by one line. `normlab.models.SimpleNet`
skips it. The next cell checks that the two are the same network: same parameters (123,330, as the
lesson's `learn.summary()` reports) and the same outputs for the same weights.
"""),
("code", '''# NBVAL_CHECK_OUTPUT
ours = SimpleNet([3072, 40, 10])
lib = models.SimpleNet((3072, 40, 10))
lib.load_state_dict(ours.state_dict())
print("parameters:", models.count_params(ours), "(library:", models.count_params(lib), ")")
probe = torch.randn(4, 3, 32, 32)
print("same outputs:", torch.equal(ours(probe), lib(probe)))'''),
("md", r"""
## Training as the lesson did

fastai 0.7 trained with SGD and momentum 0.9, no weight decay, the negative log-likelihood of the
`log_softmax` output, batches of 256. The lesson made two calls:

1. `learn.fit(1e-2, 2)`: two epochs at a **constant** learning rate;
2. `learn.fit(1e-2, 2, cycle_len=1)`: two more epochs of **cosine annealing restarted every epoch**
   (SGDR). In fastai 0.7 the first `nb/20` iterations of such a call run at `lr/100` as a warm-up.

Each call creates a fresh optimizer (momentum starts from zero again), and `normlab.train.fit`
does the same. `History.extend` joins the two calls into one history.
"""),
("code", '''torch.manual_seed(SEED)
model = models.SimpleNet()
with book.Timer() as timer:
    history = train.fit(model, dl, epochs[0], LR, schedule="constant", seed=SEED, label="fit(lr, 2)")
    history.extend(train.fit(model, dl, epochs[1], LR, schedule="sgdr", label="fit(lr, 2, cycle_len=1)"))
print(f"trained {len(history)} epochs in {timer.seconds:.1f} s")'''),
("code", '''# NBVAL_CHECK_OUTPUT
print(history.table())'''),
("code", '''fig, axes = plt.subplots(1, 3, figsize=(13, 3.4), constrained_layout=True)
history.plot(axes=axes[:2], label="SimpleNet", smooth=10)
axes[2].plot(history.steps["lr"]); axes[2].set(title="Learning rate per iteration", xlabel="iteration", yscale="log")
plt.show()'''),
("md", r"""
The learning-rate panel shows both calls: flat, then one cosine per epoch with the short warm-up at
`lr/100` at the start of the second call.

## Results beside the lesson's

The table is written to `results/01_fully_connected.json`, which the results chapter reads. The
"reported" column quotes the two sources (they differ: the blog's numbers come from a Kaggle
re-run, not from the lesson's own notebook).
"""),
("code", '''results = book.Results("01_fully_connected", seed="003", smoke=SMOKE)
results.add("simplenet", history.last["test_acc"], timer.seconds, epochs=len(history))
results.save(RESULTS_DIR)
results.show()'''),
("md", r"""
A net that sees each pixel as an unrelated input number gets a bit under half of the test images
right. The training and test accuracies stay close to each other: with only 40 hidden units the
model is too small to overfit in four epochs, so more epochs help little. Chapter 2 keeps the data
and the training recipe and changes only the model.

## What the original did, and what we changed

| the lesson | here | why |
|---|---|---|
| validation set = CIFAR-10 test set | the same | so numbers compare; there is no model selection on it |
| reflect padding (`cv2.BORDER_REFLECT`), blog says black | reflect (`symmetric`) | the source is what ran |
| a ReLU computed on the output layer and discarded | skipped in the library, kept in the inline copy | no effect on results |
| prints a smoothed training loss | prints the epoch's mean training loss | a plain average is easier to read |
| PNG files read by a `DataLoader` on a GPU | tensors on the device, any hardware | same images, same augmentation |

## Exercises

1. Widen the hidden layer to 400 units (`SimpleNet([3072, 400, 10])`). How many parameters does the
   net have now, and what happens to the gap between training and test accuracy?
"""),
("md", r"""
```{admonition} Solution
:class: dropdown

`3072·400 + 400 + 400·10 + 10 = 1,233,210` parameters, ten times as many. Run
`train.fit(models.SimpleNet((3072, 400, 10)), dl, 4, 1e-2)`: test accuracy rises by a few points,
and training accuracy starts to pull ahead of test accuracy: the larger net begins to memorise.
```

2. Train without augmentation (`augment=None` in `data.loaders`). Which accuracy goes up and which
   goes down?

```{admonition} Solution
:class: dropdown

Training accuracy goes up (the images no longer move), test accuracy goes down or stays flat: the
gap between them widens, the signature of overfitting. Augmentation is a regulariser.
```

3. The model ends in `log_softmax` and fastai trained it with `F.nll_loss`; `normlab.train.fit`
   uses `F.cross_entropy`. Why is that the same loss here?

```{admonition} Solution
:class: dropdown

`cross_entropy(z) = nll_loss(log_softmax(z))`, and `log_softmax` is idempotent:
`log_softmax(log_softmax(z)) = log_softmax(z)`, because the log-probabilities already sum (in
probability space) to one. So `cross_entropy` applied to log-probabilities is `nll_loss`.
```

## What next

Chapter 2 replaces the fully connected layers by convolutions with the same number of parameters,
a third of them in fact, and uses the learning-rate finder to pick a learning rate.
"""),
]
build(f"{BOOK}/01_fully_connected.ipynb", cells)
