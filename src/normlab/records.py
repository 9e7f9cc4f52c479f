"""Run records: what each run of a chapter measured, kept beside its results so that the chapter can
be redrawn without training (``REUSE = True``) and a reader knows what training it costs.

A chapter turns recording on once, in its setup cell::

    device = book.setup(SEED, DEVICE, THREADS, chapter="07_normalization_zoo", reuse=REUSE,
                        results_dir=RESULTS_DIR, smoke=SMOKE)

From then on every ``normlab.runs.run`` of the kernel either

- trains and writes ``<results_dir>/runs/<chapter>/<key>.json`` (settings, history, summary, times,
  host, versions, date, the state of its recording callbacks) and, with ``keep_model=True``, the
  trained weights as ``<key>.pt`` beside it; or, with ``reuse=True``,
- trains nothing and returns the recorded run: the record found in `results_dir`, else the book's
  committed copy that normlab ships (as ``book.results_file`` does for results files).

``<key>`` is a readable slug (the run's label, or model-norm-kwargs) plus a hash of the run's
*identity*: everything that decides what training computes (model and its structure, norm, kwargs,
calls, data, seed, requested precision, fit overrides), not where it ran. Two configurations never
share a key; rewriting a key is rewriting the same configuration (a re-render), and a file under a
key that holds another configuration (a hand edit) is never overwritten.

Callbacks that collect what a figure needs come back too: a callback with ``state() -> dict``
(JSON-ready) and ``load_state(dict)`` has its state saved in the record after training and loaded
into the callback passed on reuse (matched by position in ``callbacks=`` and type). The record is
strict JSON, so a non-finite number in a state comes back as None: ``load_state`` turns it back.
``Measure`` is such a callback for a number measured on the trained model, where keeping the model
itself would cost too much (``CHECKPOINT_BUDGET``).
"""
from __future__ import annotations

import base64
import hashlib
import json
import math
import random
import re
import warnings
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Iterator

import torch
import torch.nn as nn

from . import __version__
from .files import save_atomic, to_strict_json, write_json_atomic

__all__ = ["Context", "Measure", "start", "stop", "active", "recording", "identity", "record_key", "write", "find",
           "read", "save_weights", "load_weights", "checkpoint_total", "check_checkpoint_budget",
           "estimate", "stale", "RecordError", "RUNS", "CHECKPOINT_BUDGET", "CHECKPOINT_DTYPE",
           "FP16_ACC_TOLERANCE"]

FORMAT = 1
RUNS = "runs"  # <results_dir>/runs/<chapter>/<key>.json: a subfolder, so book.load_results never reads it
# All committed checkpoints together stay within 10 MB (issue #15). The models the chapters use after
# training would hold 23.8 MB in float32 and 11.9 MB in float16: chapter 1's wide SimpleNet (4.9 MB)
# and chapter 6's three as-coded nets (12.8 MB) measure what the chapter needs at the end of training
# (Measure) instead, and the 4.9 MB left are kept exactly, in float32.
CHECKPOINT_BUDGET = 10_000_000
CHECKPOINT_DTYPE = "float32"
DTYPES = {"float32": torch.float32, "float16": torch.float16}
# float16 keeps a tensor only when it holds it to float16's precision overall (relative L2 error at
# most 2^-10; its rounding alone gives below 2^-11): a tensor of values beyond float16's range or of
# mostly tiny ones (the biases in front of a batch norm) stays float32.
FP16_MAX_ERROR = 2.0 ** -10
# A float16 copy of trained weights moves each weight by at most 2^-11 of itself: on the 10,000 test
# images that flips a handful of predictions at most; 0.5 points leaves room for batch statistics.
FP16_ACC_TOLERANCE = 0.005


class RecordError(LookupError):
    """No record matches a run that a chapter asked to reuse, or a record cannot be used."""


