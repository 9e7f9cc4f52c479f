import os, sys; sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from nbbuild import BOOK, TMP, build

COLAB = '''# Colab or a fresh environment: install normlab once (it uses the torch already installed).
import importlib.util, subprocess, sys
if importlib.util.find_spec("normlab") is None:
    subprocess.run([sys.executable, "-m", "pip", "install", "-q",
                    "normlab @ git+https://github.com/normlab-book/normlab"], check=True)'''

cells = [
("md", r"""
# 4. Deeper is not better (yet)

The last network of lesson 7's batch-norm part {cite}`seed_fastai_lesson7` is `ConvBnNet2`: chapter
3's `ConvBnNet` with a second, stride-1 `BnLayer` after each stride-2 one. Twice as many
normalized convolutions, three times the parameters, and a worse result: 64.6 % in the lesson's
notebook and about 66.4 % in the blog post, against 68.1 % and 70.2 % for `ConvBnNet`.

This chapter trains `ConvBnNet2` as the lesson did and then asks *why*. To look inside, it adds a
small tool to the library, `normlab.activations`, which records per-layer statistics of the
activations and gradients during training (after fastai's `ActivationStats` in its 2022 course).
Then it runs the experiment the lesson did not: both networks with the *same* training schedule.

You will see:
- `ConvBnNet2` trained as in the lesson, beside the lesson's and the blog's numbers;
- the means, standard deviations, dead units and gradient sizes of every layer over training;
- that the lesson compared two nets trained with different learning rates and numbers of epochs;
- why stacking more plain layers gets harder with depth, which leads to residual connections
  {cite}`he2016deep`.
"""),
("code", COLAB),
("md", r"""
The next cell holds the chapter's parameters. Its defaults are the lesson's full budget plus this
chapter's ablation; the book's tests run the notebook with `SMOKE = True` (20 training and 10 test
images per class, one epoch per call).
"""),
("code", '''SMOKE = False           # tiny data and epochs (used by the tests)
EPOCHS = (2, 2)         # the lesson's calls for ConvBnNet2: fit(1e-2, 2), then fit(1e-2, 2, cycle_len=1)
LR = (1e-2, 1e-2)       # learning rate of each call
BATCH_SIZE = 256
SEED = 0
DEVICE = "auto"         # "auto" picks CUDA, then MPS, then the CPU
DATA_DIR = None         # folder holding cifar-10-batches-py/; None: $NORMLAB_DATA or ~/.cache/normlab/data
RESULTS_DIR = "results" # where this chapter writes its results (and finds chapter 3's)
THREADS = None          # CPU threads (None: torch's default)
ABLATION = True         # train each net with the other's schedule too (this book's experiment)
CBN_EPOCHS = (2, 4)     # ConvBnNet's schedule in the lesson: fit(3e-2, 2), then fit(1e-1, 4, cycle_len=1)
CBN_LR = (3e-2, 1e-1)
STATS_EVERY = 4         # record the activation statistics every this many training steps
DEPTHS = (0, 1, 2, 4, 8, 16)  # extra stride-1 BnLayers per stage for the gradient check at initialization
DEEP_EXTRA = 4          # also train a net with this many extra stride-1 BnLayers per stage (0: skip)''', ["parameters"]),
("code", '''import torch
import torch.nn as nn
import torch.nn.functional as F
import matplotlib.pyplot as plt

from normlab import activations, augment, book, data, models, norms, plots, train

device = book.setup(SEED, DEVICE, THREADS)
epochs = (1, 1) if SMOKE else EPOCHS
cbn_epochs = (1, 1) if SMOKE else CBN_EPOCHS
every = 1 if SMOKE else STATS_EVERY
subset = dict(subset=20, test_subset=10) if SMOKE else {}
dl = data.loaders("cifar10", BATCH_SIZE, augment=augment.seed_augment("fastai"), device=device,
                  data_dir=DATA_DIR, download=True, seed=SEED, **subset)
print(dl.name, "train", len(dl.train.data), "test", len(dl.test.data), "batches/epoch", len(dl.train))'''),
("md", r"""
Data, augmentation and the training recipe (SGD with momentum 0.9, batches of 256, fastai 0.7's
constant and SGDR calls) are those of chapters 1 to 3.

## The model

`ConvBnNet2` in the lesson's words. `BnLayer` is chapter 3's layer exactly as the lesson wrote it
(conv without bias → ReLU → normalize with the batch's mean and unbiased standard deviation, no
epsilon, evaluation with the last training batch's statistics); the library keeps it as
`normlab.norms.BnLayer`.
"""),
("code", '''from normlab.norms import BnLayer

class ConvBnNet2(nn.Module):
    def __init__(self, layers, c):
        super().__init__()
        self.conv1 = nn.Conv2d(3, 10, kernel_size=5, stride=1, padding=2)
        self.layers = nn.ModuleList([BnLayer(layers[i], layers[i + 1])
                                     for i in range(len(layers) - 1)])
        self.layers2 = nn.ModuleList([BnLayer(layers[i + 1], layers[i + 1], 1)
                                      for i in range(len(layers) - 1)])
        self.out = nn.Linear(layers[-1], c)

    def forward(self, x):
        x = self.conv1(x)
        for l, l2 in zip(self.layers, self.layers2):
            x = l(x)
            x = l2(x)
        x = F.adaptive_max_pool2d(x, 1)
        x = x.view(x.size(0), -1)
        return F.log_softmax(self.out(x), dim=-1)'''),
("md", r"""
Eight `BnLayer`s instead of four: the image still shrinks 32 → 16 → 8 → 4 → 2, and each size now
gets two 3×3 convolutions. The lesson's `learn.summary()` showed 461,370 parameters; as in chapter 3
it missed the `a` and `m` of every `BnLayer`, here 2 × 2 × (20 + 40 + 80 + 160) = 1,200 of them.
"""),
("code", '''# NBVAL_CHECK_OUTPUT
def fastai07_summary_count(model):
    """What fastai 0.7's learn.summary() added up: the `weight` and `bias` of every module."""
    return sum(getattr(m, k).numel() for m in model.modules() for k in ("weight", "bias")
               if isinstance(getattr(m, k, None), torch.Tensor))

torch.manual_seed(0)
ours = ConvBnNet2([10, 20, 40, 80, 160], 10)
lib = models.ConvBnNet2((10, 20, 40, 80, 160), 10)
lib.load_state_dict(ours.state_dict())
print("parameters:", models.count_params(ours), "(library:", models.count_params(lib), ")")
print("counted as fastai 0.7's summary did:", fastai07_summary_count(ours))
print("ConvBnNet for comparison:", models.count_params(models.ConvBnNet()))
probe = torch.randn(16, 3, 32, 32)
print("same outputs in training mode:", torch.allclose(ours(probe), lib(probe), atol=1e-5))'''),
("md", r"""
## Looking inside: activation statistics

A forward hook is a function PyTorch calls with a module's input and output every time the module
runs. `normlab.activations.ActivationStats` registers one on each layer we name, and every
`every` training steps it reduces that layer's output to a few numbers:

- the **mean** and the **standard deviation** of all its values,
- the **dead fraction**: the share of values below a threshold (for a ReLU output: exact zeros),
- a **histogram** of the absolute values (40 bins from 0 to 10),
- the norm of the **gradient** of the layer's parameters after the backward pass, and the norm of
  the parameters themselves.

It is a callback of `train.fit`: the hooks are registered when training starts and removed when it
ends, and evaluation passes are not recorded. The plots are those of fastai's course: `plot_stats`
(means and standard deviations over training), `color_dim` (the histograms as an image, one column
per recorded step) and `dead_chart`; `plot_grad_norms` adds the gradients.

In a `BnLayer` two places are worth watching, so each run gets two recorders:

- **the ReLU output** (what the layer normalizes): hooked on the layer's convolution with
  `fn=lambda m, i, o: o.relu()`. Its dead fraction is the share of inactive units; its gradient
  norm is the convolution's.
- **the layer's output** (what the next layer receives): its mean and standard deviation follow the
  learned shift `a` and scale `m`.
"""),
("code", '''def bn_layers(model):
    """The BnLayers in the order the data flows through them, named 1, 2, ..."""
    if hasattr(model, "layers2"):  # ConvBnNet2 registers its stride-2 layers first, then the others
        order = [l for pair in zip(model.layers, model.layers2) for l in pair]
    else:
        order = [m for m in model.modules() if isinstance(m, BnLayer)]
    return {f"BnLayer {i + 1}": l for i, l in enumerate(order)}

def recorders(model):
    layers = bn_layers(model)
    relu = activations.ActivationStats({n: l.conv for n, l in layers.items()}, every=every,
                                       fn=lambda m, i, o: o.relu(), dead_below=1e-6)
    out = activations.ActivationStats(layers, every=every, grads=False)
    return relu, out

def fit_calls(model, sched, name):
    """fastai 0.7's learn.fit(lr0, e0) then learn.fit(lr1, e1, cycle_len=1), with both recorders."""
    (e0, e1), (lr0, lr1) = sched
    relu, out = recorders(model)
    init_norms = {n: l.conv.weight.norm().item() for n, l in bn_layers(model).items()}
    with book.Timer() as timer:
        h = train.fit(model, dl, e0, lr0, schedule="constant", seed=SEED, callbacks=[relu, out],
                      label=f"{name}: fit({lr0:g}, {e0})")
        h.extend(train.fit(model, dl, e1, lr1, schedule="sgdr", callbacks=[relu, out],
                           label=f"{name}: fit({lr1:g}, {e1}, cycle_len=1)"))
    print(f"{name}: {len(h)} epochs in {timer.seconds:.1f} s, test accuracy {h.last['test_acc']:.2%}"
          + (f" (stopped: {h.stopped})" if h.stopped else ""))
    return {"history": h, "seconds": timer.seconds, "relu": relu, "out": out, "model": model,
            "init_norms": init_norms}

lesson2 = (epochs, LR)          # ConvBnNet2's schedule in the lesson
lesson1 = (cbn_epochs, CBN_LR)  # ConvBnNet's schedule in the lesson'''),
("md", r"""
## Training as the lesson did

The lesson trained `ConvBnNet2` with `learn.fit(1e-2, 2)` (two epochs at a constant 0.01) and then
`learn.fit(1e-2, 2, cycle_len=1)` (two one-epoch cosine cycles from 0.01).
"""),
("code", '''torch.manual_seed(SEED)
runs = {}
runs["ConvBnNet2, its schedule"] = fit_calls(models.ConvBnNet2(), lesson2, "ConvBnNet2")'''),
("code", '''# NBVAL_CHECK_OUTPUT
print(runs["ConvBnNet2, its schedule"]["history"].table())'''),
("md", r"""
How does that compare with `ConvBnNet`? Chapter 3 measured it with the lesson's schedule for that
net; its results file has the number (the cell reads it rather than typing it in).
"""),
("code", '''ch3 = {r.chapter: r for r in book.load_results(RESULTS_DIR)}.get("03_batchnorm_from_scratch")
cbn_row = next((r for r in ch3.rows if r.experiment == "convbnnet"), None) if ch3 else None
if cbn_row is None:
    print(f"chapter 3's results are not in {RESULTS_DIR}/: run chapter 3 first for this comparison")
else:
    print(f"ConvBnNet  (chapter 3, {cbn_row.epochs} epochs): test accuracy {cbn_row.measured:.2%}"
          f"{'' if cbn_row.full_run else ' (smoke run)'}; reported: {cbn_row.reported}")
h2 = runs["ConvBnNet2, its schedule"]["history"]
print(f"ConvBnNet2 (here, {len(h2)} epochs):      test accuracy {h2.last['test_acc']:.2%}")'''),
("md", r"""
The lesson's finding reproduces: `ConvBnNet2` reaches 64.61 %, the same as the lesson notebook's
64.61 % to the digit (a coincidence of one run, but a reassuring one) and below the blog's 66.4 %,
and it is well below the 69.03 % that `ConvBnNet` reached in chapter 3. Twice the depth, three times
the parameters, about four and a half points worse.

## The same schedule for both

The lesson changed three things at once between the two nets: the depth, the learning rate (0.01
for `ConvBnNet2`, 0.03 and then 0.1 for `ConvBnNet`) and the number of epochs (4 against 6). So
its comparison cannot say which of them made the difference. This book's experiment trains each net
with the other's schedule as well, which completes a 2 × 2 table.
"""),
("code", '''if ABLATION:
    torch.manual_seed(SEED)
    runs["ConvBnNet2, ConvBnNet's schedule"] = fit_calls(models.ConvBnNet2(), lesson1, "ConvBnNet2 at ConvBnNet's schedule")
    torch.manual_seed(SEED)
    runs["ConvBnNet, ConvBnNet2's schedule"] = fit_calls(models.ConvBnNet(), lesson2, "ConvBnNet at ConvBnNet2's schedule")'''),
("code", '''def acc(key):
    return runs[key]["history"].last["test_acc"] if key in runs else None

table = {"ConvBnNet2's schedule: fit(1e-2, 2); fit(1e-2, 2, cycle_len=1)":
             (acc("ConvBnNet, ConvBnNet2's schedule"), acc("ConvBnNet2, its schedule")),
         "ConvBnNet's schedule: fit(3e-2, 2); fit(1e-1, 4, cycle_len=1)":
             (cbn_row.measured if cbn_row else None, acc("ConvBnNet2, ConvBnNet's schedule"))}
print(f"{'test accuracy':66s}{'ConvBnNet':>12s}{'ConvBnNet2':>12s}")
for sched, (a, b) in table.items():
    print(f"{sched:66s}" + "".join(f"{'-' if v is None else f'{v:.2%}':>12s}" for v in (a, b)))
print("(ConvBnNet at its own schedule: chapter 3's run.)")'''),
("code", '''fig, ax = plt.subplots(figsize=(7, 4), constrained_layout=True)
plots.compare_histories({k: r["history"] for k, r in runs.items()}, ax=ax, ylabel="test accuracy")
ax.set_title("Test accuracy per epoch")
plt.show()'''),
("md", r"""
Read the table by rows. With the *same* schedule the two nets are level at `ConvBnNet2`'s
(64.85 % against 64.61 %), and at `ConvBnNet`'s the deeper net is ahead, 72.52 % against
69.03 %. The lesson's "deeper is worse" compared two schedules, not two depths. A learning rate
of 0.01 for four epochs holds both nets near 65 %, and the deeper net does better once it gets the
same budget. That is one seed per cell: differences of a fraction of a point mean nothing, the
three-point gap at `ConvBnNet`'s schedule probably does.

## What the statistics show

### The learned scale and shift barely move at the lesson's learning rate

The standard deviation and the mean of each `BnLayer`'s *output* are, up to the normalization,
the layer's learned scale `m` and shift `a` (they start at 1 and 0). Left: the lesson's schedule;
right: `ConvBnNet`'s schedule, for the same net. Dotted vertical lines mark where the second fit
call starts.
"""),
("code", '''keys = [k for k in ("ConvBnNet2, its schedule", "ConvBnNet2, ConvBnNet's schedule") if k in runs]
fig, axes = plt.subplots(2, len(keys), figsize=(6.5 * len(keys), 6.4), constrained_layout=True, squeeze=False)
for j, k in enumerate(keys):
    runs[k]["out"].plot_stats(axes=axes[:, j], legend=(j == len(keys) - 1), cmap="viridis")
    axes[0, j].set_title(f"{k}\\nmean of each BnLayer's output", fontsize=10)
    axes[1, j].set_title("standard deviation of each BnLayer's output", fontsize=10)
plt.show()'''),
("code", '''for k in keys:
    print(k, "- mean of the last records of each BnLayer's output")
    print(runs[k]["out"].summary(last=10, keys=("mean", "std")), "\\n")'''),
("md", r"""
At the lesson's learning rate the scales and shifts stay where they started: every layer's output
keeps a standard deviation between 0.98 and 1 and a mean within ±0.007 of zero. At `ConvBnNet`'s
schedule they move, above all in the last layer, whose scale falls to about 0.6 and whose shift
falls to about −0.11, mostly during the second call at 0.1. These parameters learn at the raw
learning rate: batch norm rescales the convolution weights' gradients (see below) but not those of
`m` and `a`, and a rate of 0.01 for four epochs moves them very little.

### No dying units

A deeper network could lose units: a ReLU whose input is negative for every image no longer passes
a gradient. The dead chart shows the share of exact zeros after each ReLU, and the "colorful
dimension" images show the whole histogram of the ReLU outputs over training (x: training step,
y: value, colour: the share of values in that bin on a log scale; the bottom row holds the zeros).
"""),
("code", '''fig, axes = plt.subplots(1, len(keys), figsize=(6.5 * len(keys), 3.4), constrained_layout=True, squeeze=False)
for j, k in enumerate(keys):
    runs[k]["relu"].dead_chart(ax=axes[0, j], legend=(j == len(keys) - 1), cmap="viridis")
    axes[0, j].set_title(f"{k}\\nshare of zeros after each ReLU", fontsize=10)
plt.show()'''),
("code", '''axes = runs["ConvBnNet2, its schedule"]["relu"].color_dim(ncols=4)
plt.suptitle("ReLU outputs of ConvBnNet2 over training (the lesson's schedule)")
plt.show()'''),
("md", r"""
About half of the values are zero after every ReLU, in every layer, from the first step to the
last, at both schedules. No layer loses its units, and after the first few dozen steps the
histograms hardly change. Whatever limits `ConvBnNet2` at the lesson's schedule, it is not dead
units.

### Gradients: largest in the first layers at the start, then evened out

A convolution followed by a normalization has a special property: scaling its weights by any
factor does not change the layer's output (the normalization divides the factor out). What
matters is therefore not the size of a gradient step but its size *relative to the weights*:
‖gradient‖ / ‖weights‖, times the learning rate. The next figure plots that ratio for the
convolution of every `BnLayer`, for both nets at the same schedule.
"""),
("code", '''gkeys = [k for k in ("ConvBnNet, ConvBnNet2's schedule", "ConvBnNet2, its schedule",
                     "ConvBnNet2, ConvBnNet's schedule") if k in runs]
fig, axes = plt.subplots(1, len(gkeys), figsize=(5.2 * len(gkeys), 3.6), constrained_layout=True,
                         sharey=True, squeeze=False)
for j, k in enumerate(gkeys):
    runs[k]["relu"].plot_grad_norms(ax=axes[0, j], relative=True, legend=True, cmap="viridis")
    axes[0, j].set_title(f"{k}\\n‖gradient‖ / ‖weights‖ per layer", fontsize=10)
plt.show()'''),
("code", '''def grad_table(keys, last=20):
    """Relative gradient of the first BnLayer / that of the last, at the first recorded step and
    averaged over the last `last` records; growth of the conv weights' norm over training."""
    print(f"{'':36s}{'first / last relative gradient':>32s}{'weight norm, end / start':>28s}")
    print(f"{'':36s}{'first step':>16s}{'end':>16s}{'first layer':>14s}{'last layer':>14s}")
    for k in keys:
        st, w0 = runs[k]["relu"], runs[k]["init_norms"]
        g, w = st.series("grad_norm"), st.series("param_norm")
        a, b = st.names[0], st.names[-1]
        rel = {n: [x / y for x, y in zip(g[n], w[n])] for n in (a, b)}
        end = sum(x / y for x, y in zip(rel[a][-last:], rel[b][-last:])) / len(rel[a][-last:])
        print(f"{k:36s}{rel[a][0] / rel[b][0]:>16.2f}{end:>16.2f}{w[a][-1] / w0[a]:>14.2f}{w[b][-1] / w0[b]:>14.2f}")

grad_table(gkeys)'''),
("md", r"""
At the first recorded step the first layer's relative gradient is 3.1 times the last layer's in
`ConvBnNet2`, and 1.8 times in `ConvBnNet`. Large relative steps lengthen a layer's weights: the
gradient of a scale-invariant layer is orthogonal to its weights, so every step makes them longer.
Longer weights mean smaller relative steps from then on. Within a few dozen steps the layers are
close together, and at the end of training the ratio is between 1.1 and 1.4 in all three runs. At
eight layers batch norm evens out the imbalance by itself, and the imbalance plays no part in the
lesson's result.

## Deeper still: where it breaks

How does this imbalance grow with depth? Training many deep nets is expensive on a CPU, but the
gradients at initialization are cheap: one forward and one backward pass. The next cell builds the
same family of nets with `k` extra stride-1 `BnLayer`s per stage (`k = 1` is `ConvBnNet2`,
`k = 0` is `ConvBnNet`) and measures the relative gradient of the first and the last `BnLayer` on
one training batch.
"""),
("code", '''class DeepBnNet(nn.Module):
    """ConvBnNet with `extra` stride-1 BnLayers after each stride-2 one (1: ConvBnNet2)."""
    def __init__(self, layers=(10, 20, 40, 80, 160), c=10, extra=1):
        super().__init__()
        self.conv1 = nn.Conv2d(3, layers[0], kernel_size=5, stride=1, padding=2)
        self.stages = nn.ModuleList(
            nn.Sequential(BnLayer(a, b), *[BnLayer(b, b, 1) for _ in range(extra)])
            for a, b in zip(layers[:-1], layers[1:]))
        self.out = nn.Linear(layers[-1], c)

    def forward(self, x):
        x = self.conv1(x)
        for stage in self.stages:
            x = stage(x)
        x = F.adaptive_max_pool2d(x, 1).flatten(1)
        return F.log_softmax(self.out(x), dim=-1)

def relative_grads(model, x, y):
    model.zero_grad()
    F.nll_loss(model(x), y).backward()
    convs = [l.conv for l in model.modules() if isinstance(l, BnLayer)]
    return [(c.weight.grad.norm() / c.weight.norm()).item() for c in convs]

xb, yb = next(iter(dl.train))
depth_rows = []
print(f"{'extra per stage':>16}{'BnLayers':>10}{'first layer':>14}{'last layer':>12}{'first / last':>14}")
for k in DEPTHS:
    torch.manual_seed(SEED)
    rel = relative_grads(DeepBnNet(extra=k).to(device), xb, yb)
    depth_rows.append((k, len(rel), rel))
    print(f"{k:>16}{len(rel):>10}{rel[0]:>14.3g}{rel[-1]:>12.3g}{rel[0] / rel[-1]:>14.3g}")'''),
("code", '''fig, ax = plt.subplots(figsize=(7, 3.8), constrained_layout=True)
for k, n, rel in depth_rows:
    ax.plot(range(1, n + 1), rel, "o-", ms=3, label=f"{n} BnLayers")
ax.set(yscale="log", xlabel="BnLayer (input side → output side)", ylabel="‖gradient‖ / ‖weights‖",
       title="Relative gradient per layer at initialization, one batch")
ax.grid(alpha=0.3); ax.legend(fontsize=8)
plt.show()'''),
("md", r"""
The ratio grows geometrically with depth: 1.6 for 4 `BnLayer`s, 2.9 for 8 (`ConvBnNet2`), 6.6
for 12, 25 for 20, 593 for 36 and about 220,000 for 68. In the figure each curve is close to a
straight line on the log scale: every layer on the way back to the input multiplies the relative
gradient by about the same factor, while the last layer's stays near 0.5. This is a known property
of plain batch-normalized networks at initialization: their gradients explode with depth (Yang et
al., "A mean field theory of batch normalization", ICLR 2019).

Does the imbalance show in training? One more run, `DEEP_EXTRA` extra layers per stage, with
`ConvBnNet`'s schedule, the one at which `ConvBnNet2` did best:
"""),
("code", '''if DEEP_EXTRA:
    torch.manual_seed(SEED)
    deep_name = f"{4 * (DEEP_EXTRA + 1)} BnLayers, ConvBnNet's schedule"
    runs[deep_name] = fit_calls(DeepBnNet(extra=DEEP_EXTRA), lesson1, f"DeepBnNet(extra={DEEP_EXTRA})")
    print()
    print(f"{'':40s}{'train accuracy':>16s}{'test accuracy':>16s}")
    for k in ("ConvBnNet2, ConvBnNet's schedule", deep_name):
        if k in runs:
            h = runs[k]["history"]
            print(f"{k:40s}{h.last['train_acc']:>16.2%}{h.last['test_acc']:>16.2%}")'''),
("code", '''if DEEP_EXTRA:
    fig, axes = plt.subplots(1, 2, figsize=(13, 3.8), constrained_layout=True)
    plots.compare_histories({k: runs[k]["history"] for k in ("ConvBnNet2, ConvBnNet's schedule", deep_name)
                             if k in runs}, metric="train_acc", ax=axes[0], ylabel="training accuracy")
    axes[0].set_title("Training accuracy per epoch (augmented images)")
    runs[deep_name]["relu"].plot_grad_norms(ax=axes[1], relative=True, legend=False, cmap="viridis")
    axes[1].set_title(f"{deep_name}: ‖gradient‖ / ‖weights‖ per layer\\n(dark: first layers, yellow: last)", fontsize=10)
    plt.show()'''),
("code", '''if DEEP_EXTRA:
    grad_table([k for k in ("ConvBnNet2, ConvBnNet's schedule", deep_name) if k in runs])'''),
("md", r"""
Twenty `BnLayer`s are clearly worse: 47.47 % test accuracy against 72.52 % for eight. The
*training* accuracy is lower too (42.20 % against 67.33 %), so the deeper net is not overfitting: it
fits the training data worse. The right panel and the table show why. At the first step the first
layer's relative gradient is 27 times the last layer's. Those huge first steps lengthen the early
layers' weights: over the whole run the first layer's weights grow by a factor of 6.4, the last
layer's by 1.3, and the panel shows the early layers' ratios collapsing within the first few dozen
steps. From then on the layers nearest the input get the *smallest* relative steps: at the end of
training the ratio is 0.31. The layers whose gradients were too large at the start learn slowest
for the rest of training.

Batch norm makes each layer insensitive to the scale of its own weights, but it does not remove
this imbalance between layers, which grows geometrically with depth. So "deeper is worse" holds
here in the sense of He et al.: an optimization problem, not overfitting.

## Results beside the lesson's

The table is written to `results/04_deeper_batchnorm.json`. The first row compares with the
lesson's notebook and the blog; the others are this book's experiments and have nothing to
compare with.
"""),
("code", '''results = book.Results("04_deeper_batchnorm", seed="003", smoke=SMOKE)
r = runs["ConvBnNet2, its schedule"]
results.add("convbnnet2", r["history"].last["test_acc"], r["seconds"], epochs=len(r["history"]))
if ABLATION:
    for key, name in [("ConvBnNet2, ConvBnNet's schedule", "convbnnet2 at ConvBnNet's schedule"),
                      ("ConvBnNet, ConvBnNet2's schedule", "convbnnet at ConvBnNet2's schedule")]:
        r = runs[key]
        results.add(name, r["history"].last["test_acc"], r["seconds"], epochs=len(r["history"]),
                    reported_as=None, note="this book's experiment")
if DEEP_EXTRA:
    r = runs[deep_name]
    results.add(f"deepbnnet extra={DEEP_EXTRA} at ConvBnNet's schedule", r["history"].last["test_acc"],
                r["seconds"], epochs=len(r["history"]), reported_as=None,
                note=f"this book's experiment, {4 * (DEEP_EXTRA + 1)} BnLayers")
results.save(RESULTS_DIR)
results.show()'''),
("md", r"""
## What the original did, and what we changed

| the lesson | here | why |
|---|---|---|
| `ConvBnNet2` trained at lr 0.01 for 4 epochs, `ConvBnNet` at 0.03/0.1 for 6 | the same, plus each net at the other's schedule | the lesson's comparison mixes depth and schedule |
| `learn.summary()` counts 461,370 parameters | 462,570 | the summary skipped `a` and `m` (chapter 3) |
| `BnLayer`: BN after the ReLU, unbiased std, no epsilon, evaluation with the last batch's statistics | the same (`normlab.norms.BnLayer`) | faithful |
| prints a smoothed training loss | prints the epoch's mean training loss | a plain average is easier to read |
| no look inside the network | `normlab.activations` records per-layer statistics | to find out why |

## Exercises

1. Turn each stride-1 `BnLayer` of `DeepBnNet` into a residual block, `x = x + layer(x)`, and
   repeat the gradient check at initialization for the same depths. What happens to the ratio
   between the first and the last layer?
"""),
("md", r"""
````{admonition} Solution
:class: dropdown

```python
class ResBnNet(DeepBnNet):  # the stride-1 BnLayers become residual blocks: x + layer(x)
    def forward(self, x):
        x = self.conv1(x)
        for stage in self.stages:
            x = stage[0](x)
            for layer in stage[1:]:
                x = x + layer(x)
        x = F.adaptive_max_pool2d(x, 1).flatten(1)
        return F.log_softmax(self.out(x), dim=-1)

for k in DEPTHS:
    torch.manual_seed(SEED)
    rel = relative_grads(ResBnNet(extra=k).to(device), xb, yb)
    print(len(rel), rel[0] / rel[-1])
```

In one run of this code (the first training batch, seed 0), the ratio between the first and the last
layer was 1.82, 3.04, 4.56, 7.84, 15.1 and 19.9 for 4, 8, 12, 20, 36 and 68 `BnLayer`s. The plain
nets of the same depths gave 1.82, 3.21, 6.3, 30.7, 631 and 207,000. With residual connections the
ratio grows roughly in proportion to the depth instead of geometrically. The identity path carries
the gradient past every block unchanged, so a deep layer's gradient is no longer the product of
all the layers after it.
````

2. Show that a convolution followed by a normalization is scale invariant: with `W` replaced by
   `c·W` (c > 0) the output does not change. What does that do to the gradient, and to a step of
   SGD?

```{admonition} Solution
:class: dropdown

The convolution is linear: conv(x; cW) = c·conv(x; W). The ReLU commutes with a positive factor,
and the normalization divides the mean and the standard deviation by the same c, so the output is
unchanged. Differentiating L(cW) = L(W) gives c·∇L(cW) = ∇L(W): the gradient at cW is 1/c times
the gradient at W. A step of size lr·∇L therefore changes the weights *relative to their size* by
lr·‖∇L(W)‖/(c²‖W‖): the effective learning rate of such a layer is lr/‖W‖². Weights that grow
(and SGD makes them grow, since the gradient is orthogonal to W) slow the layer down; weight decay
shrinks them and speeds it up again.
```

3. The dead fraction of the ReLU outputs stays near one half in every layer. Where would you look
   to see a layer that has stopped learning, and which of the recorded numbers would show it first?

```{admonition} Solution
:class: dropdown

A layer that has stopped learning has a relative gradient (‖gradient‖/‖weights‖ times the learning
rate) that is tiny compared with the other layers', so its weights no longer change; in a `BnLayer`
its output statistics (the `m` and `a` it learned) also stay flat. A layer that is dying shows a
dead fraction rising towards 1 and, in `color_dim`, the histogram collapsing into the bottom row.
For the lesson's `BnLayer` a channel that dies completely does not stay quiet: its standard
deviation is zero, the forward pass gives a NaN loss (chapter 3, section (b)), and `train.fit` stops
with a divergence report instead of taking the step.
```

## What next

He et al. {cite}`he2016deep` saw the same pattern at larger scale: plain networks of 20 and 56
layers on CIFAR-10, trained alike, where the deeper one had the *higher training* error, so it was
not overfitting but harder to optimize. Their fix is the residual connection, `x + F(x)`, which
gives every layer a direct path to the loss. The lesson continues exactly there, with a `Resnet`
built from the same `BnLayer`s; its notebook reports 0.82 after 32 more epochs and 0.829 for
`Resnet2` (the lesson notebook's numbers, not measured in this book).

Chapter 5 moves to another seed and a smaller problem: LeNet on MNIST, with batch norm added
to it layer by layer.
"""),
]
build(sys.argv[1] if len(sys.argv) > 1 else f"{BOOK}/04_deeper_batchnorm.ipynb", cells)
