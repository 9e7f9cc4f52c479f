"""Make the precomputed batch-size grid of chapter 7: the Group Normalization paper's headline
experiment (Wu & He 2018, figure 1) at small scale on the erav1s8 net.

Every norm x batch size x seed trains on the same images for the same number of epochs (so every
run sees the same number of images), with the learning rate scaled linearly with the batch (the
paper's rule, from the recipe's 0.01 at batch 32) and held constant (no plateau schedule, whose
cuts would depend on the batch). Each run records its test accuracy with the model in eval mode;
batch-norm runs also record it with batch statistics, in shuffled test batches of the training
batch size, which is what a batch-norm net computes when it is never switched to eval mode.

  python tools/batch_size_grid.py                     # writes book/results/grids/07_batch_size_grid.json
  python tools/batch_size_grid.py --batch-sizes 4 32 --seeds 0 --epochs 1 --out /tmp/bs.json

It prints one line per run and rewrites --out after each, so an interrupted grid goes on where
it stopped when run again with the same arguments.
"""
from __future__ import annotations

import argparse
import copy
import json
import sys
from pathlib import Path

import torch
import torch.nn as nn

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "src"))

from normlab import runs  # noqa: E402
from normlab.devices import describe_device  # noqa: E402
from normlab.files import write_json_atomic  # noqa: E402
from normlab.models import MODELS  # noqa: E402
from normlab.recipes import get_recipe  # noqa: E402

MODEL = "erav1s8"


def batch_statistics_accuracy(model: nn.Module, test, batch_size: int, seed: int) -> dict:
    """Test loss and accuracy with every batch-norm layer normalizing by the statistics of its
    test batch (train-mode BN, running buffers left as they are), everything else in eval mode.
    Test batches are shuffled: the subset is stored class by class, and a batch of one class
    would leak its label into the statistics."""
    m = copy.deepcopy(model).eval()
    for layer in m.modules():
        if isinstance(layer, nn.modules.batchnorm._BatchNorm):
            layer.train()
            layer.momentum = 0.0  # running = (1 - 0) * running + 0 * batch: unchanged
    batches = test.with_batch_size(batch_size)
    batches.shuffle = True
    batches.generator = torch.Generator().manual_seed(seed)
    loss_sum = correct = n = 0
    with torch.no_grad():
        for x, y in batches:
            out = m(x)
            loss_sum += nn.functional.cross_entropy(out, y, reduction="sum").item()
            correct += (out.argmax(1) == y).sum().item()
            n += len(y)
    return {"test_loss": loss_sum / n, "test_acc": correct / n}


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--norms", nargs="+", default=["batch", "group", "layer"])
    p.add_argument("--batch-sizes", nargs="+", type=int, default=[2, 4, 8, 16, 32])
    p.add_argument("--seeds", nargs="+", type=int, default=[0, 1])
    p.add_argument("--epochs", type=int, default=4)
    p.add_argument("--subset", type=int, default=400, help="training images per class")
    p.add_argument("--test-subset", type=int, default=100, help="test images per class")
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--data-dir", default=None)
    p.add_argument("--out", default=str(REPO / "book" / "results" / "grids" / "07_batch_size_grid.json"))
    a = p.parse_args(argv)
    torch.set_num_threads(a.threads)
    recipe = get_recipe(MODEL)
    out = Path(a.out)
    # a run already in --out with the same size and threads is kept: an interrupted grid goes on
    results = _resumable_runs(out, a)
    for seed in a.seeds:
        for norm in a.norms:
            for bs in a.batch_sizes:
                if any((r["norm"], r["batch_size"], r["seed"]) == (norm, bs, seed) for r in results):
                    continue
                lr = recipe.lr * bs / recipe.batch_size
                r = runs.run(MODEL, norm=norm, batch_size=bs, lr=lr, epochs=a.epochs, subset=a.subset,
                             test_subset=a.test_subset, seed=seed, schedule="constant", device="cpu",
                             precision="fp32", data_dir=a.data_dir, download=False, progress=False)
                row = {"norm": norm, "batch_size": bs, "seed": seed, "lr": lr, "status": r.status,
                       "images_seen": a.epochs * len(r.data.train.data),
                       "steps": a.epochs * len(r.data.train),
                       "test_acc": r.history.last.get("test_acc"),
                       "test_loss": r.history.last.get("test_loss"),
                       "train_loss": r.history.last.get("train_loss"),
                       "curve": [e.get("test_acc") for e in r.history.epochs],
                       "seconds": round(r.seconds, 1)}
                if norm == "batch" and r.status == "done":
                    bstat = batch_statistics_accuracy(r.model, r.data.test, bs, seed)
                    row["batch_stats_test_acc"] = bstat["test_acc"]
                    row["batch_stats_test_loss"] = bstat["test_loss"]
                results.append(row)
                write_json_atomic(out, _grid(a, recipe, results, done=False))
                extra = f" (batch stats {row['batch_stats_test_acc']:.3f})" if "batch_stats_test_acc" in row else ""
                print(f"seed {seed} {norm:>5} batch {bs:>2} lr {lr:.5f}: test acc {row['test_acc']}{extra}"
                      f" in {row['seconds']} s", flush=True)
    grid = _grid(a, recipe, results, done=True)
    write_json_atomic(out, grid)
    print(f"{len(results)} runs, {grid['total_seconds']:.0f} s of training -> {a.out}")
    return 0


SIZE_KEYS = ("epochs", "subset", "test_subset", "threads")


def _grid(a, recipe, results, done: bool) -> dict:
    return {"model": MODEL, "model_revision": MODELS[MODEL].revision, "recipe_lr": recipe.lr, "recipe_batch_size": recipe.batch_size,
            "epochs": a.epochs, "subset": a.subset, "test_subset": a.test_subset, "schedule": "constant",
            "norms": a.norms, "batch_sizes": a.batch_sizes, "seeds": a.seeds, "runs": results,
            "hardware": describe_device("cpu"), "threads": a.threads, "torch": torch.__version__,
            "complete": done,
            # the runs' own times: a resumed grid's wall time would count only its last part
            "total_seconds": round(sum(r["seconds"] for r in results), 1)}


def _resumable_runs(out: Path, a) -> list[dict]:
    if not out.exists():
        return []
    old = json.loads(out.read_text())
    if any(old.get(k) != getattr(a, k) for k in SIZE_KEYS):
        raise SystemExit(f"{out} holds a grid of another size or thread count "
                         f"({ {k: old.get(k) for k in SIZE_KEYS} }); pass another --out or remove it")
    if old.get("model_revision", 0) != MODELS[MODEL].revision:  # e.g. erav1s8's dropout sampler changed
        raise SystemExit(f"{out} holds runs of {MODEL}'s registry revision {old.get('model_revision', 0)}, "
                         f"now {MODELS[MODEL].revision} (normlab.models.ModelSpec): pass another --out or remove it")
    return [r for r in old["runs"] if r["norm"] in a.norms and r["batch_size"] in a.batch_sizes and r["seed"] in a.seeds]


if __name__ == "__main__":
    raise SystemExit(main())