# ----------------------------------------------------------------------------- the recording context
@dataclass
class Context:
    """Where the runs of one chapter are recorded, and whether they are reused instead of trained."""
    chapter: str
    folder: Path          # the chapter's results folder (RESULTS_DIR); records go to folder/runs/chapter
    reuse: bool = False
    smoke: bool = False
    session: str = field(default_factory=lambda: _now("microseconds"))  # one render: the estimate reads the latest
    reused_on: list[str] = field(default_factory=list)  # the hosts of the runs reused so far (results tables)

    @property
    def runs_dir(self) -> Path:
        return self.folder / RUNS / self.chapter

    def describe(self) -> str:
        if self.reuse:
            return (f"REUSE = True: every run is loaded from its record in {self.runs_dir}/ (else the book's "
                    f"committed copy); nothing is trained")
        return f"runs are recorded in {self.runs_dir}/ (REUSE = True redraws the chapter from them)"


_active: Context | None = None


def start(chapter: str, results_dir, *, reuse: bool = False, smoke: bool = False) -> Context:
    """Record (or reuse) every run of `chapter` from now on; replaces an earlier context."""
    global _active
    if not isinstance(chapter, str) or not re.fullmatch(r"[0-9A-Za-z][0-9A-Za-z_.-]*", chapter):
        raise ValueError(f"chapter must be a file stem such as '07_normalization_zoo', got {chapter!r}")
    if results_dir is None:
        raise ValueError("results_dir is required with chapter=: the chapter's RESULTS_DIR, where its records go")
    if not isinstance(reuse, bool):
        raise ValueError(f"reuse must be True or False, got {reuse!r}")
    _active = Context(chapter, Path(results_dir), reuse, bool(smoke))
    return _active


def stop() -> None:
    global _active
    _active = None


def active() -> Context | None:
    return _active


@contextmanager
def recording(chapter: str, results_dir, *, reuse: bool = False, smoke: bool = False) -> Iterator[Context]:
    """``start`` for a block (scripts, tests); the previous context comes back afterwards."""
    global _active
    before = _active
    try:
        yield start(chapter, results_dir, reuse=reuse, smoke=smoke)
    finally:
        _active = before


def _now(timespec: str = "seconds") -> str:
    return datetime.now(timezone.utc).isoformat(timespec=timespec)


# ----------------------------------------------------------------------------- identity and key
def _jsonable(value, where: str):
    """A run argument as JSON; functions by their qualified name; anything else must say what it is."""
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    if isinstance(value, (list, tuple)):
        return [_jsonable(v, f"{where}[{i}]") for i, v in enumerate(value)]
    if isinstance(value, dict):
        return {str(k): _jsonable(v, f"{where}.{k}") for k, v in value.items()}
    if callable(value) and hasattr(value, "__qualname__"):
        return f"{getattr(value, '__module__', '')}.{value.__qualname__}"
    text = repr(value)
    if " at 0x" in text:
        raise TypeError(f"{where}={text} cannot be recorded: its repr names a memory address, not a "
                        f"configuration; pass a str, number, list, dict or function")
    return text


def _digest(obj, n: int = 16) -> str:
    return hashlib.sha256(json.dumps(obj, sort_keys=True, separators=(",", ":")).encode()).hexdigest()[:n]


def model_structure(model: nn.Module) -> dict:
    """What a model passed to run() is, without its weights: class, and a hash of every submodule's
    type and configuration (extra_repr: kernel sizes, strides, ...) and every tensor's name and shape."""
    parts = [[name, type(m).__qualname__, m.extra_repr()] for name, m in model.named_modules()]
    parts += [[name, list(t.shape), str(t.dtype)] for name, t in model.state_dict().items()]
    return {"class": type(model).__qualname__, "structure": _digest(parts)}


