"""A reader's fresh environment, built locally: a clone of this working tree served as the book's
repository, a new virtual environment that already has torch but not normlab, and a Jupyter kernel
for it. Used by test_install.py and test_reader_profile.py.

- `make_clone(dest)`: the files of the working tree (tracked and untracked, not ignored: uncommitted
  work is what gets tested) committed into a new repository and tagged with the release tag the
  install cells pin. `redirect_env(clone)` makes git fetch it whenever it is asked for the
  repository URL of _config.yml (git's url.<base>.insteadOf, given through the environment), so the
  install cell runs unchanged.
- `make_venv(dest)`: `python -m venv`, plus a .pth file naming a folder of links to every entry of
  this environment's site-packages but normlab's own. Its python imports torch and the rest from
  there (pip sees them installed and leaves them alone) and has no normlab, as on Colab.
"""
from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import sysconfig
from pathlib import Path

from normlab import repository

REPO = Path(__file__).resolve().parents[1]
SITE = Path(sysconfig.get_paths()["purelib"])


def _git(*args, cwd: Path) -> str:
    return subprocess.run(["git", "-c", "user.name=normlab tests", "-c", "user.email=tests@normlab.invalid",
                           "-c", "init.defaultBranch=main", *args], cwd=cwd, check=True, capture_output=True,
                          text=True).stdout


def make_clone(dest: Path) -> Path:
    """This working tree as a git repository at dest, committed and tagged with the release tag."""
    files = _git("ls-files", "-z", "--cached", "--others", "--exclude-standard", cwd=REPO).split("\0")
    dest.mkdir(parents=True)
    for rel in filter(None, files):
        src = REPO / rel
        if src.is_file():  # tracked files deleted in the working tree are left out
            (dest / rel).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(src, dest / rel)
    _git("init", "-q", cwd=dest)
    _git("add", "-A", cwd=dest)
    _git("commit", "-q", "-m", "working tree under test", cwd=dest)
    _git("tag", repository.release_tag(), cwd=dest)
    return dest


def redirect_env(clone: Path) -> dict[str, str]:
    """Environment variables under which git fetches `clone` when asked for the configured repository."""
    return {"GIT_CONFIG_COUNT": "1", "GIT_CONFIG_KEY_0": f"url.{clone.as_uri()}.insteadOf",
            "GIT_CONFIG_VALUE_0": repository.repository_url()}


def own_entry(name: str) -> bool:
    """normlab's own files in this environment's site-packages (its editable finder and metadata)."""
    return name.startswith(("__editable__.normlab", "__editable___normlab", "normlab-", "normlab"))


def make_venv(dest: Path) -> Path:
    """A new virtual environment seeing this environment's packages but not normlab; its python."""
    subprocess.run([sys.executable, "-m", "venv", str(dest)], check=True, capture_output=True)
    python = dest / "bin" / "python"
    site = Path(subprocess.run([str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                               check=True, capture_output=True, text=True).stdout.strip())
    links = dest / "borrowed-site-packages"
    links.mkdir()
    for entry in SITE.iterdir():
        if not own_entry(entry.name):
            (links / entry.name).symlink_to(entry)
    # Lines of a .pth file join sys.path after the venv's own site-packages; .pth files inside
    # the linked folder are not read, so this environment's editable normlab stays invisible.
    (site / "borrowed.pth").write_text(f"{links}\n")
    return python


def write_kernelspec(jupyter_path: Path, name: str, python: Path, env: dict[str, str]) -> None:
    """A kernel running `python`, with `env` added to its environment, findable through JUPYTER_PATH."""
    folder = jupyter_path / "kernels" / name
    folder.mkdir(parents=True, exist_ok=True)
    spec = {"argv": [str(python), "-m", "ipykernel_launcher", "-f", "{connection_file}"],
            "display_name": f"normlab ({name})", "language": "python", "env": env}
    (folder / "kernel.json").write_text(json.dumps(spec, indent=1))


def run_python(python: Path, code: str, env: dict, cwd: Path) -> subprocess.CompletedProcess:
    return subprocess.run([str(python), "-c", code], env=env, cwd=cwd, capture_output=True, text=True)


def where(python: Path, module: str, env: dict, cwd: Path) -> tuple[str, str]:
    """(version, file) of `module` as `python` imports it."""
    code = (f"import importlib, importlib.metadata as md; m = importlib.import_module({module!r}); "
            f"print(md.version({module!r})); print(m.__file__)")
    proc = run_python(python, code, env, cwd)
    assert proc.returncode == 0, proc.stderr[-2000:]
    version, file = proc.stdout.split("\n")[:2]
    return version, file


def base_env(home: Path) -> dict[str, str]:
    """A reader's environment: an empty home, no NORMLAB_DATA and none of this project's paths."""
    env = {k: v for k, v in os.environ.items()
           if k not in ("NORMLAB_DATA", "PYTHONPATH", "VIRTUAL_ENV", "XDG_CACHE_HOME", "XDG_CONFIG_HOME",
                        "XDG_DATA_HOME", "JUPYTER_PATH", "JUPYTER_CONFIG_DIR", "JUPYTER_DATA_DIR")}
    env["HOME"] = str(home)
    env["PATH"] = os.pathsep.join(p for p in env.get("PATH", "").split(os.pathsep) if not p.startswith(sys.prefix))
    return env

