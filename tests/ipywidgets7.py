"""ipywidgets 7.7.1, what Colab ships, installed once into a folder of its own (never into the
project's environment) so a kernel can be started with it first on its path."""
from __future__ import annotations

import subprocess
import sys
from pathlib import Path

VERSION = "7.7.1"
# ipywidgets 7 also needs ipython_genutils; its front-end packages are pinned to the 7.x line.
PACKAGES = [f"ipywidgets=={VERSION}", "widgetsnbextension==3.6.*", "jupyterlab_widgets==1.*", "ipython_genutils"]


def ipywidgets7_dir() -> Path:
    """The folder holding ipywidgets 7.7.1 (installed from the package index on first use)."""
    folder = Path(sys.prefix) / f"ipywidgets-{VERSION}"
    if not (folder / f"ipywidgets-{VERSION}.dist-info").exists():
        proc = subprocess.run([sys.executable, "-m", "pip", "install", "-q", "--no-deps", "--target", str(folder),
                               *PACKAGES], capture_output=True, text=True)
        if proc.returncode != 0:
            raise RuntimeError(f"could not install ipywidgets {VERSION} into {folder}:\n{proc.stderr[-2000:]}")
    return folder
