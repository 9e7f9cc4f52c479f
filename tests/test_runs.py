"""normlab.runs: one function trains a configuration, the same way everywhere."""
import json

import pytest
import torch

from normlab import models, recipes, runs, train
from normlab.files import to_strict_json

TINY = dict(subset=5, test_subset=2, device="cpu", progress=False)


def test_a_fastai_recipe_makes_both_of_the_lessons_calls(data_dir):
    r = runs.run("convbnnet", epochs=1, data_dir=data_dir, **TINY)
    assert r.settings["lr"] == [3e-2, 1e-1] and r.settings["schedule"] == ["constant", "sgdr"]
    assert len(r.history) == 2 and len(r.call_seconds) == 2 and r.status == "done"
    # the same two calls made by hand, as the chapters used to
    recipe = recipes.get_recipe("convbnnet")
    dl = recipes.make_loaders(recipe, data_dir=data_dir, device="cpu", subset=5, test_subset=2, seed=0)
    torch.manual_seed(0)
    model = models.build_model("convbnnet")
    h = train.fit(model, dl, 1, 3e-2, schedule="constant", seed=0, progress=False)
    h.extend(train.fit(model, dl, 1, 1e-1, schedule="sgdr", progress=False))
    assert train.state_hash(model) == train.state_hash(r.model)
    assert h.steps == r.history.steps


def test_overrides_per_call_and_main_call_only(data_dir):
    r = runs.run("simplenet", lr=(0.02, 0.01), epochs=(1, 1), data_dir=data_dir, **TINY)
    assert r.settings["lr"] == [0.02, 0.01] and r.history.steps["lr"][0] == 0.02
    flat = runs.run("resnet_spec", schedule="constant", epochs=3, data_dir=data_dir, **TINY)  # linear by default
    assert flat.settings["schedule"] == ["constant"] and flat.history.steps["lr"] == [0.1] * 3
    main = runs.plan_calls(recipes.get_recipe("convnet"), calls="main")
    assert [(c.lr, c.epochs, c.schedule) for c in main] == [(0.1, 4, "sgdr")]
    with pytest.raises(ValueError, match=r"lr=\(0.1, 0.2, 0.3\) gives 3 values but the recipe makes 2 fit call"):
        runs.run("convnet", lr=(0.1, 0.2, 0.3), data_dir=data_dir, **TINY)
    with pytest.raises(ValueError, match="calls must be 'all' or 'main', got 'first'"):
        runs.run("convnet", calls="first", data_dir=data_dir, **TINY)


def test_norm_and_summary_and_a_diverged_run(data_dir):
    r = runs.run("erav1s8", norm="group", epochs=1, data_dir=data_dir, **TINY)
    s = json.loads(to_strict_json(r.summary()))
    assert s["norm"] == "group" and s["status"] == "done" and s["precision"] == "fp32" and s["device"] == "cpu"
    bad = runs.run("resnet_spec", lr=100.0, epochs=2, data_dir=data_dir, max_loss=50.0, **TINY)
    assert bad.status == "diverged" and "learning rate" in bad.summary()["stopped"]


def test_resume_across_calls_equals_an_uninterrupted_run(data_dir, tmp_path):
    whole = runs.run("convnet", epochs=(1, 2), data_dir=data_dir, checkpoint=tmp_path / "a" / "ck.pt", **TINY)

    class StopInSecondCall:
        def after_epoch(self, history, epoch, **_):
            if "cycle_len" in history.meta["label"] and epoch == 0:
                raise train.CancelFit("simulated interruption")

    part = runs.run("convnet", epochs=(1, 2), data_dir=data_dir, checkpoint=tmp_path / "b" / "ck.pt",
                    callbacks=[StopInSecondCall()], **TINY)
    assert part.status == "cancelled" and (tmp_path / "b" / "ck.call1.pt").exists()
    done = runs.run("convnet", epochs=(1, 2), data_dir=data_dir, checkpoint=tmp_path / "b" / "ck.pt",
                    resume=True, **TINY)
    assert done.status == "done" and len(done.history) == 3
    assert train.state_hash(done.model) == train.state_hash(whole.model)
    assert done.history.steps == whole.history.steps


def test_reuse_loads_weights_into_the_model_passed_and_replays_the_log(data_dir, tmp_path, capsys):
    """A chapter that passes its own module gets that module back trained; what log= printed while
    training is printed again; a module of another structure is another configuration."""
    from normlab import records

    def net():
        torch.manual_seed(0)
        return models.ConvNet()

    with records.recording("99_runs", tmp_path):
        trained = net()
        runs.run("convnet", model=trained, epochs=1, log="json", keep_model="float32", data_dir=data_dir, **TINY)
    printed = capsys.readouterr().out
    assert printed.count('"epoch": 0') == 2, "one line per epoch of each of the two calls"
    with records.recording("99_runs", tmp_path, reuse=True):
        mine = net()
        q = runs.run("convnet", model=mine, epochs=1, log="json", keep_model="float32", data_dir=data_dir, **TINY)
        assert q.model is mine and train.state_hash(mine) == train.state_hash(trained)
        assert capsys.readouterr().out.split("\n", 1)[1] == printed
        with pytest.raises(records.RecordError, match="built.structure"):
            runs.run("convnet", model=models.ConvNet((3, 20, 40, 60)), epochs=1, data_dir=data_dir, **TINY)
