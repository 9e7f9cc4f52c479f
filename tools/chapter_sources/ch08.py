import os, sys; sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from nbbuild import BOOK, TMP, build
from common import COLAB

cells = [
("md", r"""
# 8. A ResNet by specification: batch statistics all the way

The DARPA "programmability evaluation" asked teams to implement small deep-learning tasks from a
written specification {cite}`seed_progeval`. Its `convnet` task is a simplified ResNet
{cite}`he2016deep` for CIFAR-2 (airplanes against automobiles), with a reference implementation
in PyTorch, a log of its run and a pass rule: test accuracy of at least 0.95 after 5 epochs.
KaushikRoy94/Work copies the task's README; its own Keras solution departs from the spec in
several ways (see the end of the chapter).

The specification has an unusual batch norm: **no learned scale or shift and no running
averages**. It always normalizes with the statistics of the batch in front of it, also at test
time. It also divides the logits by 8 before the softmax. This chapter implements the
specification exactly, checks the pass rule, puts the time beside the reference's, and then takes
the unusual parts out one at a time.
"""),
("code", COLAB),
("md", r"""
The parameters: the defaults are the specification's (5 epochs, batches of 128, SGD with momentum
0.9, learning rate 0.1 falling linearly to 0, the reference's torch seed 124) plus the ablations.
The book's tests run the notebook with `SMOKE = True`.
"""),
("code", '''SMOKE = False           # tiny data and epochs (used by the tests)
EPOCHS = 5
LR = 0.1                # lr = 0.1 * (1 - progress), set before every step
BATCH_SIZE = 128
SEED = 124              # the reference: torch.manual_seed(124)
DEVICE = "auto"         # "auto" picks CUDA, then MPS, then the CPU
DATA_DIR = None         # folder holding cifar-10-batches-py/; None: $NORMLAB_DATA or ~/.cache/normlab/data
RESULTS_DIR = "results" # where this chapter writes its results
THREADS = None          # CPU threads (None: torch's default)
ABLATIONS = True        # without Scale, with standard BN, with a constant learning rate
OTHER_SEEDS = (0, 1, 2) # the specification once more at these seeds (() to skip)
EVAL_BATCH_SIZES = (1, 2, 4, 8, 32, 128, 500, 2000)''', ["parameters"]),
("code", '''import math
import torch
import torch.nn as nn
import matplotlib.pyplot as plt

from normlab import book, models, plots, recipes, reported, train
from normlab.devices import describe_device

device = book.setup(SEED, DEVICE, THREADS)
epochs = 1 if SMOKE else EPOCHS
subset = dict(subset=20, test_subset=10) if SMOKE else {}
recipe = recipes.RECIPES["resnet_spec"].replace(batch_size=BATCH_SIZE, epochs=epochs, lr=LR)
dl = recipes.make_loaders(recipe, data_dir=DATA_DIR, device=device, seed=SEED, download=True, **subset)
print(dl.name, dl.classes, "train", len(dl.train.data), "test", len(dl.test.data), "| batches per epoch", len(dl.train))
print("normalization (train images, population std):", [round(m, 4) for m in dl.mean], [round(s, 4) for s in dl.std])'''),
("md", r"""
## The data: CIFAR-2

"10k 32×32 images" in the task's README are the CIFAR-10 images of classes 0 (airplane) and 1
(automobile): all 10,000 of them from the training set and the 2,000 from the test set, in their
original order. The reference's `prep.py` scales them to [0, 1] and normalizes with the channel
means and *population* standard deviations of the training images; there is no augmentation and
no validation set. (The reference log's first ten training labels, 1 1 0 0 1 0 1 1 1 0, are
those of CIFAR-10's first batch filtered to the two classes.)
"""),
("code", '''# NBVAL_CHECK_OUTPUT
print("first ten training labels:", " ".join(str(int(v)) for v in dl.train.data.labels[:10]))'''),
("code", '''xb, yb = dl.test.data.images[:16], dl.test.data.labels[:16]
plots.show_images(xb, yb, dl.classes, ncols=8, size=1.2)
plt.show()'''),
("md", r"""
## The network, from the specification

| # | block | output |
|---|---|---|
| 1 | conv 3×3, 3→16, no bias; BN; ReLU | 16×32×32 |
| 2 | residual block 16→32 | 32×32×32 |
| 3 | max pool 2 | 32×16×16 |
| 4 | residual block 32→64; max pool 2 | 64×8×8 |
| 5 | residual block 64→128 | 128×8×8 |
| 6 | global max pool | 128 |
| 7 | linear 128→2, no bias | 2 |
| 8 | scale by α = 0.125 | 2 |

A residual block computes `ReLU(BN(conv3×3(x))) + conv1×1(x)`: the 1×1 convolution on the
shortcut is always there (the channels change in every block), with no BN on the shortcut and no
activation after the addition. BN is `BatchNorm2d(C, affine=False, track_running_stats=False)`.
The specification's initialization (uniform in ±1/√fan-in for every layer) is exactly PyTorch's
default, so nothing needs to be set. Written out:
"""),
("code", '''class ResidualBlock(nn.Module):
    def __init__(self, c_in, c_out):
        super().__init__()
        self.conv = nn.Conv2d(c_in, c_out, 3, padding=1, bias=False)
        self.bn = nn.BatchNorm2d(c_out, affine=False, track_running_stats=False)
        self.shortcut = nn.Conv2d(c_in, c_out, 1, bias=False)

    def forward(self, x):
        return torch.relu(self.bn(self.conv(x))) + self.shortcut(x)


class SpecNet(nn.Module):
    def __init__(self, alpha=0.125):
        super().__init__()
        self.stem = nn.Sequential(nn.Conv2d(3, 16, 3, padding=1, bias=False),
                                  nn.BatchNorm2d(16, affine=False, track_running_stats=False), nn.ReLU())
        self.blocks = nn.Sequential(ResidualBlock(16, 32), nn.MaxPool2d(2), ResidualBlock(32, 64),
                                    nn.MaxPool2d(2), ResidualBlock(64, 128))
        self.fc = nn.Linear(128, 2, bias=False)
        self.alpha = alpha

    def forward(self, x):
        x = self.blocks(self.stem(x))
        x = torch.amax(x, dim=(2, 3))  # global max pool (the reference: MaxPool2d(8))
        return self.fc(x) * self.alpha'''),
("code", '''# NBVAL_CHECK_OUTPUT
torch.manual_seed(0)
ours = SpecNet()
lib = models.ResNetSpec()
lib.load_state_dict(dict(zip(lib.state_dict(), ours.state_dict().values())))
probe = torch.randn(8, 3, 32, 32)
print("parameters:", models.count_params(ours), "(library:", models.count_params(lib), ")")
print("same outputs as normlab.models.ResNetSpec:", torch.allclose(ours(probe), lib(probe), atol=1e-6))
print("same outputs in eval mode (BN still uses the batch):", torch.allclose(ours.eval()(probe), ours.train()(probe)))
bounds = [(w.abs().max() <= 1 / math.sqrt(w[0].numel())).item() for w in ours.parameters()]
print("every weight within +-1/sqrt(fan_in):", all(bounds))'''),
("md", r"""
## Training as specified

The reference's loop: shuffle the 10,000 images every epoch, batches of 128 (79 per epoch, the
last of 16 images), before each step set the learning rate to 0.1 × (1 − progress) where progress
runs from 0 to 1 over the 5 epochs, SGD with momentum 0.9, cross-entropy on the scaled logits;
after each epoch evaluate on the 2,000 test images in batches of 128 and print a JSON line.
`train.fit(..., schedule="linear", log="json")` does exactly that.
"""),
("code", '''def run(name, model, seed=SEED, log="json", **overrides):
    torch.manual_seed(seed)
    model = model()
    with book.Timer() as timer:
        h = train.fit(model, dl, **recipes.fit_kwargs(recipe, seed=seed, log=log, **overrides), label=name)
    return {"history": h, "seconds": timer.seconds, "model": model}

spec = run("specification", models.ResNetSpec)'''),
("code", '''acc = spec["history"].last["test_acc"]
verdict = {"test_acc": round(acc, 4), "status": "PASS" if acc >= 0.95 else "FAIL"}
print("validate.py's rule, test_acc >= 0.95:", verdict)
ref_acc = reported.CURVES[("004", "test_acc")]
ref_time = reported.CURVES[("004", "time")]
print(f"\\n{'epoch':>6}{'test acc here':>15}{'reference':>11}{'time here (s)':>15}{'reference (s)':>15}")
for e in spec["history"].epochs:
    i = e["epoch"]
    r_acc = f"{ref_acc[i]:.4f}" if i < len(ref_acc) else "-"
    r_time = f"{ref_time[i]:.2f}" if i < len(ref_time) else "-"
    print(f"{i:>6}{e['test_acc']:>15.4f}{r_acc:>11}{e['time']:>15.2f}{r_time:>15}")
print(f"\\nhere: {describe_device(device)}; the reference: 8 threads of a Xeon E5-2698 v4 (about 40 s), "
      "or about 5 s on a P100 GPU")'''),
("md", r"""
The specification passes: 0.967 test accuracy after 5 epochs, against 0.965 in the reference's
log (prog-eval README). After the first epoch it is ahead (0.903 against 0.878); from the second
epoch on the two runs are within 0.008 of each other, although the data order and the weights
differ (the reference seeded NumPy with 123 for its shuffle; here one torch seed drives both).

The time is about 45 s for the five epochs and their test passes on two cores of this page's
CPU, against 40 s for the reference on eight threads of a Xeon E5-2698 v4 and about 5 s on a P100
GPU. The machine is shared: three renders of this page on the same host took 36, 35 and 46 s for
the same, bitwise identical, run. What makes two cores competitive with eight threads is the loop:
channels_last memory layout, batches cut from uint8 tensors already in memory, and an allocator
that keeps its memory between steps (`benchmarks/README.md`, section 3, times it against a
re-typed reference loop in one run: 1.66 times faster).

Is 0.967 luck? The same specification at three more seeds:
"""),
("code", '''if OTHER_SEEDS:
    print(f"{'seed':>6}{'test acc':>10}{'verdict':>9}{'time (s)':>10}")
    seeds = {}
    for s in OTHER_SEEDS:
        seeds[s] = run(f"seed {s}", models.ResNetSpec, seed=s, log=None)
        a = seeds[s]["history"].last["test_acc"]
        print(f"{s:>6}{a:>10.4f}{'PASS' if a >= 0.95 else 'FAIL':>9}{seeds[s]['seconds']:>10.1f}")'''),
("md", r"""
## Taking the unusual parts out

Three ablations, each changing one thing and trained with the same seed:

- **without Scale**: α = 1, the raw logits go into the softmax;
- **standard BN**: `nn.BatchNorm2d` with a learned scale and shift and running averages used at test
  time;
- **constant learning rate**: 0.1 throughout instead of falling to 0.
"""),
("code", '''ablations = {}
if ABLATIONS:
    ablations["without Scale (alpha = 1)"] = run("no scale", lambda: models.ResNetSpec(scale=None), log=None)
    ablations["standard BN (affine, running averages)"] = run("standard BN", lambda: models.ResNetSpec(norm="batch"), log=None)
    ablations["constant learning rate 0.1"] = run("constant lr", models.ResNetSpec, log=None, schedule="constant")
all_runs = {"specification": spec, **ablations}
print(f"{'':42s}{'test acc':>10}{'best':>8}{'final train loss':>18}{'time (s)':>10}")
for name, r in all_runs.items():
    h = r["history"]
    if h.epochs:
        print(f"{name:42s}{h.last['test_acc']:>10.4f}{h.best('test_acc')['test_acc']:>8.4f}"
              f"{h.last['train_loss']:>18.4f}{r['seconds']:>10.1f}")
    if h.stopped:  # the divergence guard stopped it: no epoch finished if it says epoch 0
        print(f"{name:42s}stopped: {h.stopped}")'''),
("code", '''fig, axes = plt.subplots(1, 2, figsize=(12, 4), constrained_layout=True)
plots.compare_histories({k: r["history"] for k, r in all_runs.items()}, "test_acc", ax=axes[0],
                        reported={"specification": (list(range(1, 6)), ref_acc)}, ylabel="test accuracy")
axes[0].axhline(0.95, color="k", ls=":", lw=1)
axes[0].set_title("test accuracy per epoch (dotted: the pass line)")
for k, r in all_runs.items():
    axes[1].plot(r["history"].steps["loss"], lw=0.8, label=k)
    if r["history"].stopped:  # a diverged loss would stretch the axis over 20 decades
        axes[1].annotate(f"{k}: diverged", (len(r["history"].steps["loss"]) - 1, 30), fontsize=8, ha="left")
axes[1].set(yscale="log", ylim=(0.01, 100), xlabel="step", ylabel="training loss (clipped at 100)",
            title="training loss per step")
axes[1].legend(fontsize=8); axes[1].grid(alpha=0.3)
plt.show()'''),
("md", r"""
What each change does, in this run:

- **Without Scale the run diverges.** Its loss jumps to 17.7 at the second step, swings between 0.6
  and 65 for the next 24 steps, then explodes (2,589 at step 26); at step 30 it is NaN and the divergence guard stops
  the run (the table above gives the message). Multiplying the logits by α = 1/8 divides the
  gradient that flows back from the loss by 8, and the step of the last layer changes the logits
  by about 1/64 of what it would without α. At α = 1 a learning rate of 0.1 is too large for this
  network: α is part of the learning rate.
- **Standard BN ends at the same 0.967**, but its test accuracy drops to 0.861 after the second
  epoch and recovers. At test time it uses running averages of the batch statistics; the likely
  cause is that while the learning rate is still high the weights move faster than those averages
  follow. The
  specification's BN uses the test batch's own statistics and has no such lag.
- **A constant learning rate** gives 0.9625 after the last epoch (best 0.965), with the lowest
  training loss of the three. The difference from the specification is 9 of 2,000 test images,
  the size of the spread between seeds above, so five epochs at one seed cannot tell the two
  schedules apart.

## The test batch matters

Because the specification's BN uses the batch's statistics at test time, the prediction for an
image depends on the other images in its batch. The reference evaluates in batches of 128, the last
one of 80 (2,000 = 15 × 128 + 80). Here is the test accuracy of the trained network for other
evaluation batch sizes, beside the standard-BN ablation, which uses its running averages and does
not care.
"""),
("code", '''sizes = [s for s in EVAL_BATCH_SIZES if s <= len(dl.test.data)]
by_size = {"specification (batch statistics)": train.accuracy_by_batch_size(spec["model"], dl.test, sizes)}
if ABLATIONS:
    by_size["standard BN (running averages)"] = train.accuracy_by_batch_size(
        ablations["standard BN (affine, running averages)"]["model"], dl.test, sizes)
print(f"{'test accuracy at evaluation batch size':40s}" + "".join(f"{s:>7d}" for s in sizes))
for k, accs in by_size.items():
    print(f"{k:40s}" + "".join(f"{accs[s]:>7.4f}" for s in sizes))'''),
("code", '''# one class per batch: the worst case for batch statistics
order = torch.argsort(dl.test.data.labels.cpu(), stable=True)
sorted_test = dl.test.with_batch_size(128)
sorted_test.data = dl.test.data.select(order.to(dl.test.data.labels.device))
print("batches of 128 holding one class each (test set sorted by label):",
      f"{train.evaluate(spec['model'], sorted_test)['acc']:.4f}")
fig, ax = plt.subplots(figsize=(7, 3.8), constrained_layout=True)
for k, accs in by_size.items():
    ax.plot(list(accs), list(accs.values()), "o-", ms=4, label=k)
ax.axhline(0.95, color="k", ls=":", lw=1)
ax.set(xscale="log", xlabel="evaluation batch size", ylabel="test accuracy", title="Test accuracy against the evaluation batch size")
ax.grid(alpha=0.3); ax.legend(fontsize=8)
plt.show()'''),
("md", r"""
With batches of 128 or more the specification's network is as accurate as the standard-BN one
(0.967). Below that it loses: 0.9585 at 8 images per batch, 0.9435 at 4 (below the pass line),
0.9085 at 2 and 0.901 when every image is classified alone. At batch size 1 the "batch statistics"
are the statistics of one image's feature map, which is instance norm, something the network
never saw in training. Sorting the test set by class is worse still: every batch of 128 holds
one class, the batch mean carries that class, normalization subtracts it, and accuracy falls to
0.7815. A model with batch-statistics BN at test time gives each image an answer that depends on
its neighbours; the running averages of standard BN remove that dependence at no cost here.

## Results beside the reference's

Written to `results/08_resnet_spec.json`.
"""),
("code", '''results = book.Results("08_resnet_spec", seed="004", smoke=SMOKE)
h = spec["history"]
results.add("resnet_spec", h.last["test_acc"], spec["seconds"], epochs=len(h),
            note=f"pass rule >= 0.95: {verdict['status']}")
results.add("resnet_spec", round(spec["seconds"], 1), spec["seconds"], metric="time (s)", epochs=len(h),
            note="training and the 5 test passes")
for name, r in ablations.items():
    ah = r["history"]
    note = "this book's ablation" + (f"; {ah.stopped.split(';')[0]}" if ah.stopped else "")  # where it stopped
    if ah.epochs:
        results.add(f"resnet_spec {name}", ah.last["test_acc"], r["seconds"], epochs=len(ah), reported_as=None, note=note)
    else:  # diverged in the first epoch: record how far it got, not an accuracy
        results.add(f"resnet_spec {name}", len(ah.steps["loss"]), r["seconds"], metric="steps before divergence",
                    reported_as=None, note=note)
if OTHER_SEEDS:
    for s, r in seeds.items():
        results.add(f"resnet_spec seed {s}", r["history"].last["test_acc"], r["seconds"], epochs=len(r["history"]),
                    reported_as=None, note="the specification at another seed")
results.save(RESULTS_DIR)
results.show()'''),
("md", r"""
## What the sources did, and what we changed

| the source | here | why |
|---|---|---|
| spec: BN without affine and without running statistics, batch statistics at test time | the same (`BatchNorm2d(affine=False, track_running_stats=False)`) | faithful; the ablation shows the usual BN |
| spec: Scale α = 0.125 between the linear layer and the softmax | the same | a softmax temperature of 8; the ablation removes it |
| reference: `np.random.seed(123)`, `torch.manual_seed(124)`, `cuda.manual_seed(125)` | `SEED = 124` for torch and the data order | one seed drives the run |
| reference: global max pool as `MaxPool2d(8)` | `AdaptiveMaxPool2d(1)` (library) / `amax` (above) | the same for 8×8 maps |
| reference prints `{"epoch", "test_acc", "time"}` lines and `validate.py` checks ≥ 0.95 | the same lines and rule | faithful |
| KaushikRoy94's Keras solution: Keras BN with moving statistics, an extra identity block per stage, no Scale, constant lr 0.005, 302,672 parameters (0.962 test accuracy, PASS) | not used | it departs from the spec it copies |

## Exercises

1. The reference evaluates the test set in batches of 128, the last batch holding 80 images. Find
   the evaluation batch size below 128 that gives the highest accuracy for the trained network. Is
   choosing it honest?
"""),
("md", r"""
````{admonition} Solution
:class: dropdown

```python
accs = train.accuracy_by_batch_size(spec["model"], dl.test, range(16, 129, 16))
print(max(accs.items(), key=lambda kv: kv[1]))
```

Picking the batch size on the test set is tuning on the test set: the accuracy it finds is
optimistic. With batch statistics at test time, the batch size (and the order of the test images)
is part of the model; it should be fixed in advance, as the specification does (128).
````
"""),
("md", r"""
2. What does the Scale block do to the gradients at the start of training? Compare the size of the
   logits and the initial loss with α = 0.125 and α = 1.
"""),
("md", r"""
````{admonition} Solution
:class: dropdown

```python
for alpha in (0.125, 1):
    torch.manual_seed(SEED)
    net = models.ResNetSpec(scale=alpha)
    x, y = next(iter(dl.train))
    out = net(x)
    print(alpha, out.abs().mean().item(), torch.nn.functional.cross_entropy(out, y).item())
```

Scaling the logits by α scales their gradient by α too: the softmax is "cooler" (temperature 8),
its outputs stay near 1/2 for longer, and the first steps at learning rate 0.1 are gentler. The
global max pool of a ReLU network without normalization after the last block gives large positive
features, so the unscaled logits start larger and the first updates larger too (here the mean
absolute logit is about 0.13 with α = 0.125 and 1.1 with α = 1). The ablation above shows what
that does at a learning rate of 0.1: without Scale the run diverged at step 30.
````
"""),
("md", r"""
## What next

The last chapter puts every number of the book beside the number its source reported.
"""),
]

build(sys.argv[1] if len(sys.argv) > 1 else f"{BOOK}/08_resnet_spec.ipynb", cells)
