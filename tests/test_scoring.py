"""normlab.scoring: two-sided categories at the source's precision, and the table from results files."""
import math
from pathlib import Path

import pytest

from normlab import book, reported, scoring
from normlab.book import Results, Row
from normlab.scoring import ABOVE, BELOW, NOT_COMPARABLE, WITHIN_POINT, WITHIN_PRECISION

RESULTS = Path(__file__).resolve().parents[1] / "book" / "results"


# ------------------------------------------------------------------------------- classify
@pytest.mark.parametrize("measured, rep, prec, expected", [
    (0.5000, 0.5000, 0.00005, WITHIN_PRECISION),
    (0.9683, 0.967, 0.003, WITHIN_PRECISION),     # a plot reading, +-0.3 pt
    (0.9700, 0.967, 0.003, WITHIN_PRECISION),     # exactly at the reading precision
    (0.9701, 0.967, 0.003, WITHIN_POINT),         # just past it
    (0.7016 - 0.01, 0.7016, 0.00005, WITHIN_POINT),  # exactly 1 pt below (float 0.010000000000000009)
    (0.7016 + 0.01, 0.7016, 0.00005, WITHIN_POINT),  # exactly 1 pt above
    (0.6903, 0.7016, 0.00005, BELOW),             # -1.13 pt
    (0.5612, 0.51787, 0.000005, ABOVE),           # +4.33 pt
    (0.6461, 0.64609, 0.000005, WITHIN_POINT),    # 0.001 pt: outside five printed decimals, inside a point
    (None, 0.5, 0.00005, NOT_COMPARABLE),
    (0.5, None, None, NOT_COMPARABLE),            # the source gave no number
])
def test_classify(measured, rep, prec, expected):
    assert scoring.classify(measured, rep, prec) == expected


def test_a_precision_wider_than_a_point_still_counts_as_within_precision():
    assert scoring.classify(0.515, 0.5, 0.02) == WITHIN_PRECISION


def test_other_metrics_have_no_point_of_margin():
    assert scoring.classify(68.0, 68, 0.5, tolerance=0) == WITHIN_PRECISION
    assert scoring.classify(69.0, 68, 0.5, tolerance=0) == ABOVE
    assert scoring.tolerance_for("pixels") == 0 and scoring.tolerance_for("train accuracy") == scoring.POINT


@pytest.mark.parametrize("kwargs, words", [
    (dict(measured=float("nan"), reported=0.5, precision=0.1), "measured must be a finite number, got nan"),
    (dict(measured="0.5", reported=0.5, precision=0.1), "measured must be a finite number, got '0.5'"),
    (dict(measured=True, reported=0.5, precision=0.1), "measured must be a finite number, got True"),
    (dict(measured=0.5, reported=math.inf, precision=0.1), "reported must be a finite number, got inf"),
    (dict(measured=0.5, reported=0.5, precision=None), "precision must be a number >= 0"),
    (dict(measured=0.5, reported=0.5, precision=-0.1), "precision must be a number >= 0 where a number was reported, got -0.1"),
    (dict(measured=0.5, reported=0.5, precision=0.1, tolerance=-1), "tolerance must be >= 0"),
])
def test_bad_input_names_the_value_and_what_is_accepted(kwargs, words):
    with pytest.raises(ValueError, match=words.replace("(", r"\(").replace(")", r"\)")):
        scoring.classify(**kwargs)


# ------------------------------------------------------------------------------- precision of sources
def test_every_reported_number_has_a_reading_precision():
    for r in reported.REPORTED:
        p = reported.precision(r)
        assert (p is None) == (r.value is None), r
    blog_664 = next(r for r in reported.REPORTED if r.experiment == "convbnnet2" and r.source == "003-blog")
    assert reported.precision(blog_664) == 0.0005  # "~66.4 %": one decimal
    plot = next(r for r in reported.REPORTED if r.source == "001-plot")
    assert reported.precision(plot) == 0.003


def test_an_unknown_source_has_no_precision_and_says_so():
    with pytest.raises(ValueError, match="no reading precision for source 'x'; known: "):
        reported.precision(reported.Reported("003", "convnet", "test accuracy", 0.5, "x"))


# ------------------------------------------------------------------------------- the table
def _row(experiment, measured, metric="test accuracy", full_run=True):
    return Row(experiment, metric, measured, "", "CPU", 1.0, full_run, 4)


