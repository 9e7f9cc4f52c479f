"""The ``normlab`` command line: list the models, train one with its seed's recipe.

    python -m normlab models
    python -m normlab train --model resnet_spec --epochs 5 --out runs/resnet_spec
    python -m normlab train --model erav1s8 --norm group --subset 100 --epochs 2 --out runs/gn

Defaults come from ``normlab.recipes.RECIPES[model]``. ``train`` prints one JSON line per epoch
on stdout (``{"epoch": 0, "test_acc": 0.878, "time": 8.48}``, as the prog-eval reference does;
``--no-json`` prints a table row instead) and writes into ``--out``: ``checkpoint.pt`` (after every
epoch, atomically; ``--resume`` continues from it), ``history.json``, ``metrics.jsonl`` (every
epoch record), ``summary.json`` and ``config.json`` (the settings, checked on ``--resume``).

Exit codes: 0 done, 1 the run diverged (the message says where), 2 bad arguments or missing data
(one line on stderr naming the value and what is accepted), 130 interrupted.
"""
from __future__ import annotations

import argparse
import copy
import json
import math
import os
import sys
import time
from pathlib import Path
from typing import Sequence

from .files import write_json_atomic, write_text_atomic

__all__ = ["main", "build_parser"]


# Keys of config.json that must match for --resume to continue the same run.
_RESUME_KEYS = ("model", "norm", "dataset", "batch_size", "subset", "test_subset", "seed")


# ----------------------------------------------------------------------------- argument types
def _int(s: str) -> int:
    try:
        return int(s)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{s!r} is not an integer") from None


def _nonneg_int(s: str) -> int:
    v = _int(s)
    if v < 0:
        raise argparse.ArgumentTypeError(f"{s!r} is negative; accepted: an integer >= 0")
    return v


def _pos_int(s: str) -> int:
    v = _int(s)
    if v < 1:
        raise argparse.ArgumentTypeError(f"{s!r} is not positive; accepted: an integer >= 1")
    return v


def _pos_float(s: str) -> float:
    try:
        v = float(s)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{s!r} is not a number") from None
    if not (math.isfinite(v) and v > 0):
        raise argparse.ArgumentTypeError(f"{s!r} is not allowed; accepted: a finite number > 0")
    return v


def _one_line(e: BaseException) -> str:
    """A library error message as one line. DataError's "looked for:" list of files (indented
    lines) is cut to its first entry, and its advice is put in command-line terms."""
    lines = [line for line in str(e).splitlines() if line.strip()]
    listed = [line.strip() for line in lines[1:] if line[:1].isspace()]
    if listed:
        listed = [", ".join(listed[:1]) + (f" (and {len(listed) - 1} more);" if len(listed) > 1 else ";")]
    text = " ".join(lines[:1] + listed + [line.strip() for line in lines[1:] if not line[:1].isspace()])
    for api, cli in (("from the data_dir argument", "from --data-dir"), ("passing data_dir=", "passing --data-dir "),
                     (", by setting NORMLAB_DATA, or with download=True where a network is available.",
                      " or by setting NORMLAB_DATA.")):
        text = text.replace(api, cli)
    return text


class _Parser(argparse.ArgumentParser):
    """argparse with a one-line error (no usage block): 'normlab train: error: ... (see ... --help)'."""

    def error(self, message: str):
        self.exit(2, f"{self.prog}: error: {message} (see '{self.prog} --help')\n")


