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
    myst_glue("ch00_x", text if fmt else value, display=False)
    assert ours == theirs
    data = ours[0][0]
    assert format_plain_text(next(iter(data.values())), "") == shown == text
    assert glue_module.glued()["ch00_x"] == shown


def test_bad_name_and_format():
    with pytest.raises(ValueError, match="glue name"):
        glue_module.glue("has space", 1)
    with pytest.raises(ValueError, match="cannot format 'a' with '.1f'"):
        glue_module.glue("ch00_y", "a", ".1f")
