"""Tests of the command line (normlab.cli) and the recipes it runs (normlab.recipes).

Everything runs in-process through ``main([...])`` on tiny stratified subsets, except one real
subprocess that checks the ``python -m normlab`` entry point.
"""
import json
import subprocess
import sys
from pathlib import Path

import pytest

from normlab.cli import main
from normlab.data import DATASETS
from normlab.models import MODELS, build_model, count_params
from normlab.recipes import (RECIPES, Recipe, build_augment, default_norm, fit_kwargs, get_recipe,
                             make_loaders, norm_choices)
from normlab.train import fit, seed_everything, state_hash

REPO = Path(__file__).resolve().parents[1]
FILES = ("checkpoint.pt", "history.json", "metrics.jsonl", "summary.json", "config.json")


def _train(capsys, data_dir, out, *extra, model="resnet_spec"):
    """Run `normlab train` in-process on a tiny subset; returns (exit code, stdout, stderr)."""
    argv = ["train", "--model", model, "--subset", "4", "--test-subset", "2", "--epochs", "1",
            "--data-dir", str(data_dir), "--out", str(out), "--device", "cpu", *extra]
    code = main(argv)
    cap = capsys.readouterr()
    return code, cap.out, cap.err


def _summary(out):
    return json.loads((Path(out) / "summary.json").read_text())


# ----------------------------------------------------------------------------- recipes
def test_every_model_has_a_valid_recipe():
    assert set(RECIPES) == set(MODELS)
    for name, r in RECIPES.items():
        assert isinstance(r, Recipe) and r.dataset in DATASETS and r.source
        assert build_augment(r.augment) is None or callable(build_augment(r.augment))


@pytest.mark.parametrize("name, expect", [
    ("convnet", dict(dataset="cifar10", batch_size=256, lr=0.1, opt="sgd", momentum=0.9, schedule="sgdr",
                     epochs=4, augment="fastai")),
    ("convbnnet", dict(lr=0.1, epochs=4, calls=((3e-2, 2, "constant"), (1e-1, 4, "sgdr")))),
    ("simplenet", dict(lr=0.01, epochs=2)),
    ("convbnnet2", dict(lr=0.01, epochs=2)),
    ("lenet_fc_bn2", dict(dataset="mnist_tairtahar", batch_size=64, opt="adam", lr=1e-3, eps=1e-7, epochs=10,
                          augment=None, normalize=True)),
    ("erav1s8", dict(dataset="cifar10", batch_size=32, opt="sgd", lr=0.01, momentum=0.9, schedule="plateau",
                     epochs=20, augment="erav1s8")),
    ("tf_tutorial_cnn", dict(dataset="cifar10", batch_size=128, opt="adam", lr=1e-3, epochs=11,
                             augment="tf_tutorial", test_augment="tf_tutorial_eval", normalize=False)),
    ("resnet_spec", dict(dataset="cifar2", batch_size=128, test_batch_size=128, opt="sgd", lr=0.1, momentum=0.9,
                         nesterov=False, schedule="linear", epochs=5, augment=None)),
])
def test_recipe_values_follow_the_spec(name, expect):
    r = RECIPES[name]
    for k, v in expect.items():
        assert getattr(r, k) == v, (name, k)


def test_recipe_validation_and_helpers():
    with pytest.raises(ValueError, match="accepted"):
        RECIPES["convnet"].replace(dataset="nope")
    with pytest.raises(ValueError, match="accepted"):
        get_recipe("nope")
    kw = fit_kwargs(RECIPES["erav1s8"], seed=3, lr=0.5)
    assert kw["lr"] == 0.5 and kw["seed"] == 3 and kw["schedule"] == "plateau" and kw["epochs"] == 20
    with pytest.raises(TypeError, match="nope"):
        fit_kwargs(RECIPES["erav1s8"], nope=1)
    assert norm_choices("convnet") == () and default_norm("convnet") is None
    assert default_norm("resnet_spec") == "batchstat" and default_norm("erav1s8") == "batch"
    for name in ("erav1s8", "tf_tutorial_cnn", "resnet_spec"):  # every advertised norm builds
        for kind in norm_choices(name):
            build_model(name, norm=kind)


