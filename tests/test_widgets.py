"""The zoo chapter's live panel and its static stand-in."""
import json
import re

import pytest

from normlab import widgets


@pytest.fixture
def panel(data_dir):
    return widgets.TrainingPanel("erav1s8", data_dir=data_dir, device="cpu", epochs=1, subset=10,
                                 test_subset=2, threaded=True)


def test_panel_builds_with_its_controls(panel):
    assert set(panel.norm.options) >= {"batch", "layer", "group", "instance", "none"}
    assert panel.norm.value == "batch" and panel.lr.value == pytest.approx(0.01)
    assert "Train" == panel.train_button.description
    assert panel.plot.value[:4] == b"\x89PNG" and "<table" in panel.table.value
    assert "application/vnd.jupyter.widget-view+json" in panel._repr_mimebundle_()


def test_every_control_has_a_label_and_a_description_and_the_curves_a_text_alternative(panel):
    labels = {panel.norm: "norm", panel.lr: "learning rate", panel.epochs: "epochs", panel.subset: "images/class",
              panel.train_button: "Train", panel.progress: "idle"}
    for control, label in labels.items():
        assert label in control.description  # the visible label (the dropdown's carries its tooltip)
        assert len(control.tooltip.split()) >= 4, control  # the description, shown on hover
    assert panel.norm.description_allow_html and 'title="the normalization layer' in panel.norm.description
    assert panel.plot.tooltip == "Training curves: no runs yet"  # the <img>'s title: its name to a screen reader
    assert panel.plot.get_state()["description"] == ""  # without it ipywidgets 8 cannot show an Image's tooltip
    assert panel.plot.value[:4] == b"\x89PNG"


def test_clicking_train_updates_curves_table_and_status(panel):
    panel.norm.value, panel.lr.value, panel.epochs.value = "group", 0.05, 2
    before = panel.plot.value
    panel.train_button.click()
    panel.wait(120)
    run = panel.runs[-1]
    assert run.status == "done" and len(run.history) == 2 and run.norm == "group"
    assert panel.plot.value != before
    assert panel.table.value.count("<tr>") == 2 and "group" in panel.table.value
    assert "test accuracy" in panel.status.value
    assert panel.plot.tooltip == "Training curves, loss (left) and accuracy (right) per epoch, dashed training, " \
                                 "solid test, of: group, lr 0.05"  # the image's text alternative
    steps_per_epoch = -(-10 * run.subset // 32)  # 10 classes x images per class, batches of 32
    assert panel.progress.value == panel.progress.max == 2 * steps_per_epoch


def test_the_panel_trains_on_the_device_it_was_given_and_says_so(panel, monkeypatch):
    import torch

    seen = []
    real = widgets.loaders
    monkeypatch.setattr(widgets, "loaders", lambda *a, **k: seen.append(k.get("device")) or real(*a, **k))
    statuses = []
    panel.status.observe(lambda change: statuses.append(change["new"]), names="value")
    assert panel.device == torch.device("cpu")
    panel.train()
    panel.wait(120)
    run = panel.runs[-1]
    assert seen == [panel.device] and run.history.meta["device"] == "cpu"
    assert "training batch" in statuses[0] and f"on {panel.where}, fp32" in statuses[0]
    assert run.status == "done" and statuses[-1].count(panel.where) == 1 and "done" in statuses[-1]


def test_a_diverging_learning_rate_is_reported_in_the_panel(panel):
    panel.norm.value, panel.lr.value = "none", 10.0
    panel.epochs.value, panel.subset.value = 3, 40
    panel.train()
    panel.wait(120)
    run = panel.runs[-1]
    assert run.status == "diverged", run.summary()
    assert "loss became" in run.message and "learning rate" in run.message
    assert "#cf222e" in panel.status.value and "Traceback" not in panel.status.value
    assert "diverged" in panel.table.value


def test_pressing_train_during_a_run_cancels_it(panel):
    panel.epochs.value, panel.subset.value = 10, 100
    first = panel.train()
    while not first.history.epochs and panel.running:
        panel.wait(0.05)
    panel.epochs.value, panel.subset.value = 1, 10  # a short second run: the machine may be loaded
    second = panel.train()  # cancels the first, then starts
    panel.wait(600)
    assert first.status == "cancelled" and len(first.history) < 10
    assert second.status == "done" and len(panel.runs) == 2
    assert "cancelled" in panel.table.value


def test_bad_settings_give_clear_errors(data_dir):
    with pytest.raises(ValueError, match="unknown norm 'batchy' for erav1s8; accepted: none, batch"):
        widgets.TrainingPanel("erav1s8", norm="batchy", data_dir=data_dir)
    with pytest.raises(ValueError, match="model 'lenet' has no norm argument"):
        widgets.TrainingPanel("lenet", data_dir=data_dir)
    with pytest.raises(ValueError, match=r"learning rate 100 is outside the panel's range \[0.0001, 10\]"):
        widgets.TrainingPanel("erav1s8", lr=100, data_dir=data_dir)


def test_static_grid_has_one_switchable_tab_per_norm(data_dir, tmp_path):
    grid = widgets.run_grid("erav1s8", ["batch", "none"], [0.01, 10.0], epochs=1, subset=3, test_subset=2,
                            data_dir=data_dir, log=lambda *a: None)
    grid = json.loads(json.dumps(grid))  # what the committed file holds
    assert [(r["norm"], r["lr"]) for r in grid["runs"]] == [("batch", 0.01), ("batch", 10.0),
                                                             ("none", 0.01), ("none", 10.0)]
    page = widgets.static_grid(grid)._repr_html_()
    assert page.count('type="radio"') == 2 and page.count("data:image/png;base64,") == 2
    assert re.search(r'<label for="[^"]+">batch</label>', page) and "checked" in page
    assert "HBox(" not in page and "<script" not in page  # CSS only, works without a kernel
    by_lr = widgets.static_grid(grid, group_by="lr")._repr_html_()
    assert by_lr.count('type="radio"') == 2 and "lr 10" in by_lr
    with pytest.raises(ValueError, match="group_by must be 'norm' or 'lr', got 'x'"):
        widgets.static_grid(grid, group_by="x")


def test_batch_size_control_and_a_live_curve_before_the_first_epoch_ends(panel):
    assert panel.batch_size.value == 32 and 8 in panel.batch_size.options  # the recipe's batch
    panel.batch_size.value, panel.subset.value, panel.epochs.value = 8, 40, 1
    drawn_before_epoch = []
    panel.plot.observe(lambda change: drawn_before_epoch.append(not panel.runs[-1].history.epochs), names="value")
    panel.train()
    panel.wait(120)
    run = panel.runs[-1]
    assert run.status == "done" and run.batch_size == 8 and run.steps_per_epoch == 10 * 40 // 8
    assert panel.progress.max == 50 and len(run.history.steps["loss"]) == 50
    assert any(drawn_before_epoch), "no curve was drawn while the first epoch ran"
    assert "<td>8</td>" in panel.table.value
    with pytest.raises(ValueError, match="batch size 3 is not one of the panel's: 2, 4, 8"):
        widgets.TrainingPanel("erav1s8", batch_size=3, device="cpu")
