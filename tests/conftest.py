"""Shared fixtures. Tests read data from $NORMLAB_DATA or ../shared/data and never download."""
import os
from pathlib import Path

import pytest
import torch

import nbval_approx

REPO = Path(__file__).resolve().parents[1]
SHARED_DATA = REPO.parent / "shared" / "data"


@pytest.fixture(scope="session")
def data_dir() -> Path:
    path = Path(os.environ.get("NORMLAB_DATA") or SHARED_DATA)
    if not (path / "cifar-10-batches-py").exists() or not (path / "MNIST" / "raw").exists():
        pytest.fail(f"test data not found in {path}: set NORMLAB_DATA to a folder holding "
                    "cifar-10-batches-py/ and MNIST/raw/ (CI uses ../shared/data)")
    return path


@pytest.fixture(autouse=True)
def _threads():
    # Fixed thread count: results are bitwise repeatable only at a fixed count.
    torch.set_num_threads(2)
    yield


@pytest.fixture(scope="session")
def html(tmp_path_factory) -> Path:
    """The book built once per test session (offline, warnings as errors); its HTML folder."""
    import subprocess
    import sys

    out = tmp_path_factory.mktemp("book")
    jb = Path(sys.executable).with_name("jupyter-book")
    proc = subprocess.run([str(jb), "build", str(REPO), "--path-output", str(out), "--warningiserror", "--keep-going"],
                          capture_output=True, text=True)
    assert proc.returncode == 0, proc.stdout[-4000:] + proc.stderr[-2000:]
    return out / "_build" / "html"


def pytest_collection_modifyitems(items):
    """Golden cells marked NBVAL_APPROX (training numbers) are compared within a tolerance
    (tests/nbval_approx.py, tests/README.md); every other checked cell stays exact."""
    for item in items:
        cell = getattr(item, "cell", None)
        if type(item).__name__ == "IPyNbCell" and cell is not None and nbval_approx.is_approx(cell.source):
            item.compare_outputs = nbval_approx.approx_compare(item.compare_outputs)
