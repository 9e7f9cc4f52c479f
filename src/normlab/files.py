"""Atomic file writes: a temporary file in the same folder, fsync, then os.replace, so a crash
or Ctrl-C never leaves a half-written checkpoint, history or results file behind."""
from __future__ import annotations

import contextlib
import json
import os
import tempfile
from pathlib import Path
from typing import IO, Callable


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


def write_json_atomic(path: str | os.PathLike, obj, indent: int = 1) -> Path:
    return write_atomic(path, lambda f: f.write(json.dumps(obj, indent=indent) + "\n"), binary=False)


def write_text_atomic(path: str | os.PathLike, text: str) -> Path:
    return write_atomic(path, lambda f: f.write(text), binary=False)
