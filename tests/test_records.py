"""normlab.records: runs recorded once and reused, with their callbacks' states and their weights;
the time a chapter's full budget costs; the committed checkpoints reproduce their test accuracy."""
import functools
import json
import random
from pathlib import Path

import pytest
import torch

from normlab import devices, models, recipes, records, runs, train
from normlab.learner import evaluate

REPO = Path(__file__).resolve().parents[1]
TINY = dict(subset=10, test_subset=10, device="cpu", progress=False)
CHAPTER = "99_recorded"
FIELDS = {"format", "chapter", "key", "label", "identity", "settings", "history", "history_nonfinite", "summary",
          "status", "seconds", "call_seconds", "host", "threads", "torch", "normlab", "date", "session", "smoke",
          "callbacks", "rng", "checkpoint"}


def strict(path: Path) -> dict:
    """The file parsed as RFC 8259 JSON (NaN / Infinity rejected)."""
    def refuse(token):
        raise ValueError(f"{path}: non-strict JSON token {token}")
    return json.loads(path.read_text(), parse_constant=refuse)


class LossLog:
    """A recording callback as chapters write them: collects each step's loss, keeps state."""

    def __init__(self):
        self.losses = []

    def after_step(self, loss=None, **_):
        self.losses.append(float(loss))

    def state(self) -> dict:
        return {"losses": self.losses + [float("nan")]}  # a NaN, as a diverged step would give

    def load_state(self, state: dict) -> None:
        self.losses = [float("nan") if v is None else v for v in state["losses"]][:-1]


class Silent:
    def after_step(self, **_):
        pass


@pytest.fixture(scope="module")
def recorded(data_dir, tmp_path_factory):
    """One tiny run of the lesson's two calls, recorded with a callback and its weights (float32)."""
    folder = tmp_path_factory.mktemp("results")
    log = LossLog()
    with records.recording(CHAPTER, folder):
        r = runs.run("simplenet", epochs=1, data_dir=data_dir, callbacks=[log], keep_model="float32",
                     label="SimpleNet, tiny", **TINY)
    r.random_after = (torch.get_rng_state(), random.getstate(), r.data.train.generator.get_state(),
                      r.data.train.channels_last)
    return folder, r, log


def reuse(folder, data_dir, **kw):
    with records.recording(CHAPTER, folder, reuse=True):
        return runs.run("simplenet", epochs=1, data_dir=data_dir, **{**TINY, "label": "SimpleNet, tiny", **kw})


def test_a_record_holds_every_field_as_strict_json(recorded):
    folder, r, log = recorded
    assert r.record == folder / "runs" / CHAPTER / f"{r.record.stem}.json" and r.record.stem.startswith("simplenet-tiny-")
    d = strict(r.record)
    assert FIELDS <= set(d), FIELDS - set(d)
    assert d["history"] == json.loads(json.dumps(r.history.to_dict())) and d["summary"] == r.summary()
    assert d["settings"] == r.settings and d["seconds"] == r.seconds and d["call_seconds"] == r.call_seconds
    assert d["host"] == devices.describe_device("cpu") and d["torch"] == torch.__version__ and not d["smoke"]
    assert d["identity"]["calls"] == [[0.01, 1, "constant"], [0.01, 1, "sgdr"]]
    assert d["callbacks"] == [{"type": "LossLog", "state": {"losses": log.losses + [None]}}]
    assert d["checkpoint"]["dtype"] == "float32" and (r.record.parent / d["checkpoint"]["file"]).exists()


def test_reuse_returns_the_recorded_run_without_training_or_data(recorded, data_dir, monkeypatch, capsys):
    folder, r, _ = recorded
    monkeypatch.setattr(train, "fit", lambda *a, **k: pytest.fail("a reused run trained"))
    built = []
    real = runs.make_loaders
    monkeypatch.setattr(runs, "make_loaders", lambda *a, **k: built.append(1) or real(*a, **k))
    q = reuse(folder, data_dir, callbacks=[LossLog()])
    assert q.history.to_dict() == r.history.to_dict() and q.summary() == r.summary()
    assert q.settings == r.settings and q.seconds == r.seconds and q.call_seconds == r.call_seconds
    assert "SimpleNet, tiny: reused its record" in capsys.readouterr().out
    assert built == [], "a reused run given no data builds none until .data is used"
    assert len(q.data.test.data) == 100 and built == [1]
    assert train.state_hash(q.model) == train.state_hash(r.model)


