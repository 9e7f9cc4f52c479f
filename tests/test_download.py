"""normlab.download against archives served from 127.0.0.1 (built from the staged data).

No test reaches the internet: every download names local mirrors, and a guard refuses any host
name other than 127.0.0.1 / localhost.
"""
import filecmp
import hashlib
import shutil
import socket
import time
from pathlib import Path

import pytest

from data_mirror import CIFAR_ARCHIVE, build_mirror, free_port_url, serve, write_md5_file
from normlab import data, download as dl
from normlab.data import DataError

MNIST_RAW_MD5 = {"train-images-idx3-ubyte": "6bbc9ace898e44ae57da46a324031adb",
                 "train-labels-idx1-ubyte": "a25bea736e30d166cdddb491f175f624",
                 "t10k-images-idx3-ubyte": "2646ac647ad5339dbf082846283269ea",
                 "t10k-labels-idx1-ubyte": "27ae3e4e09519cfbb04c329615203637"}


@pytest.fixture(autouse=True)
def _offline(monkeypatch):
    """Only 127.0.0.1 may be reached; the reader's own mirror/md5 settings do not leak in."""
    real = socket.getaddrinfo

    def local_only(host, *a, **k):
        if host not in ("127.0.0.1", "localhost"):
            raise AssertionError(f"test tried to reach {host!r}")
        return real(host, *a, **k)

    monkeypatch.setattr(socket, "getaddrinfo", local_only)
    for var in (dl.MIRRORS_ENV, dl.MD5_ENV, "NORMLAB_DATA"):
        monkeypatch.delenv(var, raising=False)


@pytest.fixture(scope="session")
def mirror(data_dir, tmp_path_factory):
    """(folder with every archive, {name: md5}, the md5 JSON for NORMLAB_DATA_MD5)."""
    folder = tmp_path_factory.mktemp("mirror")
    md5s = build_mirror(data_dir, folder)
    return folder, md5s, write_md5_file(md5s, folder.parent / "mirror-md5.json")


def _md5(path: Path) -> str:
    return hashlib.md5(path.read_bytes()).hexdigest()


def _leftovers(root: Path) -> list[str]:
    return [p.name for p in root.rglob(".*")]  # .part files and .extract- folders


# --------------------------------------------------------------------------- settings
def test_mirror_and_md5_settings(monkeypatch, tmp_path):
    assert dl.mirrors_for("cifar2") == ["https://www.cs.toronto.edu/~kriz/"]
    assert dl.mirrors_for("mnist_tairtahar") == ["https://ossci-datasets.s3.amazonaws.com/mnist/",
                                                 "http://yann.lecun.com/exdb/mnist/"]
    assert dl.expected_md5s("cifar10") == {CIFAR_ARCHIVE: "c58f30108f718f92721af3b95e74349a"}
    monkeypatch.setenv(dl.MIRRORS_ENV, " http://127.0.0.1:1/a, https://m.example/b/\n\tfile:///srv/m ,")
    assert dl.mirrors_for("mnist") == ["http://127.0.0.1:1/a/", "https://m.example/b/", "file:///srv/m/"]
    assert dl.mirrors_for("mnist", ["http://x/"]) == ["http://x/"]  # the argument wins over the variable
    monkeypatch.setenv(dl.MIRRORS_ENV, "   ")
    assert dl.mirrors_for("cifar10") == ["https://www.cs.toronto.edu/~kriz/"]  # blank = unset
    monkeypatch.setenv(dl.MIRRORS_ENV, "ftp://old.example/")
    with pytest.raises(DataError, match=r"'ftp://old.example/'.*accepted: base URLs starting with http://"):
        dl.mirrors_for("cifar10")
    with pytest.raises(ValueError, match="unknown dataset 'svhn'; accepted: cifar10, cifar2, mnist, mnist_tairtahar"):
        dl.download("svhn", tmp_path)
    with pytest.raises(ValueError, match="timeout must be"):
        dl.download("mnist", tmp_path, timeout=0)

    table = write_md5_file({CIFAR_ARCHIVE: "0" * 32, "unrelated.gz": "1" * 32}, tmp_path / "md5.json")
    monkeypatch.setenv(dl.MD5_ENV, str(table))
    assert dl.expected_md5s("cifar2") == {CIFAR_ARCHIVE: "0" * 32}
    assert dl.expected_md5s("mnist")["t10k-labels-idx1-ubyte.gz"] == "ec29112dd5afa0611ce80d1b7f02629c"
    (tmp_path / "bad.json").write_text("{not json")
    monkeypatch.setenv(dl.MD5_ENV, str(tmp_path / "bad.json"))
    with pytest.raises(DataError, match="NORMLAB_DATA_MD5=.*bad.json: cannot be read as JSON"):
        dl.expected_md5s("mnist")
    assert dl.DOWNLOADABLE == ("cifar10", "mnist")