def test_make_loaders_from_recipes(data_dir):
    d = make_loaders(RECIPES["tf_tutorial_cnn"], data_dir=data_dir, device="cpu", subset=2, test_subset=1)
    x, _ = next(iter(d.test))
    assert x.shape[1:] == (3, 24, 24) and d.train.batch_size == 128
    assert abs(float(x[0].mean())) < 1e-4  # per-image standardization, no dataset normalization
    d = make_loaders(RECIPES["resnet_spec"], data_dir=data_dir, device="cpu", subset=3, batch_size=4)
    assert d.name == "cifar2" and d.train.batch_size == 4 and len(d.train.data) == 6


# ----------------------------------------------------------------------------- models / help
def test_models_lists_every_registry_name(capsys):
    assert main(["models"]) == 0
    out = capsys.readouterr().out
    lines = out.splitlines()
    for name in MODELS:
        assert any(line.split()[0] == name for line in lines[1:]), name
    assert "108,208" in out and "47,818" in out  # params computed by count_params
    assert main(["models", "--json"]) == 0
    rows = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert [r["name"] for r in rows] == list(MODELS)
    assert rows[-1]["params"] == count_params(build_model("resnet_spec"))


@pytest.mark.parametrize("argv", [["--help"], ["models", "--help"], ["train", "--help"]])
def test_help(capsys, argv):
    assert main(argv) == 0
    out = capsys.readouterr().out
    assert out.startswith("usage: normlab")


def test_entry_point_subprocess():
    r = subprocess.run([sys.executable, "-m", "normlab", "models"], capture_output=True, text=True,
                       cwd=REPO, timeout=120)
    assert r.returncode == 0, r.stderr
    assert all(name in r.stdout for name in MODELS)
    r = subprocess.run([sys.executable, "-m", "normlab", "train", "--model", "nope"], capture_output=True,
                       text=True, cwd=REPO, timeout=120)
    assert r.returncode == 2 and "'nope'" in r.stderr and "Traceback" not in r.stderr