def test_the_committed_results_give_24_numbers_in_20_rows_and_counts_that_add_up():
    table = scoring.score(book.load_results(RESULTS))
    numbers = [c for c in table if c.reported is not None]
    assert len(numbers) == 24 and scoring.rows_compared(table) == 20
    assert sum(scoring.counts(table).values()) == len(table) == 25
    assert [c.experiment for c in table if c.reported is None] == ["convnet2"]


def test_fastai_rows_use_the_lesson_metric_row_when_there_is_one():
    res = Results("02_convnets", "003", smoke=False, hardware="CPU",
                  rows=[_row("convnet", 0.5882), _row("convnet", 0.5990, "test accuracy (lesson metric)")])
    table = scoring.score([res])
    assert [(c.source, c.measured, c.lesson_metric, c.why) for c in table] == [
        ("003-blog", 0.5990, True, ""), ("003-nb", 0.5990, True, "")]
    assert table[1].category == WITHIN_POINT  # 59.90 against 59.922


def test_without_a_lesson_metric_row_the_comparison_says_the_metric_differs():
    table = scoring.score([Results("02_convnets", "003", smoke=False, hardware="CPU", rows=[_row("convnet", 0.5882)])])
    assert all(c.why == scoring.METRIC_DIFFERS and not c.lesson_metric for c in table)
    assert [c.category for c in table] == [WITHIN_POINT, BELOW]


@pytest.mark.parametrize("experiment, metric", [
    ("convnet", "test accuracy (lesson metric)"), ("convnet", "test accuracy, per-batch mean"),
    ("convnet (lesson metric)", "test accuracy"), ("convnet", "test accuracy (fastai's per-batch mean)"),
])
def test_the_lesson_metric_row_may_be_marked_in_the_metric_or_the_experiment(experiment, metric):
    assert scoring.lesson_metric_base(experiment, metric) == ("convnet", "test accuracy")
    assert scoring.lesson_metric_base("convnet", "test accuracy") is None


def test_smoke_rows_times_and_missing_numbers_are_not_comparable():
    table = scoring.score([
        Results("02_convnets", "003", smoke=True, hardware="CPU", rows=[_row("convnet2", 0.1, full_run=False)]),
        Results("08_resnet_spec", "004", smoke=False, hardware="CPU", rows=[_row("resnet_spec", 40.27, "time (s)")]),
    ])
    assert [(c.source, c.category) for c in table] == [
        ("003-blog", NOT_COMPARABLE), ("003-nb", NOT_COMPARABLE), ("004-readme", NOT_COMPARABLE)]
    assert "no number" in table[0].why and "smoke run" in table[1].why and "other hardware" in table[2].why
    assert table[2].gap == 0 and table[0].gap is None


def test_gap_is_in_points_for_accuracies():
    (c,) = scoring.score([Results("07_normalization_zoo", "002", smoke=False, hardware="CPU",
                                  rows=[_row("batch", 0.7993)])])
    assert c.gap == pytest.approx(1.80) and c.precision_shown == pytest.approx(0.005) and c.category == ABOVE
    assert c.source_label == "S8 notebook"


# ------------------------------------------------------------------------------- the seed spread
def test_seed_values_read_the_key_the_row_measures_and_skip_the_chapters_seed():
    spread = {"configs": {"erav1s8_batch": {
        "chapter": "07_normalization_zoo", "experiment": "batch", "chapter_seed": 42,
        "measures": {"test accuracy": "best_test_acc", "train accuracy": "best_train_acc"},
        "runs": [{"seed": 1, "status": "done", "best_test_acc": 0.79, "best_train_acc": 0.75},
                 {"seed": 42, "status": "done", "best_test_acc": 0.7993, "best_train_acc": 0.76},
                 {"seed": 2, "status": "diverged", "best_test_acc": 0.1, "best_train_acc": 0.1}]}}}
    res = Results("07_normalization_zoo", "002", smoke=False, hardware="CPU",
                  rows=[_row("batch", 0.7993), _row("batch", 0.7634, "train accuracy"), _row("layer", 0.71)])
    test, train, layer = scoring.score([res])
    assert scoring.seed_values(test, spread) == [(1, 0.79)]
    assert scoring.seed_values(train, spread) == [(1, 0.75)]
    assert scoring.seed_values(layer, spread) == [] and scoring.seed_values(test, None) == []
