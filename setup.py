"""Builds normlab as pyproject.toml describes, plus one step: the built package carries copies of the
book's `_config.yml` (where the repository is set) and `book/results/` (the chapters' committed
results) in normlab/_book/. A reader who installs normlab on Colab opens one chapter alone, with no
results folder: chapter 9 and the chapters that compare with another one read these copies
(normlab.repository, normlab.book.load_results). An editable install reads the checkout instead."""
import shutil
from pathlib import Path

from setuptools import setup
from setuptools.command.build_py import build_py

HERE = Path(__file__).resolve().parent
SHIPPED = ("_config.yml", "book/results")


class BuildPyWithBook(build_py):
    def run(self):
        super().run()
        if self.editable_mode:
            return
        target = Path(self.build_lib) / "normlab" / "_book"
        for rel in SHIPPED:
            src, dst = HERE / rel, target / rel
            if src.is_dir():
                shutil.copytree(src, dst, dirs_exist_ok=True, ignore=shutil.ignore_patterns(".*"))
            elif src.is_file():
                dst.parent.mkdir(parents=True, exist_ok=True)
                shutil.copyfile(src, dst)
            # missing (a source tree without the book): normlab.book says what is missing when asked


setup(cmdclass={"build_py": BuildPyWithBook})