# ----------------------------------------------------------------------------- train
@pytest.mark.parametrize("model, dataset", [("resnet_spec", "cifar2"), ("convnet", "cifar10")])
def test_train_writes_files_and_json_lines(capsys, data_dir, tmp_path, model, dataset):
    code, out, err = _train(capsys, data_dir, tmp_path / "run", model=model)
    assert code == 0, err
    for f in FILES:
        assert (tmp_path / "run" / f).is_file(), f
    assert not [p for p in (tmp_path / "run").iterdir() if p.name.endswith(".tmp")]
    line = json.loads(out.strip().splitlines()[-1])
    assert set(line) == {"epoch", "test_acc", "time"} and line["epoch"] == 0
    s = _summary(tmp_path / "run")
    assert s["model"] == model and s["dataset"] == dataset and s["epochs"] == 1 and s["stopped"] is None
    assert s["params"] == count_params(build_model(model)) and s["device"].startswith("CPU")
    assert s["final_test_acc"] == line["test_acc"] and s["best_test_acc"] >= s["final_test_acc"]
    assert len(s["state_hash"]) == 12 and s["total_time"] > 0
    hist = json.loads((tmp_path / "run" / "history.json").read_text())
    assert len(hist["epochs"]) == 1
    metrics = [json.loads(x) for x in (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()]
    assert metrics == hist["epochs"]


def test_same_seed_same_state_hash(capsys, data_dir, tmp_path):
    hashes = []
    for run, seed in (("a", "7"), ("b", "7"), ("c", "8")):
        code, _, err = _train(capsys, data_dir, tmp_path / run, "--seed", seed)
        assert code == 0, err
        hashes.append(_summary(tmp_path / run)["state_hash"])
    assert hashes[0] == hashes[1] != hashes[2]


def test_cli_equals_library_run(capsys, data_dir, tmp_path):
    """The CLI runs exactly recipe + make_loaders + fit_kwargs (one shared definition)."""
    code, _, err = _train(capsys, data_dir, tmp_path / "cli", "--seed", "3")
    assert code == 0, err
    recipe = RECIPES["resnet_spec"].replace(epochs=1)
    data = make_loaders(recipe, data_dir=data_dir, device="cpu", subset=4, test_subset=2, seed=3)
    seed_everything(3)
    model = build_model("resnet_spec")
    fit(model, data, **fit_kwargs(recipe, seed=3, progress=False))
    assert state_hash(model) == _summary(tmp_path / "cli")["state_hash"]


def test_resume_continues_a_finished_run(capsys, data_dir, tmp_path):
    # convnet's schedule (sgdr, cycle_len=1) does not depend on the total epochs, so
    # 1 epoch + resume to 2 must equal 2 epochs straight.
    out = tmp_path / "run"
    code, _, err = _train(capsys, data_dir, out, model="convnet")
    assert code == 0, err
    code, stdout, err = _train(capsys, data_dir, out, "--epochs", "2", "--resume", model="convnet")
    assert code == 0, err
    assert [json.loads(x)["epoch"] for x in stdout.strip().splitlines()] == [1]
    hist = json.loads((out / "history.json").read_text())
    assert [e["epoch"] for e in hist["epochs"]] == [0, 1]
    assert len((out / "metrics.jsonl").read_text().splitlines()) == 2
    s = _summary(out)
    assert s["epochs"] == 2 and s["resumed_from_epoch"] == 1
    code, _, err = _train(capsys, data_dir, tmp_path / "straight", "--epochs", "2", model="convnet")
    assert code == 0, err
    assert _summary(tmp_path / "straight")["state_hash"] == s["state_hash"]
    # resuming with settings that change the data is refused
    code, _, err = _train(capsys, data_dir, out, "--epochs", "3", "--resume", "--seed", "5", model="convnet")
    assert code == 2 and "seed" in err and "Traceback" not in err


def test_diverged_run_exits_1(capsys, data_dir, tmp_path):
    code, _, err = _train(capsys, data_dir, tmp_path / "run", "--lr", "1e30", "--batch-size", "8",
                          "--epochs", "2", model="simplenet")
    assert code == 1
    assert "diverged" in err.lower() and "learning rate" in err
    assert _summary(tmp_path / "run")["stopped"]


@pytest.mark.parametrize("args, named", [
    (["--model", "nope"], "'nope'"),
    (["--model", "convnet", "--data", "imagenet"], "'imagenet'"),
    (["--model", "erav1s8", "--norm", "weird"], "'weird'"),
    (["--model", "convnet", "--norm", "batch"], "'batch'"),
    (["--model", "lenet", "--norm", "batch"], "'lenet'"),
    (["--model", "convnet", "--device", "tpu"], "'tpu'"),
    (["--model", "convnet", "--epochs", "-1"], "'-1'"),
    (["--model", "convnet", "--lr", "0"], "'0'"),
    (["--model", "convnet", "--lr", "-0.1"], "'-0.1'"),
    (["--model", "convnet", "--lr", "nan"], "'nan'"),
    (["--model", "convnet", "--batch-size", "0"], "'0'"),
    (["--model", "convnet", "--subset", "x"], "'x'"),
    (["--model", "convnet", "--data", "mnist", "DATA"], "'mnist'"),
    (["--model", "resnet_spec", "--data", "cifar10", "DATA"], "'cifar10'"),
    (["--model", "convnet", "--subset", "100000", "DATA"], "100000"),
    (["--model", "convnet", "--data-dir", "EMPTY"], "EMPTY"),
    (["--model", "lenet", "--data-dir", "EMPTY"], "EMPTY"),
    (["--epochs", "1"], "--model"),
    ([], "command"),
])
def test_bad_arguments_exit_2_naming_the_value(capsys, data_dir, tmp_path, args, named):
    empty = tmp_path / "empty"
    empty.mkdir()
    args = [str(empty) if a == "EMPTY" else a for a in args]
    if "DATA" in args:
        args = [a for a in args if a != "DATA"] + ["--data-dir", str(data_dir)]
    named = str(empty) if named == "EMPTY" else named
    argv = (["train"] if args else []) + args + (["--out", str(tmp_path / "out")] if args else [])
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert named in err, err
    assert "Traceback" not in err
    lines = err.strip().splitlines()
    assert len(lines) == 1 and "error" in lines[0], err
    if "--model" in args and args[args.index("--model") + 1] in ("nope",):
        assert "resnet_spec" in err  # the accepted names are listed
    assert not (tmp_path / "out").exists()  # nothing written for a rejected command
