"""Training numbers in the goldens, compared at a precision that holds on any x86-64 host.

A golden cell marked with both lines

    # NBVAL_CHECK_OUTPUT
    # NBVAL_APPROX  (...)

is compared line by line and token by token: text exactly (runs of spaces count as one, so a
column that gains a digit still lines up), every number within a tolerance of the golden's. Cells
with only `# NBVAL_CHECK_OUTPUT` stay exact. tests/README.md says how the tolerances were measured.

- Every number: |test - golden| <= REL * |golden| + one unit in the golden's last printed digit
  (a value next to a rounding boundary prints either way).
- Accuracies (a table column whose header contains "acc"): also up to ACC_ABS absolute. An
  accuracy counts examples, and a smoke run's network is near chance, with near-tied logits: a
  host that sums in another order flips one example (0.01 of the 100 smoke test images).
"""
from __future__ import annotations

import copy
import re

MARKER = "# NBVAL_APPROX"
# A number on its own (not the 2 of "cblock2"): sign, digits, decimals, exponent.
NUMBER = re.compile(r"(?<![\w.])([-+]?(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?)(?!\w)")
REL = 1e-3  # see tests/README.md
ACC_ABS = 0.02  # two of the 100 smoke test images (four of the 200 training images)


def is_approx(source: str) -> bool:
    return any(line.strip().startswith(MARKER) for line in source.splitlines())


def last_digit_unit(token: str) -> float:
    """The value of one unit in the last printed digit: '2.3207' -> 1e-4, '7.6e-06' -> 1e-7, '12' -> 1."""
    mantissa, _, exponent = token.lower().partition("e")
    decimals = len(mantissa.split(".")[1]) if "." in mantissa else 0
    return 10.0 ** (int(exponent or 0) - decimals)


def close(test: str, ref: str, column: str | None = None) -> bool:
    diff, allowed = abs(float(test) - float(ref)), REL * abs(float(ref)) + last_digit_unit(ref)
    return diff <= allowed or (column is not None and "acc" in column and diff <= ACC_ABS + 1e-12)


def _header(line: str) -> list[str] | None:
    """The column names of a table header such as '  epoch train_loss  train_acc ...', else None."""
    words = line.split()
    return words if len(words) >= 2 and all(re.fullmatch(r"[A-Za-z_]\w*", w) for w in words) else None


def same_within_tolerance(test: str, ref: str) -> bool:
    t_lines, r_lines = test.split("\n"), ref.split("\n")
    if len(t_lines) != len(r_lines):
        return False
    columns = None
    for t_line, r_line in zip(t_lines, r_lines):
        columns = _header(r_line) or columns
        t, r = NUMBER.split(t_line), NUMBER.split(r_line)  # text, number, text, ..., text
        if len(t) != len(r):
            return False
        numbers = len(r) // 2
        names = columns if columns is not None and len(columns) == numbers else [None] * numbers
        for i, (a, b) in enumerate(zip(t, r)):
            if i % 2:
                if not close(a, b, names[i // 2]):
                    return False
            elif re.sub(r"[ \t]+", " ", a).strip() != re.sub(r"[ \t]+", " ", b).strip():
                return False
    return True


def _texts(out) -> list[tuple[dict, str]]:
    """(container, key) of every text an output holds."""
    if out.get("output_type") == "stream":
        return [(out, "text")]
    data = out.get("data", {})
    return [(data, k) for k in data if k.startswith("text/")]


def snap_to_reference(test: list, ref: list) -> list:
    """A copy of the test outputs in which each text that matches its golden within tolerance is
    replaced by the golden's text; nbval's exact comparison then reports only real differences."""
    test = copy.deepcopy(test)
    for t_out, r_out in zip(test, ref):
        if t_out.get("output_type") != r_out.get("output_type") or t_out.get("name") != r_out.get("name"):
            continue
        for (t_box, key), (r_box, r_key) in zip(_texts(t_out), _texts(r_out)):
            if key == r_key and same_within_tolerance(t_box[key], r_box[r_key]):
                t_box[key] = r_box[r_key]
    return test


def approx_compare(original):
    """A cell's compare_outputs from nbval's: snap, then nbval's own comparison and report."""
    def compare_outputs(test, ref, skip_compare=None):
        return original(snap_to_reference(test, ref), ref, skip_compare)
    return compare_outputs
