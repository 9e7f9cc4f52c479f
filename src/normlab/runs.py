"""One way to train a configuration: a registered model, its seed's recipe, and what you override.

    from normlab import runs
    run = runs.run("erav1s8", norm="group", epochs=2, subset=100)
    run.history.last["test_acc"], run.status, run.summary()

``run`` executes the recipe's whole schedule: where the source trained in several calls (fast.ai
lesson 7: ``fit(lr, 2)`` at a constant rate, then ``fit(lr, n, cycle_len=1)``, listed in
``Recipe.calls``), it makes every call, each with a fresh optimizer as fastai 0.7 did, and returns
one History. Chapters, the live panel, the grid script, the command line and the benchmarks all
train through it, so a configuration means the same thing everywhere.

Inside a recording context (``book.setup(..., chapter=...)``, ``normlab.records``) every run is
recorded after training, or, with reuse, loaded from its record instead of trained.
"""
from __future__ import annotations

import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Sequence

import torch
import torch.nn as nn

from .data import Loaders
from .devices import describe_device, resolve_device
from .history import History
from .learner import JsonLog, set_rng_state
from .models import MODELS, build_model
from .precision import Precision, choose_precision
from .recipes import Recipe, fit_kwargs, get_recipe, make_loaders
from . import records
from . import train  # train.fit looked up at call time (tests may wrap it)

__all__ = ["Call", "Run", "run", "plan_calls", "status_of", "NotKept", "KEEP_MODEL"]

# keep_model=: False, True (the book's records.CHECKPOINT_DTYPE) or the dtype to store the weights in
KEEP_MODEL = (False, True, "float32", "float16")


def status_of(history: History) -> str:
    """"done", "diverged" or "cancelled": how a run's History ended."""
    stopped = history.stopped
    return "done" if stopped is None else "cancelled" if stopped.startswith("cancelled") else "diverged"


@dataclass(frozen=True)
class Call:
    """One fit call of a run: fastai's ``learn.fit(lr, epochs[, cycle_len=1])``."""
    lr: float
    epochs: int
    schedule: str

    def describe(self) -> str:
        return f"fit({self.lr:g}, {self.epochs}{', cycle_len=1' if self.schedule == 'sgdr' else ''})"


class NotKept:
    """Stands for what a reused run did not keep (its model, when the record holds no weights):
    any use of it raises an error that says why, instead of silently using an untrained model."""

    def __init__(self, message: str):
        object.__setattr__(self, "_message", message)

    def __getattr__(self, name):
        raise RuntimeError(self._message)

    def __call__(self, *args, **kwargs):
        raise RuntimeError(self._message)

    def __repr__(self) -> str:
        return f"NotKept({self._message!r})"


@dataclass
class Run:
    """What ``run`` returns: the settings it used, the History of all its calls, the trained model,
    its data and its times (seconds in all and per call); `record`, the run's record file, if any.
    A reused run given no data builds its data on first use of ``.data`` (so a chapter that only
    redraws figures needs no dataset)."""
    name: str
    settings: dict
    history: History
    model: nn.Module
    _data: Loaders | Callable[[], Loaders]
    seconds: float = 0.0
    call_seconds: list[float] = field(default_factory=list)
    record: Path | None = None

    @property
    def data(self) -> Loaders:
        if not isinstance(self._data, Loaders):
            self._data = self._data()
        return self._data

    @property
    def status(self) -> str:
        return status_of(self.history)

    def summary(self) -> dict:
        """A JSON-ready line for tables and results files."""
        last = self.history.last
        best = self.history.best("test_acc") if any(e.get("test_acc") is not None for e in self.history.epochs) else {}
        return {**self.settings, "status": self.status, "stopped": self.history.stopped,
                "epochs_run": len(self.history), "train_acc": last.get("train_acc"),
                "test_acc": last.get("test_acc"), "best_test_acc": best.get("test_acc"),
                "seconds": round(self.seconds, 1)}


def _per_call(what: str, value: Any, n: int) -> list:
    """A scalar applies to every call; a sequence gives one value per call."""
    if isinstance(value, (tuple, list)):
        if len(value) != n:
            raise ValueError(f"{what}={tuple(value)!r} gives {len(value)} values but the recipe makes {n} "
                             f"fit call(s); give one value, or one per call")
        return list(value)
    return [value] * n


def plan_calls(recipe: Recipe, lr=None, epochs=None, calls: str = "all", schedule=None) -> list[Call]:
    """The fit calls of a recipe with overrides (each one value for every call, or one per call):
    ``calls="all"`` (the source's whole schedule) or ``"main"`` (only the call whose result the
    source reported)."""
    if calls not in ("all", "main"):
        raise ValueError(f"calls must be 'all' or 'main', got {calls!r}")
    base = [Call(*c) for c in recipe.calls] if recipe.calls and calls == "all" else [
        Call(recipe.lr, recipe.epochs, recipe.schedule)]
    lrs = _per_call("lr", lr, len(base))
    eps = _per_call("epochs", epochs, len(base))
    scheds = _per_call("schedule", schedule, len(base))
    return [Call(float(l) if l is not None else c.lr, int(e) if e is not None else c.epochs,
                 c.schedule if s is None else s) for c, l, e, s in zip(base, lrs, eps, scheds)]


