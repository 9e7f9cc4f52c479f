"""Tie a number in a chapter's prose to the cell that computed it (myst-nb's glue).

In a code cell:   glue("zoo_bn_acc", acc, ".1%")   (or a ready string: glue("t", "41 s"))
In the markdown:  batch norm reached {glue:text}`zoo_bn_acc` ...

The rendered book (jupyter-book 1.x, myst-nb) pastes the stored text into the prose, so the page
cannot show a number that its own run did not produce. This writes the same output as
``myst_nb.glue(name, value, display=False)`` without importing myst-nb, which Colab does not have;
in a live notebook the glued value is invisible, as with myst-nb.
"""
from __future__ import annotations

from typing import Any

try:
    from IPython.display import display
except ImportError:  # a plain script (IPython is not one of normlab's requirements): glue() only stores
    def display(*objs, **kwargs) -> None:
        pass

__all__ = ["glue", "GLUE_PREFIX", "glued", "GluedText"]

GLUE_PREFIX = "application/papermill.record/"  # myst-nb's GLUE_PREFIX
_GLUED: dict[str, str] = {}  # name -> text, for this kernel: tests and the notebook itself


class GluedText(str):
    """The text glue returns: a plain str to print or join, but a cell that ends in glue(...) shows
    nothing, as myst-nb's glue(..., display=False) shows nothing (the prose shows the value)."""

    def _ipython_display_(self) -> None:
        pass


def glue(name: str, value: Any, fmt: str | None = None) -> str:
    """Store `value` (formatted with `fmt`, a format spec such as ".1%" or ",d", if given) as the
    text of `name`; returns that text. Numbers without `fmt` keep their repr, so the markdown can
    still format them (``{glue:text}`name:.2f```)."""
    if not isinstance(name, str) or not name.replace("_", "").replace("-", "").isalnum():
        raise ValueError(f"glue name must be letters, digits, '_' or '-', got {name!r}")
    if fmt is not None:
        try:
            value = format(value, fmt)
        except (TypeError, ValueError) as exc:
            raise ValueError(f"cannot format {value!r} with {fmt!r}: {exc}") from None
    text = value if isinstance(value, str) else repr(value)
    # a str is stored as its repr; myst-nb's {glue:text} literal_evals it back (no quotes shown)
    stored = repr(text) if isinstance(value, str) else text
    display({GLUE_PREFIX + "text/plain": stored}, raw=True,
            metadata={"scrapbook": {"name": name, "mime_prefix": GLUE_PREFIX}})
    _GLUED[name] = text
    return GluedText(text)


def glued() -> dict[str, str]:
    """Every name glued so far in this process, with its text."""
    return dict(_GLUED)
