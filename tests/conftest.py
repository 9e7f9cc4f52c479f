"""Shared fixtures. Tests read data from $NORMLAB_DATA or ../shared/data and never download."""
import os
from pathlib import Path

import pytest
import torch

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