def _checkpoints(checkpoint, n: int) -> list[Path | None]:
    """One checkpoint file per call: the last call writes `checkpoint` itself (what a single-call
    run has always written), earlier calls ``<stem>.call<i><suffix>`` beside it."""
    if checkpoint is None:
        return [None] * n
    path = Path(checkpoint)
    return [path.with_name(f"{path.stem}.call{i + 1}{path.suffix}") for i in range(n - 1)] + [path]


def run(name: str, *, norm: str | None = None, lr=None, epochs=None, batch_size: int | None = None,
        subset: int | None = None, test_subset: int | None = None, device="auto", seed: int = 0,
        precision: str | bool | Precision = "auto", calls: str = "all",
        model: nn.Module | Callable[[], nn.Module] | None = None, model_kwargs: dict | None = None,
        data: Loaders | None = None, data_dir=None, download: bool = True, drop_last: bool = False,
        callbacks: Sequence = (), progress="auto", log: str | None = None, checkpoint=None,
        resume: bool = False, max_loss: float | None = None, label: str | None = None,
        keep_model: bool | str = False, record: bool = True, **fit_overrides) -> Run:
    """Train the registered model `name` with its seed's recipe and these overrides.

    - norm, model_kwargs: passed to the model's builder (``normlab.models.build_model``); `model`
      replaces the built model (a module, or a function that builds one after seeding).
    - lr, epochs, schedule: one value for every call, or one per call of ``Recipe.calls``.
    - batch_size, subset, test_subset, device, data_dir, download, drop_last: the data
      (``recipes.make_loaders``); or pass ready `data` (Loaders) to share it between runs.
    - seed: seeds the model's initialization and the first call's data order (as the chapters do).
    - precision: "auto", "fp32", "bf16", "fp16" (``normlab.precision``).
    - checkpoint, resume: a checkpoint per call (see ``_checkpoints``); with resume=True, finished
      calls are skipped and an unfinished one continues, equal to an uninterrupted run.
    - in a recording context (``normlab.records``): the run is recorded, or with reuse loaded from
      its record without training; keep_model=True (or "float32"/"float16") also keeps its trained
      weights, for a chapter that uses the model after training; record=False leaves this run out
      of the context (it trains and is not recorded: the live panel).
    - any other keyword goes to ``normlab.train.fit`` for every call (weight_decay, schedule, ...).
    """
    recipe = get_recipe(name)
    plan = plan_calls(recipe, lr, epochs, calls, fit_overrides.pop("schedule", None))
    if data is not None and any(v is not None for v in (batch_size, subset, test_subset)):
        raise ValueError("pass either data= (ready Loaders) or batch_size/subset/test_subset, not both")
    if keep_model not in KEEP_MODEL or not isinstance(keep_model, (bool, str)):
        raise ValueError(f"keep_model={keep_model!r}; accepted: {', '.join(map(repr, KEEP_MODEL))}")
    keep = records.CHECKPOINT_DTYPE if keep_model is True else keep_model or None
    ctx = records.active() if record else None
    if keep and ctx is None:
        raise ValueError(f"keep_model={keep_model!r} keeps the weights beside the run's record, and no run is "
                         f"recorded here: call book.setup(..., chapter=..., results_dir=...) first "
                         f"(or use normlab.records.recording)")
    dev = resolve_device(device) if data is None else data.device
    data_args = dict(data_dir=data_dir, device=dev, subset=subset, test_subset=test_subset, seed=seed,
                     batch_size=batch_size, download=download, drop_last=drop_last)
    if ctx is not None:  # from the arguments, before any data is built: reuse builds none
        data_id = records.data_identity(data) if data is not None else {
            "dataset": recipe.dataset, "subset": subset, "test_subset": test_subset,
            "batch_size": batch_size or recipe.batch_size, "drop_last": drop_last, "data_seed": seed}
    reuse = ctx is not None and ctx.reuse
    if data is None and not reuse:
        data = make_loaders(recipe, **data_args)
    chosen = choose_precision(dev, precision)
    torch.manual_seed(seed)
    model, source = _build_model(name, norm, model, model_kwargs)
    if ctx is not None:
        ident = records.identity(name=name, plan=plan, norm=norm, model_kwargs=model_kwargs, model_source=source,
                                 model=model, data_id=data_id, seed=seed, precision=precision, max_loss=max_loss,
                                 fit_overrides=fit_overrides, model_revision=MODELS[name].revision)
        key = records.record_key(ident, label)
        if reuse:
            return _reused(ctx, ident, key, name, model, dev,
                           data if data is not None else (lambda: make_loaders(recipe, **data_args)),
                           callbacks, log, label)
        records.check_writable(ctx, ident, key)
    settings = {"model": name, "norm": norm, "lr": [c.lr for c in plan], "epochs": [c.epochs for c in plan],
                "schedule": [c.schedule for c in plan], "batch_size": data.train.batch_size,
                "subset": subset, "test_subset": test_subset, "device": str(dev), "seed": seed,
                "precision": chosen.name}
    result = Run(name, settings, History(), model, data)
    paths = _checkpoints(checkpoint, len(plan))
    t_run = time.perf_counter()
    for i, (call, path) in enumerate(zip(plan, paths)):
        t0 = time.perf_counter()
        if resume and path is not None and path.exists():
            ck = torch.load(path, map_location=dev, weights_only=False)
            if ck["epoch"] + 1 >= call.epochs:  # finished before: take its end state, go on
                model.load_state_dict(ck["model"])
                set_rng_state(data, ck["rng"])
                _append(result, History.from_dict(ck["history"]), i)
                continue
        call_label = label or name
        h = train.fit(model, data, **fit_kwargs(
            recipe, **{**fit_overrides, "epochs": call.epochs, "lr": call.lr, "schedule": call.schedule,
                       "seed": seed if i == 0 else None, "amp": chosen, "callbacks": list(callbacks),
                       "progress": progress, "log": log, "checkpoint": path, "max_loss": max_loss,
                       "resume": path if resume and path is not None and path.exists() else None,
                       "label": f"{call_label}: {call.describe()}" if len(plan) > 1 else call_label}))
        _append(result, h, i)
        result.call_seconds.append(time.perf_counter() - t0)
        if h.stopped is not None:
            break
    result.seconds = time.perf_counter() - t_run
    for cb in callbacks:  # measurements of the trained model (records.Measure), after the last call
        if hasattr(cb, "after_run"):
            cb.after_run(model)
    if ctx is not None and result.status != "cancelled":  # an interrupted run is no result to redraw
        result.record = records.write(ctx, key, ident, result, host=describe_device(dev), label=label,
                                      callbacks=callbacks, keep_model=keep)
    return result