def test_empty_home_resolves_to_user_cache(monkeypatch, tmp_path):
    home = tmp_path / "home"
    home.mkdir()
    monkeypatch.setenv("HOME", str(home))
    monkeypatch.delenv("XDG_CACHE_HOME", raising=False)
    assert data.resolve_data_dir() == home / ".cache" / "normlab" / "data"


def test_staged_data_needs_no_download_and_no_checksum(data_dir, monkeypatch, tmp_path):
    def no_network(*a, **k):
        raise AssertionError("downloaded although the files are there")

    monkeypatch.setattr(dl.urllib.request, "urlopen", no_network)
    monkeypatch.setenv(dl.MD5_ENV, str(tmp_path / "never-read.json"))  # not even the checksum table is read
    for name in data.DATASETS:  # staged CIFAR-10 pickles are not byte-identical: no md5 may be checked
        assert dl.download(name, data_dir, mirrors=[free_port_url()]) == data_dir
    assert not _leftovers(data_dir)


# --------------------------------------------------------------------------- downloads
def test_mnist_download_falls_back_to_second_mirror(mirror, monkeypatch, tmp_path, capsys):
    folder, _, _ = mirror
    home = tmp_path / "home"  # an empty home folder and no NORMLAB_DATA: the default cache
    home.mkdir()
    monkeypatch.setenv("HOME", str(home))
    monkeypatch.delenv("XDG_CACHE_HOME", raising=False)
    dead = free_port_url()
    with serve(folder) as url:
        root = dl.download("mnist_tairtahar", mirrors=[dead, url], timeout=5, progress=True)
    assert root == home / ".cache" / "normlab" / "data"
    raw = root / "MNIST" / "raw"
    for name, md5 in MNIST_RAW_MD5.items():  # unpacked beside the .gz, as torchvision has them
        assert _md5(raw / name) == md5 and (raw / f"{name}.gz").exists()
    assert not _leftovers(root)
    err = capsys.readouterr().err
    assert f"{dead}train-images-idx3-ubyte.gz failed (connection refused" in err and "trying the next mirror" in err
    s = data.load_dataset("mnist")  # found in the default folder without download=True
    assert len(s.train) == 60_000 and s.test.labels[0].item() == 7


def test_cifar10_download_through_environment(mirror, monkeypatch, tmp_path, data_dir):
    """What a reader's machine does: NORMLAB_DATA, a mirror list and a re-packed archive's md5."""
    folder, md5s, md5_file = mirror
    root = tmp_path / "data"
    monkeypatch.setenv("NORMLAB_DATA", str(root))
    monkeypatch.setenv(dl.MD5_ENV, str(md5_file))
    monkeypatch.setenv("TQDM_DISABLE", "1")
    with serve(folder) as url:
        monkeypatch.setenv(dl.MIRRORS_ENV, f"{free_port_url()} {url}")
        t = time.perf_counter()
        s = data.load_dataset("cifar2", download=True)
        print(f"cifar10 download + extract + load {time.perf_counter() - t:.1f} s")
    assert (len(s.train), len(s.test)) == (10_000, 2_000)
    got, want = root / "cifar-10-batches-py", data_dir / "cifar-10-batches-py"
    names = sorted(p.name for p in want.iterdir())
    assert sorted(p.name for p in got.iterdir()) == names
    assert filecmp.cmpfiles(got, want, names, shallow=False)[0] == names
    assert sorted(p.name for p in root.iterdir()) == ["cifar-10-batches-py"]  # archive removed, no temp files

    # an archive copied into an empty folder by hand is used without any server
    other = tmp_path / "copied"
    other.mkdir()
    shutil.copyfile(folder / CIFAR_ARCHIVE, other / CIFAR_ARCHIVE)
    assert dl.download("cifar10", other, mirrors=[free_port_url()]) == other
    assert (other / "cifar-10-batches-py" / "test_batch").stat().st_size == (want / "test_batch").stat().st_size
    assert not _leftovers(other)


