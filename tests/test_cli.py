"""Tests of the command line (normlab.cli) and the recipes it runs (normlab.recipes).

Everything runs in-process through ``main([...])`` on tiny stratified subsets, except one real
subprocess that checks the ``python -m normlab`` entry point.
"""
import json
import math
import socket
import subprocess
import sys
from pathlib import Path

import pytest

import normlab.train
from normlab.cli import PRECISIONS, _schedule_depends_on_length, main
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


def _no_constant(token):
    raise ValueError(f"not strict JSON: {token}")


def _strict(text: str):
    """json.loads that refuses NaN / Infinity / -Infinity (as jq, JavaScript and RFC 8259 do)."""
    return json.loads(text, parse_constant=_no_constant)


def _strict_run_files(out) -> dict:
    """Every JSON file of a run, parsed strictly: {name: value} (metrics.jsonl: a list of records)."""
    out = Path(out)
    files = {f: _strict((out / f).read_text()) for f in ("history.json", "summary.json", "config.json")}
    files["metrics.jsonl"] = [_strict(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    return files


def _snapshot(folder):
    return {p.name: (p.read_bytes(), p.stat().st_mtime_ns) for p in sorted(Path(folder).iterdir())}


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
    (["--model", "convnet", "--precision", "fp8"], "'fp8'"),
    (["--model", "convnet", "--max-loss", "-1"], "'-1'"),
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


# ----------------------------------------------------------------------------- divergence, strict JSON
@pytest.mark.parametrize("model, extra, what", [
    ("resnet_spec", ["--lr", "100", "--batch-size", "2"], "loss became"),   # training loss above --max-loss
    ("lenet", ["--lr", "100", "--batch-size", "8"], "loss became"),         # finite but huge: --max-loss
    ("convnet", ["--lr", "1e30", "--subset", "2"], "test loss became nan"),  # finite step, non-finite test loss
])
def test_divergence_exits_1_with_the_message_and_strict_files(capsys, data_dir, tmp_path, model, extra, what):
    code, _, err = _train(capsys, data_dir, tmp_path / "run", *extra, model=model)
    assert code == 1, err
    assert "Traceback" not in err and "normlab: done" not in err
    message = err[err.index("normlab: diverged: "):]
    for word in (what, "epoch 0", "step", "learning rate"):
        assert word in message, (word, err)
    files = _strict_run_files(tmp_path / "run")
    s = files["summary.json"]
    assert s["status"] == "diverged" and s["stopped"] and s["stopped"] in err
    assert files["history.json"]["stopped"] == s["stopped"]


def test_nonfinite_numbers_become_null_with_a_note(capsys, data_dir, tmp_path, monkeypatch):
    """A history holding NaN/inf (as a library caller's fit may return) is written as strict JSON."""
    real_fit = normlab.train.fit

    def fit(*args, **kwargs):
        history = real_fit(*args, **kwargs)
        history.epochs[-1].update(test_loss=math.nan, train_loss=math.inf)
        return history

    monkeypatch.setattr(normlab.train, "fit", fit)
    code, _, err = _train(capsys, data_dir, tmp_path / "run")
    assert code == 0, err
    files = _strict_run_files(tmp_path / "run")
    s = files["summary.json"]
    assert s["status"] == "done" and s["final_test_loss"] is None and s["nonfinite"] == ["final_test_loss: nan"]
    h = files["history.json"]
    assert h["epochs"][0]["test_loss"] is None and h["epochs"][0]["train_loss"] is None
    assert h["nonfinite"] == ["epochs[0].train_loss: inf", "epochs[0].test_loss: nan"]
    record = files["metrics.jsonl"][0]
    assert record["test_loss"] is None and record["nonfinite"] == ["train_loss: inf", "test_loss: nan"]


# ----------------------------------------------------------------------------- --out, --resume, --precision
def test_out_holding_a_run_is_refused_without_resume(capsys, data_dir, tmp_path):
    out = tmp_path / "run"
    out.mkdir()  # an existing empty folder is fine
    code, _, err = _train(capsys, data_dir, out, "--precision", "fp32")
    assert code == 0, err
    assert "normlab: precision fp32: float32" in err  # printed beside the device line
    assert _summary(out)["precision"] == "fp32" and _strict_run_files(out)["config.json"]["precision"] == "fp32"
    before = _snapshot(out)
    code, stdout, err = _train(capsys, data_dir, out)
    assert code == 2 and stdout == ""
    lines = err.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in err, err
    assert str(out) in err and "checkpoint.pt" in err and "--resume" in err and "another --out" in err
    assert _snapshot(out) == before  # untouched


def test_resume_with_other_epochs_refused_for_a_length_dependent_schedule(capsys, data_dir, tmp_path):
    # resnet_spec's linear schedule decays to 0 over the epochs the run was started with.
    out = tmp_path / "run"
    code, _, err = _train(capsys, data_dir, out)
    assert code == 0, err
    before = _snapshot(out)
    code, _, err = _train(capsys, data_dir, out, "--epochs", "2", "--resume")
    assert code == 2 and "Traceback" not in err and len(err.strip().splitlines()) == 1, err
    assert "'linear'" in err and "started for 1 epochs" in err and "--epochs 1" in err
    assert _snapshot(out) == before


def test_help_says_what_resume_does_with_epochs(capsys):
    assert main(["train", "--help"]) == 0
    text = " ".join(capsys.readouterr().out.split())
    assert "--precision {auto,fp32,bf16,fp16}" in text
    assert "refused for linear and onecycle" in text and "(constant, sgdr, plateau" in text
    assert "Exit codes: 0 done; 1 the run diverged" in text
    # what the help says is what the check does
    for name, depends in (("constant", False), ("sgdr", False), ("plateau", False), ("linear", True),
                          ("onecycle", True)):
        assert _schedule_depends_on_length(name, 0.1, 5, 7) is depends, name


def test_precision_choices_are_the_library_ones():
    from normlab.precision import PRECISIONS as library

    assert PRECISIONS == library


# ----------------------------------------------------------------------------- download
def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_download_arguments(capsys, data_dir):
    assert main(["download", "--help"]) == 0
    text = " ".join(capsys.readouterr().out.split())
    assert text.startswith("usage: normlab download [-h]") and "cifar10 or mnist" in text and "Exit codes" in text
    for argv, named in ((["download", "nope"], "'nope'"), (["download", "mnist", "--timeout", "0"], "'0'")):
        assert main(argv) == 2
        err = capsys.readouterr().err
        assert named in err and len(err.strip().splitlines()) == 1 and "Traceback" not in err, err
    # data already in place: nothing is fetched, the folder is printed
    assert main(["download", "--data-dir", str(data_dir)]) == 0
    assert capsys.readouterr().out.splitlines() == [f"cifar10: {data_dir}", f"mnist: {data_dir}"]


@pytest.mark.parametrize("argv, named", [(["mnist"], "MNIST"), ([], "CIFAR-10")])
def test_download_failure_is_one_clean_error(capsys, tmp_path, monkeypatch, argv, named):
    url = f"http://127.0.0.1:{_closed_port()}/"
    monkeypatch.setenv("NORMLAB_DATA_MIRRORS", url)
    monkeypatch.setenv("TQDM_DISABLE", "1")
    empty = tmp_path / "empty"
    empty.mkdir()
    assert main(["download", *argv, "--data-dir", str(empty), "--timeout", "5"]) == 1
    cap = capsys.readouterr()
    assert cap.out == "" and "Traceback" not in cap.err
    assert cap.err.startswith("normlab download: error: Could not download") and named in cap.err
    assert url in cap.err and str(empty) in cap.err and "--data-dir" in cap.err


def test_calls_all_makes_the_lessons_whole_schedule(capsys, data_dir, tmp_path):
    out = tmp_path / "run"
    code, stdout, err = _train(capsys, data_dir, out, "--calls", "all", model="convbnnet")
    assert code == 0, err
    hist = json.loads((out / "history.json").read_text())
    assert [e["epoch"] for e in hist["epochs"]] == [0, 1]  # fit(3e-2, 1), then fit(1e-1, 1, cycle_len=1)
    assert hist["steps"]["lr"][0] == pytest.approx(3e-2) and (out / "checkpoint.call1.pt").exists()
    assert json.loads((out / "config.json").read_text())["calls"] == "all"
    code, _, err = _train(capsys, data_dir, out, "--calls", "all", "--epochs", "2", "--resume", model="convbnnet")
    assert code == 2 and "makes 2 fit calls" in err and "--epochs 1" in err