def data_identity(data) -> dict:
    """Ready Loaders by what they hold: dataset, sizes, batch sizes, augmentation, normalization and
    a hash of the labels (which images a subset picked)."""
    def labels(b):
        return b.data.labels.detach().cpu().to(torch.int64).numpy().tobytes()
    splits = [data.train, data.test] + ([data.val] if data.val is not None else [])
    h = hashlib.sha256()
    for b in splits:
        h.update(labels(b))
    return {"dataset": data.name, "train": len(data.train.data), "test": len(data.test.data),
            "val": None if data.val is None else len(data.val.data), "batch_size": data.train.batch_size,
            "test_batch_size": data.test.batch_size, "drop_last": data.train.drop_last,
            "augment": _jsonable(data.train.augment, "augment"),
            "test_augment": _jsonable(data.test.augment, "test_augment"),
            "mean": [round(float(m), 6) for m in data.mean], "std": [round(float(s), 6) for s in data.std],
            "labels": h.hexdigest()[:16]}


def identity(*, name: str, plan: list, norm, model_kwargs, model_source, model: nn.Module, data_id: dict,
             seed: int, precision, max_loss, fit_overrides: dict, model_revision: int = 0) -> dict:
    """Everything that decides what a run computes (see the module docstring); never the device, and
    nothing that only changes what is printed (run()'s progress, log and label are not in it).
    model_revision: the registry's ``ModelSpec.revision``, written for a registry-built model only
    when non-zero (any other model's structure is in the identity already)."""
    if model_source == "registry":
        built = {"source": model_source, **({"revision": model_revision} if model_revision else {})}
    else:
        built = {"source": model_source, **model_structure(model)}
    return {"model": name, "norm": norm, "model_kwargs": _jsonable(model_kwargs or {}, "model_kwargs"),
            "built": built, "calls": [[c.lr, c.epochs, c.schedule] for c in plan], "data": data_id,
            "seed": seed, "precision": _jsonable(precision, "precision"), "max_loss": max_loss,
            "fit": _jsonable(dict(sorted(fit_overrides.items())), "fit")}


def _slug(text: str) -> str:
    return re.sub(r"[^0-9a-z]+", "-", text.lower()).strip("-")[:60] or "run"


def record_key(ident: dict, label: str | None = None) -> str:
    """'<label or model-norm-kwargs>-<hash of the identity>', e.g. 'batch-1f0c3a9e27'."""
    if label:
        readable = label
    else:
        kw = "-".join(f"{k}-{v}" for k, v in ident["model_kwargs"].items())
        readable = "-".join(str(p) for p in (ident["model"], ident["norm"], kw) if p)
    return f"{_slug(readable)}-{_digest(ident, 10)}"


# ----------------------------------------------------------------------------- non-finite numbers
def _nonfinite(obj, path=()) -> list:
    """[[path, 'nan'|'inf'|'-inf'], ...] of every non-finite float (strict JSON writes them as null;
    these entries put them back exactly, with no cap on their number)."""
    if isinstance(obj, float) and not math.isfinite(obj):
        return [[list(path), repr(obj)]]
    items = obj.items() if isinstance(obj, dict) else enumerate(obj) if isinstance(obj, (list, tuple)) else ()
    return [e for k, v in items for e in _nonfinite(v, (*path, k))]


def _restore(obj, entries: list):
    for path, text in entries:
        target = obj
        for k in path[:-1]:
            target = target[k]
        target[path[-1]] = float(text)
    return obj


# ----------------------------------------------------------------------------- writing
def _read_json(path: Path) -> dict:
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError) as e:
        raise RecordError(f"{path} is not a readable run record ({e}); it is left as it is: move it away "
                          f"to record this run") from e


def _may_write(path: Path, ident: dict) -> None:
    """A key's files may be rewritten only by the same configuration: a re-render replaces its own
    record; a file there from anything else (another identity, a hand edit) stops the run."""
    if path.exists() and _read_json(path).get("identity") != ident:
        raise FileExistsError(f"{path} holds another configuration under the same key; it is not overwritten. "
                              f"Move it away (or delete it) to record this run")
    weights = path.with_suffix(".pt")
    if weights.exists() and not path.exists():
        raise FileExistsError(f"{weights} exists without its record {path.name}; it is not overwritten. "
                              f"Move it away to record this run")


