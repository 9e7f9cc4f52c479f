"""One epoch of a model's recipe per norm, through `runs.run` (the chapters' code path: data on the
device, augmentations, the precision policy, the test pass), and what a full-budget run of the
recipe would take at that speed. For a device where a chapter's whole budget does not fit in the
time at hand (chapter 7 on a lent GPU: 13 runs of 20 epochs).

  python benchmarks/bench_epoch.py --model erav1s8 --norms batch layer group instance none --device cuda

The first epoch pays the device's warm-up (cuDNN's algorithm search, allocations); `--epochs 2`
shows the second alone. The full-run estimate is epochs x the last epoch's time.
"""
from __future__ import annotations

import argparse
import json

import torch

from common import hardware_line
from normlab import recipes, runs
from normlab.devices import resolve_device
from normlab.precision import PRECISIONS, choose_precision


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--model", default="erav1s8")
    p.add_argument("--norms", nargs="*", default=[None], help="norms to build the model with (default: its own)")
    p.add_argument("--device", default="auto")
    p.add_argument("--precision", default="auto", choices=PRECISIONS)
    p.add_argument("--epochs", type=int, default=1, help="epochs to time per norm (default 1)")
    p.add_argument("--data-dir", default=None)
    p.add_argument("--threads", type=int, default=None)
    p.add_argument("--json", help="also write the rows here")
    args = p.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    device = resolve_device(args.device)
    precision = choose_precision(device, args.precision)
    recipe = recipes.get_recipe(args.model)
    print(hardware_line(device))
    print(f"{args.model}: {recipe.dataset}, batches of {recipe.batch_size}, {recipe.epochs} epochs a run; {precision}")
    dl = recipes.make_loaders(recipe, data_dir=args.data_dir, device=device, seed=0)
    rows = []
    for norm in args.norms:
        run = runs.run(args.model, norm=norm, data=dl, epochs=args.epochs, seed=0, precision=precision,
                       record=False, progress=False)
        times = [e["epoch_time"] for e in run.history.epochs]  # train + test pass of each epoch
        row = {"model": args.model, "norm": norm, "epoch_seconds": times, "test_acc": run.history.last["test_acc"],
               "full_run_estimate_s": times[-1] * recipe.epochs, "device": str(device), "precision": precision.name}
        rows.append(row)
        print(f"{norm or 'default':<10} epochs {', '.join(f'{t:.2f}' for t in times)} s; "
              f"a {recipe.epochs}-epoch run at the last epoch's speed: {row['full_run_estimate_s']:.0f} s")
    if args.json:
        from normlab.files import write_json_atomic
        write_json_atomic(args.json, {"hardware": hardware_line(device), "rows": rows})
    print(json.dumps(rows))


if __name__ == "__main__":
    main()
