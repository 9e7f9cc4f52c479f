"""Where the book lives, read from its `_config.yml` (the one place the repository is set), and the
book's committed files that the library ships.

- `repository_url()`: `repository.url` of `_config.yml`; `release_tag()`: "v" + the package
  version, the tag that the chapters' install cells and launch buttons point at;
  `requirement()`: what the install cells pass to pip.
- `committed_file(path)`: a file of the book's repository that the library carries, such as
  "book/results/02_convnets.json" (the chapters' committed results), or None.

In a source checkout (the editable install) these are the checkout's own files; an installed
package carries copies of `_config.yml` and `book/results/` in `normlab/_book/` (setup.py puts them
there when the package is built).
"""
from __future__ import annotations

from pathlib import Path

from . import __version__

SHIPPED = Path(__file__).resolve().with_name("_book")
CHECKOUT = Path(__file__).resolve().parents[2]


def book_root() -> Path | None:
    """The folder holding `_config.yml` and `book/results/`: the package's copy, else the checkout."""
    for root in (SHIPPED, CHECKOUT):
        if (root / "_config.yml").is_file():
            return root
    return None


def read_config_section(text: str, section: str) -> dict[str, str]:
    """The `key: value` lines of one top-level section of a YAML file as simple as `_config.yml`
    (no YAML library: the installed package does not depend on one)."""
    values, inside = {}, False
    for line in text.splitlines():
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        if not line[0].isspace():
            inside = line.split("#")[0].strip() == f"{section}:"
        elif inside and ":" in line:
            key, value = line.split(":", 1)
            values[key.strip()] = value.split(" #")[0].strip().strip("\"'")
    return values


def repository() -> dict[str, str]:
    root = book_root()
    if root is None:
        raise FileNotFoundError("the book's _config.yml is neither in this installation of normlab nor beside it")
    return read_config_section((root / "_config.yml").read_text(), "repository")


def repository_url() -> str:
    return repository()["url"].rstrip("/")


def release_tag(version: str = __version__) -> str:
    return f"v{version}"


def requirement() -> str:
    """pip's requirement for this release: 'normlab @ git+<url>@v<version>'."""
    return f"normlab @ git+{repository_url()}@{release_tag()}"


def web_url(path: str) -> str:
    """Where a file of the repository can be seen and downloaded, at this release."""
    return f"{repository_url()}/blob/{release_tag()}/{path}"


def committed_file(path: str) -> Path | None:
    """The copy of the repository's `path` that this installation carries, or None."""
    root = book_root()
    found = root / path if root else None
    return found if found is not None and found.exists() else None