def check_writable(ctx: Context, ident: dict, key: str) -> None:
    """Before training: fail now, not after the run, if the record could not be written."""
    _may_write(ctx.runs_dir / f"{key}.json", ident)


def save_weights(model: nn.Module, path: Path, dtype: str) -> dict:
    """The model's state_dict (weights only) atomically to `path`, floating tensors in `dtype`; with
    float16, a tensor it cannot hold (FP16_MAX_ERROR) stays float32 and is listed."""
    if dtype not in DTYPES:
        raise ValueError(f"checkpoint dtype {dtype!r}; accepted: {', '.join(DTYPES)}")
    state, kept = {}, []
    for name, t in model.state_dict().items():
        t = t.detach().cpu().clone()
        if t.is_floating_point():
            low = t.to(DTYPES[dtype])
            if dtype == "float32" or _holds(low, t):
                t = low
            else:
                kept.append(name)
                t = t.float()
        state[name] = t
    save_atomic(state, path)
    return {"file": path.name, "dtype": dtype, "bytes": path.stat().st_size, "float32_tensors": kept,
            "parameters": sum(p.numel() for p in model.parameters())}


def _holds(low: torch.Tensor, t: torch.Tensor) -> bool:
    t = t.double()
    if not bool(torch.isfinite(t).all()):
        return False
    err, norm = (low.double() - t).norm().item(), t.norm().item()
    return math.isfinite(err) and err <= FP16_MAX_ERROR * norm


def write(ctx: Context, key: str, ident: dict, run, *, host: str, label: str | None = None, callbacks=(),
          keep_model: str | None = None) -> Path:
    """The record of a trained `run` (normlab.runs.Run) as ``<key>.json``, and its weights as
    ``<key>.pt`` when `keep_model` names a dtype. Returns the record's path."""
    path = ctx.runs_dir / f"{key}.json"
    _may_write(path, ident)
    weights = path.with_suffix(".pt")
    history = run.history.to_dict()
    record = {
        "format": FORMAT, "chapter": ctx.chapter, "key": key, "label": label,
        "identity": ident, "settings": run.settings, "history": history,
        "history_nonfinite": _nonfinite(history), "summary": run.summary(), "status": run.status,
        "seconds": run.seconds, "call_seconds": list(run.call_seconds), "host": host,
        "threads": torch.get_num_threads(), "torch": torch.__version__, "normlab": __version__,
        "date": _now(), "session": ctx.session, "smoke": ctx.smoke,
        "callbacks": [_callback_state(cb) for cb in callbacks], "rng": rng_state(run.data), "checkpoint": None}
    to_strict_json(record)  # a state that is not JSON fails here, before any file is written
    if keep_model:
        record["checkpoint"] = save_weights(run.model, weights, keep_model)
    write_json_atomic(path, record, indent=None)  # one line: step histories are long
    checkpoint = record["checkpoint"]
    if checkpoint is None and weights.exists():
        weights.unlink()  # this key's own earlier weights: the new record no longer refers to them
    if checkpoint is not None:
        total = checkpoint_total(ctx.folder)
        if total > CHECKPOINT_BUDGET:
            warnings.warn(f"the checkpoints under {ctx.folder / RUNS}/ hold {total / 1e6:.1f} MB, over the book's "
                          f"{CHECKPOINT_BUDGET / 1e6:.0f} MB (records.CHECKPOINT_BUDGET)", RuntimeWarning, stacklevel=3)
    return path


