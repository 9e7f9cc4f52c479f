"""tools/seed_spread.py (chapter 9's run-to-run spread), tiny: one epoch on 2 images per class."""
import importlib.util
import json
import sys
from pathlib import Path

import pytest

from normlab import scoring

TOOL = Path(__file__).resolve().parents[1] / "tools" / "seed_spread.py"


@pytest.fixture(scope="module")
def tool():
    spec = importlib.util.spec_from_file_location("seed_spread", TOOL)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # its dataclasses look their module up there
    spec.loader.exec_module(module)
    return module


def strict(path):
    return json.loads(path.read_text(), parse_constant=lambda c: pytest.fail(f"not strict JSON: {c}"))


@pytest.fixture(scope="module")
def spread(tool, data_dir, tmp_path_factory):
    out = tmp_path_factory.mktemp("spread") / "spread.json"
    argv = ["--configs", "convnet2", "erav1s8_batch", "--seeds", "1", "2", "--epochs", "1", "--subset", "2",
            "--data-dir", str(data_dir), "--out", str(out)]
    assert tool.main(argv) == 0
    return out, argv


def test_the_file_has_every_run_and_what_chapter_9_reads(spread):
    doc = strict(spread[0])
    assert doc["full_run"] is False and doc["settings"] == {"epochs": 1, "subset": 2, "device": "cpu"}
    assert set(doc["configs"]) == {"convnet2", "erav1s8_batch"}
    for cfg in doc["configs"].values():
        assert {"chapter", "experiment", "chapter_seed", "measures", "runs"} <= cfg.keys()
        assert [r["seed"] for r in cfg["runs"]] == [1, 2]
        for r in cfg["runs"]:
            assert r["status"] == "done" and r["seconds"] >= 0
            for key in ("test_acc", "test_acc_batch_mean", "best_test_acc", "best_train_acc"):
                assert 0 <= r[key] <= 1, key
    assert doc["configs"]["erav1s8_batch"]["chapter_seed"] == 42
    assert doc["total_seconds"] == pytest.approx(sum(r["seconds"] for c in doc["configs"].values() for r in c["runs"]), abs=0.2)


def test_a_second_call_keeps_the_finished_runs(tool, spread, capsys):
    out, argv = spread
    before = strict(out)["configs"]
    assert tool.main(argv) == 0
    assert "in spread.json already" in capsys.readouterr().out
    assert strict(out)["configs"] == before


def test_chapter_9_finds_the_runs_of_each_comparison(spread):
    from normlab.book import Results, Row

    res = Results("07_normalization_zoo", "002", smoke=False, hardware="CPU",
                  rows=[Row("batch", "test accuracy", 0.7993, "", "CPU", 1.0, True, 20)])
    (c,) = scoring.score([res])
    assert [s for s, _ in scoring.seed_values(c, strict(spread[0]))] == [1, 2]


def test_each_run_is_the_chapters_call_at_another_seed(tool, monkeypatch):
    calls = []

    class Fake:
        status, seconds = "done", 1.0
        history = type("H", (), {"epochs": [{"test_acc": 0.5, "train_acc": 0.4, "test_acc_batch_mean": 0.5}],
                                 "last": {"test_acc": 0.5, "train_acc": 0.4, "test_acc_batch_mean": 0.5},
                                 "best": lambda self, k: {k: 0.5}, "__len__": lambda self: 1})()

    monkeypatch.setattr(tool.runs, "run", lambda name, **kw: calls.append((name, kw)) or Fake())
    a = tool.parse_args([])
    tool.one_run("erav1s8_batch", 3, a)
    tool.one_run("convbnnet2", 1, a)
    (n1, k1), (n2, k2) = calls
    assert (n1, k1["norm"], k1["model_kwargs"], k1["seed"], k1["calls"]) == ("erav1s8", "batch", {"groups": 4, "dropout_sampler": "torch"}, 3, "all")
    assert (n2, k2["norm"], k2["model_kwargs"], k2["seed"], k2["calls"]) == ("convbnnet2", None, None, 1, "all")
    assert k1["epochs"] is None and k1["subset"] is None  # full budgets unless asked


@pytest.mark.parametrize("argv, words", [
    (["--configs", "convnet3"], "unknown configuration(s) 'convnet3'; accepted: convnet, convnet2"),
    (["--seeds", "1", "1"], "--seeds repeats a seed"),
    (["--seeds", "x"], "a seed must be an integer >= 0, got 'x'"),
    (["--epochs", "0"], "--epochs must be a positive integer, got '0'"),
])
def test_bad_arguments_say_what_is_accepted(tool, argv, words, capsys):
    with pytest.raises(SystemExit):
        tool.parse_args(argv)
    assert words in capsys.readouterr().err


def test_the_dry_run_estimates_from_the_chapters_times(tool, capsys):
    assert tool.main(["--dry-run", "--configs", "convnet2", "--seeds", "1", "2"]) == 0
    out = capsys.readouterr().out
    assert "convnet2" in out and "per run x 2" in out and "min in all" in out


def test_a_file_made_with_other_settings_is_refused_not_replaced(tool, tmp_path):
    seed_spread = tool
    out = tmp_path / "spread.json"
    out.write_text(json.dumps({"settings": {"epochs": 1, "subset": 5, "device": "cpu"}, "configs": {"x": {}}}))
    with pytest.raises(SystemExit, match="other settings"):
        seed_spread.load_previous(out, {"epochs": None, "subset": None, "device": "cpu"})
    assert json.loads(out.read_text())["configs"] == {"x": {}}
    assert seed_spread.load_previous(out, {"epochs": None, "subset": None, "device": "cpu"}, force=True) == {}
