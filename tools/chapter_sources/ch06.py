import os, sys; sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from nbbuild import BOOK, TMP, build
from common import COLAB

cells = [
("md", r"""
# 6. Local response normalization vs batch norm

satyaSK/Modulated-ConvNet-CIFAR10 {cite}`seed_satyask` is a small TensorFlow 1 project built on
TensorFlow's CIFAR-10 tutorial: a two-convolution network trained on 24×24 crops. Its README
says it adds batch normalization. The commit that "adds batch norm" inserts one line,
`tf.nn.lrn(...)`, after each convolution: **local response normalization**, the scheme of AlexNet
{cite}`krizhevsky2012imagenet`, which normalizes each activation by its neighbours across channels
in the same image. It is not batch norm at all, and the README itself later admits it.

The script cannot run as committed (its input queue is never started, its labels have the wrong
shape, and it has four more bugs; see the table at the end), and it reports no numbers. So this
chapter defines the experiment its README describes and runs it: the same network with no
normalization, with LRN (what the code did) and with batch norm (what the README said). The code
has three modelling bugs that do run: a ReLU on the logits, dropout left on at test time, and
weights drawn with standard deviation 1. The chapter trains the three networks first with those
bugs, then without, and measures what each bug does.

**Every accuracy in this chapter is a new result**: the original never produced one.
"""),
("code", COLAB),
("md", r"""
The parameters: the defaults are the original's budget (Adam at 10⁻³, batches of 128, 390 steps
per epoch for 11 epochs), for three normalizations, with the bugs and without. The book's tests run
the notebook with `SMOKE = True`.
"""),
("code", '''SMOKE = False           # tiny data and epochs (used by the tests)
EPOCHS = 11             # the script's loop: for i in range(epochs + 1) with epochs = 10
LR = 1e-3               # tf.train.AdamOptimizer(1e-3)
BATCH_SIZE = 128
SEED = 0
DEVICE = "auto"         # "auto" picks CUDA, then MPS, then the CPU
DATA_DIR = None         # folder holding cifar-10-batches-py/; None: $NORMLAB_DATA or ~/.cache/normlab/data
RESULTS_DIR = "results" # where this chapter writes its results
THREADS = None          # CPU threads (None: torch's default)
NORMS = ("none", "lrn", "batch")  # a3199d2 (no norm), HEAD (LRN), the README's batch norm
AS_CODED = True         # train with the original's three modelling bugs
FIXED = True            # train with the bugs fixed''', ["parameters"]),
("code", '''import torch
import torch.nn as nn
import matplotlib.pyplot as plt

from normlab import augment, book, models, plots, recipes, train

device = book.setup(SEED, DEVICE, THREADS)
epochs = 1 if SMOKE else EPOCHS
subset = dict(subset=20, test_subset=10) if SMOKE else {}
recipe = recipes.RECIPES["tf_tutorial_cnn"].replace(batch_size=BATCH_SIZE, epochs=epochs, lr=LR)
# the input queue gave int(50000 / 128) = 390 batches per "epoch": drop the last partial batch
dl = recipes.make_loaders(recipe, data_dir=DATA_DIR, device=device, seed=SEED, download=True,
                          drop_last=not SMOKE, **subset)
print(dl.name, "train", len(dl.train.data), "test", len(dl.test.data), "| batches per epoch", len(dl.train))'''),
("md", r"""
## The TensorFlow tutorial's input pipeline

The original keeps the tutorial's `distorted_inputs()` for training. Each 32×32 image goes through,
in this order: a random 24×24 crop, a random horizontal flip, a random brightness change (±63 on
the 0–255 scale), a random contrast factor between 0.2 and 1.8, and `per_image_standardization`
(subtract the image's own mean, divide by its own standard deviation). Test images get the central
24×24 crop and the same standardization. There are no dataset statistics anywhere: every image is
normalized on its own before the network sees it. `normlab.augment` implements each step on whole
batches with the same formulas as TensorFlow.
"""),
("code", '''xb, yb = next(iter(dl.train))
print("a training batch:", tuple(xb.shape), f"per-image mean {xb.mean((1, 2, 3)).abs().max():.1e} (max |.|),",
      f"per-image std {xb.std((1, 2, 3), correction=0).mean():.3f}")
# each image is standardized on its own: stretch each one to [0, 1] to show it
lo = xb.amin((1, 2, 3), keepdim=True); hi = xb.amax((1, 2, 3), keepdim=True)
plots.show_images((xb[:16] - lo[:16]) / (hi[:16] - lo[:16]), yb[:16], dl.classes, ncols=8, size=1.2)
plt.show()'''),
("md", r"""
## The network

`convNetModel` in the original, with the line that differs between the "basic CNN" commit and the
"with batch norm" one marked:

| # | layer | output |
|---|---|---|
| 1 | conv 5×5, 3→64, SAME, bias | 24×24×64 |
| 2 | **`tf.nn.lrn(depth_radius=4, bias=1.0, alpha=0.001/9, beta=0.75)`** (the added line) | |
| 3 | ReLU, max pool 2×2 | 12×12×64 |
| 4–6 | conv 5×5, 64→64; **LRN**; ReLU; max pool | 6×6×64 |
| 7 | flatten; dense 384, ReLU, dropout 0.5 | 384 |
| 8 | dense 192, ReLU, dropout 0.5 | 192 |
| 9 | dense 10, **ReLU** | 10 |

LRN divides each activation by a power of the sum of squares of the activations at the same
position in its neighbouring channels:

$$b_c = a_c \Big/ \Big(k + \alpha' \sum_{c'=c-4}^{c+4} a_{c'}^2\Big)^{\beta},\qquad k = 1,\ \alpha' = 0.001/9,\ \beta = 0.75.$$

It looks at one image at a time, so it behaves the same in training and at test time, and it has
no learned parameters. Batch norm averages over the batch and the positions of each channel
instead, and learns a scale and a shift. PyTorch's `nn.LocalResponseNorm(size=9, alpha=0.001,
beta=0.75, k=1)` is the same operation: TensorFlow's `alpha` multiplies the sum, PyTorch's is
divided by `size` first. The next cell checks that against the formula, and the parameter count
against the one computed from the original (1,068,298 without batch norm).
"""),
("code", '''# NBVAL_CHECK_OUTPUT
def tf_lrn(a, depth_radius=4, bias=1.0, alpha=0.001 / 9, beta=0.75):
    """tf.nn.lrn's formula, NCHW: a / (bias + alpha * sum of squares over +-depth_radius channels) ** beta."""
    sq = a.pow(2)
    c = a.shape[1]
    sums = torch.stack([sq[:, max(0, i - depth_radius):i + depth_radius + 1].sum(1) for i in range(c)], 1)
    return a / (bias + alpha * sums) ** beta

torch.manual_seed(0)
a = torch.randn(2, 64, 6, 6) * 10
print("nn.LocalResponseNorm(9, 0.001, 0.75, 1) equals tf.nn.lrn's formula:",
      torch.allclose(nn.LocalResponseNorm(9, 0.001, 0.75, 1.0)(a), tf_lrn(a), atol=1e-5))
for norm in NORMS:
    print(f"norm={norm!r:8s} parameters: {models.count_params(models.TFTutorialCNN(norm)):,}")
print(models.TFTutorialCNN("lrn", faithful=True))'''),
("md", r"""
## The three bugs that run

`faithful=True` keeps three things the original's code does that a reader would not choose:

1. **Weights with standard deviation 1.** The layers use `tf.truncated_normal_initializer()` with
   its default standard deviation of 1.0, whatever the layer's fan-in. A 5×5×64 convolution sums
   1,600 products, so every layer multiplies the scale of its input by about √fan-in.
2. **ReLU on the logits.** The last dense layer is followed by a ReLU: negative logits become 0,
   and a class whose logit is negative gets no gradient through it.
3. **Dropout at test time.** The keep probability is a Python constant 0.5 in the graph, not a
   placeholder, so the "test accuracy" is that of a randomly thinned network.

`faithful=False` uses PyTorch's default initialization, plain logits and the usual dropout. First,
what the initialization does: the scale of each layer's output at initialization, for one batch.
"""),
("code", '''def activation_scales(model, x):
    """Standard deviation of the output of each conv/norm/linear layer for one batch, in eval mode
    with dropout off (initialization only: no training)."""
    scales, hooks = {}, []
    for name, m in model.named_children():
        if isinstance(m, (nn.Conv2d, nn.Linear, nn.LocalResponseNorm, nn.BatchNorm2d)):
            hooks.append(m.register_forward_hook(lambda m, i, o, name=name: scales.__setitem__(name, o.std().item())))
    model.train()  # batch norm normalizes with the batch
    for m in model.modules():
        if isinstance(m, nn.Dropout):
            m.p = 0.0
    with torch.no_grad():
        out = model(x)
    for h in hooks:
        h.remove()
    return scales, out

x0, y0 = next(iter(dl.test))
rows = {}
for norm in NORMS:
    for init in ("tf_stddev1", "torch"):
        torch.manual_seed(SEED)
        rows[(norm, init)] = activation_scales(models.TFTutorialCNN(norm, init=init), x0)[0]
names = list(rows[(NORMS[0], "torch")])
print(f"{'std of the output at initialization':38s}" + "".join(f"{n:>10s}" for n in names))
for (norm, init), s in rows.items():
    print(f"{norm + ', ' + init:38s}" + "".join(f"{s[n]:>10.3g}" if n in s else f"{'-':>10s}" for n in names))'''),
("md", r"""
With the original's initialization the scale explodes layer by layer: the first convolution's
output already has a standard deviation of about 7, the logits about 850,000 without
normalization. LRN damps it only a little (logits about 66,000); batch norm resets it after each
convolution, but the dense layers multiply it again (logits about 5,000). With PyTorch's default
initialization every layer stays below 1.

## Training: as coded, then fixed

Each network is trained with the recipe of the original (Adam 10⁻³, batches of 128, 390 steps per
epoch, 11 epochs, the tutorial's augmentation) and evaluated after each epoch on the full test set
(the original evaluated one batch of 128 test images). Runs that keep the bugs also keep dropout at
test time, so their test accuracy is what the original would have printed.
"""),
("code", '''def train_net(norm, faithful):
    torch.manual_seed(SEED)
    model = models.TFTutorialCNN(norm, faithful=faithful)
    label = f"{norm}, {'as coded' if faithful else 'fixed'}"
    with book.Timer() as timer:
        h = train.fit(model, dl, **recipes.fit_kwargs(recipe, seed=SEED), label=label)
    print(f"{label:16s} train {h.last['train_acc']:.2%}  test {h.last['test_acc']:.2%}  "
          f"{timer.seconds:6.1f} s" + (f"  stopped: {h.stopped}" if h.stopped else ""), flush=True)
    return {"history": h, "seconds": timer.seconds, "model": model}

runs = {}
for faithful in [f for f, on in ((True, AS_CODED), (False, FIXED)) if on]:
    for norm in NORMS:
        runs[(norm, faithful)] = train_net(norm, faithful)'''),
("code", '''# NBVAL_CHECK_OUTPUT
# NBVAL_APPROX  (training numbers: compared within the tolerance in tests/README.md)
for (norm, faithful), r in runs.items():
    print(f"{norm}, {'as coded' if faithful else 'fixed'}")
    print(r["history"].table(digits=3))'''),
("code", '''groups = [(f, t) for f, t in ((True, "as coded (the three bugs)"), (False, "fixed")) if any(k[1] == f for k in runs)]
fig, axes = plt.subplots(2, len(groups), figsize=(6.5 * len(groups), 7), constrained_layout=True, squeeze=False)
for j, (faithful, title) in enumerate(groups):
    hs = {norm: r["history"] for (norm, f), r in runs.items() if f == faithful}
    plots.compare_histories(hs, "test_acc", ax=axes[0, j], ylabel="test accuracy")
    plots.compare_histories(hs, "train_loss", ax=axes[1, j], ylabel="training loss (epoch mean)")
    axes[1, j].set_yscale("log")
    axes[0, j].set_title(f"{title}: test accuracy")
    axes[1, j].set_title(f"{title}: training loss")
plt.show()'''),
("md", r"""
As coded, none of the three networks learns anything: after 11 epochs all are at 10 % test
accuracy, chance for ten classes, whatever the normalization. Their losses start in the thousands
or more and fall, but the accuracy never leaves 10 %. With the three bugs fixed the three networks
learn, and end within 0.2 points of each other: 72.69 % without normalization, 72.50 % with LRN and
72.64 % with batch norm, in one run each. On this small network, with per-image standardization of
the inputs and Adam, neither normalization changes the result after 11 epochs. (The LRN runs took
about 810 s against 220 s: PyTorch's `LocalResponseNorm` is slow on the CPU. Some times in this
render are inflated because other jobs shared the machine during parts of it.)

## What each bug costs

The runs above change all three bugs at once. Two of them can be measured on the trained networks
without training again.

**Dropout at test time.** Evaluate each as-coded network twice: with dropout on, as the original
did, and off.

**ReLU on the logits.** Count the test images for which the ReLU zeroes *every* logit. For those the
network's output is ten zeros, its "prediction" is whichever class `argmax` returns for a tie (the
first), and the loss sends no gradient back through any logit.
"""),
("code", '''def dropout_at_eval(model, on):
    for m in model.modules():
        if hasattr(m, "always"):
            m.always = on

print(f"{'as coded':10s}{'test acc, dropout on':>24s}{'dropout off':>14s}{'all logits zero':>18s}{'some logit zero':>18s}")
bug_rows = {}
for norm in NORMS:
    if (norm, True) not in runs:
        continue
    model = runs[(norm, True)]["model"]
    on = train.evaluate(model, dl.test)["acc"]
    dropout_at_eval(model, False)
    off = train.evaluate(model, dl.test)["acc"]
    with torch.no_grad():
        logits = torch.cat([model(x) for x, _ in dl.test])
    dropout_at_eval(model, True)
    all_zero = (logits == 0).all(1).float().mean().item()
    some_zero = (logits == 0).any(1).float().mean().item()
    bug_rows[norm] = (on, off, all_zero)
    print(f"{norm:10s}{on:>24.2%}{off:>14.2%}{all_zero:>18.2%}{some_zero:>18.2%}")'''),
("md", r"""
The ReLU on the logits is what kills the as-coded runs: for 99.9 % of the test images every
logit is zero, so the network outputs ten zeros, `argmax` picks the first class, and no gradient
flows back through any logit. With standard-deviation-1 weights the logits start huge and of both
signs, the first updates push them negative, and the ReLU then blocks every gradient: the network
is dead within the first epoch. Dropout at test time makes no difference to a dead network (10.00 %
with and without).

## Results

All numbers are new results: the original never ran. The table is written to
`results/06_lrn_vs_batchnorm.json`.
"""),
("code", '''results = book.Results("06_lrn_vs_batchnorm", seed="000", smoke=SMOKE)
for (norm, faithful), r in runs.items():
    h = r["history"]
    results.add(f"{norm}, {'as coded' if faithful else 'fixed'}", h.last["test_acc"], r["seconds"],
                epochs=len(h), note="dropout on at test time, as the original" if faithful else "bugs fixed")
results.save(RESULTS_DIR)
results.show()'''),
("md", r"""
## What the original did, and what we changed

| the original | here | why |
|---|---|---|
| README: "batch normalization"; code: `tf.nn.lrn` before each ReLU | LRN (`nn.LocalResponseNorm(9, 0.001, 0.75, 1)`) *and* batch norm, and neither | the question the README asked |
| `start_queue_runners` never called: the first `sess.run` blocks forever | `normlab.data` batches | the script cannot run as committed |
| labels int32 `[128]` fed to a float one-hot `[128, 10]` placeholder | integer labels with `cross_entropy` | the feed fails as committed |
| a format string with 3 placeholders and 2 arguments; `validation_size` undefined; `learning_rate.eval()` on a float | not needed | crashes as committed |
| "validation" = one batch of 128 test images per epoch; "test accuracy" = one batch's correct count / 10,000 | the full 10,000 test images | a measurement, not a sample |
| weights ~ truncated normal, std 1 | kept in the as-coded runs; PyTorch's default init when fixed | bug 1 |
| ReLU on the logits | kept as coded; removed when fixed | bug 2 |
| dropout keep_prob a constant 0.5, on at test time | kept as coded; off at test time when fixed | bug 3 |
| 16 input threads and a 20,000-image shuffle queue | one seeded permutation per epoch; 390 batches of 128 | the same number of steps, reproducible |
| NHWC, flattening 6×6×64 in HWC order | NCHW | a fixed permutation of fc1's inputs; same model family |

## Exercises

1. LRN has no learned parameters and no batch statistics. Replace it by a per-image normalization
   that *is* a standard layer, `GroupNorm(1, 64)` (layer norm over C, H, W, `norm="layer"`), and
   train the fixed network. Where does it land between LRN and batch norm?
"""),
("md", r"""
````{admonition} Solution
:class: dropdown

```python
r = train_net("layer", faithful=False)
```

`normlab.models.TFTutorialCNN` accepts any kind of `normlab.norms.make_norm`. Layer norm, like LRN,
looks at one image at a time, so it behaves the same in training and at test time; unlike LRN it
centres the activations and learns a per-channel scale and shift. Compare its test accuracy after
11 epochs with the three fixed runs above; the next chapter measures the whole family on a
different network.
````
"""),
("md", r"""
2. Why does batch norm make the network much less sensitive to the standard-deviation-1
   initialization than LRN does? Look at the table of activation scales.
"""),
("md", r"""
```{admonition} Solution
:class: dropdown

Batch norm divides each channel by its standard deviation over the batch, so whatever the scale of
the convolution weights, its output has standard deviation about 1 (times γ = 1): the scale is
reset after every convolution. LRN divides by (1 + α′·Σa²)^0.75, which for large activations
behaves like a²·⁰·⁷⁵ = |a|^1.5 in the denominator: it shrinks large values a lot but does not set
them to a fixed scale. Neither touches the dense layers, whose standard-deviation-1 weights still
multiply the scale by about √fan-in (√2304 = 48 for fc1).
```
"""),
("md", r"""
## What next

LRN normalizes across channels within one image, batch norm across the batch within one channel.
The next chapter puts batch norm beside the other members of the family that normalize within one
image (layer, group and instance norm) on one network, and lets you train them yourself.
"""),
]

build(sys.argv[1] if len(sys.argv) > 1 else f"{BOOK}/06_lrn_vs_batchnorm.ipynb", cells)
