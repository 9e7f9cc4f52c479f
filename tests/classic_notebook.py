"""The classic Jupyter Notebook (6.5.7) with ipywidgets 7's front end (widgetsnbextension 3.6), the
closest to Colab's that installs here: Colab ships ipywidgets 7.7.1. Installed once into a virtual
environment of its own, never into the project's: the classic notebook needs jupyter_client 7,
the project's JupyterLab needs 8. Its kernel is the project's Python with ipywidgets 7.7.1 first on
its path (tests/ipywidgets7.py), as in test_widgets_kernel.py.
"""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from ipywidgets7 import ipywidgets7_dir
from reader_env import write_kernelspec

NOTEBOOK_VERSION = "6.5.7"
# widgetsnbextension 3.6 is ipywidgets 7.7.1's front end for the classic notebook.
PACKAGES = [f"notebook=={NOTEBOOK_VERSION}", "widgetsnbextension==3.6.10", "jupyter_client==7.4.9"]
KERNEL = "normlab-ipywidgets7"


def classic_notebook_env() -> Path:
    """The environment's `jupyter-notebook` (created and installed from the package index on first use)."""
    env = Path(sys.prefix) / f"classic-notebook-{NOTEBOOK_VERSION}"
    done = env / "normlab-installed.json"
    if not done.exists() or json.loads(done.read_text()) != PACKAGES:
        steps = [[sys.executable, "-m", "venv", "--clear", str(env)],
                 [str(env / "bin" / "python"), "-m", "pip", "install", "-q", "--disable-pip-version-check", *PACKAGES]]
        for step in steps:
            proc = subprocess.run(step, capture_output=True, text=True)
            if proc.returncode != 0:
                raise RuntimeError(f"could not set up the classic notebook in {env} ({' '.join(step[-3:])}):\n"
                                   f"{proc.stderr[-2000:]}")
        done.write_text(json.dumps(PACKAGES))
    return env / "bin" / "jupyter-notebook"


def write_ipywidgets7_kernel(jupyter_path: Path) -> str:
    """A kernel (found through JUPYTER_PATH) running this environment's Python with ipywidgets 7.7.1
    first on its path; its name."""
    write_kernelspec(jupyter_path, KERNEL, Path(sys.executable), {"PYTHONPATH": str(ipywidgets7_dir())})
    return KERNEL
