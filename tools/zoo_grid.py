"""Make the precomputed grid the zoo chapter shows without a kernel: every norm type x learning rate,
trained exactly as the chapter's live panel trains (same model, recipe, subset, epochs, seed).

  python tools/zoo_grid.py                       # writes book/results/grids/07_zoo_grid.json
  python tools/zoo_grid.py --lrs 0.01 0.1 --epochs 2 --out /tmp/grid.json

Run it at 2 threads on a quiet machine (OMP_NUM_THREADS=2); it prints one line per run.
"""
from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import torch

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "src"))

from normlab.devices import describe_device  # noqa: E402
from normlab.files import write_json_atomic  # noqa: E402
from normlab.widgets import PANEL_DEFAULTS, run_grid  # noqa: E402


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--model", default="erav1s8")
    p.add_argument("--norms", nargs="+", default=["batch", "layer", "group", "instance", "none"])
    p.add_argument("--lrs", nargs="+", type=float, default=[0.001, 0.01, 0.1, 1.0])
    p.add_argument("--epochs", type=int, default=PANEL_DEFAULTS["epochs"])
    p.add_argument("--subset", type=int, default=PANEL_DEFAULTS["subset"])
    p.add_argument("--test-subset", type=int, default=PANEL_DEFAULTS["test_subset"])
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--data-dir", default=None)
    p.add_argument("--out", default=str(REPO / "book" / "results" / "grids" / "07_zoo_grid.json"))
    a = p.parse_args(argv)
    torch.set_num_threads(a.threads)
    t0 = time.perf_counter()
    grid = run_grid(a.model, a.norms, a.lrs, epochs=a.epochs, subset=a.subset, test_subset=a.test_subset,
                    data_dir=a.data_dir, seed=a.seed)
    grid["hardware"] = describe_device("cpu")
    grid["total_seconds"] = round(time.perf_counter() - t0, 1)
    write_json_atomic(Path(a.out), grid)
    print(f"{len(grid['runs'])} runs in {grid['total_seconds']:.0f} s -> {a.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
