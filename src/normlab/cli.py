"""The ``normlab`` command line: list the models, train one with its seed's recipe, fetch the data.

    python -m normlab models
    python -m normlab train --model resnet_spec --epochs 5 --out runs/resnet_spec
    python -m normlab train --model erav1s8 --norm group --subset 100 --epochs 2 --out runs/gn
    python -m normlab download            # CIFAR-10 and MNIST into $NORMLAB_DATA (or --data-dir)

Defaults come from ``normlab.recipes.RECIPES[model]``. ``train`` prints the device and the
precision (``--precision``, decided by ``normlab.precision.choose_precision``) on stderr, one JSON
line per epoch on stdout (``{"epoch": 0, "test_acc": 0.878, "time": 8.48}``, as the prog-eval
reference does; ``--no-json`` prints a table row instead) and writes into ``--out``:
``checkpoint.pt`` (after every epoch, atomically; ``--resume`` continues from it),
``history.json``, ``metrics.jsonl`` (every epoch record), ``summary.json`` (``"status"``:
``"done"`` or ``"diverged"``, ``"stopped"``: the divergence message or null) and ``config.json``
(the settings, checked on ``--resume``). Every JSON file and line is strict JSON: a non-finite
number is written as null and noted under ``"nonfinite"`` (``normlab.files``).

Safety of ``--out``: a folder that already holds a run (any of RUN_FILES) is never overwritten
without ``--resume``: the command is refused (exit 2) and the files are left as they are.
``--resume`` continues the run with the settings it was started with; a different ``--epochs`` is
accepted only when the run's learning-rate schedule does not depend on the run's length
(constant, sgdr, plateau: the result equals a straight run of the new length) and refused when it
does (linear, onecycle: the learning rate of every step is defined by the original total).

Divergence: a training loss that is non-finite or above ``--max-loss`` (default 100; cross-entropy
starts near ln(classes), about 2.3) or a non-finite evaluation loss stops the run (``fit`` puts the
last good weights back); the message names the epoch, step, loss and learning rate.

Exit codes:
    0    done (download: every dataset is in place)
    1    train: the run diverged (message on stderr, summary.json status "diverged");
         download: the download failed (one error naming the dataset, the URLs tried and the fixes)
    2    bad arguments, missing data, or --out already holds a run (one line on stderr naming the
         value and what is accepted)
    130  interrupted (Ctrl-C); continue with --resume
"""
from __future__ import annotations

import argparse
import copy
import json
import math
import os
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

from .files import json_line, write_json_atomic, write_text_atomic

__all__ = ["main", "build_parser", "RUN_FILES", "PRECISIONS", "EXIT_DONE", "EXIT_FAILED", "EXIT_USAGE",
           "EXIT_INTERRUPTED"]

EXIT_DONE, EXIT_FAILED, EXIT_USAGE, EXIT_INTERRUPTED = 0, 1, 2, 130

# The files a run writes into --out; any of them marks the folder as holding a run.
RUN_FILES = ("checkpoint.pt", "history.json", "metrics.jsonl", "summary.json", "config.json")

# Keys of config.json that must match for --resume to continue the same run (epochs: see _check_epochs).
_RESUME_KEYS = ("model", "norm", "dataset", "batch_size", "test_batch_size", "subset", "test_subset", "seed",
                "lr", "opt", "momentum", "nesterov", "weight_decay", "eps", "schedule", "augment",
                "test_augment", "normalize", "calls")

# normlab.precision.PRECISIONS, repeated here so that building the parser does not import torch
# (tests/test_cli.py checks they agree).
PRECISIONS = ("auto", "fp32", "bf16", "fp16")

DEFAULT_MAX_LOSS = 100.0

_TRAIN_EPILOG = (
    "Exit codes: 0 done; 1 the run diverged (a training loss non-finite or above --max-loss, or a non-finite "
    "test loss: the message on stderr names epoch, step, loss and learning rate, summary.json has status "
    "\"diverged\"); 2 bad arguments, missing data, or --out already holds a run and --resume was not given; "
    "130 interrupted. "
    "--resume continues the run in --out with the settings it was started with. A different --epochs is "
    "accepted only if the run's schedule does not depend on the run's length (constant, sgdr, plateau: "
    "the result equals a straight run of the new length); it is refused for linear and onecycle, whose "
    "learning rate at every step is defined by the original number of epochs.")


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


