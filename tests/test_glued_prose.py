"""Every number in a chapter's prose comes from its run (glued) or from a quoted source.

1. Each {glue:text}`key` in a chapter's text source is glued (normlab.glue) by the chapter: in the
   golden (the SMOKE run) and in the committed notebook (the full run whose outputs the book shows;
   jupyter-book's --warningiserror build fails on a missing key as well, but later and slower).
2. A numeral in the prose that carries a unit or a comparison (%, s, min, x, pt, "times", ...) is
   glued, or is a number quoted from a source in `normlab.reported`, or is on ALLOWED below with
   the reason it may stay as typed text.
"""
from __future__ import annotations

import json
import re
import sys
from pathlib import Path

import jupytext
import pytest

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "tools"))
import notebooks  # noqa: E402

from normlab.glue import GLUE_PREFIX  # noqa: E402
from normlab.reported import REPORTED  # noqa: E402

CHAPTERS = notebooks.chapters()

GLUE_ROLE = re.compile(r"\{glue(?::\w*)?\}`(?:[^`:]+::)?([\w-]+)(?::[^`]*)?`")
GLUE_DIRECTIVE = re.compile(r"^[`:]{3,}\{glue(?::\w+)?\}\s+([\w-]+)", re.M)
UNIT = r"\s?(?:%|(?:s|ms|min|h|x|×|pt|points?|times|MB|GB|seconds|minutes|hours)\b)"
# a numeral with a unit, not part of a word, a version (2.14.1) or a shape (32×32, 3×3)
NUMBER_WITH_UNIT = re.compile(r"(?<![\w.×])[-+−]?\d(?:[\d,]*\d)?(?:\.\d+)?(?:e[-+]?\d+)?" + UNIT + r"(?![\w×]|\s?\d)")

# (chapter number, the exact text) -> why it may stay typed. Keep this short.
ALLOWED: dict[tuple[str, str], str] = {}


def glue_refs(text: str) -> set[str]:
    return set(GLUE_ROLE.findall(text)) | set(GLUE_DIRECTIVE.findall(text))


def glued_names(nb_path: Path) -> set[str]:
    nb = json.loads(nb_path.read_text())
    return {o["metadata"]["scrapbook"]["name"]
            for c in nb["cells"] if c["cell_type"] == "code" for o in c.get("outputs", [])
            if "scrapbook" in o.get("metadata", {}) and any(k.startswith(GLUE_PREFIX) for k in o.get("data", {}))}


def without_code(text: str) -> str:
    """The text without fenced code and maths; the prose inside directives (an admonition holding a
    solution, a note) stays, also after a code block nested in it."""
    out, fences = [], []  # the open fences: (backticks or colons, info string)
    for line in text.splitlines():
        m = re.match(r"\s*(`{3,}|:{3,})\s*(.*)$", line)
        if m:
            fence, info = m.groups()
            if fences and not info and fence[0] == fences[-1][0][0] and len(fence) >= len(fences[-1][0]):
                fences.pop()
            else:
                fences.append((fence, info))
            continue
        if not any(not info.startswith("{") or info.startswith(("{code", "{math", "{glue")) for _, info in fences):
            out.append(line)
    return "\n".join(out)


def prose(md: str) -> list[str]:
    """The chapter's markdown cells without what is not prose: glue roles, code, maths, link targets."""
    out = []
    for cell in jupytext.reads(md, fmt="md:myst").cells:
        if cell.cell_type != "markdown":
            continue
        t = GLUE_ROLE.sub(" ", without_code(cell.source))
        t = re.sub(r"`[^`]*`|\$\$.*?\$\$|\$[^$\n]*\$", " ", t, flags=re.S)
        t = re.sub(r"\]\([^)]*\)|\{cite[:\w]*\}`[^`]*`|\{\w+\}`[^`]*`", " ", t)
        out.append(t)
    return out


def _numbers(text: str) -> set[float]:
    return {float(x.replace(",", "")) for x in re.findall(r"\d[\d,]*(?:\.\d+)?", text)}


def quoted_values() -> set[float]:
    """The source numbers as prose writes them: 0.4724 -> 47.24 (%); rounded forms too."""
    vals = set()
    for r in REPORTED:
        if r.value is None:
            continue
        for v in (r.value, 100 * r.value):
            vals |= {round(v, d) for d in range(0, 4)} | {v}
    return vals


def unglued_numbers(md: str, chapter: str) -> list[str]:
    quoted = quoted_values()
    bad = []
    for text in prose(md):
        for m in NUMBER_WITH_UNIT.finditer(text):
            hit = m.group(0).strip()
            if (chapter, hit) in ALLOWED:
                continue
            if _numbers(hit) and _numbers(hit) <= quoted:
                continue
            bad.append(hit)
    return bad


@pytest.mark.parametrize("nb", CHAPTERS, ids=lambda p: p.stem)
def test_every_glue_reference_is_glued_by_the_smoke_run(nb):
    refs = glue_refs(notebooks.text_source(nb).read_text())
    missing = refs - glued_names(notebooks.GOLDENS / nb.name)
    assert not missing, f"{nb.stem}: the prose uses glue keys the SMOKE run never glues: {sorted(missing)}"


@pytest.mark.parametrize("nb", CHAPTERS, ids=lambda p: p.stem)
def test_every_glue_reference_is_glued_by_the_committed_full_run(nb):
    refs = glue_refs(notebooks.text_source(nb).read_text())
    missing = refs - glued_names(nb)
    assert not missing, (f"{nb.stem}: the committed outputs lack glue keys the prose uses: {sorted(missing)}; "
                         f"render the chapter (python tools/notebooks.py render {nb.stem[:2]})")


@pytest.mark.parametrize("nb", CHAPTERS, ids=lambda p: p.stem)
def test_no_typed_numbers_in_the_prose(nb):
    bad = unglued_numbers(notebooks.text_source(nb).read_text(), nb.stem[:2])
    assert not bad, (f"{nb.stem}: numbers typed into the prose: {bad}. Glue them from the cell that computes "
                     "them (normlab.glue), quote them from normlab.reported, or allow them in ALLOWED with a reason")


def test_the_scanner_finds_typed_numbers_and_ignores_glue_shapes_and_quotes():
    md = ("# T\n\nIt took 41 s and reached {glue:text}`ch00_acc` (12.34 %), 3.1 times faster; "
          "a 32×32 image, a 3×3 kernel, torch 2.14.1, `0.5 s` in code, the blog's 47.24 %.\n")
    assert unglued_numbers(md, "00") == ["41 s", "12.34 %", "3.1 times"]
    solution = ("````{admonition} Solution\n:class: dropdown\n\n```python\nprint('3 s')\n```\n\nIt took 41 s.\n````\n"
                "```{math}\nx = 5 \\%\n```\n")
    assert without_code(solution).split() == [":class:", "dropdown", "It", "took", "41", "s."]
    assert glue_refs("{glue:text}`a_b:.1f` {glue:}`c` {glue}`d`\n```{glue:figure} e\n```") == {"a_b", "c", "d", "e"}
