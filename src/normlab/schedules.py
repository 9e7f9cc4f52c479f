"""Learning-rate schedules as the seeds used them, each a small object the training loop asks for
the learning rate of every iteration (`lr(it)`, `it` counted from 0 within one fit call).

- Constant: fastai 0.7's `fit(lr, n)`; tairtahar's Adam.
- FastaiSGDR: fastai 0.7's `fit(lr, n, cycle_len=1)`: cosine annealing restarting every cycle,
  after a warm-up at lr/100 for the first nb/20 iterations of the call.
- LinearDecay: prog-eval's `lr = lr0 * (1 - (epoch + i/len(dl)) / epochs)`, set before each step.
- Plateau: erav1s8's ReduceLROnPlateau(patience=0, factor=0.3), stepped on the test loss.
- OneCycle: warm up from lr/div to lr, then anneal to lr/final_div (cosine, as torch's OneCycleLR).
"""
from __future__ import annotations

import math

SCHEDULES = ("constant", "sgdr", "linear", "plateau", "onecycle")


class Schedule:
    """Base: call `setup(total_iters, iters_per_epoch)` once, then `lr(it)` before every step."""
    name = "schedule"

    def __init__(self, lr: float):
        if not (isinstance(lr, (int, float)) and lr > 0 and math.isfinite(lr)):
            raise ValueError(f"learning rate must be a positive finite number, got {lr!r}")
        self.base_lr = float(lr)
        self.total = self.per_epoch = 0

    def setup(self, total_iters: int, iters_per_epoch: int) -> None:
        self.total, self.per_epoch = total_iters, iters_per_epoch

    def lr(self, it: int) -> float:
        raise NotImplementedError

    def epoch_end(self, metrics: dict) -> None:
        """Called after each epoch's evaluation (only Plateau uses it)."""

    def state_dict(self) -> dict:
        return {}

    def load_state_dict(self, state: dict) -> None:
        pass

    def __repr__(self) -> str:
        return f"{type(self).__name__}(lr={self.base_lr:g})"


class Constant(Schedule):
    name = "constant"

    def lr(self, it: int) -> float:
        return self.base_lr


class FastaiSGDR(Schedule):
    """fastai 0.7 CosAnneal with cycle_len epochs per cycle (cycle_mult 1)."""
    name = "sgdr"

    def __init__(self, lr: float, cycle_len: int = 1):
        super().__init__(lr)
        self.cycle_len = cycle_len

    def lr(self, it: int) -> float:
        nb = self.cycle_len * self.per_epoch
        if it < nb / 20:  # fastai 0.7 warms up at lr/100 for the first nb/20 iterations of the call
            return self.base_lr / 100
        return self.base_lr / 2 * (1 + math.cos(math.pi * (it % nb) / nb))


class LinearDecay(Schedule):
    name = "linear"

    def lr(self, it: int) -> float:
        return self.base_lr * (1 - it / self.total)


class OneCycle(Schedule):
    name = "onecycle"

    def __init__(self, lr: float, pct_start: float = 0.25, div: float = 25.0, final_div: float = 1e4):
        super().__init__(lr)
        self.pct_start, self.div, self.final_div = pct_start, div, final_div

    def lr(self, it: int) -> float:
        up = max(1, int(self.pct_start * self.total))
        lo, hi, end = self.base_lr / self.div, self.base_lr, self.base_lr / self.final_div
        if it < up:
            return lo + (hi - lo) * (1 - math.cos(math.pi * it / up)) / 2
        t = (it - up) / max(1, self.total - up)
        return end + (hi - end) * (1 + math.cos(math.pi * t)) / 2


class Plateau(Schedule):
    """torch's ReduceLROnPlateau(mode='min', threshold=1e-4 rel, cooldown 0), on `monitor`."""
    name = "plateau"

    def __init__(self, lr: float, factor: float = 0.3, patience: int = 0, monitor: str = "test_loss",
                 threshold: float = 1e-4, min_lr: float = 0.0):
        super().__init__(lr)
        self.factor, self.patience, self.monitor, self.threshold, self.min_lr = factor, patience, monitor, threshold, min_lr
        self.current, self.best, self.bad = self.base_lr, math.inf, 0
        self.reductions: list[int] = []  # epochs (0-based) after which the lr was reduced

    def lr(self, it: int) -> float:
        return self.current

    def epoch_end(self, metrics: dict) -> None:
        value = metrics[self.monitor]
        if value < self.best * (1 - self.threshold):
            self.best, self.bad = value, 0
        else:
            self.bad += 1
        if self.bad > self.patience:
            new = max(self.current * self.factor, self.min_lr)
            if self.current - new > 1e-8:
                self.current = new
                self.reductions.append(metrics["epoch"])
            self.bad = 0

    def state_dict(self) -> dict:
        return {"current": self.current, "best": self.best, "bad": self.bad, "reductions": list(self.reductions)}

    def load_state_dict(self, state: dict) -> None:
        self.current, self.best, self.bad = state["current"], state["best"], state["bad"]
        self.reductions = list(state["reductions"])


def make_schedule(schedule: str | Schedule, lr: float, **kwargs) -> Schedule:
    """A Schedule from its name (SCHEDULES) or pass one through."""
    if isinstance(schedule, Schedule):
        return schedule
    classes = {c.name: c for c in (Constant, FastaiSGDR, LinearDecay, Plateau, OneCycle)}
    if schedule not in classes:
        raise ValueError(f"unknown schedule {schedule!r}; accepted: {', '.join(SCHEDULES)}")
    return classes[schedule](lr, **kwargs)