def _max_loss(s: str) -> float | None:
    if s.strip().lower() == "off":
        return None
    try:
        return _pos_float(s)
    except argparse.ArgumentTypeError:
        raise argparse.ArgumentTypeError(f"{s!r} is not allowed; accepted: a finite number > 0, or off") from None


def _one_line(e: BaseException) -> str:
    """A library error message as one line. DataError's "looked for:" list of files (indented
    lines) is cut to its first entry, and its advice is put in command-line terms."""
    lines = [line for line in str(e).splitlines() if line.strip()]
    listed = [line.strip() for line in lines[1:] if line[:1].isspace()]
    if listed:
        listed = [", ".join(listed[:1]) + (f" (and {len(listed) - 1} more);" if len(listed) > 1 else ";")]
    text = " ".join(lines[:1] + listed + [line.strip() for line in lines[1:] if not line[:1].isspace()])
    return _cli_terms(text)


def _cli_terms(text: str) -> str:
    """The library's advice ("the data_dir argument", "data_dir=") in command-line terms."""
    for api, cli in (("from the data_dir argument", "from --data-dir"), ("passing data_dir=", "passing --data-dir "),
                     (", by setting NORMLAB_DATA, or with download=True where a network is available.",
                      " or by setting NORMLAB_DATA."), ("(or data_dir=)", "(or --data-dir)")):
        text = text.replace(api, cli)
    return text


class _Parser(argparse.ArgumentParser):
    """argparse with a one-line error (no usage block): 'normlab train: error: ... (see ... --help)'."""

    def error(self, message: str):
        self.exit(EXIT_USAGE, f"{self.prog}: error: {message} (see '{self.prog} --help')\n")


