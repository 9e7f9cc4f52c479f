"""A local dataset mirror for tests: archives built from the staged data, served on 127.0.0.1.

    md5s = build_mirror(SHARED_DATA, tmp / "mirror")       # {file name: md5}
    write_md5_file(md5s, tmp / "md5.json")                # for NORMLAB_DATA_MD5
    with serve(tmp / "mirror") as url:                    # for NORMLAB_DATA_MIRRORS or mirrors=[url]
        normlab.download.download("cifar10", tmp / "data", mirrors=[url])

Nothing here reaches the internet. The staged CIFAR-10 pickles are not byte-identical to the
official ones, so the rebuilt archive has its own md5 (returned, and to be supplied through
NORMLAB_DATA_MD5); the MNIST .gz files are the official bytes.
"""
from __future__ import annotations

import atexit
import contextlib
import functools
import gzip
import hashlib
import http.server
import json
import shutil
import socket
import tarfile
import tempfile
import threading
from pathlib import Path

CIFAR_ARCHIVE = "cifar-10-python.tar.gz"
MNIST_FILES = ("train-images-idx3-ubyte.gz", "train-labels-idx1-ubyte.gz",
               "t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz")
_built: dict[tuple[str, str], tuple[Path, str]] = {}  # (shared, file name) -> (a built copy, md5)


def _md5(path: Path) -> str:
    h = hashlib.md5()
    with open(path, "rb") as f:
        while chunk := f.read(1 << 20):
            h.update(chunk)
    return h.hexdigest()


def _build_cifar(shared: Path, out: Path) -> None:
    """cifar-10-python.tar.gz holding cifar-10-batches-py/, as the official one does.

    Fixed mtimes, owners and modes (dir 755, files 644: the staged files are read-only) keep the
    bytes the same on every build; gzip level 1 because 180 MB of pixels barely compress anyway.
    """
    src = shared / "cifar-10-batches-py"

    def norm(info: tarfile.TarInfo) -> tarfile.TarInfo:
        info.mtime, info.uid, info.gid, info.uname, info.gname = 0, 0, 0, "", ""
        info.mode = 0o755 if info.isdir() else 0o644
        return info

    tmp = out.with_name(out.name + ".part")
    with open(tmp, "wb") as raw, gzip.GzipFile(fileobj=raw, mode="wb", compresslevel=1, mtime=0) as gz, \
            tarfile.open(fileobj=gz, mode="w", format=tarfile.GNU_FORMAT) as tar:
        tar.add(src, arcname="cifar-10-batches-py", recursive=False, filter=norm)
        for f in sorted(src.iterdir()):
            tar.add(f, arcname=f"cifar-10-batches-py/{f.name}", filter=norm)
    tmp.replace(out)


def build_mirror(shared: Path, folder: Path, datasets=("cifar10", "mnist")) -> dict[str, str]:
    """Put the archives of `datasets` into `folder` (flat, as the mirrors are); return {file name: md5}.

    The CIFAR archive is built once per process in a private folder and copied into each
    `folder`, so a test may damage its own copy freely.
    """
    shared, folder = Path(shared), Path(folder)
    unknown = set(datasets) - {"cifar10", "mnist"}
    if unknown:
        raise ValueError(f"unknown dataset(s) {sorted(unknown)}; accepted: cifar10, mnist")
    folder.mkdir(parents=True, exist_ok=True)
    wanted = ([CIFAR_ARCHIVE] if "cifar10" in datasets else []) + (list(MNIST_FILES) if "mnist" in datasets else [])
    md5s = {}
    for name in wanted:
        key = (str(shared.resolve()), name)
        if key not in _built or not _built[key][0].exists():
            if name == CIFAR_ARCHIVE:
                src = _cache_dir() / f"{len(_built)}-{name}"
                _build_cifar(shared, src)
            else:
                src = shared / "MNIST" / "raw" / name
            _built[key] = (src, _md5(src))
        src, md5s[name] = _built[key]
        shutil.copyfile(src, folder / name)
    return md5s


@functools.lru_cache(maxsize=1)
def _cache_dir() -> Path:
    path = Path(tempfile.mkdtemp(prefix="normlab-mirror-"))
    atexit.register(shutil.rmtree, path, True)
    return path


def write_md5_file(md5s: dict[str, str], path: Path) -> Path:
    """Write {file name: md5} as the JSON that NORMLAB_DATA_MD5 points at; return the path."""
    path = Path(path)
    path.write_text(json.dumps(md5s, indent=1, sort_keys=True))
    return path


class _Quiet(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *args):  # keep pytest's output clean
        pass


class _Hang(http.server.BaseHTTPRequestHandler):
    """Accepts the connection and never answers (until the server stops)."""

    def handle(self):
        self.server.stopping.wait(60)


@contextlib.contextmanager
def serve(folder: Path, *, hang: bool = False):
    """Serve `folder` over HTTP on 127.0.0.1 (a free port) in a thread; yield the base URL ('.../')."""
    handler = _Hang if hang else (lambda *a, **k: _Quiet(*a, directory=str(folder), **k))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    server.daemon_threads = True
    server.block_on_close = False
    server.stopping = threading.Event()
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/"
    finally:
        server.stopping.set()
        server.shutdown()
        server.server_close()
        thread.join(5)


def free_port_url() -> str:
    """A base URL on 127.0.0.1 where nothing listens (connections are refused)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    return f"http://127.0.0.1:{port}/"
