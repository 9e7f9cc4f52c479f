"""Tests of normlab.files: atomic writes and strict JSON (no NaN / Infinity tokens, ever)."""
import json
import math
import os

import numpy as np
import pytest

from normlab.files import (MAX_NOTES, NONFINITE_KEY, json_line, strict_json_value, to_strict_json,
                           write_json_atomic, write_text_atomic)
from normlab.history import History


def _no_constant(token):
    raise ValueError(f"not strict JSON: {token}")


def _strict(text: str):
    return json.loads(text, parse_constant=_no_constant)


def test_nonfinite_floats_become_null_with_a_note():
    obj = {"a": 1.5, "b": math.nan, "epochs": [{"epoch": 0, "loss": math.inf}, {"epoch": 1, "loss": -math.inf}],
           "t": (np.float64("nan"), 2)}
    text = to_strict_json(obj, indent=2)
    assert "NaN" not in text and "Infinity" not in text
    d = _strict(text)
    assert d["a"] == 1.5 and d["b"] is None and d["epochs"][0]["loss"] is None and d["t"] == [None, 2]
    assert d[NONFINITE_KEY] == ["b: nan", "epochs[0].loss: inf", "epochs[1].loss: -inf", "t[0]: nan"]
    assert math.isnan(obj["b"]) and NONFINITE_KEY not in obj  # the object given is not modified


def test_finite_objects_are_written_as_json_dumps_writes_them():
    obj = {"epoch": 0, "test_acc": 0.878, "time": 8.48, "nested": [1, {"x": None, "y": "s"}], "ok": True}
    assert to_strict_json(obj) == json.dumps(obj) and json_line(obj) == json.dumps(obj)
    assert to_strict_json(obj, indent=2) == json.dumps(obj, indent=2)
    assert json_line({"epoch": 0, "test_acc": 0.878, "time": 8.48}) == '{"epoch": 0, "test_acc": 0.878, "time": 8.48}'


def test_json_line_is_one_strict_line():
    line = json_line({"epoch": 3, "test_acc": math.nan, "steps": [1.0, math.inf]})
    assert "\n" not in line
    assert _strict(line) == {"epoch": 3, "test_acc": None, "steps": [1.0, None],
                             NONFINITE_KEY: ["test_acc: nan", "steps[1]: inf"]}


def test_notes_are_appended_capped_and_checked():
    d = _strict(to_strict_json({NONFINITE_KEY: ["x: nan"], "y": math.inf}))
    assert d[NONFINITE_KEY] == ["x: nan", "y: inf"]
    with pytest.raises(ValueError, match=NONFINITE_KEY):
        to_strict_json({NONFINITE_KEY: "other", "y": math.nan})
    d = _strict(to_strict_json({"loss": [math.nan] * (MAX_NOTES + 5)}))
    assert len(d[NONFINITE_KEY]) == MAX_NOTES + 1 and d[NONFINITE_KEY][-1] == "... and 5 more"
    assert d["loss"] == [None] * (MAX_NOTES + 5)


def test_top_level_values_that_cannot_hold_the_note_warn():
    with pytest.warns(RuntimeWarning, match=r"\[1\]: nan"):
        assert _strict(to_strict_json([1.0, math.nan])) == [1.0, None]
    with pytest.warns(RuntimeWarning, match=r"\(value\): inf"):
        assert to_strict_json(math.inf) == "null"
    assert strict_json_value({"a": [math.nan]}) == ({"a": [None]}, ["a[0]: nan"])


def test_what_cannot_be_cleaned_raises_instead_of_writing_invalid_json():
    with pytest.raises(ValueError):  # a non-finite dict key: json would write "NaN" as the key
        to_strict_json({math.nan: 1})
    with pytest.raises(TypeError):
        to_strict_json({"x": {1, 2}})


def test_write_json_atomic_is_strict_and_leaves_the_old_file_on_error(tmp_path):
    path = tmp_path / "sub" / "summary.json"
    write_json_atomic(path, {"final_test_loss": math.nan, "acc": 0.5}, indent=2)
    text = path.read_text()
    assert text.endswith("\n") and _strict(text) == {"final_test_loss": None, "acc": 0.5,
                                                     NONFINITE_KEY: ["final_test_loss: nan"]}
    with pytest.raises(TypeError):
        write_json_atomic(path, {"x": object()})
    assert path.read_text() == text
    assert sorted(os.listdir(path.parent)) == ["summary.json"]  # no temporary file left behind
    write_text_atomic(path, "x")
    assert path.read_text() == "x"


def test_history_json_is_strict():
    h = History(epochs=[{"epoch": 0, "test_acc": math.nan, "time": 1.23456, "test_loss": math.inf}])
    assert _strict(h.json_line(h.epochs[0])) == {"epoch": 0, "test_acc": None, "time": 1.2346,
                                                 NONFINITE_KEY: ["test_acc: nan"]}
    assert h.json_lines() == h.json_line(h.epochs[0])
    d = _strict(to_strict_json(h.to_dict()))
    assert d[NONFINITE_KEY] == ["epochs[0].test_acc: nan", "epochs[0].test_loss: inf"]
    assert History.from_dict(d).epochs[0]["test_acc"] is None