def test_reuse_leaves_the_random_state_that_training_left(recorded, data_dir):
    """The cells after a run draw the same batches and dropout masks whether it trained or was reused."""
    folder, r, _ = recorded
    torch.manual_seed(123)
    random.seed(123)
    q = reuse(folder, data_dir)
    torch_state, python_state, batches, channels_last = r.random_after
    assert torch.equal(torch.get_rng_state(), torch_state) and random.getstate() == python_state
    assert torch.equal(q.data.train.generator.get_state(), batches) and q.data.train.channels_last == channels_last


def test_other_settings_find_no_record_and_say_how_to_train(recorded, data_dir, tmp_path):
    folder, _, _ = recorded
    with pytest.raises(records.RecordError, match=r"(?s)set REUSE = False to train it.*simplenet-tiny-\w+ has the "
                                                  r"same name and differs in: calls"):
        reuse(folder, data_dir, lr=0.02)
    with pytest.raises(records.RecordError, match="no records of this chapter yet"):
        reuse(tmp_path, data_dir)


def test_callback_states_come_back_and_missing_ones_are_errors(recorded, data_dir):
    folder, _, log = recorded
    back = LossLog()
    reuse(folder, data_dir, callbacks=[back])
    assert back.losses == log.losses and len(back.losses) == 2
    with pytest.warns(RuntimeWarning, match=r"callbacks\[0\] \(Silent\) has no state\(\)/load_state\(\)"):
        reuse(folder, data_dir, callbacks=[Silent()])
    with pytest.raises(records.RecordError, match=r"no state for callbacks\[1\] \(LossLog\)"):
        reuse(folder, data_dir, callbacks=[LossLog(), LossLog()])


def test_a_checkpoint_reproduces_the_recorded_test_accuracy(recorded, data_dir):
    folder, r, _ = recorded
    q = reuse(folder, data_dir)
    assert evaluate(q.model, q.data.test)["acc"] == r.history.last["test_acc"]  # float32: exactly
    half = records.save_weights(r.model, folder / "half.pt", "float16")
    assert half["dtype"] == "float16" and half["bytes"] < 0.6 * strict(r.record)["checkpoint"]["bytes"]
    model = records.load_weights(models.build_model("simplenet"), folder / "half.pt")
    assert abs(evaluate(model, q.data.test)["acc"] - r.history.last["test_acc"]) <= records.FP16_ACC_TOLERANCE
    assert next(model.parameters()).dtype == torch.float32


def test_float16_keeps_in_float32_what_it_cannot_hold(tmp_path):
    net = torch.nn.Sequential(torch.nn.Linear(8, 8), torch.nn.Linear(8, 8), torch.nn.Linear(8, 8))
    with torch.no_grad():
        net[0].weight.fill_(1e6)       # beyond float16's 65504
        net[1].bias.uniform_(-1e-6, 1e-6)  # below its normal range: few digits left
    info = records.save_weights(net, tmp_path / "w.pt", "float16")
    assert info["float32_tensors"] == ["0.weight", "1.bias"]
    back = records.load_weights(torch.nn.Sequential(*(torch.nn.Linear(8, 8) for _ in range(3))), tmp_path / "w.pt")
    assert torch.equal(back[0].weight, net[0].weight) and torch.equal(back[1].bias, net[1].bias)
    assert torch.allclose(back[2].weight, net[2].weight, rtol=2 ** -11, atol=0)
    assert records.CHECKPOINT_DTYPE == "float32" and records.save_weights(net, tmp_path / "x.pt", "float32")["float32_tensors"] == []
    with pytest.raises(ValueError, match="checkpoint dtype 'bfloat16'; accepted: float32, float16"):
        records.save_weights(net, tmp_path / "x.pt", "bfloat16")


