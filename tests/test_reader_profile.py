"""The reader profile: every chapter run at SMOKE size the way a reader runs it on Colab, not the way
this project's environment runs it (nbval does that, with the goldens).

- A fresh virtual environment with torch but without normlab (reader_env.py): each chapter's own
  install cell installs normlab, from the repository of _config.yml (a local clone of this working
  tree; the first chapter installs, the others find it installed).
- ipywidgets 7.7.1, what Colab ships, first on the kernel's path.
- NORMLAB_DATA unset and an empty home: the data download into ~/.cache/normlab/data from a local
  mirror (tests/data_mirror.py; NORMLAB_DATA_MIRRORS and NORMLAB_DATA_MD5 name it).
- NORMLAB_PRECISION=bf16: autocast on the CPU, the code path of a GPU runtime.
- Each chapter in a folder of its own, as each Colab notebook has a runtime of its own: chapters
  that compare with another chapter, and chapter 9, read the committed results the package carries.

Each chapter must write its results file and show no error or traceback.
"""
import json
import sys
import time
from pathlib import Path

import pytest

from data_mirror import build_mirror, serve, write_md5_file
from ipywidgets7 import ipywidgets7_dir
from reader_env import REPO, base_env, make_clone, make_venv, redirect_env, where, write_kernelspec

sys.path.insert(0, str(REPO / "tools"))
import notebooks  # noqa: E402

KERNEL = "normlab-reader"


@pytest.fixture(scope="module")
def reader(tmp_path_factory, data_dir):
    """(environment for papermill, the reader's python, root folder), with the data mirror served."""
    t0 = time.perf_counter()
    root = tmp_path_factory.mktemp("reader")
    clone = make_clone(root / "clone")
    python = make_venv(root / "venv")
    home = root / "home"
    home.mkdir()
    mirror = root / "mirror"
    md5_file = write_md5_file(build_mirror(data_dir, mirror), root / "mirror-md5.json")
    with serve(mirror) as url:
        env = {**base_env(home), **redirect_env(clone),
               "NORMLAB_DATA_MIRRORS": url, "NORMLAB_DATA_MD5": str(md5_file), "NORMLAB_PRECISION": "bf16",
               "JUPYTER_PATH": str(root / "jupyter"), "MPLBACKEND": "module://matplotlib_inline.backend_inline"}
        env.pop("TQDM_DISABLE", None)  # a reader sees progress bars
        env.setdefault("OMP_NUM_THREADS", "2")
        write_kernelspec(root / "jupyter", KERNEL, python, {"PYTHONPATH": str(ipywidgets7_dir())})
        print(f"reader environment ready in {time.perf_counter() - t0:.0f} s")
        yield env, python, root


def outputs_with_errors(nb: Path) -> list[str]:
    bad = []
    for i, cell in enumerate(json.loads(nb.read_text())["cells"]):
        for out in cell.get("outputs", []):
            if out.get("output_type") == "error" or "Traceback" in json.dumps(out):
                bad.append(f"cell {i}: {out.get('ename', '')} {out.get('evalue', '')}".strip())
    return bad


@pytest.mark.parametrize("nb", notebooks.chapters(), ids=lambda p: p.stem)
def test_chapter_runs_as_a_reader_runs_it(nb, reader):
    env, python, root = reader
    session = root / "sessions" / nb.stem  # the chapter's own working folder: results/ goes here
    session.mkdir(parents=True)
    out = session / nb.name
    secs = notebooks.execute(nb, out, notebooks.SMOKE_PARAMS, timeout=300, kernel=KERNEL, cwd=session, env=env)
    print(f"{nb.stem}: {secs:.0f} s")
    assert outputs_with_errors(out) == []
    first = next(c for c in json.loads(out.read_text())["cells"] if c["cell_type"] == "code")
    printed = "".join("".join(o.get("text", "")) for o in first["outputs"])
    assert "precision: bf16 autocast" in printed, printed
    if notebooks.writes_results(nb):
        written = json.loads((session / "results" / f"{nb.stem}.json").read_text())
        assert written["smoke"] is True and written["rows"]
    version, file = where(python, "normlab", env, session)
    assert Path(file).resolve().is_relative_to((root / "venv").resolve()), f"normlab imported from {file}"

