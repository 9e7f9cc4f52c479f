"""Fetch CIFAR-10 and MNIST into the data folder, with checksums, a timeout and mirrors.

`download(name)` puts a dataset into torchvision's layout inside the folder that
`normlab.data.resolve_data_dir` picks (the `data_dir` argument, else $NORMLAB_DATA, else
~/.cache/normlab/data). The command line does the same: `python -m normlab download [DATASET]`.

- Files already there are used as they are: nothing is downloaded or checked, so staged copies
  that are exact in pixels but not byte-identical to the official files keep working.
- Sources are torchvision's canonical archives and md5s. CIFAR-10 comes as
  cifar-10-python.tar.gz; MNIST as its four .gz files (read by normlab and also unpacked
  beside them, as torchvision does).
- Only the standard library (urllib, hashlib, tarfile, gzip) and tqdm: torchvision's
  downloader has no timeout and no mirror control.
- Every connect and every read waits at most `timeout` seconds, so a server that hangs fails.
- Writes are atomic: a temporary file in the target folder is checked, then renamed; an
  archive is unpacked into a temporary folder that is then renamed into place.
- If every source fails, ONE `DownloadError` (a `normlab.data.DataError`) names the dataset,
  every URL tried with why it failed, the folder and the fixes.

Environment variables:
- NORMLAB_DATA_MIRRORS: base URLs separated by whitespace or commas (http://, https://,
  file://), tried in order. When set, this list REPLACES the canonical bases (the `mirrors=`
  argument in turn replaces both). File names stay the canonical ones: base +
  "cifar-10-python.tar.gz", base + "train-images-idx3-ubyte.gz", ... (one flat folder).
- NORMLAB_DATA_MD5: path to a JSON file {archive file name: md5 hex}. Each entry replaces the
  canonical md5 of that file (files it does not name keep theirs): for re-packed mirrors and
  tests.
- TQDM_DISABLE: set to turn the progress bar off (as `progress=False` does).
"""
from __future__ import annotations

import gzip
import hashlib
import json
import os
import re
import shutil
import socket
import sys
import tarfile
import tempfile
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path

from .data import DATA_ENV, DATASETS, DataError, _cifar_files, _mnist_files, _where, resolve_data_dir

MIRRORS_ENV = "NORMLAB_DATA_MIRRORS"
MD5_ENV = "NORMLAB_DATA_MD5"
DOWNLOADABLE = ("cifar10", "mnist")  # the base downloads; cifar2 and mnist_tairtahar reuse them
BASE_OF = {"cifar10": "cifar10", "cifar2": "cifar10", "mnist": "mnist", "mnist_tairtahar": "mnist"}
_CHUNK = 1 << 20


@dataclass(frozen=True)
class _Source:
    label: str
    bases: tuple[str, ...]  # torchvision's, in its order
    md5s: dict  # archive file name -> md5 (torchvision 0.29's values)
    folder: str  # what the files extract to, relative to the data folder


SOURCES = {
    "cifar10": _Source("CIFAR-10", ("https://www.cs.toronto.edu/~kriz/",),
                       {"cifar-10-python.tar.gz": "c58f30108f718f92721af3b95e74349a"}, "cifar-10-batches-py"),
    "mnist": _Source("MNIST", ("https://ossci-datasets.s3.amazonaws.com/mnist/", "http://yann.lecun.com/exdb/mnist/"),
                     {"train-images-idx3-ubyte.gz": "f68b3c2dcbeaaa9fbdd348bbdeb94873",
                      "train-labels-idx1-ubyte.gz": "d53e105ee54ea40749a09fcbcd1e9432",
                      "t10k-images-idx3-ubyte.gz": "9fb629c4189551a2d022fa330f9573f3",
                      "t10k-labels-idx1-ubyte.gz": "ec29112dd5afa0611ce80d1b7f02629c"}, "MNIST/raw"),
}


