"""Score every measured number against what its source reported, on both sides and at the
source's own precision.

    from normlab import book, scoring
    table = scoring.score(book.load_results("book/results"))
    scoring.counts(table)   # {"within the source's precision": 7, "within 1 pt": 10, ...}

Each (results row, reported number) pair is one :class:`Comparison`, in one of five categories:

- **within the source's precision**: the gap is no larger than the reading precision of the
  reported number (``normlab.reported.precision``: half a unit of its last printed digit, or the
  reading error of a plot);
- **within 1 pt**: otherwise within one percentage point (accuracies; other metrics have no such
  margin);
- **above by more** / **below by more**: the measured number is higher / lower by more than that;
- **not comparable**: the source gave no number, the row comes from a smoke run, or the metric is
  a time measured on other hardware.

fast.ai lesson 7 (seed 003) printed fastai 0.7's accuracy: the unweighted mean of the per-batch
accuracies (39 batches of 256 and one of 16), not the share of all 10,000 test images. A chapter
records that "lesson metric" as an extra results row (see :func:`lesson_metric_base`); where one
is present the fast.ai comparisons use it, and where it is absent they use the plain test accuracy
and say that the metric differs.
"""
from __future__ import annotations

import math
import re
from dataclasses import dataclass
from typing import Iterable

from .reported import REPORTED, SOURCES, Reported, precision as reported_precision

__all__ = ["POINT", "WITHIN_PRECISION", "WITHIN_POINT", "ABOVE", "BELOW", "NOT_COMPARABLE", "CATEGORIES",
           "LESSON_METRIC_SOURCES", "METRIC_DIFFERS", "Comparison", "classify", "tolerance_for",
           "lesson_metric_base", "score", "counts", "rows_compared", "seed_values"]

POINT = 0.01  # one percentage point, in the units accuracies are stored in (fractions)

WITHIN_PRECISION = "within the source's precision"
WITHIN_POINT = "within 1 pt"
ABOVE = "above by more"
BELOW = "below by more"
NOT_COMPARABLE = "not comparable"
CATEGORIES = (WITHIN_PRECISION, WITHIN_POINT, ABOVE, BELOW, NOT_COMPARABLE)

# Float differences such as 0.7016 - 0.6916 = 0.010000000000000009 must still count as "exactly
# 1 pt": compare with this much slack (far below any printed digit).
_SLACK = 1e-9

# The sources whose accuracies are fastai 0.7's per-batch means: the lesson notebook, and the blog,
# whose numbers come from a Kaggle run of the same fastai 0.7 notebook (inferred, not stated there).
LESSON_METRIC_SOURCES = ("003-nb", "003-blog")
METRIC_DIFFERS = ("metric differs: the source printed fastai 0.7's mean of per-batch accuracies, "
                  "this is the share of all test images (no lesson-metric row in the results)")
_LESSON_WORDS = re.compile(r"lesson metric|per-batch(?: mean)?|batch[-_ ]mean", re.I)


def _number(what: str, v) -> float:
    if isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v):
        raise ValueError(f"{what} must be a finite number, got {v!r}")
    return float(v)


def classify(measured: float | None, reported: float | None, precision: float | None,
             tolerance: float = POINT) -> str:
    """The category (one of CATEGORIES) of `measured` against `reported`, whose reading precision
    is `precision` (same units); `tolerance` is the "within 1 pt" margin (0: none, for metrics
    that are not accuracies). A gap exactly at either limit counts as inside it. None for either
    number: NOT_COMPARABLE."""
    tol = _number("tolerance", tolerance)
    if tol < 0:
        raise ValueError(f"tolerance must be >= 0 (0.01 = one point of accuracy), got {tolerance!r}")
    if measured is None or reported is None:
        return NOT_COMPARABLE
    gap = _number("measured", measured) - _number("reported", reported)
    prec = _number("precision", precision) if precision is not None else None
    if prec is None or prec < 0:
        raise ValueError(f"precision must be a number >= 0 where a number was reported, got {precision!r}")
    if abs(gap) <= prec + _SLACK:
        return WITHIN_PRECISION
    if abs(gap) <= tol + _SLACK:
        return WITHIN_POINT
    return ABOVE if gap > 0 else BELOW


def tolerance_for(metric: str) -> float:
    """One point for accuracies; no margin beyond the source's precision for other metrics."""
    return POINT if metric.endswith("accuracy") else 0.0


def _strip_marker(text: str) -> str:
    """`text` without its lesson-metric marker: a parenthesis or a ", ..." clause holding it, else
    the marker words themselves."""
    for clause in (r"\s*\([^()]*\)", r"\s*[,;][^,;()]*"):
        for m in re.finditer(clause, text):
            if _LESSON_WORDS.search(m.group(0)):
                return (text[:m.start()] + text[m.end():]).strip()
    return re.sub(r"\s+", " ", _LESSON_WORDS.sub("", text)).strip(" ,;_-")


