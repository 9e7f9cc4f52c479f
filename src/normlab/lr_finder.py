"""fastai 0.7's learning-rate finder: raise the lr exponentially batch by batch, record the
smoothed loss, stop when it diverges, then put the weights back."""
from __future__ import annotations

import copy
import math
from dataclasses import dataclass, field

import torch
import torch.nn as nn
import torch.nn.functional as F

from .data import Loaders
from .learner import CancelFit, Learner, MixedPrecision
from .precision import choose_precision
from .schedules import Schedule
from .train import make_optimizer


@dataclass
class LRFinderResult:
    lrs: list[float] = field(default_factory=list)
    losses: list[float] = field(default_factory=list)      # smoothed, debiased (as fastai plots them)
    raw_losses: list[float] = field(default_factory=list)
    stopped_early: bool = False

    def suggestion(self, skip_start: int = 10, skip_end: int = 5) -> float:
        """The lr of the steepest descent of the smoothed loss (a common reading of the plot)."""
        lrs, losses = self.lrs[skip_start:-skip_end or None], self.losses[skip_start:-skip_end or None]
        if len(losses) < 3:
            return self.lrs[int(torch.tensor(self.losses).argmin())]
        slopes = [(losses[i + 1] - losses[i]) / (math.log(lrs[i + 1]) - math.log(lrs[i])) for i in range(len(losses) - 1)]
        return lrs[min(range(len(slopes)), key=slopes.__getitem__)]

    def min_loss_lr(self) -> float:
        return self.lrs[min(range(len(self.losses)), key=self.losses.__getitem__)]

    def plot(self, ax=None, skip_start: int = 10, skip_end: int = 5):
        from .plots import plot_lr_find

        return plot_lr_find(self, ax=ax, skip_start=skip_start, skip_end=skip_end)


class _ExponentialRamp(Schedule):
    """start_lr * (end_lr / start_lr) ** (it / (num_it - 1)): the lr of batch `it`."""

    def __init__(self, start_lr: float, end_lr: float, num_it: int):
        super().__init__(start_lr)
        self.end_lr, self.num_it = end_lr, num_it

    def lr(self, it: int) -> float:
        return self.base_lr * (self.end_lr / self.base_lr) ** (it / max(self.num_it - 1, 1))


class LRFinder:
    """The Learner callback: record the smoothed, debiased loss of every batch; stop at a NaN, at
    4x the best smoothed loss, or after `num_it` batches."""

    def __init__(self, num_it: int, beta: float):
        self.num_it, self.beta, self.avg, self.best = num_it, beta, 0.0, math.inf
        self.result = LRFinderResult()

    def after_loss(self, learner, loss: float, lr: float, **_) -> None:
        it = learner.iteration
        self.avg = self.beta * self.avg + (1 - self.beta) * loss
        smooth = self.avg / (1 - self.beta ** (it + 1))
        if not math.isfinite(loss) or smooth > 4 * self.best:
            self.result.stopped_early = True
            raise CancelFit("diverged")
        self.best = min(self.best, smooth)
        self.result.lrs.append(lr)
        self.result.losses.append(smooth)
        self.result.raw_losses.append(loss)

    def after_step(self, learner, **_) -> None:
        if learner.iteration >= self.num_it:
            raise CancelFit("done")


def lr_find(model: nn.Module, data: Loaders, start_lr: float = 1e-5, end_lr: float = 10.0,
            num_it: int | None = None, *, opt: str = "sgd", momentum: float = 0.9, beta: float = 0.98,
            loss_fn=F.cross_entropy, amp="auto") -> LRFinderResult:
    """Exponential lr ramp from start_lr to end_lr over num_it batches (default: one epoch).
    Stops when the loss is NaN or exceeds 4x the best smoothed loss, as fastai 0.7 did.
    Restores the model's weights and the data order afterwards, so training is unaffected."""
    if not (0 < start_lr < end_lr):
        raise ValueError(f"need 0 < start_lr < end_lr, got start_lr={start_lr}, end_lr={end_lr}")
    num_it = num_it or len(data.train)
    saved_model = copy.deepcopy(model.state_dict())
    saved_data = data.train.state_dict()
    was_training = model.training
    finder = LRFinder(num_it, beta)
    # fp16 on older GPUs: MixedPrecision scales the loss; no evaluation, no history
    learner = Learner(model, data, make_optimizer(model.parameters(), opt, start_lr, momentum=momentum),
                      _ExponentialRamp(start_lr, end_lr, num_it), loss_fn,
                      [MixedPrecision(choose_precision(data.device, amp)), finder], eval_every=None)
    try:
        learner.fit(epochs=math.ceil(num_it / len(data.train)))
        return finder.result
    finally:
        model.load_state_dict(saved_model)
        data.train.load_state_dict(saved_data)
        model.train(was_training)