# --------------------------------------------------------------------------- failures
def test_corrupt_archive_is_named_and_nothing_is_left(mirror, monkeypatch, tmp_path):
    folder, _, md5_file = mirror
    bad = tmp_path / "bad-mirror"
    bad.mkdir()
    (bad / CIFAR_ARCHIVE).write_bytes((folder / CIFAR_ARCHIVE).read_bytes()[:1_000_000])  # cut short
    (bad / "train-images-idx3-ubyte.gz").write_bytes(b"\x1f\x8b not really gzip")
    monkeypatch.setenv(dl.MD5_ENV, str(md5_file))
    root = tmp_path / "data"
    with serve(bad) as url:
        with pytest.raises(dl.DownloadError) as e:
            dl.download("cifar10", root, mirrors=[url], progress=False)
        msg = str(e.value)
        assert f"{url}{CIFAR_ARCHIVE} -> checksum mismatch for {CIFAR_ARCHIVE}" in msg
        assert not (root / "cifar-10-batches-py").exists() and not _leftovers(root)
        with pytest.raises(dl.DownloadError, match="checksum mismatch for train-images-idx3-ubyte.gz: md5 "):
            dl.download("mnist", root, mirrors=[url], progress=False)
    assert not list((root / "MNIST" / "raw").iterdir())


def test_hanging_server_times_out(tmp_path):
    with serve(tmp_path, hang=True) as url:
        t = time.perf_counter()
        with pytest.raises(dl.DownloadError) as e:
            dl.download("cifar10", tmp_path / "data", mirrors=[url], timeout=1, progress=False)
        took = time.perf_counter() - t
    assert took < 5, f"took {took:.1f} s with timeout=1"
    msg = str(e.value)
    assert "CIFAR-10" in msg and f"{url}{CIFAR_ARCHIVE} -> no answer within the timeout of 1 s" in msg
    assert "NORMLAB_DATA" in msg and "data_dir=" in msg


def test_no_server_gives_one_error_with_every_url_folder_and_fix(monkeypatch, tmp_path):
    home = tmp_path / "home"
    home.mkdir()
    monkeypatch.setenv("HOME", str(home))
    monkeypatch.delenv("XDG_CACHE_HOME", raising=False)
    urls = [free_port_url(), free_port_url()]
    monkeypatch.setenv(dl.MIRRORS_ENV, ",".join(urls))
    with pytest.raises(DataError) as e:  # the same error reaches load_dataset's callers
        data.load_dataset("cifar2", download=True)
    err = e.value
    assert isinstance(err, dl.DownloadError) and err.__cause__ is None
    msg = str(err)
    print(msg)
    folder = home / ".cache" / "normlab" / "data"
    assert msg.startswith(f"Could not download CIFAR-10 into {folder} (from the default cache folder)")
    assert [u for u, _ in err.tried] == [u + CIFAR_ARCHIVE for u in urls]
    for u in urls:
        assert f"{u}{CIFAR_ARCHIVE} -> connection refused" in msg
    assert f"Folder searched: {folder / 'cifar-10-batches-py'}" in msg
    for fix in ("NORMLAB_DATA", "data_dir=", "copy cifar-10-batches-py/", "python -m normlab download cifar10",
                "NORMLAB_DATA_MIRRORS"):
        assert fix in msg
    with pytest.raises(dl.DownloadError) as e:  # the dataset asked for is named
        dl.download("mnist_tairtahar", tmp_path / "m", progress=False)
    assert "MNIST (for 'mnist_tairtahar')" in str(e.value) and "from the data_dir argument" in str(e.value)
    assert not _leftovers(tmp_path / "m")


def test_not_found_without_download_names_the_command(tmp_path):
    with pytest.raises(DataError) as e:
        data.load_dataset("mnist_tairtahar", tmp_path)
    msg = str(e.value)
    assert f"NORMLAB_DATA={tmp_path} python -m normlab download mnist" in msg
    assert "download=True" in msg and "data_dir=" in msg