def test_a_measure_of_the_trained_model_is_kept_instead_of_the_model(data_dir, tmp_path):
    plain = recipes.make_loaders(recipes.get_recipe("simplenet").replace(augment=None), data_dir=data_dir,
                                 device="cpu", subset=10, test_subset=10)

    def measure():  # a tuple, a NaN and a dict keyed by ints (evaluation batch size -> accuracy)
        return records.Measure(lambda model: (train.evaluate(model, plain.train)["acc"], float("nan"),
                                              {"by size": train.accuracy_by_batch_size(model, plain.test, [2, 5])}))

    with records.recording(CHAPTER, tmp_path):
        m = measure()
        r = runs.run("simplenet", calls="main", epochs=1, data_dir=data_dir, callbacks=[m], **TINY)
    assert m.value[0] == train.evaluate(r.model, plain.train)["acc"]
    with records.recording(CHAPTER, tmp_path, reuse=True):
        back = measure()
        runs.run("simplenet", calls="main", epochs=1, data_dir=data_dir, callbacks=[back], **TINY)
    assert back.value == [m.value[0], None, m.value[2]], "a tuple comes back as a list, a NaN as None"
    assert list(back.value[2]["by size"]) == [2, 5], "int keys come back as ints, in their order"


def test_a_measure_keeps_int_keys_through_strict_json():
    import json
    from normlab.files import to_strict_json
    value = {"modes": {"batch": {1: 0.1, 64: 0.98}, "running": {2: [0.5, {3: 4}]}}, "pair": (1, 2), "empty": {}}
    m = records.Measure(None)
    m.value = value
    back = records.Measure(None)
    back.load_state(json.loads(to_strict_json(m.state())))
    assert back.value == {"modes": {"batch": {1: 0.1, 64: 0.98}, "running": {2: [0.5, {3: 4}]}}, "pair": [1, 2],
                          "empty": {}}
    assert list(back.value["modes"]["batch"]) == [1, 64]


def test_a_reused_run_without_weights_says_so_when_its_model_is_used(data_dir, tmp_path):
    with records.recording(CHAPTER, tmp_path):
        runs.run("simplenet", calls="main", epochs=1, data_dir=data_dir, **TINY)
    with records.recording(CHAPTER, tmp_path, reuse=True):
        q = runs.run("simplenet", calls="main", epochs=1, data_dir=data_dir, **TINY)
    with pytest.raises(RuntimeError, match="was not kept .* keep_model=True"):
        q.model.eval()


def test_nothing_is_overwritten_across_configurations(data_dir, tmp_path, monkeypatch):
    with records.recording(CHAPTER, tmp_path):
        a = runs.run("simplenet", calls="main", epochs=1, data_dir=data_dir, **TINY)
        b = runs.run("simplenet", calls="main", epochs=1, lr=0.02, data_dir=data_dir, **TINY)
        assert a.record != b.record and a.record.exists() and b.record.exists()
        again = runs.run("simplenet", calls="main", epochs=1, data_dir=data_dir, **TINY)
        assert again.record == a.record, "the same configuration rewrites its own record (a re-render)"
        # a file under a key that holds something else is never replaced, and nothing trains
        edited = strict(a.record)
        edited["identity"]["seed"] = 7
        text = json.dumps(edited)
        a.record.write_text(text)
        monkeypatch.setattr(train, "fit", lambda *a, **k: pytest.fail("trained before refusing"))
        with pytest.raises(FileExistsError, match="holds another configuration under the same key; it is not overwritten"):
            runs.run("simplenet", calls="main", epochs=1, data_dir=data_dir, **TINY)
        assert a.record.read_text() == text
        b.record.unlink()
        b.record.with_suffix(".pt").write_bytes(b"someone's file")
        with pytest.raises(FileExistsError, match="exists without its record"):
            runs.run("simplenet", calls="main", epochs=1, lr=0.02, data_dir=data_dir, **TINY)


@pytest.mark.parametrize("name, built", [("erav1s8", {"source": "registry", "revision": 1}),
                                         ("simplenet", {"source": "registry"})])