# ----------------------------------------------------------------------------- parser
def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog="normlab", description="Normalization in ConvNets, re-run faithfully: the seeds' models and recipes.",
        epilog="Exit codes: 0 done, 1 a run diverged or a download failed, 2 bad arguments, missing data or "
               "an --out that already holds a run, 130 interrupted.")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")

    p = sub.add_parser("models", help="list the registered models",
                       description="List every registered model: name, trainable params, the dataset its "
                                   "recipe trains on, seed, the --norm values it accepts, description.")
    p.add_argument("--json", action="store_true", help="one JSON object per model instead of a table")
    p.set_defaults(func=_cmd_models, _parser=p)

    p = sub.add_parser(
        "train", help="train a model with its seed's recipe",
        description="Train one model. Unset options come from the model's recipe (normlab.recipes). "
                    "Writes checkpoint.pt, history.json, metrics.jsonl, summary.json and config.json "
                    "(strict JSON) into --out.",
        epilog=_TRAIN_EPILOG)
    p.add_argument("--model", required=True, metavar="NAME", help="a registered model (see `normlab models`)")
    p.add_argument("--data", metavar="NAME", help="dataset (default: the recipe's)")
    p.add_argument("--epochs", type=_nonneg_int, metavar="N",
                   help="epochs (default: the recipe's). With --resume, a value other than the run's own is "
                        "accepted only for schedules that do not depend on the length (constant, sgdr, "
                        "plateau) and refused for linear and onecycle")
    p.add_argument("--lr", type=_pos_float, metavar="X", help="learning rate (default: the recipe's)")
    p.add_argument("--calls", choices=("main", "all"), default="main",
                   help="main (default): the one fit call whose result the source reported; all: the source's "
                        "whole sequence (fast.ai lesson 7: fit(lr, 2), then fit(lr, n, cycle_len=1); --epochs "
                        "and --lr then apply to every call, and --resume cannot change --epochs)")
    p.add_argument("--batch-size", type=_pos_int, metavar="N", help="training batch size (default: the recipe's)")
    p.add_argument("--norm", metavar="KIND",
                   help="normalization, for models with a norm argument (erav1s8, tf_tutorial_cnn, resnet_spec)")
    p.add_argument("--seed", type=_int, default=0, metavar="S", help="seeds the init, the data order, "
                   "augmentation and the subset (default 0)")
    p.add_argument("--device", default="auto", metavar="DEV", help="auto, cpu, cuda, cuda:N or mps (default auto)")
    p.add_argument("--precision", default="auto", choices=PRECISIONS,
                   help="auto (bf16 on GPUs with native bf16, fp16 with a GradScaler on older ones, float32 "
                        "on the CPU; $NORMLAB_PRECISION replaces auto), fp32, bf16 or fp16 (default auto)")
    p.add_argument("--max-loss", type=_max_loss, default=DEFAULT_MAX_LOSS, metavar="X",
                   help=f"stop as diverged when a training step's loss is above X (default {DEFAULT_MAX_LOSS:g}; "
                        "cross-entropy starts near ln(classes), about 2.3), or off; a non-finite loss always stops")
    p.add_argument("--out", metavar="DIR", help="output folder (default runs/MODEL[-NORM]-seedS); a folder that "
                   "already holds a run is refused unless --resume is given")
    p.add_argument("--subset", type=_pos_int, metavar="N", help="keep N training images per class (quick runs)")
    p.add_argument("--test-subset", type=_pos_int, metavar="N", help="keep N test images per class")
    p.add_argument("--data-dir", metavar="PATH", help="folder holding cifar-10-batches-py/ and MNIST/raw/ "
                   "(default $NORMLAB_DATA, else ~/.cache/normlab/data)")
    p.add_argument("--resume", action="store_true",
                   help="continue the run in --out from its checkpoint.pt (from the start if it has none), with "
                        "the settings it was started with; it continues the schedule the run was started with "
                        "(see --epochs)")
    p.add_argument("--json", action=argparse.BooleanOptionalAction, default=True,
                   help="print a prog-eval style JSON line per epoch (default on; --no-json prints a table row)")
    p.add_argument("--threads", type=_pos_int, metavar="N", help="torch CPU threads (default: torch's)")
    p.set_defaults(func=_cmd_train, _parser=p)

    p = sub.add_parser(
        "download", help="fetch CIFAR-10 and MNIST into the data folder",
        description="Download a dataset (or, with none named, cifar10 and mnist) into the data folder, checking "
                    "md5s; files already there are used as they are. $NORMLAB_DATA_MIRRORS replaces the "
                    "source URLs (see normlab.download). Prints the folder of each dataset.",
        epilog="Exit codes: 0 every dataset is in place, 1 a download failed (one error naming the dataset, the "
               "URLs tried and the fixes), 2 bad arguments.")
    p.add_argument("dataset", nargs="?", metavar="DATASET",
                   help="cifar10 or mnist (cifar2 and mnist_tairtahar reuse them); default: both")
    p.add_argument("--data-dir", metavar="PATH", help="target folder (default $NORMLAB_DATA, else "
                   "~/.cache/normlab/data)")
    p.add_argument("--timeout", type=_pos_float, default=30.0, metavar="S",
                   help="seconds each connect and each read may wait (default 30)")
    p.set_defaults(func=_cmd_download, _parser=p)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; returns the exit code (argparse's exits are returned, not raised)."""
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
        if args.command is None:
            parser.error("a command is required; accepted: models, train, download")
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
            print(json_line(r))
        return EXIT_DONE
    table = [("name", "params", "dataset", "seed", "norms", "description")]
    table += [(r["name"], f"{r['params']:,}", r["dataset"], r["seed"], ",".join(r["norms"]) or "-",
               r["description"]) for r in rows]
    widths = [max(len(row[i]) for row in table) for i in range(len(table[0]) - 1)]
    for row in table:
        cells = [c.rjust(w) if i == 1 else c.ljust(w) for i, (c, w) in enumerate(zip(row, widths))]
        print("  ".join(cells + [row[-1]]))
    return EXIT_DONE


# ----------------------------------------------------------------------------- download
def _cmd_download(args) -> int:
    from .data import DataError
    from .download import BASE_OF, DOWNLOADABLE, download

    if args.dataset is not None and args.dataset not in BASE_OF:
        args._parser.error(f"unknown dataset {args.dataset!r}; accepted: {', '.join(BASE_OF)}")
    for name in [args.dataset] if args.dataset else DOWNLOADABLE:
        try:
            folder = download(name, args.data_dir, timeout=args.timeout, progress=None)
        except DataError as e:
            print(f"normlab download: error: {_cli_terms(str(e))}", file=sys.stderr)
            return EXIT_FAILED
        print(f"{name}: {folder}", flush=True)
    return EXIT_DONE


# ----------------------------------------------------------------------------- train
class _RunFiles:
    """fit() callback: prints each epoch, appends it to metrics.jsonl, rewrites history.json."""

    def __init__(self, out: Path, as_json: bool):
        self.out, self.as_json = out, as_json

    def before_fit(self, history, **_):
        # On --resume the history already holds the earlier epochs: start the file from them.
        write_text_atomic(self.out / "metrics.jsonl", _jsonl(history.epochs))

    def after_epoch(self, history, epoch, **_):
        record = history.epochs[-1]
        if self.as_json:
            print(history.json_line(record), flush=True)
        else:
            table = history.table().splitlines()
            print("\n".join(table if len(history) == 1 else table[-1:]), flush=True)
        with open(self.out / "metrics.jsonl", "a", encoding="utf-8") as f:
            f.write(json_line(record) + "\n")
        write_json_atomic(self.out / "history.json", history.to_dict(), indent=2)


def _jsonl(records) -> str:
    return "".join(json_line(r) + "\n" for r in records)


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


@dataclass
class _Run:
    """One `normlab train`: what was asked (checked by _plan and _check_out), then what was built."""
    name: str
    norm: str | None
    recipe: object  # normlab.recipes.Recipe with the command line's epochs/lr/batch size/dataset
    device: object  # torch.device
    precision: object  # normlab.precision.Precision
    out: Path
    config: dict  # what config.json holds
    resume_asked: bool
    resume: Path | None = None  # the checkpoint continued from
    extend_from: int | None = None  # --resume with other --epochs: the run's own number
    start_epoch: int = 0
    params: int = 0
    device_text: str = ""
    show: bool = False  # fit's progress bar
    t_start: float = 0.0

    @property
    def ckpt(self) -> Path:
        return self.out / "checkpoint.pt"


def _plan(args, err) -> _Run:
    """Check the names and settings of the command line (exits 2 on a bad one); nothing is
    loaded or written."""
    from .data import DATASETS
    from .devices import resolve_device
    from .precision import choose_precision
    from .recipes import RECIPES, default_norm, norm_choices

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
    try:
        precision = choose_precision(device, args.precision)
    except ValueError as e:
        err(f"--precision {args.precision}: {_one_line(e)}")

    norm = args.norm if args.norm is not None else default_norm(name)
    recipe = recipe.replace(dataset=dataset,
                            epochs=recipe.epochs if args.epochs is None else args.epochs,
                            lr=recipe.lr if args.lr is None else args.lr,
                            batch_size=args.batch_size or recipe.batch_size)
    out = Path(args.out) if args.out else Path("runs") / f"{name}{'-' + args.norm if args.norm else ''}-seed{args.seed}"
    config = {"model": name, "norm": norm, "dataset": dataset, "batch_size": recipe.batch_size,
              "test_batch_size": recipe.test_batch_size, "epochs": recipe.epochs, "lr": recipe.lr,
              "opt": recipe.opt, "momentum": recipe.momentum, "nesterov": recipe.nesterov,
              "weight_decay": recipe.weight_decay, "eps": recipe.eps, "schedule": recipe.schedule,
              "augment": recipe.augment, "test_augment": recipe.test_augment, "normalize": recipe.normalize,
              "subset": args.subset, "test_subset": args.test_subset, "seed": args.seed,
              "precision": precision.name, "max_loss": args.max_loss, "calls": args.calls,
              "source": recipe.source}
    return _Run(name, norm, recipe, device, precision, out, config, args.resume, t_start=t_start)


def _check_out(run: _Run, err) -> None:
    """Without --resume, refuse an --out that already holds a run. With it, continue from its
    checkpoint if there is one, refusing settings that would make it another run."""
    held = [f for f in RUN_FILES if (run.out / f).exists()]
    if not run.resume_asked:
        if held:
            err(f"--out {str(run.out)!r} already holds a run ({', '.join(held)}); nothing was changed. "
                f"Pass --resume to continue it, or choose another --out (or delete that folder)")
        return
    if not run.ckpt.exists():
        return  # nothing to continue: the run starts from epoch 1 (_announce says so)
    run.resume = run.ckpt
    if not (run.out / "config.json").exists():
        return
    try:
        before = json.loads((run.out / "config.json").read_text())
    except (OSError, ValueError) as e:
        err(f"cannot read {run.out / 'config.json'}: {_one_line(e)}")
    changed = [f"{k} {before.get(k)!r} -> {run.config[k]!r}" for k in _RESUME_KEYS if before.get(k) != run.config[k]]
    if changed:
        err(f"--resume from {run.ckpt} with different settings ({'; '.join(changed)}); "
            f"use the same ones or another --out")
    _check_epochs(run, before.get("epochs"), err)


def _check_epochs(run: _Run, old, err) -> None:
    """--resume with another --epochs: continue if the schedule does not depend on the run's
    length (the result equals a straight run of the new length), refuse if it does."""
    new, schedule = run.recipe.epochs, run.recipe.schedule
    if not isinstance(old, int) or old == new:
        return
    if run.config["calls"] == "all" and len(run.recipe.calls) > 1:
        err(f"--resume with --epochs {new}: the run in {str(run.out)!r} makes {len(run.recipe.calls)} fit calls "
            f"of {old} epochs each, and a later call starts from where the earlier one ended, so the calls "
            f"cannot be lengthened afterwards; resume with --epochs {old}, or start a new run in another --out")
    if _schedule_depends_on_length(schedule, run.recipe.lr, old, new):
        err(f"--resume with --epochs {new}: the run in {str(run.out)!r} was started for {old} epochs and its "
            f"{schedule!r} schedule sets the learning rate of every step from that length, so it cannot be "
            f"extended or shortened; resume with --epochs {old}, or start a new run in another --out")
    run.extend_from = old


def _schedule_depends_on_length(schedule: str, lr: float, a: int, b: int, per_epoch: int = 8) -> bool:
    """Whether the named schedule gives other learning rates over the first min(a, b) epochs of
    an a-epoch run than of a b-epoch run."""
    from .schedules import make_schedule

    first, second = make_schedule(schedule, lr), make_schedule(schedule, lr)
    first.setup(a * per_epoch, per_epoch)
    second.setup(b * per_epoch, per_epoch)
    return any(first.lr(it) != second.lr(it) for it in range(min(a, b) * per_epoch))


def _build(run: _Run, args, err):
    """(data, model): the recipe's loaders and the seeded model, checked to fit each other."""
    from .data import DataError
    from .models import MODELS, build_model
    from .recipes import make_loaders
    from .train import seed_everything

    try:
        data = make_loaders(run.recipe, data_dir=args.data_dir, device=run.device, subset=args.subset,
                            test_subset=args.test_subset, seed=args.seed)
    except (DataError, ValueError) as e:
        err(_one_line(e))
    seed_everything(args.seed)
    try:
        model = build_model(run.name, **({"norm": args.norm} if args.norm is not None else {}))
    except (ValueError, TypeError) as e:
        err(_one_line(e))
    problem = _check_fits(model, data, run.name, run.recipe.dataset, MODELS[run.name].input_shape)
    if problem:
        err(problem)
    return data, model


def _load_checkpoint(run: _Run, model, err) -> int:
    """The epoch to start from: 0, or the one after the checkpoint's (whose weights it loads)."""
    if run.resume is None:
        return 0
    import torch

    try:
        ck = torch.load(run.resume, map_location="cpu", weights_only=False)
        model.load_state_dict(ck["model"])
        return int(ck["epoch"]) + 1
    except Exception as e:  # noqa: BLE001 - a damaged or foreign checkpoint is a user error here
        err(f"cannot resume from {run.resume}: {_one_line(e)}")


def _write_config(run: _Run, err) -> None:
    try:
        run.out.mkdir(parents=True, exist_ok=True)
        write_json_atomic(run.out / "config.json", run.config, indent=2)
    except OSError as e:
        err(f"cannot write to --out {str(run.out)!r}: {_one_line(e)}")


def _announce(run: _Run, data) -> None:
    """The lines on stderr before training: what, on what, in which precision, from where."""
    n = run.recipe.epochs
    what = (f"resuming at epoch {run.start_epoch + 1} of {n}" if run.resume else f"{n} epoch{'s' * (n != 1)}")
    say = lambda text: print(f"normlab: {text}", file=sys.stderr, flush=True)  # noqa: E731
    say(f"{run.name} ({run.params:,} params{', norm ' + run.norm if run.norm else ''}) on "
        f"{data.name} ({len(data.train.data):,} train / {len(data.test.data):,} test images), {what}, "
        f"{run.device_text}; writing {run.out}")
    say(f"precision {run.precision.name}: {run.precision}")
    if run.resume_asked and run.resume is None:
        say(f"no {run.ckpt.name} in {run.out}: starting from epoch 1")
    if run.extend_from is not None:
        say(f"the run was started for {run.extend_from} epochs; its {run.recipe.schedule!r} schedule does not "
            f"depend on the length, so it continues as a {n}-epoch run")
    if run.resume is not None and run.start_epoch >= n:
        say(f"the checkpoint already holds {run.start_epoch} epochs; nothing to train")


def _fit(run: _Run, args, data, model):
    """The run, through ``normlab.runs`` (the one way to train a configuration); the History, or
    None when interrupted."""
    from .runs import run as train_run

    try:
        return train_run(run.name, model=model, data=data, lr=args.lr,
                         epochs=args.epochs, calls=args.calls, seed=args.seed, precision=run.precision,
                         progress=run.show, callbacks=[_RunFiles(run.out, args.json)], checkpoint=run.ckpt,
                         resume=run.resume_asked, label=run.name, max_loss=args.max_loss).history
    except KeyboardInterrupt:
        print(f"\nnormlab: interrupted; continue with the same command plus --resume "
              f"(from {run.ckpt} if an epoch finished)", file=sys.stderr)
        return None


def _summary(run: _Run, args, data, model, history) -> dict:
    import torch

    from .runs import status_of
    from .train import state_hash

    epochs_done = [e for e in history.epochs if e.get("test_acc") is not None]
    best = max(epochs_done, key=lambda e: e["test_acc"]) if epochs_done else None
    return {
        "status": status_of(history),
        "model": run.name, "norm": run.norm, "params": run.params, "dataset": data.name,
        "train_images": len(data.train.data), "test_images": len(data.test.data),
        "device": run.device_text, "precision": run.precision.name, "threads": torch.get_num_threads(),
        "seed": args.seed, "epochs": len(history), "epochs_requested": run.recipe.epochs,
        "resumed_from_epoch": run.start_epoch if run.resume else None,
        "final_test_acc": history.last.get("test_acc"), "best_test_acc": best["test_acc"] if best else None,
        "best_epoch": best["epoch"] if best else None, "final_test_loss": history.last.get("test_loss"),
        "total_time": history.last.get("time", 0.0), "wall_time": time.perf_counter() - run.t_start,
        "stopped": history.stopped, "state_hash": state_hash(model),
        "settings": {k: v for k, v in run.config.items() if k not in ("model", "norm", "dataset", "seed")},
    }


def _finish(run: _Run, args, data, model, history) -> int:
    """Write history.json, metrics.jsonl and summary.json; report; the exit code."""
    summary = _summary(run, args, data, model, history)
    write_json_atomic(run.out / "history.json", history.to_dict(), indent=2)
    write_text_atomic(run.out / "metrics.jsonl", _jsonl(history.epochs))
    write_json_atomic(run.out / "summary.json", summary, indent=2)
    if history.stopped:
        where = f"{run.out / 'summary.json'} has status {summary['status']!r}"
        if run.show:  # fit() printed the message itself under its progress bar
            print(f"normlab: {summary['status']}; {where}", file=sys.stderr)
        else:
            print(f"normlab: {summary['status']}: {history.stopped} ({where})", file=sys.stderr)
        return EXIT_FAILED
    acc = summary["final_test_acc"]
    print(f"normlab: done, {len(history)} epoch{'s' * (len(history) != 1)}, final test_acc "
          f"{'-' if acc is None else f'{acc:.4f}'}, state {summary['state_hash']}, {run.out}", file=sys.stderr)
    return EXIT_DONE


def _cmd_train(args) -> int:
    err = args._parser.error  # one error line, exits 2
    run = _plan(args, err)
    _check_out(run, err)
    import torch

    from .devices import describe_device
    from .models import count_params

    if args.threads:
        torch.set_num_threads(args.threads)
    data, model = _build(run, args, err)
    run.start_epoch = _load_checkpoint(run, model, err)
    _write_config(run, err)
    run.params, run.device_text = count_params(model), describe_device(run.device)
    run.show = sys.stderr.isatty() and not os.environ.get("TQDM_DISABLE")
    _announce(run, data)
    history = _fit(run, args, data, model)
    if history is None:
        return EXIT_INTERRUPTED
    return _finish(run, args, data, model, history)
