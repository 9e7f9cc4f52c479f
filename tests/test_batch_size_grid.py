"""tools/batch_size_grid.py (chapter 7's batch-size grid) and the plot that draws it."""
import importlib.util
import json
import math
from pathlib import Path

import matplotlib
import pytest

matplotlib.use("Agg")

from normlab import plots  # noqa: E402

TOOL = Path(__file__).resolve().parents[1] / "tools" / "batch_size_grid.py"


def load_tool():
    spec = importlib.util.spec_from_file_location("batch_size_grid", TOOL)
    tool = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(tool)
    return tool


def small_grid_args(data_dir, out) -> list[str]:
    return ["--batch-sizes", "4", "8", "--seeds", "0", "--epochs", "1", "--subset", "5", "--test-subset", "5",
            "--norms", "batch", "group", "--data-dir", str(data_dir), "--out", str(out)]


@pytest.fixture(scope="module")
def grid(data_dir, tmp_path_factory):
    out = tmp_path_factory.mktemp("grid") / "bs.json"
    assert load_tool().main(small_grid_args(data_dir, out)) == 0
    text = out.read_text()
    return json.loads(text, parse_constant=lambda c: pytest.fail(f"not strict JSON: {c}"))


def test_runs_of_another_model_revision_are_not_resumed(grid, data_dir, tmp_path):
    """A grid made before erav1s8's dropout sampler changed is not topped up with runs made after."""
    assert grid["model_revision"] == 1
    out = tmp_path / "bs.json"
    out.write_text(json.dumps({**grid, "model_revision": 0}))
    with pytest.raises(SystemExit, match="holds runs of erav1s8's registry revision 0, now 1"):
        load_tool().main(small_grid_args(data_dir, out))
    assert json.loads(out.read_text())["model_revision"] == 0  # left as it was


def test_the_grid_file_has_every_run_and_what_the_chapter_reads(grid):
    for key in ("model", "recipe_lr", "recipe_batch_size", "epochs", "subset", "test_subset", "schedule",
                "norms", "batch_sizes", "seeds", "runs", "hardware", "threads", "torch", "total_seconds"):
        assert key in grid, key
    assert grid["complete"] is True and grid["total_seconds"] >= 0
    assert grid["batch_sizes"] == [4, 8] and grid["norms"] == ["batch", "group"] and grid["schedule"] == "constant"
    assert [(r["norm"], r["batch_size"], r["seed"]) for r in grid["runs"]] == [
        ("batch", 4, 0), ("batch", 8, 0), ("group", 4, 0), ("group", 8, 0)]
    for r in grid["runs"]:
        assert r["status"] == "done" and 0 <= r["test_acc"] <= 1 and math.isfinite(r["test_loss"])
        assert len(r["curve"]) == grid["epochs"] == 1 and r["seconds"] >= 0


def test_every_batch_size_sees_the_same_images_with_a_linearly_scaled_learning_rate(grid):
    assert {r["images_seen"] for r in grid["runs"]} == {10 * 5 * 1}  # 10 classes x 5 images x 1 epoch
    for r in grid["runs"]:
        assert r["lr"] == pytest.approx(grid["recipe_lr"] * r["batch_size"] / grid["recipe_batch_size"])
        assert r["steps"] == math.ceil(r["images_seen"] / r["batch_size"])


def test_only_batch_norm_runs_have_batch_statistics(grid):
    for r in grid["runs"]:
        has = {"batch_stats_test_acc", "batch_stats_test_loss"} <= r.keys()
        assert has == (r["norm"] == "batch"), r


def test_the_plot_draws_each_norm_and_both_batch_norm_evaluations(grid):
    errors = plots.batch_size_errors(grid)
    assert set(errors) == {("batch", 4), ("batch", 8), ("group", 4), ("group", 8)}
    assert errors[("group", 8)] == [pytest.approx(1 - grid["runs"][3]["test_acc"])]
    assert set(plots.batch_size_errors(grid, "batch_stats_test_acc")) == {("batch", 4), ("batch", 8)}
    ax_err, ax_bn = plots.plot_batch_size_grid(grid)
    assert [t.get_text() for t in ax_err.get_legend().get_texts()] == ["batch norm", "group norm"]
    assert len(ax_bn.get_legend().get_texts()) == 2 and ax_err.get_xscale() == "log"
    assert [t.get_text() for t in ax_err.get_xticklabels()] == ["4", "8"]
    diverged = {**grid, "runs": [{**r, "status": "diverged", "test_acc": None} if r["norm"] == "group" else r
                                 for r in grid["runs"]]}
    assert ("group", 4) not in plots.batch_size_errors(diverged)
    plots.plot_batch_size_grid(diverged)  # a norm without a finished run is left out, not an error
    matplotlib.pyplot.close("all")