def lesson_metric_base(experiment: str, metric: str) -> tuple[str, str] | None:
    """(experiment, metric) of the plain row a lesson-metric row stands beside, or None if this
    row is not one. A chapter may mark it in the metric ("test accuracy (lesson metric)", "test
    accuracy, per-batch mean") or in the experiment ("convnet (lesson metric)"); the words
    "lesson metric", "per-batch" and "batch mean" (also "batch_mean") mark it."""
    if _LESSON_WORDS.search(metric):
        return experiment, _strip_marker(metric)
    if _LESSON_WORDS.search(experiment):
        return _strip_marker(experiment), metric
    return None


@dataclass(frozen=True)
class Comparison:
    """One reported number beside the book's measurement of the same thing."""
    chapter: str
    seed: str                 # the source experiment's id, "000".."004"
    experiment: str
    metric: str
    source: str               # a key of normlab.reported.SOURCES
    reported: float | None
    precision: float | None   # the reported number's reading precision, same units
    measured: float
    lesson_metric: bool       # measured is fastai 0.7's mean of per-batch accuracies (a lesson-metric row)
    category: str
    why: str                  # why not comparable, or what differs ("" when nothing)
    full_run: bool
    time_s: float
    epochs: int | None

    @property
    def is_accuracy(self) -> bool:
        return self.metric.endswith("accuracy")

    @property
    def gap(self) -> float | None:
        """measured - reported: percentage points for accuracies, the metric's units otherwise."""
        if self.reported is None:
            return None
        return (100 if self.is_accuracy else 1) * (self.measured - self.reported)

    @property
    def precision_shown(self) -> float | None:
        """The precision in the units of `gap`."""
        return None if self.precision is None else (100 if self.is_accuracy else 1) * self.precision

    @property
    def source_label(self) -> str:
        return SOURCES[self.source][0]


def _reported_for(seed: str, experiment: str, metric: str) -> list[Reported]:
    return [r for r in REPORTED if (r.seed, r.experiment, r.metric) == (seed, experiment, metric)]


def score(results: Iterable) -> list[Comparison]:
    """Every comparison of the chapters' results (``normlab.book.Results``, as load_results gives
    them) with the reported numbers, in chapter, row and source order. Lesson-metric rows are
    used for the LESSON_METRIC_SOURCES comparisons of their plain row and make no row of their own."""
    out = []
    for res in results:
        lesson = {}
        for r in res.rows:
            base = lesson_metric_base(r.experiment, r.metric)
            if base is not None:
                lesson[base] = r
        for r in res.rows:
            if lesson_metric_base(r.experiment, r.metric) is not None:
                continue
            for rep in _reported_for(res.seed, r.experiment, r.metric):
                row, why = r, ""
                if rep.source in LESSON_METRIC_SOURCES and r.metric.endswith("accuracy"):
                    row = lesson.get((r.experiment, r.metric))
                    if row is None:
                        row, why = r, METRIC_DIFFERS
                category = classify(row.measured, rep.value, reported_precision(rep), tolerance_for(r.metric))
                if rep.value is None:
                    why = rep.note or "the source gave no number"
                elif not row.full_run:
                    category, why = NOT_COMPARABLE, "a smoke run (tiny data, one epoch)"
                elif r.metric.startswith("time"):
                    category, why = NOT_COMPARABLE, "a time measured on other hardware"
                out.append(Comparison(res.chapter, res.seed, r.experiment, r.metric, rep.source, rep.value,
                                      reported_precision(rep), row.measured, row is not r, category, why, row.full_run, row.time_s, row.epochs))
    return out


def counts(comparisons: Iterable[Comparison]) -> dict[str, int]:
    """How many comparisons fall in each category (every category listed, zeros included)."""
    n = dict.fromkeys(CATEGORIES, 0)
    for c in comparisons:
        n[c.category] += 1
    return n


def rows_compared(comparisons: Iterable[Comparison]) -> int:
    """How many results rows the comparisons come from (a row may face two sources)."""
    return len({(c.chapter, c.experiment, c.metric) for c in comparisons})


def seed_values(c: Comparison, spread: dict | None) -> list[tuple[int, float]]:
    """(seed, value) of the finished runs at other seeds than the chapter's of `c`'s configuration,
    from a seed-spread file (tools/seed_spread.py), each measured as `c`'s row measures it (the last
    or the best epoch, the lesson metric or the plain accuracy); [] when the file has none."""
    for cfg in (spread or {}).get("configs", {}).values():
        if (cfg["chapter"], cfg["experiment"]) != (c.chapter, c.experiment):
            continue
        key = cfg["measures"].get(f"{c.metric} (lesson metric)" if c.lesson_metric else c.metric)
        return [] if key is None else [(r["seed"], r[key]) for r in cfg.get("runs", [])
                                       if r["status"] == "done" and r["seed"] != cfg["chapter_seed"]
                                       and r.get(key) is not None]
    return []