class DownloadError(DataError):
    """No source gave the dataset. `tried` holds (url, why it failed) in the order tried."""

    def __init__(self, message: str, dataset: str, folder: Path, tried: list[tuple[str, str]]):
        super().__init__(message)
        self.dataset, self.folder, self.tried = dataset, folder, tried


# --------------------------------------------------------------------------- settings
def parse_mirrors(text: str) -> list[str]:
    """Base URLs from whitespace- or comma-separated text, each ending in '/'."""
    bases = []
    for item in re.split(r"[\s,]+", text.strip()):
        if not item:
            continue
        if not re.match(r"(https?|file)://", item):
            raise DataError(f"mirror {item!r} (from {MIRRORS_ENV} or mirrors=) is not a URL; "
                            "accepted: base URLs starting with http://, https:// or file://")
        bases.append(item if item.endswith("/") else item + "/")
    return bases


def mirrors_for(name: str, mirrors: list[str] | None = None) -> list[str]:
    """The base URLs tried for `name`: `mirrors`, else $NORMLAB_DATA_MIRRORS, else torchvision's."""
    src = SOURCES[_base(name)]
    if mirrors is not None:
        bases = parse_mirrors(mirrors if isinstance(mirrors, str) else ",".join(mirrors))
        if not bases:
            raise DataError("mirrors=[] gives no URL to try; pass None for the defaults")
        return bases
    env = os.environ.get(MIRRORS_ENV, "")
    return parse_mirrors(env) if env.strip() else list(src.bases)


def expected_md5s(name: str) -> dict[str, str]:
    """{archive file name: md5} for `name`, with the entries of $NORMLAB_DATA_MD5 applied."""
    md5s = dict(SOURCES[_base(name)].md5s)
    path = os.environ.get(MD5_ENV)
    if path:
        try:
            table = json.loads(Path(path).expanduser().read_text())
        except (OSError, ValueError) as e:
            raise DataError(f"{MD5_ENV}={path}: cannot be read as JSON ({type(e).__name__}: {e}); "
                            'accepted: a JSON file {"archive file name": "md5 hex", ...}') from None
        if not isinstance(table, dict) or not all(
                isinstance(v, str) and re.fullmatch(r"[0-9a-fA-F]{32}", v) for v in table.values()):
            raise DataError(f"{MD5_ENV}={path}: expected a JSON object of file name -> 32-hex-digit md5")
        md5s.update({k: v.lower() for k, v in table.items() if k in md5s})
    return md5s


def _base(name: str) -> str:
    if name not in BASE_OF:
        raise ValueError(f"unknown dataset {name!r}; accepted: {', '.join(DATASETS)}")
    return BASE_OF[name]


def _show_progress(progress: bool | None) -> bool:
    return (not os.environ.get("TQDM_DISABLE")) if progress is None else bool(progress)


def _present(name: str, root: Path) -> bool:
    """The same test load_dataset makes: every file there (MNIST: raw or its .gz)."""
    files = _cifar_files(root) if _base(name) == "cifar10" else _mnist_files(root)
    return all(p.exists() or p.with_name(p.name + ".gz").exists() for p in files)


