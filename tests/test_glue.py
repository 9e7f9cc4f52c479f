"""normlab.glue writes what myst-nb's glue writes, so {glue:text} in the book pastes our values."""
from __future__ import annotations

import pytest

pytest.importorskip("myst_nb")
from myst_nb import glue as myst_glue  # noqa: E402
from myst_nb.core.variables import format_plain_text  # noqa: E402

from normlab import glue as glue_module  # noqa: E402


def _capture(monkeypatch, module):
    calls = []
    monkeypatch.setattr(module, "display" if module is glue_module else "ipy_display",
                        lambda data, raw, metadata: calls.append((data, metadata)))
    return calls


@pytest.mark.parametrize("value, fmt, shown", [
    (0.72781, ".1%", "72.8%"),
    (3.5, None, "3.5"),
    (41, ",d", "41"),
    ("41 s", None, "41 s"),
    (207000.0, ",.0f", "207,000"),
])
def test_same_output_as_myst_nb(monkeypatch, value, fmt, shown):
    import myst_nb.ext.glue as myst_module
    ours, theirs = _capture(monkeypatch, glue_module), _capture(monkeypatch, myst_module)
    text = glue_module.glue("ch00_x", value, fmt)
    myst_glue("ch00_x", str(text) if fmt else value, display=False)
    assert ours == theirs
    data = ours[0][0]
    assert format_plain_text(next(iter(data.values())), "") == shown == text
    assert glue_module.glued()["ch00_x"] == shown


def test_bad_name_and_format():
    with pytest.raises(ValueError, match="glue name"):
        glue_module.glue("has space", 1)
    with pytest.raises(ValueError, match="cannot format 'a' with '.1f'"):
        glue_module.glue("ch00_y", "a", ".1f")


def test_a_cell_ending_in_glue_shows_nothing_in_a_kernel():
    """glue returns its text (to print or join), but as a cell's last expression it adds no output
    beside the stored record, as myst-nb's glue(..., display=False)."""
    import nbclient
    import nbformat

    nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell(
        'from normlab.glue import glue\nprint("printed", glue("a", 0.5, ".0%"))\nglue("b", 1.25, ".1f")')])
    nbclient.NotebookClient(nb, timeout=120, kernel_name="python3").execute()
    outputs = nb.cells[0].outputs
    assert [o.get("text") for o in outputs if o.output_type == "stream"] == ["printed 50%\n"]
    assert [o.metadata["scrapbook"]["name"] for o in outputs if o.output_type == "display_data"] == ["a", "b"]
    assert not [o for o in outputs if o.output_type == "execute_result"], "the returned text was shown"


def test_glue_stores_its_text_in_a_process_without_ipython():
    """normlab's requirements do not include IPython: a script (benchmarks/run_chapter.py on a GPU
    machine) can still import the chapters' glue, which then only keeps the text."""
    import subprocess
    import sys
    code = ("import sys; sys.modules['IPython'] = None\n"
            "from normlab.glue import glue, glued\n"
            "assert glue('ch00_t', 0.25, '.0%') == '25%' and glued() == {'ch00_t': '25%'}, glued()\n")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