def _callback_state(cb) -> dict | None:
    """{"type", "state"} of a callback that keeps state (see the module docstring), else None."""
    if not (hasattr(cb, "state") and hasattr(cb, "load_state")):
        return None
    return {"type": type(cb).__qualname__, "state": cb.state()}


class Measure:
    """What a chapter measures on a trained model, kept instead of the model: ``fn(model)`` runs once,
    when the run has finished training (``runs.run`` calls ``after_run``), and its result, ``value``
    (JSON-ready: numbers, strings, lists, dicts; tuples come back as lists, non-finite numbers as None,
    dicts keyed by ints, such as ``train.accuracy_by_batch_size``'s, with their int keys), is kept in
    the run's record and comes back on reuse::

        final = records.Measure(lambda model: train.evaluate(model, plain.train)["acc"])
        run = runs.run("simplenet", data=dl, callbacks=[final]); final.value
    """

    def __init__(self, fn):
        self.fn, self.value = fn, None

    def after_run(self, model: nn.Module) -> None:
        self.value = self.fn(model)

    def state(self) -> dict:
        return {"value": _keys_kept(self.value)}

    def load_state(self, state: dict) -> None:
        self.value = _keys_restored(state["value"])


_INT_KEYS = "int keys"  # JSON keys are strings: a dict keyed by ints is kept as {"int keys": [[key, value], ...]}