# --------------------------------------------------------------------------- download
def download(name: str, data_dir=None, *, mirrors: list[str] | None = None, timeout: float = 30.0,
             progress: bool | None = None) -> Path:
    """Fetch dataset `name` (one of DATASETS) into the data folder, unless it is there; return the folder."""
    base = _base(name)
    if isinstance(timeout, bool) or not (isinstance(timeout, (int, float)) and timeout > 0):
        raise ValueError(f"timeout must be a number of seconds > 0, got {timeout!r}")
    root = resolve_data_dir(data_dir)
    if _present(base, root):
        return root
    src, bases, md5s = SOURCES[base], mirrors_for(base, mirrors), expected_md5s(base)
    show = _show_progress(progress)
    try:
        root.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise _failed(name, root, data_dir, [], f"the folder cannot be created ({e})") from None
    tried: list[tuple[str, str]] = []
    if base == "cifar10":
        fname = "cifar-10-python.tar.gz"
        copied = root / fname  # an archive the reader copied in is used if its md5 is right
        if copied.exists():
            md5 = _md5_file(copied)
            if md5 == md5s[fname]:
                _extract_tar(copied, root, src.folder)
                return root
            tried.append((str(copied), f"present but md5 {md5}, expected {md5s[fname]}; not used"))
        got = _fetch(fname, md5s, bases, root, timeout, show, tried)
        if got is None:
            raise _failed(name, root, data_dir, tried)
        archive = got[0]
        try:
            _extract_tar(archive, root, src.folder)
        finally:
            archive.unlink(missing_ok=True)
    else:
        raw = root / src.folder
        raw.mkdir(parents=True, exist_ok=True)
        for fname in md5s:
            gz = raw / fname
            if (raw / fname[:-3]).exists() or gz.exists():
                continue  # staged or fetched earlier: used as is
            got = _fetch(fname, md5s, bases, raw, timeout, show, tried)
            if got is None:
                raise _failed(name, root, data_dir, tried)
            got, used = got
            bases = [used] + [b for b in bases if b != used]  # the next files try the base that worked first
            got.replace(gz)
        for gz in sorted(raw.glob("*-ubyte.gz")):  # unpacked too, as torchvision's MNIST expects
            _gunzip(gz)
    return root


def _fetch(fname: str, md5s: dict, bases: list[str], folder: Path, timeout: float, show: bool,
           tried: list) -> tuple[Path, str] | None:
    """Download `fname` from the first base that gives it with the right md5: (temp path, base) or None."""
    for i, b in enumerate(bases):
        url = b + fname
        fd, tmp = tempfile.mkstemp(prefix=f".{fname}.", suffix=".part", dir=folder)
        tmp = Path(tmp)
        try:
            with os.fdopen(fd, "wb") as out:
                md5 = _copy_url(url, out, timeout, show, fname)
            if md5 != md5s[fname]:
                raise DataError(f"checksum mismatch for {fname}: md5 {md5}, expected {md5s[fname]} "
                                f"(a corrupt or different file; a re-packed mirror needs {MD5_ENV})")
            os.chmod(tmp, 0o666 & ~_umask())  # mkstemp makes 0600; give the reader's usual mode
            return tmp, b
        except BaseException as e:  # every failure is reported with its URL; Ctrl-C leaves no .part
            tmp.unlink(missing_ok=True)
            if not isinstance(e, Exception):
                raise
            why = _why(e, timeout)
            tried.append((url, why))
            if show and i + 1 < len(bases):
                print(f"normlab: {url} failed ({why}); trying the next mirror", file=sys.stderr)
    return None


def _copy_url(url: str, out, timeout: float, show: bool, desc: str) -> str:
    """Stream `url` into `out`; return its md5. `timeout` bounds the connect and every read."""
    req = urllib.request.Request(url, headers={"User-Agent": "normlab"})
    md5 = hashlib.md5()
    with urllib.request.urlopen(req, timeout=timeout) as r:
        total = int(r.headers.get("Content-Length") or 0) or None
        bar = None
        if show:
            from tqdm import tqdm  # plain tqdm on stderr: no widget output in notebooks

            bar = tqdm(total=total, desc=desc, unit="B", unit_scale=True, unit_divisor=1024, leave=False,
                       disable=False)  # explicit: TQDM_DISABLE only sets defaults
        try:
            while chunk := r.read(_CHUNK):
                out.write(chunk)
                md5.update(chunk)
                if bar is not None:
                    bar.update(len(chunk))
        finally:
            if bar is not None:
                bar.close()
        got = md5.hexdigest()
        if total is not None and out.tell() != total:
            raise DataError(f"connection closed after {out.tell():,} of {total:,} bytes")
    return got


def _umask() -> int:  # read by setting it back at once (no getter exists)
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def _md5_file(path: Path) -> str:
    md5 = hashlib.md5()
    with open(path, "rb") as f:
        while chunk := f.read(_CHUNK):
            md5.update(chunk)
    return md5.hexdigest()