def test_a_models_registry_revision_is_in_its_runs_identity_where_non_zero(name, built, tmp_path):
    """erav1s8's default dropout sampler changed (revision 1): its records made before are not
    reused for it; every other model's identity, and so its key, is what it was."""
    assert models.MODELS[name].revision == built.get("revision", 0)
    with records.recording(CHAPTER, tmp_path, reuse=True), pytest.raises(records.RecordError) as e:
        runs.run(name, epochs=1, **TINY)
    ident = json.loads(str(e.value).split("Its settings: ", 1)[1].split("\n", 1)[0])
    assert ident["built"] == built and ident["model"] == name


def test_non_finite_numbers_come_back_exactly(data_dir, tmp_path):
    """Strict JSON writes NaN and infinities as null; the record lists where they were, every one."""
    with records.recording(CHAPTER, tmp_path) as ctx:
        r = runs.run("simplenet", calls="main", epochs=1, data_dir=data_dir, **TINY)
        d = strict(r.record)
        r.history.steps["loss"][:2] = [float("nan"), float("-inf")]
        r.history.epochs[0]["test_loss"] = float("inf")
        records.write(ctx, d["key"], d["identity"], r, host=d["host"])
    d = strict(r.record)
    assert d["history"]["steps"]["loss"][:2] == [None, None] and d["history"]["epochs"][0]["test_loss"] is None
    assert d["history_nonfinite"] == [[["epochs", 0, "test_loss"], "inf"], [["steps", "loss", 0], "nan"],
                                      [["steps", "loss", 1], "-inf"]]
    with records.recording(CHAPTER, tmp_path, reuse=True):
        back = runs.run("simplenet", calls="main", epochs=1, data_dir=data_dir, **TINY)
    assert repr(back.history.to_dict()) == repr(r.history.to_dict())


def test_keep_model_and_setup_errors_name_the_value(data_dir):
    with pytest.raises(ValueError, match=r"keep_model='half'; accepted: False, True, 'float32', 'float16'"):
        runs.run("simplenet", keep_model="half", data_dir=data_dir, **TINY)
    with pytest.raises(ValueError, match="keep_model=True keeps the weights beside the run's record"):
        runs.run("simplenet", keep_model=True, data_dir=data_dir, **TINY)
    with pytest.raises(ValueError, match="chapter must be a file stem"):
        records.start("../07", "results")
    with pytest.raises(ValueError, match="results_dir is required"):
        records.start("07_normalization_zoo", None)


def test_a_run_left_out_of_the_context_trains_and_is_not_recorded(data_dir, tmp_path):
    with records.recording(CHAPTER, tmp_path, reuse=True):
        r = runs.run("simplenet", calls="main", epochs=1, data_dir=data_dir, record=False, **TINY)
    assert r.record is None and len(r.history) == 1 and not (tmp_path / "runs").exists()


# ----------------------------------------------------------------------------- the estimate
def test_the_estimate_with_and_without_records(recorded, tmp_path):
    folder, r, _ = recorded
    assert "no recorded full-budget runs yet" in records.estimate(CHAPTER, "cpu", folder=tmp_path)
    text = records.estimate(CHAPTER, "cpu", folder=folder)
    assert text.startswith("Full budget: about ") and f"on {devices.describe_device('cpu')}" in text
    assert "this machine is the same hardware" in text and "REUSE = True redraws" in text
    # records made elsewhere: said so, no scaling guessed; an older session and smoke runs are left out
    other = tmp_path / "runs" / CHAPTER
    other.mkdir(parents=True)
    d = strict(r.record)
    for name, host, session, smoke, seconds in (("a", "GPU Tesla T4", "2", False, 600.0), ("b", "GPU Tesla T4", "2", False, 900.0),
                                                ("old", "GPU Tesla T4", "1", False, 1e5), ("smoke", "GPU Tesla T4", "3", True, 1e5)):
        (other / f"{name}.json").write_text(json.dumps({**d, "key": name, "host": host, "session": session,
                                                        "smoke": smoke, "seconds": seconds}))
    text = records.estimate(CHAPTER, "cpu", folder=tmp_path)
    assert "about 25 min of training (2 runs) on GPU Tesla T4" in text
    assert f"this machine ({devices.describe_device('cpu')}) is not, so its time will differ (no scaling is guessed)" in text
    assert records.stale(tmp_path, CHAPTER) == [other / "old.json", other / "smoke.json"]


