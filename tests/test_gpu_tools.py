"""The tools that take the book to a lent GPU machine (benchmarks/gpu_session.sh): the packed
CIFAR-2 that travels there, and the runner of a chapter's cells without Jupyter."""
import json
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from normlab import data

REPO = Path(__file__).resolve().parents[1]
BENCHMARKS = REPO / "benchmarks"


def test_the_packed_cifar2_unpacks_to_the_real_cifar2_inside_a_cifar10_of_stand_ins(data_dir, tmp_path):
    packed, out = tmp_path / "cifar2.pack", tmp_path / "data"
    for args in (["pack", str(data_dir), str(packed), "--preset", "0"], ["unpack", str(packed), str(out)]):
        subprocess.run([sys.executable, str(BENCHMARKS / "gpu_data.py"), *args], check=True, capture_output=True)
    real, made = data.load_dataset("cifar2", data_dir), data.load_dataset("cifar2", out)
    for a, b in ((real.train, made.train), (real.test, made.test)):
        assert torch.equal(a.images, b.images) and torch.equal(a.labels, b.labels)
    assert (real.mean, real.std) == (made.mean, made.std)
    real10, made10 = data.load_dataset("cifar10", data_dir), data.load_dataset("cifar10", out)
    assert torch.equal(real10.train.labels, made10.train.labels) and torch.equal(real10.test.labels, made10.test.labels)
    # the other classes are stand-ins, and the folder says so
    assert not torch.equal(real10.train.images, made10.train.images)
    assert "timings only" in (out / "cifar-10-batches-py" / "STAND_IN.txt").read_text()


def notebook(path: Path, cells: list[tuple[str, list[str]]]) -> Path:
    path.write_text(json.dumps({"cells": [{"cell_type": "code", "metadata": {"tags": tags}, "source": src,
                                           "outputs": [], "execution_count": None} for src, tags in cells],
                                "metadata": {}, "nbformat": 4, "nbformat_minor": 5}))
    return path


def run_chapter(*args) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, str(BENCHMARKS / "run_chapter.py"), *map(str, args)],
                          capture_output=True, text=True)


def test_run_chapter_sets_parameters_skips_live_widgets_and_stops_at_the_first_error(tmp_path):
    nb = notebook(tmp_path / "nb.ipynb", [
        ("SMOKE = False\nN = 1", ["parameters"]),
        ("assert SMOKE and N == 3, (SMOKE, N)\nfrom normlab.glue import glue\nglue('t_n', N)", []),
        ("# NBVAL_SKIP  (a live panel)\nraise SystemExit('skipped cells must not run')", []),
        ("raise ValueError('the third cell fails')", []),
        ("print('never reached')", []),
    ])
    proc = run_chapter(nb, "--set", "SMOKE=True", "N=3", "--json", tmp_path / "t.json")
    report = json.loads((tmp_path / "t.json").read_text())
    assert proc.returncode == 1 and "never reached" not in proc.stdout
    assert report["settings"]["SMOKE"] is True and report["glued"]["t_n"] == "3"
    assert [("seconds" in c, c.get("skipped", False)) for c in report["cells"]] == [
        (True, False), (True, False), (False, True), (True, False)]
    assert report["error"]["cell"] == 3 and "the third cell fails" in report["error"]["traceback"]


@pytest.mark.parametrize("setting, message", [("SMOKE", "expected NAME=VALUE"),
                                              ("DEVICE=cuda", "is not a Python literal")])
def test_run_chapter_refuses_a_setting_that_is_not_a_literal(tmp_path, setting, message):
    nb = notebook(tmp_path / "nb.ipynb", [("SMOKE = False", ["parameters"])])
    proc = run_chapter(nb, "--set", setting)
    assert proc.returncode != 0 and message in proc.stderr
