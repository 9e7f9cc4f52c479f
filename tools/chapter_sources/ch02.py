import json, sys
sys.path.insert(0, __import__("os").path.dirname(__import__("os").path.abspath(__file__)))
from pathlib import Path
from nbbuild import BOOK, TMP, build

DST = f"{BOOK}/02_convnets.ipynb"

COLAB = '''# Colab or a fresh environment: install normlab once (it uses the torch already installed).
import importlib.util, subprocess, sys
if importlib.util.find_spec("normlab") is None:
    subprocess.run([sys.executable, "-m", "pip", "install", "-q",
                    "normlab @ git+https://github.com/normlab-book/normlab"], check=True)'''

cells = [
("md", r"""
# 2. Convolutions

Chapter 1 trained a fully connected net on CIFAR-10 and got a bit under half of the test images
right. Lesson 7 of fast.ai's 2018 course {cite}`seed_fastai_lesson7` then keeps the data and the
training recipe and swaps the model for a small convolutional net, `ConvNet([3, 20, 40, 80], 10)`,
and a variant with padding, `ConvNet2`. This chapter re-runs both with the lesson's settings.

You will see:
- the lesson's ConvNet, checked against `normlab.models`, and what its stride-2 convolutions
  without padding do to a 32×32 image (one row and one column are never looked at),
- the learning-rate finder, `lr_find(end_lr=100)`, how to read its plot, and why running it does
  not change the model,
- both nets trained as the lesson did, compared with each other at the same number of epochs,
  with the lesson's own curve, and with chapter 1's fully connected net.
"""),
("code", COLAB),
("md", r"""
The next cell holds the chapter's parameters. Its defaults are the lesson's full budget; the book's
tests run the notebook with `SMOKE = True`, which keeps 20 training and 10 test images per class,
one epoch per call and a 20-batch learning-rate finder, so that the chapter runs in seconds.
"""),
("code", '''SMOKE = False           # tiny data and epochs (used by the tests)
EPOCHS = (2, 4)         # ConvNet, as the lesson: fit(lr, 2), then fit(lr, 4, cycle_len=1)
EPOCHS2 = (2, 2)        # ConvNet2, as the lesson: fit(lr, 2), then fit(lr, 2, cycle_len=1)
LR = 1e-1               # the lesson's choice after looking at the learning-rate finder
END_LR = 100            # lr_find(end_lr=100)
LR_FIND_ITERS = None    # batches of the lr ramp; None: one epoch, as fastai 0.7
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
import numpy as np
from matplotlib.colors import ListedColormap

from normlab import augment, book, data, lr_finder, models, plots, reported, train

device = book.setup(SEED, DEVICE, THREADS)
epochs = (1, 1) if SMOKE else EPOCHS
epochs2 = (1, 1) if SMOKE else EPOCHS2
lr_find_iters = 20 if SMOKE else LR_FIND_ITERS
subset = dict(subset=20, test_subset=10) if SMOKE else {}'''),
("md", r"""
## The data

The same pipeline as in chapter 1: the 50,000 CIFAR-10 training images {cite}`krizhevsky2009learning`,
padded by 4 pixels (reflect), randomly cropped back to 32×32 and flipped; the 10,000 test images
serve as the lesson's validation set, so every accuracy below is a test accuracy.
"""),
("code", '''dl = data.loaders("cifar10", BATCH_SIZE, augment=augment.seed_augment("fastai"), device=device,
                  data_dir=DATA_DIR, download=True, seed=SEED, **subset)
print(dl.name, "train", len(dl.train.data), "test", len(dl.test.data), "batches/epoch", len(dl.train))'''),
("md", r"""
## The models

The lesson's ConvNet, as written there: three 3×3 convolutions with stride 2 and **no padding**,
each followed by a ReLU; a max pool over whatever spatial grid is left (`AdaptiveMaxPool2d(1)`),
so each of the 80 channels contributes its largest value anywhere in the image; a linear layer
to the ten classes; `log_softmax`.
"""),
("code", '''class ConvNet(nn.Module):
    def __init__(self, layers, c):
        super().__init__()
        self.layers = nn.ModuleList([
            nn.Conv2d(layers[i], layers[i + 1], kernel_size=3, stride=2)
            for i in range(len(layers) - 1)])
        self.pool = nn.AdaptiveMaxPool2d(1)
        self.out = nn.Linear(layers[-1], c)

    def forward(self, x):
        for l in self.layers: x = F.relu(l(x))
        x = self.pool(x)
        x = x.view(x.size(0), -1)
        return F.log_softmax(self.out(x), dim=-1)'''),
("md", r"""
A few cells later the lesson "refactors" it into `ConvNet2`: the convolution and its ReLU move into
a `ConvLayer` module, and the convolution gets `padding=1`. The pool becomes the functional
`F.adaptive_max_pool2d`, which computes the same thing.
"""),
("code", '''class ConvLayer(nn.Module):
    def __init__(self, ni, nf):
        super().__init__()
        self.conv = nn.Conv2d(ni, nf, kernel_size=3, stride=2, padding=1)

    def forward(self, x): return F.relu(self.conv(x))


class ConvNet2(nn.Module):
    def __init__(self, layers, c):
        super().__init__()
        self.layers = nn.ModuleList([ConvLayer(layers[i], layers[i + 1])
            for i in range(len(layers) - 1)])
        self.out = nn.Linear(layers[-1], c)

    def forward(self, x):
        for l in self.layers: x = l(x)
        x = F.adaptive_max_pool2d(x, 1)
        x = x.view(x.size(0), -1)
        return F.log_softmax(self.out(x), dim=-1)'''),
("md", r"""
The next cell checks that these are the networks of `normlab.models`: the same parameters per layer
and in total (37,490 for both, as the lesson's `learn.summary()` reports), and the same outputs
once the library model is given the inline model's weights. `ConvNet2`'s weights live one level
deeper (`layers.0.conv.weight` instead of `layers.0.weight`), so its keys are renamed on the way.
"""),
("code", '''# NBVAL_CHECK_OUTPUT
ours, lib = ConvNet([3, 20, 40, 80], 10), models.ConvNet((3, 20, 40, 80), 10)
ours2, lib2 = ConvNet2([3, 20, 40, 80], 10), models.ConvNet2((3, 20, 40, 80), 10)
lib.load_state_dict(ours.state_dict())
lib2.load_state_dict({k.replace(".conv.", "."): v for k, v in ours2.state_dict().items()})
probe = torch.randn(4, 3, 32, 32)
for name, a, b in (("ConvNet", ours, lib), ("ConvNet2", ours2, lib2)):
    per_layer = [models.count_params(l) for l in a.layers] + [models.count_params(a.out)]
    print(f"{name:8}  parameters {models.count_params(a):,} (library {models.count_params(b):,}), "
          f"per layer {per_layer}, same outputs: {torch.equal(a(probe), b(probe))}")'''),
("md", r"""
Three quarters of the parameters sit in the last convolution (40 input channels × 9 positions × 80
filters), and none of them depends on the image size: a 3×3 filter is the same few numbers
wherever it is applied. That is where the savings over chapter 1's net come from, whose first layer
alone has a separate weight for every one of the 3,072 input numbers and each of its 40 units.

### What stride 2 without padding does to a 32×32 image

A 3×3 window moved in steps of 2 over `n` pixels fits `(n - 3) // 2 + 1` times. The cell runs a
blank image through the layers and prints the shapes it gets:
"""),
("code", '''# NBVAL_CHECK_OUTPUT
def feature_sizes(model, size=32):
    """Shapes (channels, height, width) after each conv layer, from a probe image."""
    x = torch.zeros(1, 3, size, size)
    shapes = [tuple(x.shape[1:])]
    with torch.no_grad():
        for layer in model.layers:
            x = layer(x)
            shapes.append(tuple(x.shape[1:]))
    return shapes

for name, m in (("ConvNet", ours), ("ConvNet2", ours2)):
    print(f"{name:8}", " -> ".join(f"{c}x{h}x{w}" for c, h, w in feature_sizes(m)))'''),
("md", r"""
32 is even, so the windows of the first layer, which start at pixels 0, 2, …, 28, end at pixel 30:
the last row and the last column are never read. The next cell finds those pixels without any
arithmetic: it replaces every filter by ones, drops the ReLUs, and asks autograd how strongly each
input pixel reaches the outputs (the number of paths from the pixel to them). Zero means never seen.
"""),
("code", '''# NBVAL_CHECK_OUTPUT
def coverage(model, n_layers, size=32):
    """Paths from each input pixel to the outputs of the first n_layers convs (filters of ones)."""
    x = torch.ones(1, 1, size, size, requires_grad=True)
    h = x
    for layer in list(model.layers)[:n_layers]:
        conv = getattr(layer, "conv", layer)  # ConvNet2 wraps its convs in a ConvLayer
        h = F.conv2d(h, torch.ones(1, 1, *conv.kernel_size), stride=conv.stride, padding=conv.padding)
    grad, = torch.autograd.grad(h.sum(), x)
    return grad[0, 0]

for name, m in (("ConvNet", lib), ("ConvNet2", lib2)):
    for n_layers in (1, 3):
        unseen = coverage(m, n_layers) == 0
        rows = torch.where(unseen.all(1))[0].tolist()
        cols = torch.where(unseen.all(0))[0].tolist()
        print(f"{name:8} first {n_layers} conv(s): {int(unseen.sum())} of {unseen.numel()} pixels never read "
              f"(rows {rows}, columns {cols})")'''),
("code", '''fig, axes = plt.subplots(1, 4, figsize=(13, 3.4), constrained_layout=True)
panels = [(lib, 1, "ConvNet, first conv"), (lib, 3, "ConvNet, all three convs"),
          (lib2, 1, "ConvNet2, first conv"), (lib2, 3, "ConvNet2, all three convs")]
for ax, (m, n_layers, title) in zip(axes, panels):
    c = coverage(m, n_layers).numpy()
    im = ax.imshow(np.ma.masked_equal(c, 0), cmap="viridis", vmin=0)
    ax.imshow(np.ma.masked_not_equal(c, 0), cmap=ListedColormap(["red"]))
    ax.set_title(title, fontsize=10)
    ax.set_xticks([0, 15, 31]); ax.set_yticks([0, 15, 31])
    fig.colorbar(im, ax=ax, shrink=0.8)
fig.suptitle("How many paths lead from each input pixel to the conv outputs (red: none, never read)")
plt.show()'''),
("md", r"""
The red strip is the row and the column that `ConvNet` never sees: 63 of the 1,024 pixels of every
image. The deeper layers lose nothing more (15 and 7 are odd, so their windows fit exactly), and
the global max pool looks at all 3×3 positions that are left, so the loss is exactly that strip.
With `padding=1` the windows start one pixel outside the image and every pixel is read. Both maps
also show that a stack of stride-2 3×3 convolutions does not read all pixels equally often: the
windows overlap on every other row and column, which gives the checkerboard.

The random crops of the augmentation move the image by up to 4 pixels, so over many epochs every
part of a training image lands in the seen area at some point; a test image is never shifted, and
its last row and column play no part in its prediction.

## The learning-rate finder

Before training, the lesson ran `learn.lr_find(end_lr=100)` and looked at `learn.sched.plot()`.
The finder (Leslie Smith's "learning-rate range test", as fastai 0.7 implemented it) trains on
mini-batches while the learning rate grows exponentially, here from `1e-5` to `end_lr=100` over
one epoch (196 batches), and records the training loss after each batch, smoothed with an
exponential moving average. It stops as soon as the smoothed loss exceeds four times the best value
so far: past that point the weights are being destroyed. Then it **puts the weights back**, so the
finder is a measurement, not a training step. `normlab.lr_finder.lr_find` does the same and also
rewinds the training batches' random stream; the second cell below checks both, with a hash of the
weights and the state of the batches' random generator.
"""),
("code", '''torch.manual_seed(SEED)
model = models.ConvNet()
before = train.state_hash(model)
order_before = dl.train.state_dict()["generator"].clone()
with book.Timer() as t_find:
    lrf = lr_finder.lr_find(model, dl, end_lr=END_LR, num_it=lr_find_iters)
print(f"ran {len(lrf.lrs)} of {lr_find_iters or len(dl.train)} batches in {t_find.seconds:.1f} s; "
      f"stopped early: {lrf.stopped_early}")
print(f"lr reached {lrf.lrs[-1]:.3g}; lowest smoothed loss {min(lrf.losses):.3f} at lr {lrf.min_loss_lr():.3g}; "
      f"steepest descent at lr {lrf.suggestion():.3g}")'''),
("code", '''# NBVAL_CHECK_OUTPUT
after = train.state_hash(model)
print("weights before lr_find:", before)
print("weights after lr_find: ", after)
print("weights restored:", before == after,
      "| batch order restored:", torch.equal(order_before, dl.train.state_dict()["generator"]))'''),
("code", '''fig, ax = plt.subplots(figsize=(6.5, 3.8), constrained_layout=True)
lrf.plot(ax=ax)  # fastai's sched.plot(): skips the first 10 and the last 5 points
ax.axvline(LR, color="C3", ls="--", lw=1, label=f"the lesson's choice, lr = {LR:g}")
ax.plot([lrf.min_loss_lr()], [min(lrf.losses)], "o", color="C2", label="lowest smoothed loss")
steep = lrf.suggestion()
ax.plot([steep], [lrf.losses[lrf.lrs.index(steep)]], "v", color="C1", label="steepest descent")
ax.legend(fontsize=8)
ax.set_title("LR finder for ConvNet: lr_find(end_lr=100)")
plt.show()'''),
("md", r"""
**How to read it.** The learning rate grows from left to right. Up to about `1e-3` the steps are
too small to change anything, and the curve stays at the loss of a net that guesses (ln 10 ≈ 2.30).
Then the loss starts to fall, faster and faster, reaches a lowest point and turns up: the steps
have become so large that they overshoot. A few batches later the loss explodes and the finder
stops; the plot leaves out the last five points, as fastai's did, so the explosion is off the
chart. Mind the vertical scale: over this one epoch the loss moves by a few hundredths only. The
finder does not say how low the loss can go, only at which learning rate it falls fastest.

The number to pick is *not* the lowest point: there the loss is about to blow up, and in real
training the weights would sit at that edge for whole epochs. It is a rate on the steep downward
slope, where every step still makes clear progress; a common rule of thumb is about ten times
below the minimum.

In this run the finder stopped after 139 of the 196 batches, with the lowest smoothed loss at a
learning rate of about 0.17 and the steepest descent at about 0.15 (printed above). The lesson's
notebook stopped at almost the same batch: its progress bar reads 138/196. The lesson chose
**`1e-1`**, on the steepest stretch of the curve just below the minimum: bolder than the rule of
thumb, and, as the training below shows, a rate this small net takes without trouble. We use the
lesson's value, `LR = 0.1`, for both nets; the lesson did not run the finder again for `ConvNet2`.

## Training ConvNet as the lesson did

The same two calls as in chapter 1, with the new learning rate and a longer second call:

1. `learn.fit(1e-1, 2)`: two epochs at a constant learning rate;
2. `learn.fit(1e-1, 4, cycle_len=1)`: four epochs of SGDR, a cosine from `1e-1` down to almost
   zero that restarts every epoch, after a short warm-up at `1e-3` at the start of the call.

SGD with momentum 0.9, no weight decay, batches of 256; each call starts a fresh optimizer.
The model is the one the finder measured, with its weights unchanged.
"""),
("code", '''with book.Timer() as timer:
    history = train.fit(model, dl, epochs[0], LR, schedule="constant", seed=SEED, label="fit(1e-1, 2)")
    history.extend(train.fit(model, dl, epochs[1], LR, schedule="sgdr", label="fit(1e-1, 4, cycle_len=1)"))
print(f"trained {len(history)} epochs in {timer.seconds:.1f} s")'''),
("code", '''# NBVAL_CHECK_OUTPUT
print(history.table())'''),
("code", '''fig, axes = plt.subplots(1, 3, figsize=(13, 3.4), constrained_layout=True)
history.plot(axes=axes[:2], label="ConvNet", smooth=10)
axes[2].plot(history.steps["lr"])
axes[2].set(title="Learning rate per iteration", xlabel="iteration", yscale="log")
plt.show()'''),
("md", r"""
Each restart of the cosine puts the learning rate back to `1e-1`, and the training loss jumps up
for a while; as the rate anneals towards zero within the epoch, the loss falls below where it
was, and the test accuracy rises at every epoch of the second call, still climbing at the end.
The test loss stays below the training loss throughout: the training loss is an average over an
epoch in which the weights were still changing, on augmented images, while the test loss is
measured at the end of the epoch on plain ones. Nothing here looks like overfitting; the net
would profit from more epochs.

## Training ConvNet2 as the lesson did

`ConvNet2` got a shorter second call in the lesson: `fit(1e-1, 2)`, then `fit(1e-1, 2, cycle_len=1)`,
four epochs in all against `ConvNet`'s six. Because each cycle lasts one epoch and the warm-up only
happens at the start of a call, `ConvNet2`'s four epochs follow exactly the same learning-rate
schedule as `ConvNet`'s first four: the two nets can be compared epoch by epoch.
"""),
("code", '''torch.manual_seed(SEED)
model2 = models.ConvNet2()
with book.Timer() as timer2:
    history2 = train.fit(model2, dl, epochs2[0], LR, schedule="constant", seed=SEED, label="fit(1e-1, 2)")
    history2.extend(train.fit(model2, dl, epochs2[1], LR, schedule="sgdr", label="fit(1e-1, 2, cycle_len=1)"))
print(f"trained {len(history2)} epochs in {timer2.seconds:.1f} s")'''),
("code", '''# NBVAL_CHECK_OUTPUT
print(history2.table())'''),
("md", r"""
## The two nets side by side

The left panel shows both test-accuracy curves, the lesson notebook's accuracies for `ConvNet`'s
cycle call (its epochs 3 to 6, the call came after two constant epochs) and `ConvNet2`'s final one,
and chapter 1's fully connected net for reference (read from `results/01_fully_connected.json`).
The right panel shows the mean training loss of each epoch; the grey line marks the end of the
constant-rate call.
"""),
("code", '''lesson_convnet = reported.CURVES[("003", "convnet_nb_epochs")]   # the lesson's epochs 3..6
lesson_convnet2 = next(r.value for r in reported.reported("003", "convnet2") if r.source == "003-nb")
ch01 = next((row for res in book.load_results("results") if res.chapter == "01_fully_connected"
             for row in res.rows if row.experiment == "simplenet"), None)

fig, axes = plt.subplots(1, 2, figsize=(12, 3.8), constrained_layout=True)
plots.compare_histories({"ConvNet": history, "ConvNet2": history2}, "test_acc", ax=axes[0],
                        reported={"ConvNet": ([3, 4, 5, 6], lesson_convnet),
                                  "ConvNet2": ([sum(EPOCHS2)], [lesson_convnet2])})
if ch01 is not None:
    axes[0].axhline(ch01.measured, color="0.5", ls=":", label=f"SimpleNet, chapter 1 ({ch01.epochs} epochs)")
    axes[0].legend(fontsize=8)
axes[0].set_title("Test accuracy (x: the lesson's notebook)")
plots.compare_histories({"ConvNet": history, "ConvNet2": history2}, "train_loss", ax=axes[1])
axes[1].set_title("Training loss (mean over each epoch)")
for ax in axes:
    ax.axvline(epochs[0] + 0.5, color="0.7", lw=0.8)  # end of the constant-lr call
    ax.xaxis.set_major_locator(plt.MaxNLocator(integer=True))
plt.show()'''),
("md", r"""
### Padding: "doesn't improve much"

The blog post says `ConvNet2`'s padding "doesn't improve much" and gives no number. The lesson's
notebook shows `ConvNet2` clearly *lower* at the end, but its final number comes after four epochs
and `ConvNet`'s after six, so the two finals do not compare. The fair comparison is at the same
epoch, where both nets have had the same schedule. The cell prints it for this run and for the
lesson's notebook, which has both nets at epoch 4:
"""),
("code", '''n = min(len(history), len(history2))
print("epoch   ConvNet  ConvNet2  difference")
for e in range(n):
    a, b = history["test_acc"][e], history2["test_acc"][e]
    print(f"{e + 1:5}   {a:.4f}    {b:.4f}    {b - a:+.4f}")
print(f"lesson notebook, epoch 4: ConvNet {lesson_convnet[1]:.4f}, ConvNet2 {lesson_convnet2:.4f} "
      f"({lesson_convnet2 - lesson_convnet[1]:+.4f})")'''),
("md", r"""
In this run the two nets are level at equal epochs: after four epochs they are within a fraction
of a point of each other; `ConvNet2` is ahead after the first two epochs, `ConvNet` after the next
two. The gap between the finals in the results table below comes from the two extra epochs
`ConvNet` got, not from the padding, and the blog's "doesn't improve much" fits. The lesson's notebook has `ConvNet2` several
points lower at epoch 4 too; with a single run per net, neither source can tell a difference of a
few points from chance. What this run does show is that reading the 63 missing pixels buys no
measurable accuracy. That is not surprising: they are the outermost row and column, where the
object rarely is, and the random crops shift training images by up to 4 pixels anyway.

## Results beside the lesson's

The table is written to `results/02_convnets.json`, which the results chapter reads. Times are the
two fit calls of each net (the learning-rate finder not included). The reported column quotes the
blog (a Kaggle re-run) and the lesson's notebook, each at the end of its own budget.
"""),
("code", '''results = book.Results("02_convnets", seed="003", smoke=SMOKE)
results.add("convnet", history.last["test_acc"], timer.seconds, epochs=len(history))
results.add("convnet2", history2.last["test_acc"], timer2.seconds, epochs=len(history2))
results.save(RESULTS_DIR)
results.show()'''),
("md", r"""
`ConvNet` ends between the two reported numbers, and its curve follows the lesson notebook's
within about a point at each of epochs 3 to 6 (the figure above). `ConvNet2` ends several points
above the lesson notebook's number. The times are those of this run on a shared 2-core machine, and
vary with what else runs on it.

### Fewer parameters, better accuracy

Chapter 1's `SimpleNet` has more than three times as many parameters as the ConvNet. The cell puts
the three nets next to each other (chapter 1's number is read from its results file; it is missing
if that chapter has not been run here):
"""),
("code", '''rows = [("SimpleNet (chapter 1)", models.count_params(models.SimpleNet()),
         ch01.epochs if ch01 else None, ch01.measured if ch01 else None),
        ("ConvNet", models.count_params(model), 4, history["test_acc"][3] if len(history) >= 4 else None),
        ("ConvNet", models.count_params(model), len(history), history.last["test_acc"]),
        ("ConvNet2", models.count_params(model2), len(history2), history2.last["test_acc"])]
print(f"{'model':22} {'parameters':>10} {'epochs':>6} {'test accuracy':>14}")
for name, params, n_ep, acc in rows:
    if acc is not None:
        print(f"{name:22} {params:>10,} {n_ep:>6} {acc:>14.4f}")
if ch01 is None:
    print("(chapter 1's results/01_fully_connected.json not found: run chapter 1 to compare)")'''),
("md", r"""
After four epochs with the same kind of schedule (two constant, then one-epoch cosine cycles,
each net at the learning rate the lesson chose for it), the ConvNet is about nine points ahead of
`SimpleNet` with under a third of its parameters, and more than eleven points ahead after its six
epochs.
A 3×3 filter is the same detector at every position, and the max pool at the end reports whether
it fired anywhere: the net learns "an edge like this" once, where `SimpleNet` has to learn it
separately for every place in the image it could appear. The parameters go into more kinds of
features instead of more positions.

## What the original did, and what we changed

| the lesson | here | why |
|---|---|---|
| stride-2 convs without padding: 32 → 15 → 7 → 3, the last row and column never read | the same in `ConvNet`; `ConvNet2` pads by 1 | it is the lesson's model; the strip is shown above |
| `ConvNet2` trained for 2 + 2 epochs, `ConvNet` for 2 + 4 | the same | so the finals compare with the lesson's; the nets are also compared at equal epochs |
| blog: `ConvNet2` "doesn't improve much" (no number); notebook: lower than `ConvNet` | both quoted | they are different runs (the blog's is a Kaggle re-run) |
| global **max** pool at the end (`AdaptiveMaxPool2d(1)`; `F.adaptive_max_pool2d` in `ConvNet2`) | the same (the module in both) | identical computation |
| `lr_find` run once, for `ConvNet`; `1e-1` reused for `ConvNet2` | the same | the lesson's choice |
| learning rate picked by eye from `sched.plot()` | the lesson's value, with the plot reproduced | the finder only uses training loss, so the test set plays no part in the choice |
| validation set = CIFAR-10 test set | the same | so numbers compare; there is no model selection on it |
| `ConvNet2`'s weights under `layers.i.conv` | `layers.i` in `normlab.models.ConvNet2` | same parameters, keys renamed in the check above |

## Exercises

1. `ConvNet` never reads the last row and column of a 32×32 image. For which image sizes does a
   stack of three stride-2, 3×3 convolutions without padding read every pixel, at every layer?
   Check your answer with `feature_sizes` and `coverage` above.
"""),
("md", r"""
```{admonition} Solution
:class: dropdown

A layer reads all of its `n` inputs when its last window ends on the last pixel: `n - 3` must be
even, so `n` must be odd. It then outputs `(n - 1) / 2` values, which must be odd again for the
second layer, and that layer's output `(n - 3) / 4` odd for the third: `n = 8k - 1`, with `n ≥ 15` so
that the third layer still gets 3 inputs. So 15, 23, 31, 39, …: `31 → 15 → 7 → 3` reads every pixel,
and 32 is exactly one pixel too many. `(coverage(lib, 3, size=31) == 0).sum()` is 0.
```

2. Padding does not change the number of parameters, but it changes the amount of work. Count the
   multiply-adds of each conv layer of `ConvNet` and `ConvNet2` for one image (output positions ×
   output channels × input channels × 9), and compare them with `SimpleNet`'s.

```{admonition} Solution
:class: dropdown

`ConvNet`: 15·15·20·27 = 121,500; 7·7·40·180 = 352,800; 3·3·80·360 = 259,200; plus 800 for the
linear layer: 734,300 in all. `ConvNet2`: 16·16·20·27 = 138,240; 8·8·40·180 = 460,800;
4·4·80·360 = 460,800; plus 800: 1,060,640, about 1.44 times as much. `SimpleNet`: 3,072·40 + 40·10 =
123,280, the same as its weight count. The ConvNet has fewer parameters but does six times more
arithmetic, because every filter is reused at every position. In code, with a forward hook on
each convolution:

    macs = []
    hooks = [m.register_forward_hook(lambda m, i, o: macs.append(o.numel() * m.in_channels * 9))
             for m in lib2.modules() if isinstance(m, nn.Conv2d)]
    lib2(torch.zeros(1, 3, 32, 32))
    for h in hooks: h.remove()
    print(macs, sum(macs) + 80 * 10)
```

3. The finder put the weights back. What else must it put back so that the training that follows
   is exactly the training you would have got without running it, and which of these does
   `lr_finder.lr_find` handle?

```{admonition} Solution
:class: dropdown

Everything that the next `fit` reads: the weights *and buffers* (the state dict: for
`nn.BatchNorm2d` that includes the running statistics, and chapter 3's hand-written layer keeps
its statistics in buffers too), the optimizer state (the finder makes its own SGD optimizer and
throws it away; `fit` starts a fresh one, as fastai 0.7 did), and the random streams that the finder consumed: the shuffling and augmentation generator of the
training batches. `lr_find` restores the state dict and the batches' generator, and `fit(seed=...)`
reseeds everything anyway. The hashes above show the weights; `torch.equal` on the generator state
shows the batch order.
```

## What next

Chapter 3 adds the lesson's batch normalization, written from scratch as a `BnLayer`
(convolution, ReLU, then normalization, with the lesson's quirks: an unbiased standard deviation,
no ε, and evaluation with the statistics of the last training batch), and trains `ConvBnNet`, a
deeper net that starts with a 5×5 convolution, with the same two kinds of fit calls.
"""),
]