def _why(e: BaseException, timeout: float) -> str:
    """One short reason per URL."""
    reason = e.reason if isinstance(e, urllib.error.URLError) and not isinstance(e, urllib.error.HTTPError) else e
    if isinstance(reason, (socket.timeout, TimeoutError)):
        return f"no answer within the timeout of {timeout:g} s (server unreachable or hanging)"
    if isinstance(e, urllib.error.HTTPError):
        return f"HTTP {e.code} {e.reason}"
    if isinstance(reason, ConnectionRefusedError):
        return "connection refused (no server at that address)"
    if isinstance(reason, socket.gaierror):
        return f"host name not resolved, offline? ({reason})"
    if isinstance(e, DataError):
        return str(e)
    return f"{type(reason).__name__}: {reason}"


def _failed(name: str, root: Path, data_dir, tried: list, extra: str | None = None) -> DownloadError:
    base = _base(name)
    src = SOURCES[base]
    what = src.label if name == base else f"{src.label} (for {name!r})"
    lines = [f"Could not download {what} into {root} (from {_where(data_dir)})" + (f": {extra}" if extra else ".")]
    if tried:
        lines.append("Tried, in order:")
        lines += [f"  {url} -> {why}" for url, why in tried]
    lines.append(f"Folder searched: {root / src.folder} (files present there are used without a download).")
    copy = ("cifar-10-batches-py/ (or cifar-10-python.tar.gz, then run this again)" if base == "cifar10"
            else "MNIST/raw/ with its four *-ubyte.gz files")
    lines.append(
        f"Fix: point {DATA_ENV} (or data_dir=) at a folder that holds {src.folder}/; or copy {copy} into {root}; "
        f"or, where a network is available, run `python -m normlab download {base}`; "
        f"or set {MIRRORS_ENV} to mirror base URLs ({MD5_ENV} for re-packed archives).")
    return DownloadError("\n".join(lines), name, root, list(tried))


# --------------------------------------------------------------------------- unpacking
def _extract_tar(archive: Path, root: Path, folder: str) -> None:
    """Unpack `folder`/ from a verified archive into a temp folder, then rename it into place."""
    tmp = Path(tempfile.mkdtemp(prefix=".extract-", dir=root))
    try:
        with tarfile.open(archive, "r:*") as tar:
            members = [m for m in tar.getmembers() if m.name == folder or m.name.startswith(folder + "/")]
            if not members:
                raise DataError(f"{archive.name}: holds no {folder}/ folder")
            if hasattr(tarfile, "data_filter"):  # refuses absolute paths, '..' and links out
                tar.extractall(tmp, members=members, filter="data")
            else:  # pragma: no cover -- Python without PEP 706 backports
                if any(m.name.startswith("/") or ".." in Path(m.name).parts for m in members):
                    raise DataError(f"{archive.name}: unsafe path in archive")
                tar.extractall(tmp, members=members)
        dest = root / folder
        if not dest.exists():
            (tmp / folder).replace(dest)
        else:  # a partial copy is there: add only what it lacks, file by file
            for f in (tmp / folder).iterdir():
                if not (dest / f.name).exists():
                    f.replace(dest / f.name)
    except (tarfile.TarError, OSError, EOFError) as e:
        raise DataError(f"{archive.name}: cannot be unpacked into {root} ({type(e).__name__}: {e})") from e
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def _gunzip(gz: Path) -> None:
    """Write the unpacked file beside `gz` (temp then rename), unless it is there."""
    out = gz.with_name(gz.name[:-3])
    if out.exists():
        return
    fd, tmp = tempfile.mkstemp(prefix=f".{out.name}.", suffix=".part", dir=gz.parent)
    try:
        with os.fdopen(fd, "wb") as dst, gzip.open(gz, "rb") as s:
            shutil.copyfileobj(s, dst, _CHUNK)
        os.chmod(tmp, 0o666 & ~_umask())
        os.replace(tmp, out)
    except (OSError, EOFError) as e:
        Path(tmp).unlink(missing_ok=True)
        raise DataError(f"{gz}: cannot be decompressed ({e})") from e