# ----------------------------------------------------------------------------- parser
def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog="normlab", description="Normalization in ConvNets, re-run faithfully: the seeds' models and recipes.")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")

    p = sub.add_parser("models", help="list the registered models",
                       description="List every registered model: name, trainable params, the dataset its "
                                   "recipe trains on, seed, the --norm values it accepts, description.")
    p.add_argument("--json", action="store_true", help="one JSON object per model instead of a table")
    p.set_defaults(func=_cmd_models, _parser=p)

    p = sub.add_parser(
        "train", help="train a model with its seed's recipe",
        description="Train one model. Unset options come from the model's recipe (normlab.recipes). "
                    "Writes checkpoint.pt, history.json, metrics.jsonl, summary.json and config.json into --out.",
        epilog="Exit codes: 0 done, 1 diverged, 2 bad arguments or missing data, 130 interrupted.")
    p.add_argument("--model", required=True, metavar="NAME", help="a registered model (see `normlab models`)")
    p.add_argument("--data", metavar="NAME", help="dataset (default: the recipe's)")
    p.add_argument("--epochs", type=_nonneg_int, metavar="N", help="epochs (default: the recipe's)")
    p.add_argument("--lr", type=_pos_float, metavar="X", help="learning rate (default: the recipe's)")
    p.add_argument("--batch-size", type=_pos_int, metavar="N", help="training batch size (default: the recipe's)")
    p.add_argument("--norm", metavar="KIND",
                   help="normalization, for models with a norm argument (erav1s8, tf_tutorial_cnn, resnet_spec)")
    p.add_argument("--seed", type=_int, default=0, metavar="S", help="seeds the init, the data order, "
                   "augmentation and the subset (default 0)")
    p.add_argument("--device", default="auto", metavar="DEV", help="auto, cpu, cuda, cuda:N or mps (default auto)")
    p.add_argument("--out", metavar="DIR", help="output folder (default runs/MODEL[-NORM]-seedS)")
    p.add_argument("--subset", type=_pos_int, metavar="N", help="keep N training images per class (quick runs)")
    p.add_argument("--test-subset", type=_pos_int, metavar="N", help="keep N test images per class")
    p.add_argument("--data-dir", metavar="PATH", help="folder holding cifar-10-batches-py/ and MNIST/raw/ "
                   "(default $NORMLAB_DATA, else ~/.cache/normlab/data)")
    p.add_argument("--resume", action="store_true", help="continue from OUT/checkpoint.pt if present")
    p.add_argument("--json", action=argparse.BooleanOptionalAction, default=True,
                   help="print a prog-eval style JSON line per epoch (default on; --no-json prints a table row)")
    p.add_argument("--threads", type=_pos_int, metavar="N", help="torch CPU threads (default: torch's)")
    p.set_defaults(func=_cmd_train, _parser=p)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; returns the exit code (argparse's exits are returned, not raised)."""
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
        if args.command is None:
            parser.error("a command is required; accepted: models, train")
        return args.func(args)
    except SystemExit as e:  # argparse: --help (0) and errors (2)
        return e.code if isinstance(e.code, int) else (0 if e.code is None else 1)


# ----------------------------------------------------------------------------- models
def _cmd_models(args) -> int:
    from .models import MODELS, build_model, count_params
    from .recipes import RECIPES, norm_choices

    rows = []
    for name, spec in MODELS.items():
        rows.append({"name": name, "params": count_params(build_model(name)), "dataset": RECIPES[name].dataset,
                     "seed": spec.seed, "norms": list(norm_choices(name)), "description": spec.description})
    if args.json:
        for r in rows:
            print(json.dumps(r))
        return 0
    table = [("name", "params", "dataset", "seed", "norms", "description")]
    table += [(r["name"], f"{r['params']:,}", r["dataset"], r["seed"], ",".join(r["norms"]) or "-",
               r["description"]) for r in rows]
    widths = [max(len(row[i]) for row in table) for i in range(len(table[0]) - 1)]
    for row in table:
        cells = [c.rjust(w) if i == 1 else c.ljust(w) for i, (c, w) in enumerate(zip(row, widths))]
        print("  ".join(cells + [row[-1]]))
    return 0


# ----------------------------------------------------------------------------- train
class _RunFiles:
    """fit() callback: prints each epoch, appends it to metrics.jsonl, rewrites history.json."""

    def __init__(self, out: Path, as_json: bool):
        self.out, self.as_json = out, as_json

    def before_fit(self, history, **_):
        # On --resume the history already holds the earlier epochs: start the file from them.
        write_text_atomic(self.out / "metrics.jsonl", "".join(json.dumps(e) + "\n" for e in history.epochs))

    def after_epoch(self, history, epoch, **_):
        record = history.epochs[-1]
        if self.as_json:
            print(history.json_line(record), flush=True)
        else:
            table = history.table().splitlines()
            print("\n".join(table if len(history) == 1 else table[-1:]), flush=True)
        with open(self.out / "metrics.jsonl", "a", encoding="utf-8") as f:
            f.write(json.dumps(record) + "\n")
        write_json_atomic(self.out / "history.json", history.to_dict(), indent=2)


def _check_fits(model, data, name: str, dataset: str, expected_shape) -> str | None:
    """Why `model` cannot train on `data` (input shape or class count), or None. No side effects
    on the model or the data's random streams."""
    import torch

    test = data.test
    state = test.generator.get_state()
    try:
        x = test.prepare(test.data.images[:4])
    finally:
        test.generator.set_state(state)
    shape = tuple(x.shape[1:])
    if shape != tuple(expected_shape):
        fmt = lambda s: "x".join(map(str, s))  # noqa: E731
        return (f"dataset {dataset!r} gives inputs of {fmt(shape)} but model {name!r} takes {fmt(expected_shape)}; "
                f"use the recipe's dataset or one with the same image size")
    probe = copy.deepcopy(model).to(x.device).train()  # train mode: some BNs cannot eval before a step
    try:
        with torch.no_grad():
            out = probe(x.float())
    except Exception as e:  # noqa: BLE001 - any failure here is an incompatibility
        return f"model {name!r} cannot take dataset {dataset!r} batches: {_one_line(e)}"
    n_classes = len(data.classes)
    if out.ndim != 2 or out.shape[1] < n_classes:
        return (f"model {name!r} outputs {tuple(out.shape[1:])} scores but dataset {dataset!r} has "
                f"{n_classes} classes")
    return None


def _cmd_train(args) -> int:
    err = args._parser.error  # prints usage + one error line, exits 2
    import torch

    from .data import DATASETS, DataError
    from .devices import describe_device, resolve_device
    from .models import MODELS, build_model, count_params
    from .recipes import RECIPES, default_norm, fit_kwargs, make_loaders, norm_choices
    from .train import fit, seed_everything, state_hash

    t_start = time.perf_counter()
    name = args.model
    if name not in RECIPES:
        err(f"unknown model {name!r}; accepted: {', '.join(RECIPES)}")
    recipe = RECIPES[name]
    dataset = args.data if args.data is not None else recipe.dataset
    if dataset not in DATASETS:
        err(f"unknown dataset {dataset!r}; accepted: {', '.join(DATASETS)}")
    choices = norm_choices(name)
    if args.norm is not None:
        if not choices:
            with_norm = [m for m in RECIPES if norm_choices(m)]
            err(f"--norm {args.norm!r}: model {name!r} has no norm argument; --norm applies to "
                f"{', '.join(with_norm)}")
        if args.norm not in choices:
            err(f"unknown norm {args.norm!r} for model {name!r}; accepted: {', '.join(choices)}")
    try:
        device = resolve_device(args.device)
    except ValueError as e:
        err(_one_line(e))
    if args.threads:
        torch.set_num_threads(args.threads)

    norm = args.norm if args.norm is not None else default_norm(name)
    recipe = recipe.replace(dataset=dataset,
                            epochs=recipe.epochs if args.epochs is None else args.epochs,
                            lr=recipe.lr if args.lr is None else args.lr,
                            batch_size=args.batch_size or recipe.batch_size)
    out = Path(args.out) if args.out else Path("runs") / f"{name}{'-' + args.norm if args.norm else ''}-seed{args.seed}"
    ckpt = out / "checkpoint.pt"
    config = {"model": name, "norm": norm, "dataset": dataset, "batch_size": recipe.batch_size,
              "test_batch_size": recipe.test_batch_size, "epochs": recipe.epochs, "lr": recipe.lr,
              "opt": recipe.opt, "momentum": recipe.momentum, "nesterov": recipe.nesterov,
              "weight_decay": recipe.weight_decay, "eps": recipe.eps, "schedule": recipe.schedule,
              "augment": recipe.augment, "test_augment": recipe.test_augment, "normalize": recipe.normalize,
              "subset": args.subset, "test_subset": args.test_subset, "seed": args.seed,
              "source": recipe.source}
    resume = ckpt if args.resume and ckpt.exists() else None
    if resume is not None and (out / "config.json").exists():
        try:
            before = json.loads((out / "config.json").read_text())
        except (OSError, ValueError) as e:
            err(f"cannot read {out / 'config.json'}: {_one_line(e)}")
        changed = [f"{k} {before.get(k)!r} -> {config[k]!r}" for k in _RESUME_KEYS if before.get(k) != config[k]]
        if changed:
            err(f"--resume from {ckpt} with different settings ({'; '.join(changed)}); "
                f"use the same ones or another --out")

    try:
        data = make_loaders(recipe, data_dir=args.data_dir, device=device, subset=args.subset,
                            test_subset=args.test_subset, seed=args.seed)
    except (DataError, ValueError) as e:
        err(_one_line(e))

    seed_everything(args.seed)
    try:
        model = build_model(name, **({"norm": args.norm} if args.norm is not None else {}))
    except (ValueError, TypeError) as e:
        err(_one_line(e))
    problem = _check_fits(model, data, name, dataset, MODELS[name].input_shape)
    if problem:
        err(problem)
    start_epoch = 0
    if resume is not None:
        try:
            ck = torch.load(resume, map_location="cpu", weights_only=False)
            model.load_state_dict(ck["model"])
            start_epoch = int(ck["epoch"]) + 1
        except Exception as e:  # noqa: BLE001 - a damaged or foreign checkpoint is a user error here
            err(f"cannot resume from {resume}: {_one_line(e)}")
    try:
        out.mkdir(parents=True, exist_ok=True)
        write_json_atomic(out / "config.json", config, indent=2)
    except OSError as e:
        err(f"cannot write to --out {str(out)!r}: {_one_line(e)}")

    params = count_params(model)
    desc = describe_device(device)
    what = (f"resuming at epoch {start_epoch + 1} of {recipe.epochs}" if resume
            else f"{recipe.epochs} epoch{'s' * (recipe.epochs != 1)}")
    print(f"normlab: {name} ({params:,} params{', norm ' + norm if norm else ''}) on "
          f"{data.name} ({len(data.train.data):,} train / {len(data.test.data):,} test images), {what}, "
          f"{desc}; writing {out}", file=sys.stderr, flush=True)
    if resume is not None and start_epoch >= recipe.epochs:
        print(f"normlab: the checkpoint already holds {start_epoch} epochs; nothing to train", file=sys.stderr)

    show = sys.stderr.isatty() and not os.environ.get("TQDM_DISABLE")
    try:
        history = fit(model, data, **fit_kwargs(recipe, seed=args.seed, progress=show, log=None,
                                                callbacks=[_RunFiles(out, args.json)], checkpoint=ckpt,
                                                resume=resume, label=name))
    except KeyboardInterrupt:
        print(f"\nnormlab: interrupted; continue with the same command plus --resume "
              f"(from {ckpt} if an epoch finished)", file=sys.stderr)
        return 130

    epochs_done = [e for e in history.epochs if e.get("test_acc") is not None]
    best = max(epochs_done, key=lambda e: e["test_acc"]) if epochs_done else None
    summary = {
        "model": name, "norm": norm, "params": params, "dataset": data.name,
        "train_images": len(data.train.data), "test_images": len(data.test.data),
        "device": desc, "threads": torch.get_num_threads(), "seed": args.seed,
        "epochs": len(history), "epochs_requested": recipe.epochs, "resumed_from_epoch": start_epoch if resume else None,
        "final_test_acc": history.last.get("test_acc"), "best_test_acc": best["test_acc"] if best else None,
        "best_epoch": best["epoch"] if best else None, "final_test_loss": history.last.get("test_loss"),
        "total_time": history.last.get("time", 0.0), "wall_time": time.perf_counter() - t_start,
        "stopped": history.stopped, "state_hash": state_hash(model),
        "settings": {k: v for k, v in config.items() if k not in ("model", "norm", "dataset", "seed")},
    }
    write_json_atomic(out / "history.json", history.to_dict(), indent=2)
    write_text_atomic(out / "metrics.jsonl", "".join(json.dumps(e) + "\n" for e in history.epochs))
    write_json_atomic(out / "summary.json", summary, indent=2)
    if history.stopped:
        if not show:  # fit() prints the message itself when its progress bar is on
            print(f"normlab: diverged: {history.stopped}", file=sys.stderr)
        return 1
    acc = summary["final_test_acc"]
    print(f"normlab: done, {len(history)} epoch{'s' * (len(history) != 1)}, final test_acc "
          f"{'-' if acc is None else f'{acc:.4f}'}, state {summary['state_hash']}, {out}", file=sys.stderr)
    return 0
