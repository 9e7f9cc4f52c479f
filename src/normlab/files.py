"""Atomic file writes and strict JSON.

Atomic: a temporary file in the same folder, fsync, then os.replace, so a crash or Ctrl-C never
leaves a half-written checkpoint, history or results file behind.

Strict JSON: every JSON file and line normlab writes (history.json, metrics.jsonl, summary.json,
config.json, results/*.json, the printed per-epoch lines) is RFC 8259 JSON, which has no NaN or
Infinity. Python's json module would write the tokens ``NaN``/``Infinity``, which other readers
(``jq``, JavaScript, ``json.loads(..., parse_constant=...)``) reject. So:

- every non-finite float (nan, inf, -inf; also numpy float64) becomes ``null``;
- the value it held is noted under the key ``"nonfinite"`` of the top-level object: a list of
  ``"PATH: VALUE"`` strings, PATH written as in Python/JavaScript from the top level
  (``"epochs[3].test_loss: nan"``, ``"final_test_loss: inf"``), in the order met. At most
  ``MAX_NOTES`` entries are listed, then one ``"... and N more"``. An object that already has a
  ``"nonfinite"`` list gets the new entries appended to it;
- a top-level value that is not an object (a list, a number) has nowhere to hold the note: it is
  given as a ``RuntimeWarning`` instead;
- the text is then dumped with ``allow_nan=False``, so anything that slips through raises
  ``ValueError`` instead of writing an invalid file.

The object given is never modified (a cleaned copy is dumped). Nothing is added when every
number is finite, so ordinary files keep exactly their keys.
"""
from __future__ import annotations

import contextlib
import json
import math
import os
import tempfile
import warnings
from pathlib import Path
from typing import IO, Callable

__all__ = ["write_atomic", "save_atomic", "write_json_atomic", "write_text_atomic", "strict_json_value",
           "to_strict_json", "json_line", "NONFINITE_KEY", "MAX_NOTES"]

NONFINITE_KEY = "nonfinite"
MAX_NOTES = 20


# ----------------------------------------------------------------------------- atomic writes
def write_atomic(path: str | os.PathLike, write: Callable[[IO], None], binary: bool = True) -> Path:
    """Call `write(file)` on a temporary file beside `path`, then move it into place."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp, 0o666 & ~umask)  # mkstemp creates 0600; these are ordinary files
        with os.fdopen(fd, "wb" if binary else "w", **({} if binary else {"encoding": "utf-8"})) as f:
            write(f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise
    return path


def save_atomic(obj, path: str | os.PathLike) -> Path:
    """torch.save, atomically."""
    import torch

    return write_atomic(path, lambda f: torch.save(obj, f))


def write_text_atomic(path: str | os.PathLike, text: str) -> Path:
    return write_atomic(path, lambda f: f.write(text), binary=False)


def write_json_atomic(path: str | os.PathLike, obj, indent: int | None = 1) -> Path:
    """`obj` as strict JSON (see the module docstring), atomically, with a final newline."""
    text = to_strict_json(obj, indent=indent)  # before opening: an error leaves the old file alone
    return write_text_atomic(path, text + "\n")


# ----------------------------------------------------------------------------- strict JSON
def _nonfinite(v) -> bool:
    return isinstance(v, float) and not math.isfinite(v)


def strict_json_value(obj, path: str = "") -> tuple[object, list[str]]:
    """(a copy of `obj` with every non-finite float replaced by None, ["PATH: VALUE", ...]).
    Dicts, lists and tuples are walked (tuples become lists, as json writes them)."""
    notes: list[str] = []

    def walk(v, where: str):
        if _nonfinite(v):
            notes.append(f"{where or '(value)'}: {float(v)!r}")
            return None
        if isinstance(v, dict):
            return {k: walk(x, f"{where}.{k}" if where else str(k)) for k, x in v.items()}
        if isinstance(v, (list, tuple)):
            return [walk(x, f"{where}[{i}]") for i, x in enumerate(v)]
        return v

    return walk(obj, path), notes


def _capped(notes: list[str]) -> list[str]:
    if len(notes) <= MAX_NOTES:
        return notes
    return notes[:MAX_NOTES] + [f"... and {len(notes) - MAX_NOTES} more"]


def to_strict_json(obj, indent: int | None = None, **dumps_kwargs) -> str:
    """json.dumps that never writes NaN/Infinity: non-finite floats become null and are noted
    under "nonfinite" (see the module docstring). Extra keyword arguments go to json.dumps."""
    clean, notes = strict_json_value(obj)
    if notes:
        if isinstance(clean, dict):
            before = clean.get(NONFINITE_KEY, [])
            if not isinstance(before, list):
                raise ValueError(f"cannot note the non-finite values {notes[:3]}: the object already has a "
                                 f"{NONFINITE_KEY!r} key that is not a list ({before!r})")
            clean[NONFINITE_KEY] = before + _capped(notes)
        else:
            warnings.warn(f"non-finite numbers written as null (a top-level {type(clean).__name__} cannot "
                          f"hold the note): {', '.join(_capped(notes))}", RuntimeWarning, stacklevel=2)
    return json.dumps(clean, indent=indent, allow_nan=False, **dumps_kwargs)


def json_line(obj) -> str:
    """`obj` as one line of strict JSON, e.g. {"epoch": 0, "test_acc": 0.878, "time": 8.48}
    (json.dumps' default separators; for metrics.jsonl and printed lines)."""
    return to_strict_json(obj, indent=None)