def _keys_kept(value):
    if isinstance(value, dict):
        if value and all(isinstance(k, int) and not isinstance(k, bool) for k in value):
            return {_INT_KEYS: [[k, _keys_kept(v)] for k, v in value.items()]}
        return {k: _keys_kept(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_keys_kept(v) for v in value]
    return value


def _keys_restored(value):
    if isinstance(value, dict):
        if list(value) == [_INT_KEYS]:
            return {k: _keys_restored(v) for k, v in value[_INT_KEYS]}
        return {k: _keys_restored(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_keys_restored(v) for v in value]
    return value


# ----------------------------------------------------------------------------- random state
# A chapter goes on after a run with the random state training left (the next batch it draws, the
# dropout of an evaluation): a reused run puts that state back, so the cells after it print the same.
def _b64(t: torch.Tensor) -> str:
    return base64.b64encode(t.numpy().tobytes()).decode()


def _tensor(text: str) -> torch.Tensor:
    return torch.frombuffer(bytearray(base64.b64decode(text)), dtype=torch.uint8).clone()


def rng_state(data) -> dict:
    """Python's, NumPy's and torch's (CPU) random state and each batch stream's generator, as JSON."""
    version, internal, gauss = random.getstate()
    state = {"python": [version, list(internal), gauss], "torch": _b64(torch.get_rng_state()),
             "batches": {k: (None if b is None else {"generator": _b64(b.generator.get_state()),
                                                     "channels_last": b.channels_last})
                         for k, b in (("train", data.train), ("test", data.test), ("val", data.val))}}
    try:
        import numpy as np

        name, keys, pos, has_gauss, cached = np.random.get_state(legacy=True)
        state["numpy"] = [name, base64.b64encode(keys.astype("<u4").tobytes()).decode(), int(pos), int(has_gauss),
                          float(cached)]
    except ImportError:  # pragma: no cover
        pass
    return state


def set_rng_state(state: dict) -> None:
    """Put back the random state of rng_state (the batch streams: set_data_state)."""
    version, internal, gauss = state["python"]
    random.setstate((version, tuple(internal), gauss))
    torch.set_rng_state(_tensor(state["torch"]))
    if "numpy" in state:
        import numpy as np

        name, keys, pos, has_gauss, cached = state["numpy"]
        np.random.set_state((name, np.frombuffer(base64.b64decode(keys), dtype="<u4").astype(np.uint32), pos,
                             has_gauss, cached))


def set_data_state(state: dict, data):
    """Each batch stream's generator and layout as training left them; returns `data`."""
    for k, b in (("train", data.train), ("test", data.test), ("val", data.val)):
        saved = state["batches"].get(k)
        if b is not None and saved is not None:
            b.generator.set_state(_tensor(saved["generator"]))
            b.channels_last = saved["channels_last"]
    return data


# ----------------------------------------------------------------------------- reading
def _committed_runs(chapter: str) -> Path | None:
    from . import repository
    from .book import COMMITTED

    return repository.committed_file(f"{COMMITTED}/{RUNS}/{chapter}")


def _places(ctx: Context) -> list[Path]:
    committed = _committed_runs(ctx.chapter)
    here = ctx.runs_dir
    return [here] + ([committed] if committed is not None and committed.resolve() != here.resolve() else [])


def read(path: Path) -> dict:
    """A record with its non-finite numbers restored exactly."""
    record = _read_json(path)
    if record.get("format") != FORMAT:
        raise RecordError(f"{path} is a run record of format {record.get('format')!r}; this normlab reads {FORMAT}")
    _restore(record["history"], record.get("history_nonfinite", []))
    return record


def find(ctx: Context, ident: dict, key: str) -> tuple[Path, bool]:
    """(the record of `key`, whether it is the book's committed copy); a clear RecordError if none."""
    places = _places(ctx)
    for i, place in enumerate(places):
        path = place / f"{key}.json"
        if path.exists():
            if read(path)["identity"] != ident:
                raise RecordError(f"{path} is under this run's key but records another configuration: "
                                  f"set REUSE = False to train this run")
            return path, i > 0
    raise RecordError(_missing(ctx, ident, key, places))


def _missing(ctx: Context, ident: dict, key: str, places: list[Path]) -> str:
    keys = sorted({p.stem for place in places if place.is_dir() for p in place.glob("*.json")})
    text = (f"no record of this run of {ctx.chapter} (key {key}) in {' or '.join(str(p) + '/' for p in places)}: "
            f"set REUSE = False to train it.\nIts settings: {json.dumps(ident, sort_keys=True)}")
    if not keys:
        return text + "\nThere are no records of this chapter yet (a full run with REUSE = False writes them)."
    prefix = key.rsplit("-", 1)[0]
    near = [k for k in keys if k.rsplit("-", 1)[0] == prefix]
    text += f"\nRecords there: {', '.join(keys[:12])}{' ...' if len(keys) > 12 else ''}"
    if near:
        other = next(read(place / f"{near[0]}.json") for place in places if (place / f"{near[0]}.json").exists())
        diff = _differences(ident, other["identity"])
        text += f"\n{near[0]} has the same name and differs in: {'; '.join(diff)}"
    return text


def _differences(a: dict, b: dict, where: str = "") -> list[str]:
    out = []
    for k in sorted(set(a) | set(b)):
        x, y = a.get(k), b.get(k)
        if isinstance(x, dict) and isinstance(y, dict):
            out += _differences(x, y, f"{where}{k}.")
        elif x != y:
            out.append(f"{where}{k} {json.dumps(x)} here, {json.dumps(y)} recorded")
    return out


def load_weights(model: nn.Module, path: Path) -> nn.Module:
    """Weights from a checkpoint written by save_weights, into `model` in its own dtype."""
    model.load_state_dict(torch.load(path, map_location="cpu", weights_only=True))
    return model


def load_callbacks(record: dict, callbacks, key: str) -> None:
    """Give each stateful callback its recorded state; say which callbacks saw nothing."""
    saved = record.get("callbacks", [])
    for i, cb in enumerate(callbacks):
        entry = saved[i] if i < len(saved) else None
        if not (hasattr(cb, "state") and hasattr(cb, "load_state")):
            warnings.warn(f"callbacks[{i}] ({type(cb).__qualname__}) has no state()/load_state(), so it saw nothing "
                          f"of the reused run {key}", RuntimeWarning, stacklevel=3)
        elif entry is None or entry["type"] != type(cb).__qualname__:
            raise RecordError(f"the record {key} holds no state for callbacks[{i}] ({type(cb).__qualname__}); it "
                              f"holds {[e and e['type'] for e in saved]}: set REUSE = False to train this run")
        else:
            cb.load_state(entry["state"])


# ----------------------------------------------------------------------------- checkpoints in the book
def checkpoint_total(folder=None) -> int:
    """Bytes of every checkpoint under `folder`/runs/ (default: the book's committed records)."""
    base = _committed_base() if folder is None else Path(folder) / RUNS
    return sum(p.stat().st_size for p in base.glob("*/*.pt")) if base is not None and base.is_dir() else 0


def _committed_base() -> Path | None:
    from . import repository
    from .book import COMMITTED

    return repository.committed_file(f"{COMMITTED}/{RUNS}")


def check_checkpoint_budget(folder=None) -> int:
    """checkpoint_total, raising when it is over CHECKPOINT_BUDGET (names the largest files)."""
    total = checkpoint_total(folder)
    if total > CHECKPOINT_BUDGET:
        base = _committed_base() if folder is None else Path(folder) / RUNS
        largest = sorted(base.glob("*/*.pt"), key=lambda p: -p.stat().st_size)[:5]
        raise ValueError(f"checkpoints under {base} hold {total:,} bytes, over the budget of {CHECKPOINT_BUDGET:,}; "
                         f"largest: {', '.join(f'{p.parent.name}/{p.name} ({p.stat().st_size:,})' for p in largest)}")
    return total


# ----------------------------------------------------------------------------- what a chapter costs
def _latest(folder: Path | None) -> list[dict]:
    """The records of the latest full-budget session (render) in `folder` (stale ones are older)."""
    if folder is None or not folder.is_dir():
        return []
    recs = [r for r in (_read_json(p) for p in sorted(folder.glob("*.json"))) if not r.get("smoke")]
    if not recs:
        return []
    last = max(r["session"] for r in recs)
    return [r for r in recs if r["session"] == last]


def _duration(seconds: float) -> str:
    if seconds < 90:
        return f"{seconds:.0f} s"
    if seconds < 90 * 60:
        return f"{seconds / 60:.0f} min"
    return f"{seconds / 3600:.1f} h"


def estimate(chapter: str, device="auto", folder=None) -> str:
    """The chapter's full-budget training time from its committed records (or those under
    `folder`/runs/), the hardware they ran on, and whether this device is that hardware."""
    from .devices import describe_device

    base = _committed_runs(chapter) if folder is None else Path(folder) / RUNS / chapter
    recs = _latest(base)
    if not recs:
        return (f"{chapter}: no recorded full-budget runs yet, so no time estimate (and nothing for "
                f"REUSE = True to redraw from).")
    by_host: dict[str, float] = {}
    for r in recs:
        by_host[r["host"]] = by_host.get(r["host"], 0.0) + r["seconds"]
    total = sum(by_host.values())
    where = " and ".join(f"{_duration(s)} on {h}" for h, s in by_host.items()) if len(by_host) > 1 else \
        f"on {next(iter(by_host))}"
    here = describe_device(device)
    return (f"Full budget: about {_duration(total)} of training ({len(recs)} runs) {where}, recorded "
            f"{recs[0]['date'][:10]}; "
            + ("this machine is the same hardware. " if here in by_host else
               f"this machine ({here}) is not, so its time will differ (no scaling is guessed). ")
            + "REUSE = True redraws the chapter's tables and figures from these runs, without training.")


def stale(folder, chapter: str) -> list[Path]:
    """Records in `folder`/runs/`chapter` older than the latest session: runs the chapter no longer
    made the last time it ran (candidates for deletion; never deleted here)."""
    base = Path(folder) / RUNS / chapter
    latest = {r["key"] for r in _latest(base)}
    return [p for p in sorted(base.glob("*.json")) if p.stem not in latest]