# ----------------------------------------------------------------------------- the committed records
def committed_checkpoints() -> list[Path]:
    base = REPO / "book" / "results" / records.RUNS
    return sorted(p for p in base.glob("*/*.json") if json.loads(p.read_text()).get("checkpoint"))


def test_the_committed_checkpoints_fit_the_budget():
    assert records.check_checkpoint_budget(REPO / "book" / "results") <= records.CHECKPOINT_BUDGET


@functools.lru_cache(maxsize=4)
def loaders(model: str, data_dir: str, seed: int, subset, test_subset):
    """A recipe's data, loaded once for all the checkpoints that need it (read-only here)."""
    return recipes.make_loaders(recipes.get_recipe(model), data_dir=data_dir, device="cpu", seed=seed, subset=subset,
                                test_subset=test_subset)


def reproduces_its_test_accuracy(path: Path, data_dir) -> None:
    """A checkpoint's weights, loaded into the model its record names, classify the run's test set
    (rebuilt from the record, at the recorded test batch size) as the run did: float32 within one
    image, float16 within records.FP16_ACC_TOLERANCE."""
    rec = records.read(path)
    ident = rec["identity"]
    if ident["built"]["source"] != "registry":
        pytest.skip(f"{path.name}: the model was built by the chapter ({ident['built']}), not by normlab.models")
    data = ident["data"]
    if "labels" in data:  # the run was given ready data: rebuild the data it was evaluated on
        # a chapter builds its shared data with its SEED, which may not be this run's (a second seed
        # trained on the same data): try the seeds of the chapter's records, the labels' hash decides
        same = ("labels", "test", "mean", "std", "test_augment")
        seeds = dict.fromkeys([ident["seed"], *sorted(records.read(p)["identity"]["seed"]
                                                       for p in path.parent.glob("*.json"))])
        dl = next((dl for seed in seeds
                   for dl in [loaders(ident["model"], str(data_dir), seed, None, None)]
                   if {k: records.data_identity(dl)[k] for k in same} == {k: data[k] for k in same}), None)
        assert dl is not None, (f"{path.name}: no seed of the chapter's runs ({list(seeds)}) rebuilds the run's "
                                "test data (a subset? then it cannot be rebuilt)")
        test = dl.test.with_batch_size(data["test_batch_size"])
    else:
        dl = loaders(ident["model"], str(data_dir), data.get("data_seed", ident["seed"]), data.get("subset"),
                     data.get("test_subset"))
        test = dl.test
    kwargs = {**({"norm": ident["norm"]} if ident["norm"] is not None else {}), **ident["model_kwargs"]}
    model = records.load_weights(models.build_model(ident["model"], **kwargs), path.with_name(rec["checkpoint"]["file"]))
    acc = evaluate(model, test)["acc"]
    tolerance = records.FP16_ACC_TOLERANCE if rec["checkpoint"]["dtype"] == "float16" else 1 / len(test.data)
    assert abs(acc - rec["history"]["epochs"][-1]["test_acc"]) <= tolerance, (path.name, acc)


def test_the_checkpoint_check_on_runs_recorded_here(recorded, data_dir, tmp_path):
    reproduces_its_test_accuracy(recorded[1].record, data_dir)
    dl = recipes.make_loaders(recipes.get_recipe("convbnnet"), data_dir=data_dir, device="cpu")
    with records.recording(CHAPTER, tmp_path):  # ready, full data; float16
        r = runs.run("simplenet", data=dl, calls="main", epochs=1, lr=1e-3, keep_model="float16", progress=False)
    assert strict(r.record)["checkpoint"]["dtype"] == "float16"
    reproduces_its_test_accuracy(r.record, data_dir)


@pytest.mark.parametrize("path", committed_checkpoints(), ids=lambda p: f"{p.parent.name}/{p.stem}")
def test_a_committed_checkpoint_reproduces_its_test_accuracy(path, data_dir):
    reproduces_its_test_accuracy(path, data_dir)


