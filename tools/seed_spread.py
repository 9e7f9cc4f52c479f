"""Train more seeds of the configurations whose results lie more than a point from their source, so
chapter 9 can show how far one run is from another (run-to-run spread) instead of asserting it.

  python tools/seed_spread.py --dry-run        # the plan and its time, from the chapters' results
  python tools/seed_spread.py                  # seeds 1 2 3 of every config, full budgets
  python tools/seed_spread.py --configs convnet2 --seeds 1 --epochs 1 --subset 5 --out /tmp/s.json

Each run is the chapter's own call (`normlab.runs.run`, the recipe's whole schedule, fast.ai's two
fit calls included) at another seed; the chapter's run is the chapter's seed (0; erav1s8: 42).
Writes book/results/grids/09_seed_spread.json (strict JSON, atomically, after every run, so an
interrupted job keeps what it finished and a second call skips those runs). Run it at 2 threads
on a quiet machine; it prints one line per run.
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import torch

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "src"))

from normlab import __version__, book, runs  # noqa: E402
from normlab.devices import describe_device  # noqa: E402
from normlab.files import write_json_atomic  # noqa: E402

OUT = REPO / "book" / "results" / "grids" / "09_seed_spread.json"
FASTAI_MEASURES = {"test accuracy": "test_acc", "test accuracy (lesson metric)": "test_acc_batch_mean"}


@dataclass(frozen=True)
class Config:
    """A configuration as its chapter trains it, and which value of a run its results row records."""
    chapter: str
    experiment: str
    model: str
    chapter_seed: int
    norm: str | None = None
    model_kwargs: dict = field(default_factory=dict)
    # results-row metric -> the key of a run below that measures the same thing
    measures: dict = field(default_factory=lambda: dict(FASTAI_MEASURES))
    note: str | None = None  # how these runs differ from the chapter's, said where they are shown


CONFIGS = {
    # chapters 2-4: runs.run(name, data=dl, epochs=None, seed=SEED) with SEED = 0
    "convnet": Config("02_convnets", "convnet", "convnet", 0),
    "convnet2": Config("02_convnets", "convnet2", "convnet2", 0),
    "convbnnet": Config("03_batchnorm_from_scratch", "convbnnet", "convbnnet", 0),
    "convbnnet2": Config("04_deeper_batchnorm", "convbnnet2", "convbnnet2", 0),
    # chapter 7: runs.run("erav1s8", norm="batch", model_kwargs={"groups": 4}, seed=42); its rows
    # record the best test and training accuracies over the 20 epochs. These seeds were trained
    # with torch's dropout sampler, before the chapter's default became the gaps on the CPU: the
    # sampler is named, so that the file's runs repeat and a new seed joins them in kind.
    "erav1s8_batch": Config("07_normalization_zoo", "batch", "erav1s8", 42, "batch",
                            {"groups": 4, "dropout_sampler": "torch"},
                            {"test accuracy": "best_test_acc", "train accuracy": "best_train_acc"},
                            note="these seeds drew their dropout masks with torch's sampler and the "
                                 "chapter's run with the gaps sampler: the same distribution of masks, "
                                 "another random stream"),
    # chapter 7's group-norm run (the largest move when the sampler changed), with the chapter's sampler
    "erav1s8_group": Config("07_normalization_zoo", "group", "erav1s8", 42, "group", {"groups": 4},
                            {"test accuracy": "best_test_acc", "train accuracy": "best_train_acc"}),
}


def positive(what: str):
    def parse(text: str) -> int:
        try:
            v = int(text)
        except ValueError:
            v = 0
        if v < 1:
            raise argparse.ArgumentTypeError(f"{what} must be a positive integer, got {text!r}")
        return v
    return parse


def seed_arg(text: str) -> int:
    try:
        v = int(text)
    except ValueError:
        v = -1
    if v < 0:
        raise argparse.ArgumentTypeError(f"a seed must be an integer >= 0, got {text!r}")
    return v


def parse_args(argv):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--configs", nargs="+", default=list(CONFIGS), metavar="NAME",
                   help=f"which configurations (default: all): {', '.join(CONFIGS)}")
    p.add_argument("--seeds", nargs="+", type=seed_arg, default=[1, 2, 3])
    p.add_argument("--epochs", type=positive("--epochs"), default=None,
                   help="epochs of every fit call (a quick test; default: the recipe's)")
    p.add_argument("--subset", type=positive("--subset"), default=None,
                   help="training and test images per class (a quick test; default: all)")
    p.add_argument("--threads", type=positive("--threads"), default=2)
    p.add_argument("--device", default="cpu", help="'cpu' (the chapters' renders), 'auto', 'cuda', ...")
    p.add_argument("--data-dir", default=None)
    p.add_argument("--results-dir", default=str(REPO / "book" / "results"),
                   help="the chapters' results, for --dry-run's time estimate")
    p.add_argument("--out", default=str(OUT))
    p.add_argument("--force", action="store_true", help="train again the runs the output file already holds (and replace a file made with other settings)")
    p.add_argument("--dry-run", action="store_true", help="print the plan and its estimated time; train nothing")
    a = p.parse_args(argv)
    unknown = [c for c in a.configs if c not in CONFIGS]
    if unknown:
        p.error(f"unknown configuration(s) {', '.join(map(repr, unknown))}; accepted: {', '.join(CONFIGS)}")
    if len(set(a.seeds)) != len(a.seeds):
        p.error(f"--seeds repeats a seed: {a.seeds}")
    return a


def estimate(configs: list[str], n_seeds: int, results_dir) -> tuple[float, list[str]]:
    """Seconds the plan takes at full budget, from the time_s of each chapter's own run."""
    total, lines = 0.0, []
    for name in configs:
        cfg = CONFIGS[name]
        res = book.load_results(results_dir, [cfg.chapter])
        row = next((r for c in res for r in c.rows if r.experiment == cfg.experiment and r.full_run
                    and r.metric == "test accuracy"), None)
        if row is None:
            lines.append(f"{name:14s} no full-run time in {cfg.chapter}'s results")
            continue
        total += n_seeds * row.time_s
        lines.append(f"{name:14s} {row.time_s:7.1f} s per run x {n_seeds} = {n_seeds * row.time_s / 60:5.1f} min"
                     f"  ({cfg.chapter}, {row.hardware})")
    return total, lines


