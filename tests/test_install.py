"""The install cell and the launch buttons come from _config.yml; the install cell works end to end in
a fresh environment (against a local clone of this working tree, see reader_env.py); the installed
package carries the book's committed results, which chapters read when they were not run here."""
import json
import re
import sys
import time
import tomllib
from pathlib import Path

import pytest
import yaml

import normlab
from normlab import book, repository
from reader_env import base_env, make_clone, make_venv, redirect_env, run_python, where

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "tools"))
import notebooks  # noqa: E402

CONFIG = yaml.safe_load((REPO / "_config.yml").read_text())["repository"]
CHAPTERS = notebooks.chapters()


def code_cells(nb: Path) -> list[dict]:
    return [c for c in json.loads(nb.read_text())["cells"] if c["cell_type"] == "code"]


def test_the_release_tag_follows_the_version():
    assert repository.repository() == CONFIG, "normlab.repository reads _config.yml differently from YAML"
    assert tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["version"] == normlab.__version__
    assert CONFIG["branch"] == f"v{normlab.__version__}", \
        "_config.yml's repository.branch (the launch buttons') must be the release tag the install cells pin"


@pytest.mark.parametrize("nb", CHAPTERS, ids=lambda p: p.stem)
def test_install_cell_and_colab_metadata(nb):
    first = code_cells(nb)[0]
    src = "".join(first["source"])
    assert src == notebooks.install_cell(nb.stem if notebooks.trains(nb) else None), \
        f"{nb.name}: the install cell differs from the one derived from _config.yml: python tools/notebooks.py colab"
    assert f"normlab @ git+{CONFIG['url']}@{CONFIG['branch']}" in src
    assert "torch" not in src.replace("the torch already installed", ""), "never reinstall torch"
    printed = "".join("".join(o.get("text", "")) for o in first["outputs"])
    assert re.search(r"^device: .+\nprecision: .+$", printed, re.M), f"{nb.name}: the install cell's output"
    if list((REPO / "book" / "results" / "runs" / nb.stem).glob("*.json")):
        assert "Full budget: about" in printed, \
            f"{nb.name}: its run records are committed, but the install cell printed no estimate from them " \
            f"(python tools/notebooks.py estimate {nb.stem[:2]})"
    meta = json.loads(nb.read_text())["metadata"]
    assert meta.get("accelerator") == "GPU" and meta.get("colab", {}).get("gpuType") == "T4", \
        f"{nb.name}: the notebook must ask Colab for a GPU runtime"


def test_launch_links_follow_config_yml(html):
    org, name = CONFIG["url"].rstrip("/").split("/")[-2:]
    for nb in CHAPTERS:
        text = (html / "book" / f"{nb.stem}.html").read_text()
        path = f"book/{nb.name}"
        colab = f"https://colab.research.google.com/github/{org}/{name}/blob/{CONFIG['branch']}/{path}"
        binder = f"https://mybinder.org/v2/gh/{org}/{name}/{CONFIG['branch']}?urlpath=tree/{path}"
        assert f'href="{colab}"' in text, f"{nb.stem}: no Colab button to {colab}"
        assert f'href="{binder}"' in text, f"{nb.stem}: no Binder button to {binder}"


# --------------------------------------------------------------------------- the committed results
def test_results_come_from_the_folder_else_from_the_committed_copy(tmp_path, capsys):
    committed = sorted(p.stem for p in (REPO / "book" / "results").glob("*.json"))
    assert len(committed) >= 8
    everything = book.load_results(tmp_path / "nowhere")
    assert [r.chapter for r in everything] == committed and not any(r.smoke for r in everything)
    assert "from the book's committed results" in capsys.readouterr().out

    mine = book.Results("01_fully_connected", "fastai-007", smoke=True)
    mine.add("simplenet", 0.5, 1.0)
    mine.save(tmp_path)
    got = book.load_results(tmp_path, ["01_fully_connected", "03_batchnorm_from_scratch"])
    assert [(r.chapter, r.smoke) for r in got] == [("01_fully_connected", True), ("03_batchnorm_from_scratch", False)]
    assert "03_batchnorm_from_scratch" in capsys.readouterr().out

    assert book.load_results(REPO / "book" / "results", ["02_convnets"])[0].chapter == "02_convnets"
    assert capsys.readouterr().out == "", "nothing to say when the folder has every file asked for"

    assert book.load_results(tmp_path, ["99_missing"]) == []
    said = capsys.readouterr().out
    assert "no results of 99_missing" in said and repository.web_url("book/results/99_missing.json") in said

    assert book.results_file("grids/07_zoo_grid.json", tmp_path) == REPO / "book" / "results" / "grids" / "07_zoo_grid.json"
    assert book.results_file("grids/none.json", tmp_path) is None
    assert repository.web_url("book/results/grids/none.json") in capsys.readouterr().out


# --------------------------------------------------------------------------- end to end
def test_install_cell_installs_normlab_in_a_fresh_environment(tmp_path):
    """The install cell, run as it is in a new virtual environment that has torch but not normlab,
    installs normlab from the repository of _config.yml (git is pointed at a local clone), leaves
    torch alone, and the installed package carries _config.yml and the committed results."""
    t0 = time.perf_counter()
    clone = make_clone(tmp_path / "clone")
    python = make_venv(tmp_path / "venv")
    home = tmp_path / "home"
    home.mkdir()
    env = {**base_env(home), **redirect_env(clone)}
    assert run_python(python, "import normlab", env, home).returncode != 0, "the new environment must lack normlab"
    torch_before = where(python, "torch", env, home)

    cell = "".join(code_cells(CHAPTERS[0])[0]["source"])
    proc = run_python(python, cell, env, home)
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-3000:]
    assert re.search(r"^device: .+\nprecision: .+\n", proc.stdout, re.M), proc.stdout

    assert where(python, "torch", env, home) == torch_before, "the install cell changed torch"
    version, file = where(python, "normlab", env, home)
    venv = (tmp_path / "venv").resolve()
    assert version == normlab.__version__ and Path(file).resolve().is_relative_to(venv), file
    dist = Path(file).parents[1] / f"normlab-{version}.dist-info"
    origin = json.loads((dist / "direct_url.json").read_text())
    assert origin["url"] == repository.repository_url()
    assert origin["vcs_info"]["requested_revision"] == repository.release_tag()
    assert not list(Path(file).parents[1].glob("torch*")), "pip installed a torch of its own"

    check = ("import json; from normlab import book, repository\n"
             "chapters = [r.chapter for r in book.load_results('no-results-here')]\n"
             "print(json.dumps([str(repository.book_root()), chapters, repository.requirement(),\n"
             "                  str(book.results_file('grids/07_zoo_grid.json', 'no-results-here'))]))")
    proc = run_python(python, check, env, home)
    assert proc.returncode == 0, proc.stderr[-2000:]
    root, chapters, requirement, grid = json.loads(proc.stdout.strip().splitlines()[-1])
    assert Path(root).resolve().is_relative_to(venv) and Path(grid).resolve().is_relative_to(venv), (root, grid)
    assert chapters == sorted(p.stem for p in (REPO / "book" / "results").glob("*.json"))
    assert requirement == f"normlab @ git+{CONFIG['url']}@{CONFIG['branch']}"
    print(f"install test: {time.perf_counter() - t0:.0f} s")