def _build_model(name: str, norm, model, model_kwargs) -> tuple[nn.Module, str]:
    """The run's model (after the caller seeded) and where it came from, for the run's identity."""
    if model is None:
        return build_model(name, **({"norm": norm} if norm is not None else {}), **(model_kwargs or {})), "registry"
    if isinstance(model, nn.Module):
        return model, "module"
    return model(), f"function {getattr(model, '__qualname__', type(model).__qualname__)}"


def _reused(ctx, ident: dict, key: str, name: str, model: nn.Module, dev, data, callbacks, log, label) -> Run:
    """The recorded run of `key` instead of training: its history, settings and times, its weights
    if the record kept them, its callbacks' states; prints one line saying so."""
    path, committed = records.find(ctx, ident, key)
    rec = records.read(path)
    history = History.from_dict(rec["history"])
    if rec["checkpoint"]:
        records.load_weights(model, path.with_name(rec["checkpoint"]["file"])).to(dev)
        model.train()  # as training leaves it, in the memory layout its batches had (evaluating an
        if (rec["rng"]["batches"].get("train") or {}).get("channels_last"):  # NCHW model on NHWC
            model.to(memory_format=torch.channels_last)  # batches is about 6x slower)
    else:
        model = NotKept(f"the model of the reused run {key} was not kept (its record holds no weights): "
                        f"train it with keep_model=True to keep it, or set REUSE = False")
    records.load_callbacks(rec, callbacks, key)
    records.set_rng_state(rec["rng"])
    if isinstance(data, Loaders):
        records.set_data_state(rec["rng"], data)
    else:
        build = data
        data = lambda: records.set_data_state(rec["rng"], build())  # noqa: E731
    if rec["host"] not in ctx.reused_on:
        ctx.reused_on.append(rec["host"])
    where = "the book's committed record" if committed else "its record"
    print(f"{label or name}: reused {where} {path.name} ({rec['seconds']:.0f} s of training on {rec['host']}, "
          f"{rec['date'][:10]})", flush=True)
    if log:
        _replay_log(history, rec["settings"]["epochs"], log)
    return Run(name, rec["settings"], history, model, data, rec["seconds"], list(rec["call_seconds"]), path)


def _replay_log(history: History, call_epochs: list[int], log: str) -> None:
    """What log= printed while the run trained, call by call (each call's epochs count from 0)."""
    printer, start = JsonLog(log), 0
    for n in call_epochs:
        done = history.epochs[start:start + n]
        t0 = history.epochs[start - 1]["time"] if start else 0.0
        call = History([{**e, "epoch": e["epoch"] - start, "time": e["time"] - t0} for e in done])
        for k in range(1, len(done) + 1):
            printer.after_epoch(History(call.epochs[:k]))
        start += n
    if history.stopped and not history.stopped.startswith("cancelled"):
        print(f"Diverged: {history.stopped}", file=sys.stderr)


def _append(result: Run, h: History, index: int) -> None:
    if index == 0:
        result.history = h
    else:
        result.history.extend(h)