def settings_of(a) -> dict:
    return {"epochs": a.epochs, "subset": a.subset, "device": a.device}


def load_previous(path: Path, settings: dict, force: bool = False) -> dict:
    """The configs of an earlier file made with the same settings; a file made with other settings
    is refused (its runs are not comparable), unless --force starts it afresh."""
    if not path.exists():
        return {}
    old = json.loads(path.read_text())
    if old.get("settings") == settings:
        return old.get("configs", {})
    if force:
        return {}
    raise SystemExit(f"{path} holds runs made with other settings ({old.get('settings')}, now {settings}): "
                     "pass another --out, or --force to replace it")


def total_seconds(configs: dict) -> float:
    """The training time of every run in the file (earlier calls included)."""
    return round(sum(r["seconds"] for c in configs.values() for r in c.get("runs", [])), 1)


def one_run(name: str, seed: int, a) -> dict:
    cfg = CONFIGS[name]
    run = runs.run(cfg.model, norm=cfg.norm, model_kwargs=cfg.model_kwargs or None, seed=seed, calls="all",
                   epochs=a.epochs, subset=a.subset, test_subset=a.subset, device=a.device,
                   data_dir=a.data_dir, download=False, progress=False, label=f"{name} seed {seed}")
    h = run.history
    return {"seed": seed, "status": run.status, "epochs": len(h),
            "test_acc": h.last.get("test_acc"), "test_acc_batch_mean": h.last.get("test_acc_batch_mean"),
            "best_test_acc": h.best("test_acc")["test_acc"] if h.epochs else None,
            "train_acc": h.last.get("train_acc"),
            "best_train_acc": h.best("train_acc")["train_acc"] if h.epochs else None,
            "seconds": round(run.seconds, 1)}


def main(argv=None) -> int:
    a = parse_args(argv)
    if a.dry_run:
        total, lines = estimate(a.configs, len(a.seeds), a.results_dir)
        print("\n".join(lines))
        print(f"about {total / 60:.0f} min in all at full budget on the chapters' host (seeds {a.seeds})")
        return 0
    torch.set_num_threads(a.threads)
    out, settings = Path(a.out), settings_of(a)
    configs = load_previous(out, settings, a.force)
    doc = {"what": "test accuracies of more seeds of the chapters' runs (tools/seed_spread.py)",
           "settings": settings, "full_run": a.epochs is None and a.subset is None,
           "hardware": describe_device(a.device), "threads": a.threads, "normlab": __version__,
           "torch": torch.__version__, "configs": configs}
    t0 = time.perf_counter()
    for name in a.configs:
        cfg = CONFIGS[name]
        entry = configs.setdefault(name, {})
        entry.update({"chapter": cfg.chapter, "experiment": cfg.experiment, "model": cfg.model, "norm": cfg.norm,
                      "model_kwargs": cfg.model_kwargs, "chapter_seed": cfg.chapter_seed,
                      "measures": cfg.measures, "note": cfg.note})
        done = {r["seed"]: r for r in entry.get("runs", [])}
        for seed in a.seeds:
            if seed in done and not a.force:
                print(f"{name} seed {seed}: in {out.name} already (--force trains it again)")
                continue
            done[seed] = r = one_run(name, seed, a)
            entry["runs"] = [done[s] for s in sorted(done)]
            doc["total_seconds"] = total_seconds(configs)
            write_json_atomic(out, doc)
            print(f"{name} seed {seed}: test {r['test_acc']:.4f} (per-batch mean {r['test_acc_batch_mean']:.4f}), "
                  f"best {r['best_test_acc']:.4f}, {r['status']}, {r['seconds']:.0f} s", flush=True)
    doc["total_seconds"] = total_seconds(configs)
    write_json_atomic(out, doc)
    print(f"-> {out} ({time.perf_counter() - t0:.0f} s now; {doc['total_seconds']:.0f} s of training in the file)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
