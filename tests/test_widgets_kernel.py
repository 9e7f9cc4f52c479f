"""The live panel displayed by a real kernel, with the pinned ipywidgets 8 and with ipywidgets 7.7.1
(what Colab ships) first on the kernel's path."""
import os

import nbclient
import nbformat
import pytest

from ipywidgets7 import VERSION, ipywidgets7_dir

WIDGET_VIEW = "application/vnd.jupyter.widget-view+json"


def run_panel_notebook(data_dir, pythonpath: str | None):
    nb = nbformat.v4.new_notebook()
    nb.cells = [
        nbformat.v4.new_code_cell("import ipywidgets; print(ipywidgets.__version__)"),
        nbformat.v4.new_code_cell(
            "from normlab import widgets\n"
            f"panel = widgets.TrainingPanel('erav1s8', data_dir={str(data_dir)!r}, device='cpu', subset=10,"
            " test_subset=2, epochs=1)\n"
            "panel"),
    ]
    env = dict(os.environ)
    if pythonpath:
        env["PYTHONPATH"] = os.pathsep.join(p for p in (pythonpath, env.get("PYTHONPATH")) if p)
    nbclient.NotebookClient(nb, kernel_name="python3", timeout=120, allow_errors=True).execute(env=env)
    version = "".join(o.get("text", "") for o in nb.cells[0].outputs).strip()
    return version, nb.cells[1].outputs


@pytest.mark.parametrize("ipywidgets", ["pinned 8", VERSION])
def test_the_panel_shows_a_widget_view_in_a_kernel(ipywidgets, data_dir):
    path = str(ipywidgets7_dir()) if ipywidgets == VERSION else None
    version, outputs = run_panel_notebook(data_dir, path)
    assert version.startswith("7.7.1" if path else "8."), version
    errors = [o for o in outputs if o["output_type"] == "error"]
    assert not errors, f"{errors[0]['ename']}: {errors[0]['evalue']}" if errors else ""
    views = [o for o in outputs if WIDGET_VIEW in o.get("data", {})]
    assert len(views) == 1 and views[0]["data"][WIDGET_VIEW]["model_id"]