# ----------------------------------------------------------------------------- the chapters' tools
def test_the_install_cell_of_a_chapter_that_trains_prints_its_estimate(tmp_path, monkeypatch, capsys):
    import sys

    sys.path.insert(0, str(REPO / "tools"))
    import notebooks

    cell = notebooks.install_cell("07_normalization_zoo")
    assert cell.startswith(notebooks.install_cell()) and cell.endswith('print(records.estimate("07_normalization_zoo"))')
    exec(notebooks.ESTIMATE_LINES.format(chapter="99_nothing_recorded"), {})
    assert "99_nothing_recorded: no recorded full-budget runs yet" in capsys.readouterr().out
    monkeypatch.setattr(notebooks, "TEXT", tmp_path)
    header = (REPO / "chapters" / "01_fully_connected.md").read_text().split("---\n", 2)[1].join(["---\n", "---\n"])
    for stem, params, code in (("01_a", "SMOKE = False\nREUSE = False\n", "run = runs.run('simplenet')"),
                               ("02_b", "SMOKE = False\n", "run = runs.run('simplenet')"),
                               ("09_c", "SMOKE = False\n", "book.load_results(RESULTS_DIR)")):
        (tmp_path / f"{stem}.md").write_text(f"{header}\n```{{code-cell}} ipython3\n:tags: [parameters]\n\n{params}```\n\n"
                                             f"```{{code-cell}} ipython3\n{code}\n```\n")
    assert notebooks.has_reuse_parameter(tmp_path / "01_a.ipynb") and not notebooks.has_reuse_parameter(tmp_path / "02_b.ipynb")
    assert notebooks.trains(tmp_path / "01_a.ipynb")
    with pytest.raises(SystemExit, match="no REUSE parameter in 02_b: add `REUSE = False`"):
        notebooks._need_reuse_parameter([tmp_path / f"{stem}.ipynb" for stem in ("01_a", "02_b", "09_c")])
    notebooks._need_reuse_parameter([tmp_path / "01_a.ipynb", tmp_path / "09_c.ipynb"])  # 09 trains nothing


def test_a_state_that_is_not_json_writes_nothing(data_dir, tmp_path):
    class Opaque(LossLog):
        def state(self):
            return {"model": torch.nn.Linear(1, 1)}

    with records.recording(CHAPTER, tmp_path):
        with pytest.raises(TypeError):
            runs.run("simplenet", calls="main", epochs=1, data_dir=data_dir, callbacks=[Opaque()], keep_model=True, **TINY)
    assert not [p for p in tmp_path.rglob("*") if p.is_file()], "neither a record nor weights"


def test_a_reused_conv_net_comes_back_in_the_memory_layout_it_trained_in(data_dir, tmp_path):
    """fit() trains conv nets in channels_last on the CPU; a reloaded NCHW model would evaluate the
    channels_last batches several times slower."""
    with records.recording(CHAPTER, tmp_path):
        trained = runs.run("convnet", epochs=1, calls="main", data_dir=data_dir, keep_model=True, **TINY)
    with records.recording(CHAPTER, tmp_path, reuse=True):
        q = runs.run("convnet", epochs=1, calls="main", data_dir=data_dir, keep_model=True, **TINY)
    conv = next(m for m in q.model.modules() if isinstance(m, torch.nn.Conv2d))
    assert q.data.test.channels_last and conv.weight.is_contiguous(memory_format=torch.channels_last)
    assert evaluate(q.model, q.data.test)["acc"] == trained.history.last["test_acc"]


def test_a_redrawn_results_table_names_the_recorded_hardware(recorded, data_dir, monkeypatch):
    from normlab import book
    folder, r, _ = recorded
    host = strict(r.record)["host"]
    monkeypatch.setattr(book, "describe_device", lambda device="auto": "a reader's laptop")
    with records.recording(CHAPTER, folder, reuse=True):
        table = book.Results(CHAPTER, "003", smoke=True)
        q = runs.run("simplenet", epochs=1, data_dir=data_dir, callbacks=[LossLog()],
                     **{**TINY, "label": "SimpleNet, tiny"})
        row = table.add("simplenet", q.history.last["test_acc"], q.seconds)
    assert row.hardware == f"{host} (recorded)"
    assert book.Results(CHAPTER, "003", smoke=True).add("simplenet", 0.5, 1.0).hardware == "a reader's laptop"
