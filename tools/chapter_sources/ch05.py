import os, sys; sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from nbbuild import BOOK, TMP, build
from common import COLAB

cells = [
("md", r"""
# 5. LeNet on MNIST: batch norm written by hand, and what really ran

Chapters 1 to 4 followed one course. This chapter re-runs a different kind of source: a student
project, tairtahar/batchnorm {cite}`seed_tairtahar`, that implements batch normalization from the
paper {cite}`ioffe2015batch` in tf.keras, adds it layer by layer to a LeNet-style network with
sigmoid activations {cite}`lecun1998gradient`, and plots how the training accuracy improves. Its
README's conclusion: batch norm on every layer is best, and batch norm speeds up learning.

Reading its code closely turns up three things the plot does not show, and this chapter measures
each of them:

- its batch-norm layers are not the paper's: the convolutional ones learn a scale and shift **per
  position and channel**, the dense ones a **single scalar** each;
- at test time it meant to average the statistics of the last few batches, but because of how
  Keras traces Python code, **every test batch was normalized with its own statistics**, so the
  test accuracy depends on the evaluation batch size;
- its output layer is a softmax and its loss applies a softmax again (a **double softmax**), so the
  loss can never fall below about 1.461.

You will see the five networks trained as the original trained them, beside the values read off
its published plot; the same networks with standard per-channel batch norm; three ways to
normalize at test time; and what the double softmax costs.
"""),
("code", COLAB),
("md", r"""
The parameters: the defaults are the original's full budget (five networks, Adam at 10⁻³, batches
of 64, 10 epochs) plus this chapter's experiments. The book's tests run the notebook with
`SMOKE = True` (a few images per class, one epoch).
"""),
("code", '''SMOKE = False           # tiny data and epochs (used by the tests)
EPOCHS = 10             # main.py: model.fit(..., epochs=10, batch_size=64)
LR = 1e-3               # Keras Adam's default learning rate
BATCH_SIZE = 64
SEED = 0
DEVICE = "auto"         # "auto" picks CUDA, then MPS, then the CPU
DATA_DIR = None         # folder holding MNIST/raw/; None: $NORMLAB_DATA or ~/.cache/normlab/data
RESULTS_DIR = "results" # where this chapter writes its results
THREADS = None          # CPU threads (None: torch's default)
VARIANTS = ("lenet", "lenet_bn1", "lenet_bn2", "lenet_fc_bn1", "lenet_fc_bn2")
STANDARD_BN = True      # also train every BN variant with standard per-channel batch norm
SINGLE_SOFTMAX = True   # also train lenet_fc_bn2 with the double softmax removed
EVAL_BATCH_SIZES = (2, 4, 8, 16, 32, 64, 256, 1000, 10000)  # for the test-batch-size experiment
WINDOWS = (1, 5, 20)    # window sizes (in evaluation batches) for the "window" inference mode''', ["parameters"]),
("code", '''import math
import torch
import torch.nn.functional as F
import matplotlib.pyplot as plt

from normlab import book, models, plots, recipes, reported, train

device = book.setup(SEED, DEVICE, THREADS)
epochs = 1 if SMOKE else EPOCHS
subset = dict(subset=20, test_subset=10) if SMOKE else {}
recipe = recipes.RECIPES["lenet"].replace(batch_size=BATCH_SIZE, epochs=epochs, lr=LR)
dl = recipes.make_loaders(recipe, data_dir=DATA_DIR, device=device, seed=SEED, download=True, **subset)
print(dl.name, "train", len(dl.train.data), "validation", len(dl.val.data), "test", len(dl.test.data),
      "| batches per epoch", len(dl.train))'''),
("md", r"""
## The data: MNIST re-split

The original concatenates MNIST's 60,000 training and 10,000 test images, shuffles the 70,000
(its docstring: the test accuracy was higher than the training accuracy with the official split),
and takes the last 10,000 as the test set, the 9,000 before them as the validation set and the
remaining 51,000 for training. Its shuffle had no seed; `normlab.data` seeds it with `SEED`. Each
28×28 digit is padded with 2 zero pixels per side to 32×32 (LeNet's input size) and divided by
255, nothing else: no mean subtraction, no augmentation.
"""),
("code", '''xb, yb = next(iter(dl.train))
print("a training batch:", tuple(xb.shape), xb.dtype, f"values in [{xb.min():.0f}, {xb.max():.0f}]")
plots.show_images(xb[:16], yb[:16], dl.classes, ncols=8, size=1.1)
plt.show()'''),
("md", r"""
## The five networks

The base network is LeNet-5 with two changes: the second convolution is 3×3 (LeNet's figure,
which the repository shows, has 5×5), and the output is a plain dense layer with a softmax.
Activations are sigmoids, pooling is averaging, weights use the Keras initialization (Glorot
uniform, zero biases).

| layer | c1 | s2 | c3 | s4 | c5 | f6 | out |
|---|---|---|---|---|---|---|---|
| | conv 6, 5×5 | avg pool 2 | conv 16, 3×3 | avg pool 2 | dense 120 | dense 84 | dense 10 |
| output | 28×28×6 | 14×14×6 | 12×12×16 | 6×6×16 | 120 | 84 | 10 |

Each batch-norm variant takes the sigmoid off a layer and puts `layer → BN → sigmoid` in its place:
`lenet_bn1` after c1, `lenet_bn2` after c1 and c3, `lenet_fc_bn1` adds c5, `lenet_fc_bn2` adds f6.

The author's batch-norm layers differ from the paper's in their learned scale γ and shift β:

- after a **convolution**, the statistics are per channel (averaged over the batch and the image)
  as in the paper, but γ and β have the shape of the whole feature map, H×W×C: a separate scale and
  shift for every position of every channel. That is why `lenet_bn1` has 9,408 more parameters
  than `lenet` (2 × 28 × 28 × 6);
- after a **dense** layer, the statistics are per feature, but γ and β are one number each for the
  whole layer: `lenet_fc_bn1` adds only 2 parameters to `lenet_bn2`;
- ε is 10⁻⁸ (the paper and Keras use 10⁻³ or 10⁻⁵).

`normlab.models.LeNet` builds all five with `bn="original"` (the author's layers,
`normlab.norms.TairBatchNorm2d` and `TairBatchNorm1d`) or `bn="standard"` (PyTorch's per-channel
`BatchNorm2d`/`BatchNorm1d` with the Keras defaults the author's own check used: momentum 0.99,
ε 10⁻³). The parameter counts below are the ones the original's Keras summaries give.
"""),
("code", '''# NBVAL_CHECK_OUTPUT
print(f"{'variant':14s}{'BN after':>18s}{'original BN':>14s}{'standard BN':>14s}")
for v in VARIANTS:
    after = ", ".join(n for n in ("c1", "c3", "c5", "f6") if n in models.LENET_BN_AFTER[v]) or "-"
    orig, std = (models.count_params(models.LeNet(v, bn=b)) for b in ("original", "standard"))
    print(f"{v:14s}{after:>18s}{orig:>14,}{std:>14,}")
print()
print(models.LeNet("lenet_bn1", bn="original").c1_bn)
print(models.LeNet("lenet_fc_bn1", bn="original").c5_bn)'''),
("md", r"""
## Training as the original did

`main.py` compiles every network with `optimizer='adam'` and
`SparseCategoricalCrossentropy(from_logits=True)`, and trains it for 10 epochs with batches of 64,
validating on the 9,000 held-out images after each epoch (its learning-rate and early-stopping
callbacks have a patience of 15 epochs, so they never act). Here the networks end in a softmax
(`output="softmax"`) and the loss is `F.cross_entropy`, which applies a softmax to its input: the
same double softmax. The batch-norm layers evaluate with each batch's own statistics, which is what
ran (more below).
"""),
("code", '''def train_variant(variant, bn="original", output="softmax"):
    """One network trained with the original's recipe; returns its history, time and model."""
    torch.manual_seed(SEED)
    model = models.LeNet(variant, bn=bn, output=output)
    with book.Timer() as timer:
        h = train.fit(model, dl, **recipes.fit_kwargs(recipe, seed=SEED), label=f"{variant} ({bn})")
    e = h.last
    print(f"{variant:13s} {bn:8s} train {e['train_acc']:.2%}  val {e['val_acc']:.2%}  "
          f"test {e['test_acc']:.2%}  loss {e['train_loss']:.4f}  {timer.seconds:5.1f} s"
          + (f"  stopped: {h.stopped}" if h.stopped else ""))
    return {"history": h, "seconds": timer.seconds, "model": model}

original = {v: train_variant(v) for v in VARIANTS}'''),
("code", '''# NBVAL_CHECK_OUTPUT
# NBVAL_APPROX  (training numbers: compared within the tolerance in tests/README.md)
print(original[VARIANTS[-1]]["history"].table())'''),
("md", r"""
The original plotted only the **training** accuracy of the five networks (`results/Comparison.png`,
y-axis cut at 0.7). The dashed lines and crosses are the values read off that plot (±0.003; the
first epoch of three networks is below its axis); the solid lines are this run. The other two
panels show what the original computed but never plotted: the validation and test accuracy after
each epoch.
"""),
("code", '''curve = reported.CURVES[("001", "train_acc")]
ref = {v: (curve["epochs"], curve[v]) for v in VARIANTS if v in curve}
hists = {v: r["history"] for v, r in original.items()}
fig, axes = plt.subplots(1, 3, figsize=(13, 3.9), constrained_layout=True, sharey=True)
plots.compare_histories(hists, "train_acc", ax=axes[0], reported=ref, ylabel="accuracy")
plots.compare_histories(hists, "val_acc", ax=axes[1], ylabel="accuracy")
plots.compare_histories(hists, "test_acc", ax=axes[2], ylabel="accuracy")
for ax, title in zip(axes, ("training (running mean over the epoch)", "validation (9,000 images)",
                            "test (10,000 images)")):
    ax.set_title(title)
    ax.set_ylim(0.7, 1.0)
plt.show()'''),
("code", '''pickle = reported.CURVES[("001", "lenet_fc_bn2_pickle")]
h = original["lenet_fc_bn2"]["history"]
print("lenet_fc_bn2, per epoch   " + " ".join(f"{i + 1:>6d}" for i in range(len(h))))
print("train acc, here           " + " ".join(f"{e['train_acc']:6.4f}" for e in h.epochs))
print("train acc, original pickle" + " ".join(f"{v:6.4f}" for v in pickle["train_acc"][:len(h)]))
print("val acc, here             " + " ".join(f"{e['val_acc']:6.4f}" for e in h.epochs))
print("val acc, original pickle  " + " ".join(f"{v:6.4f}" for v in pickle["val_acc"][:len(h)]))'''),
("md", r"""
The reproduction follows the original's plot closely. After 10 epochs the five networks reach
96.83, 97.30, 97.89, 98.92 and 99.20 % training accuracy; the values read off `Comparison.png` are
about 96.7, 97.2, 97.8, 98.9 and 99.1 %. The order is the same, and so is the large step between
`lenet_bn2` and `lenet_fc_bn1`, where batch norm reaches the first dense layer. For `lenet_fc_bn2`
the original's stored history gives exact numbers, and the training accuracy here stays within
0.3 points of it in every epoch (82.93 % against 82.68 % after the first). One number differs: the
validation accuracy after the first epoch, 96.59 % here against 88.10 % in the original; from the
second epoch on the two agree to within half a point. One run of each cannot say whether that is
the seed or a difference between the frameworks.

The validation and test curves, which the original computed but did not plot, tell the README's
story too: each added batch-norm layer helps, and the networks with batch norm after the dense
layers learn fastest. After 10 epochs the test accuracy goes from 96.76 % without batch norm to
98.85 % with it everywhere. Each run took 37 to 94 s on this CPU (the table at the end has the
times).
"""),
("md", r"""
## Standard batch norm

Now the same five networks with PyTorch's per-channel batch norm: one γ and β per channel, running
statistics for evaluation. Everything else (data, initialization, double softmax, Adam, epochs)
stays the same.
"""),
("code", '''standard = {"lenet": original["lenet"]}  # no BN: nothing to change
if STANDARD_BN:
    standard.update({v: train_variant(v, bn="standard") for v in VARIANTS if v != "lenet"})'''),
("code", '''def final(runs, key):
    return {v: r["history"].last[key] for v, r in runs.items()}

print(f"{'':14s}{'training accuracy':>24s}{'test accuracy':>24s}")
print(f"{'variant':14s}{'original BN':>12s}{'standard':>12s}{'original BN':>12s}{'standard':>12s}")
tr_o, tr_s, te_o, te_s = (final(r, k) for k, r in [("train_acc", original), ("train_acc", standard),
                                                     ("test_acc", original), ("test_acc", standard)])
for v in VARIANTS:
    cells = [tr_o.get(v), tr_s.get(v), te_o.get(v), te_s.get(v)]
    print(f"{v:14s}" + "".join(f"{'-' if c is None else f'{c:.2%}':>12s}" for c in cells))'''),
("code", '''fig, axes = plt.subplots(1, 2, figsize=(12, 4), constrained_layout=True, sharey=True)
plots.compare_histories({f"{v}": r["history"] for v, r in original.items()}, "test_acc", ax=axes[0])
plots.compare_histories({f"{v}": r["history"] for v, r in standard.items()}, "test_acc", ax=axes[1])
axes[0].set_title("test accuracy, the author's BN layers")
axes[1].set_title("test accuracy, standard per-channel BN")
for ax in axes:
    ax.set_ylim(0.7, 1.0)
plt.show()'''),
("md", r"""
Standard batch norm reaches about the same training accuracy (within 0.4 points), but a lower
test accuracy for the two networks with batch norm after the dense layers: 97.78 and 97.93 %,
against 98.43 and 98.85 % with the author's layers. Two things differ between the two at once: the
learned scale and shift (per channel, instead of per position and channel or a single scalar),
and the statistics at test time (running averages, instead of each test batch's own). The next
section separates them.

## Which statistics at test time?

A batch-norm layer normalizes a training batch with that batch's mean and variance. At test time
there may be no batch, or a batch of one, so the paper (Algorithm 2) replaces them with the
population statistics, estimated during training (PyTorch and Keras keep running averages). The
author wrote a third scheme: keep the statistics of the last `window_size` = 5 *test* batches and
normalize with their average, scaling the variance by m/(m−1).

What ran was none of these. Keras compiles `fit` and `evaluate` into a graph with `tf.function`,
which runs the layer's Python code once, when it traces the graph. The list of stored statistics
therefore grew to length 1 once, the "one entry" branch was frozen into the graph, and every
validation and test batch was normalized with **its own** mean and variance. The window size had
no effect (the seed spec checked this by running the original code with TensorFlow 2.15). A network
that looks at the whole batch at test time gives each image an answer that depends on the other
images in its batch.

`TairBatchNorm` offers all three as `inference="batch"` (what ran), `"window"` (what the code
meant; `WINDOWS` sets k) and `"running"` (the paper's; the layers keep running averages with
momentum 0.01 during training whatever the mode). The next cell evaluates the trained
`lenet_fc_bn2` on the test set cut into batches of different sizes, in each mode.
"""),
("code", '''net = original["lenet_fc_bn2"]["model"]
sizes = [s for s in EVAL_BATCH_SIZES if s <= len(dl.test.data)]
by_mode = {"batch (what ran)": train.accuracy_by_batch_size(net.set_inference("batch"), dl.test, sizes)}
for k in WINDOWS:
    net.set_inference("window")
    for layer in net.tair_bn_layers():
        layer.window = k
    by_mode[f"window of {k} batches"] = train.accuracy_by_batch_size(
        net, dl.test, [s for s in sizes if s >= 2],
        before=lambda: [layer.reset_window() for layer in net.tair_bn_layers()])
by_mode["running averages (the paper)"] = train.accuracy_by_batch_size(net.set_inference("running"), dl.test, sizes)
net.set_inference("batch")
if STANDARD_BN:
    by_mode["standard BN (running averages)"] = train.accuracy_by_batch_size(
        standard["lenet_fc_bn2"]["model"], dl.test, sizes)

print(f"{'test accuracy at evaluation batch size':40s}" + "".join(f"{s:>8d}" for s in sizes))
for mode, accs in by_mode.items():
    print(f"{mode:40s}" + "".join(f"{accs[s]:8.2%}" if s in accs else f"{'-':>8s}" for s in sizes))'''),
("code", '''fig, ax = plt.subplots(figsize=(8, 4.2), constrained_layout=True)
for mode, accs in by_mode.items():
    ax.plot(list(accs), list(accs.values()), "o-", ms=4, label=mode)
ax.set(xscale="log", xlabel="evaluation batch size", ylabel="test accuracy",
       title="lenet_fc_bn2: test accuracy against the evaluation batch size")
ax.grid(alpha=0.3); ax.legend(fontsize=8)
plt.show()'''),
("md", r"""
What ran depends strongly on the batch. With test batches of 2 the network classifies 71.13 % of
the test images correctly, with batches of 8 96.08 %, and from 64 up about 98.9 %. (Keras'
`evaluate`, which printed the original's test accuracy, uses batches of 32 by default: 98.69 %
here; its validation used batches of 64.) The window the author meant repairs small batches:
averaging the statistics of 20 batches of 2 gives 97.88 %. A window of 1 is the batch mode with
the author's m/(m−1) factor on the variance, and is slightly worse at small batches.

The paper's running averages give the same 98.03 % at every batch size. That is about 0.9 points
*below* normalizing with a large test batch, and close to the standard-BN network's 97.93 %. So
most of standard batch norm's lower test accuracy above comes from the statistics used at test
time, not from the per-channel scale and shift. A likely reason why the running averages do worse
than a large batch: with momentum 0.01 they average the statistics of roughly the last hundred
training batches, computed with weights that were still changing, while a batch of 10,000 test
images gives the statistics of the final weights. (Exercise 3 tests this.)

## The double softmax

The network's last layer is a softmax, so its outputs p₁…p₁₀ are probabilities between 0 and 1.
The loss `SparseCategoricalCrossentropy(from_logits=True)` treats them as logits and applies a
softmax again. The best the network can do is p = 1 for the right class and 0 for the others, and
then the loss is

$$-\log\frac{e^1}{e^1 + 9e^0} = \log(1 + 9/e) \approx 1.4612,$$

so the loss cannot fall below 1.461, whatever the network learns. (Keras warns about exactly this
when it sees a softmax output with `from_logits=True`.) The stored history of the original's last
network ends at a training loss of 1.471 and a validation loss of 1.474.

The accuracy is unaffected in principle (the argmax is the same), but the gradient is not: near
the floor the second softmax flattens the loss, and a confident correct answer earns almost
nothing more. The last cell of this section trains `lenet_fc_bn2` with the softmax layer removed
(`output="logits"`), the usual single softmax inside the loss.
"""),
("code", '''floor = math.log(1 + 9 / math.e)
print(f"loss floor of the double softmax: {floor:.4f}")
print(f"{'variant':14s}{'lowest epoch mean loss':>24s}{'last step loss':>16s}")
for v, r in original.items():
    h = r["history"]
    print(f"{v:14s}{min(e['train_loss'] for e in h.epochs):>24.4f}{h.steps['loss'][-1]:>16.4f}")
if SINGLE_SOFTMAX:
    single = train_variant("lenet_fc_bn2", output="logits")'''),
("code", '''if SINGLE_SOFTMAX:
    runs = {"double softmax (original)": original["lenet_fc_bn2"]["history"], "single softmax": single["history"]}
    fig, axes = plt.subplots(1, 2, figsize=(12, 4), constrained_layout=True)
    plots.compare_histories(runs, "train_loss", ax=axes[0], ylabel="training loss")
    axes[0].axhline(floor, color="k", ls=":", lw=1, label="double-softmax floor")
    axes[0].set_yscale("log"); axes[0].legend(fontsize=8)
    plots.compare_histories(runs, "test_acc", ax=axes[1], ylabel="test accuracy")
    for ax, t in zip(axes, ("training loss", "test accuracy")):
        ax.set_title(f"lenet_fc_bn2: {t}")
    plt.show()
    for name, h in runs.items():
        print(f"{name:28s} final training loss {h.last['train_loss']:.4f}  test accuracy {h.last['test_acc']:.2%}")'''),
("md", r"""
No network gets below the floor: the lowest epoch mean is 1.4709 (`lenet_fc_bn2`), 0.01 above
it, as in the original's history (1.471). Without the double softmax the same network reaches a
training loss of 0.0209 and a higher training accuracy (99.37 % against 99.20 %), but a *lower*
test accuracy: 98.29 % against 98.85 %. With the double softmax a confident right answer earns
almost nothing more, so the network stops pushing its outputs to the extremes, a bit like label
smoothing. This is one run: read it as "the bug did not hurt here", not as "the bug helps".

## Results beside the original's

The original reports training accuracy only (read off its plot) and, for `lenet_fc_bn2`, a stored
history with validation accuracy. The test accuracies are this book's measurements with nothing to
compare them with. The table is written to `results/05_lenet_mnist.json`.
"""),
("code", '''results = book.Results("05_lenet_mnist", seed="001", smoke=SMOKE)
bn = lambda v: "no BN" if v == "lenet" else "the author's BN"  # noqa: E731
for v, r in original.items():
    h = r["history"]
    results.add(v, h.last["train_acc"], r["seconds"], metric="train accuracy", epochs=len(h),
                note=f"{bn(v)}, double softmax")
results.add("lenet_fc_bn2", original["lenet_fc_bn2"]["history"].last["val_acc"],
            original["lenet_fc_bn2"]["seconds"], metric="validation accuracy", epochs=epochs,
            note="the author's BN, double softmax")
for v, r in original.items():
    results.add(f"{v} test", r["history"].last["test_acc"], r["seconds"], epochs=epochs,
                note=f"{bn(v)}, batch statistics at test time, batches of 64" if v != "lenet" else "no BN")
for v, r in standard.items():
    if v != "lenet":
        results.add(f"{v} standard BN test", r["history"].last["test_acc"], r["seconds"], epochs=epochs,
                    note="this book's experiment")
if SINGLE_SOFTMAX:
    results.add("lenet_fc_bn2 single softmax test", single["history"].last["test_acc"], single["seconds"],
                epochs=epochs, note="this book's experiment")
results.save(RESULTS_DIR)
results.show()'''),
("md", r"""
## What the original did, and what we changed

| the original | here | why |
|---|---|---|
| MNIST train + test concatenated, shuffled without a seed, split 51,000 / 9,000 / 10,000 | the same split, shuffled with `SEED` | reproducible |
| conv BN with γ, β of shape H×W×C; dense BN with scalar γ, β; ε 10⁻⁸ | the same (`bn="original"`), and per-channel BN (`bn="standard"`) beside it | faithful, then the usual layer for contrast |
| test-time statistics meant to be a window of the last 5 test batches; what ran was each batch's own statistics (Keras traced the Python list once) | `inference="batch"` for the runs; `"window"` and `"running"` as experiments | reproduce what ran; show what was meant |
| the window's variance: `K.mean` over the list, which would have collapsed it to one scalar (and crashes in eager mode) | per channel | the evident intent |
| softmax output + `from_logits=True` loss: double softmax, loss ≥ 1.461 | kept in the main runs; one run without it | faithful, then measured |
| the comparison plot shows training accuracy only, y from 0.7 | training, validation and test accuracy | the training accuracy of a BN net is measured in training mode, on moving weights |
| Keras flattens NHWC | PyTorch flattens NCHW | a fixed permutation of c5's inputs; same model family |
| Keras Adam (ε 10⁻⁷) | the same ε | faithful |

## Exercises

1. Evaluate `lenet_bn2` (original BN) on the test set in batches of 1 with `inference="batch"`.
   What accuracy do you expect, and why?
"""),
("md", r"""
````{admonition} Solution
:class: dropdown

```python
net = original["lenet_bn2"]["model"].set_inference("batch")
print(train.accuracy_by_batch_size(net, dl.test, [1]))
```

With one image the batch mean of every channel is the mean over that image's positions, and the
per-channel variance is the variance over positions, so the layer still runs, but the convolution
outputs of every image are standardized on their own: the network sees a contrast-normalized image
and the learned γ/β were fitted to batch-normalized ones. Expect a clear drop. For a *dense* BN
layer a batch of one is worse still: each feature's variance over the batch is 0, the output is
just β, and the prediction no longer depends on the image, which is why `lenet_fc_bn1` and
`lenet_fc_bn2` cannot be evaluated one image at a time with batch statistics.
````
"""),
("md", r"""
2. The window mode scales the averaged variance by m/(m−1) with m the batch size. Which count
   would make the estimate unbiased for a convolutional layer, and does it matter here?
"""),
("md", r"""
```{admonition} Solution
:class: dropdown

The variance of a conv channel is taken over N·H·W values (e.g. 64 × 28 × 28 = 50,176 for c1), so
the unbiasing factor is N·H·W/(N·H·W − 1), practically 1. The author's m/(m−1) with m = 64 is
1.016: it inflates the variance by 1.6 % and shrinks every normalized value by 0.8 %, which the next
layer barely notices. For dense layers m = N is the right count.
```
"""),
("md", r"""
3. Test the explanation above for the running averages: after training, recompute the statistics
   of every batch-norm layer of `lenet_fc_bn2` from the training images with the *final* weights
   (a cumulative average over one pass, no weight updates), then evaluate with
   `inference="running"`. Does the gap to large test batches close?
"""),
("md", r"""
````{admonition} Solution
:class: dropdown

```python
net = original["lenet_fc_bn2"]["model"]
layers = net.tair_bn_layers()
for layer in layers:
    layer.running_mean.zero_(); layer.running_var.fill_(1)
net.train()
with torch.no_grad():
    for i, (x, _) in enumerate(dl.train):
        for layer in layers:
            layer.momentum = 1 / (i + 1)  # cumulative average over the pass
        net(x)
net.set_inference("running")
print(train.evaluate(net, dl.test)["acc"])
net.set_inference("batch")
```

The forward passes in training mode update only the running averages (no optimizer step), so the
weights are the final ones. If the accuracy moves up towards the large-batch figure, the lag of
the running averages was the reason; if it does not, the difference lies elsewhere.
````
"""),
("md", r"""
## What next

Batch norm here was added to a sigmoid network, where it helps most: it keeps the inputs of the
sigmoids in their steep middle range. The next chapter goes back to CIFAR-10 and ReLU networks and
to another code base whose README promised batch normalization: what it implemented was local
response normalization.
"""),
]

build(sys.argv[1] if len(sys.argv) > 1 else f"{BOOK}/05_lenet_mnist.ipynb", cells)
