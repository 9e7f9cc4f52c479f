import os, sys
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
from notebooks import COLAB_METADATA, install_cell  # noqa: E402  (tools/notebooks.py)

__all__ = ["COLAB", "COLAB_METADATA"]
# The install cell, derived from _config.yml and the package version (the same in every chapter).
COLAB = install_cell()
