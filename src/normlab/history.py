"""What a training run measured: per epoch and per step, printable as JSON lines and plottable.

Its JSON (``json_line``, and ``to_dict`` as written by ``normlab.files.write_json_atomic``) is
strict: a non-finite number (the loss of a diverged run) is written as null and noted under
"nonfinite" (see ``normlab.files``)."""
from __future__ import annotations

from dataclasses import dataclass, field

from .files import json_line as _strict_line


def _round(v, digits: int = 4):
    return round(v, digits) if isinstance(v, float) else v


@dataclass
class History:
    """Per epoch: train/test loss and accuracy, learning rate, wall time (epoch and cumulative).
    Per step: loss and learning rate. `stopped` holds the divergence message if a run stopped."""
    epochs: list[dict] = field(default_factory=list)
    steps: dict[str, list[float]] = field(default_factory=lambda: {"loss": [], "lr": []})
    stopped: str | None = None
    meta: dict = field(default_factory=dict)

    def __len__(self) -> int:
        return len(self.epochs)

    def __getitem__(self, key: str) -> list:
        """history['test_acc'] -> that metric per epoch."""
        return [e.get(key) for e in self.epochs]

    @property
    def last(self) -> dict:
        return self.epochs[-1] if self.epochs else {}

    def best(self, key: str = "test_acc", mode: str = "max") -> dict:
        pick = max if mode == "max" else min
        return pick((e for e in self.epochs if e.get(key) is not None), key=lambda e: e[key])

    def extend(self, other: "History") -> "History":
        """Append a later fit call (fastai's fit(lr, 2); fit(lr, 2, cycle_len=1) is one history)."""
        offset = len(self.epochs)
        for e in other.epochs:
            self.epochs.append({**e, "epoch": e["epoch"] + offset,
                                "time": e["time"] + (self.epochs[offset - 1]["time"] if offset else 0.0)})
        for k in self.steps:
            self.steps[k].extend(other.steps[k])
        self.stopped = other.stopped or self.stopped
        return self

    def json_line(self, epoch: dict, keys=("epoch", "test_acc", "time"), digits: int = 4) -> str:
        """One line like the prog-eval reference: {"epoch": 0, "test_acc": 0.878, "time": 8.48}.
        Strict JSON: a non-finite value is null, noted as {"nonfinite": ["test_acc: nan"]}."""
        return _strict_line({k: _round(epoch[k], digits) for k in keys if k in epoch})

    def json_lines(self, keys=("epoch", "test_acc", "time"), digits: int = 4) -> str:
        return "\n".join(self.json_line(e, keys, digits) for e in self.epochs)

    def table(self, digits: int = 4) -> str:
        """A fixed-width table of every epoch, metrics rounded (stable across runs at a fixed seed)."""
        val = ["val_loss", "val_acc"] if any("val_acc" in e for e in self.epochs) else []
        cols = ["epoch", "train_loss", "train_acc", *val, "test_loss", "test_acc", "lr"]
        rows = [" ".join(f"{c:>10}" for c in cols)]
        for e in self.epochs:
            rows.append(" ".join(f"{_fmt(e.get(c), digits):>10}" for c in cols))
        return "\n".join(rows)

    def to_dict(self) -> dict:
        return {"epochs": self.epochs, "steps": self.steps, "stopped": self.stopped, "meta": self.meta}

    @classmethod
    def from_dict(cls, d: dict) -> "History":
        return cls([dict(e) for e in d["epochs"]], {k: list(v) for k, v in d["steps"].items()},
                   d.get("stopped"), dict(d.get("meta", {})))

    def plot(self, axes=None, label: str | None = None, smooth: int = 0):
        """Loss per step (and per epoch) and accuracy per epoch, on two axes."""
        from .plots import plot_history

        return plot_history(self, axes=axes, label=label, smooth=smooth)


def _fmt(v, digits: int) -> str:
    if v is None:
        return "-"
    if isinstance(v, float):
        return f"{v:.{digits}g}" if abs(v) < 1e-3 and v != 0 else f"{v:.{digits}f}"
    return str(v)