def merge_outputs(path, new_nb_path):
    """Carry outputs over from an existing rendered notebook for code cells whose source is unchanged."""
    import nbformat
    old = nbformat.read(path, as_version=4) if Path(path).exists() else None
    nb = nbformat.read(new_nb_path, as_version=4)
    if old is None:
        return nb
    by_src = {}
    for c in old.cells:
        if c.cell_type == "code" and "injected-parameters" not in c.metadata.get("tags", []):
            by_src.setdefault(c.source, c)
    missing = []
    for c in nb.cells:
        if c.cell_type == "code":
            o = by_src.get(c.source)
            if o is None:
                missing.append(c.source[:60])
            else:
                c.outputs, c.execution_count = o.outputs, o.execution_count
    # keep the injected parameters cell and the notebook metadata of the render
    inj = [c for c in old.cells if "injected-parameters" in c.metadata.get("tags", [])]
    if inj:
        idx = next(i for i, c in enumerate(nb.cells) if "parameters" in c.metadata.get("tags", []))
        nb.cells.insert(idx + 1, inj[0])
    nb.metadata = old.metadata
    return nb, missing


if __name__ == "__main__":
    texts = {}
    if len(sys.argv) > 1 and sys.argv[1] == "--merge":
        import nbformat
        build(f"{TMP}/ch02_new.ipynb", cells)
        nb, missing = merge_outputs(DST, f"{TMP}/ch02_new.ipynb")
        if missing:
            raise SystemExit(f"code cells changed, render again: {missing}")
        Path(DST).write_text(json.dumps(json.loads(nbformat.writes(nb)), indent=1, ensure_ascii=False) + "\n")
        print("merged prose into the rendered notebook")
    else:
        build(DST, cells)
