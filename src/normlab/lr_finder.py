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
from .precision import choose_precision
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
    optimizer = make_optimizer(model.parameters(), opt, start_lr, momentum=momentum)
    precision = choose_precision(data.device, amp)  # fp16 on older GPUs: scale the loss
    ctx, scaler = precision.autocast(), precision.grad_scaler()
    result, avg, best, it = LRFinderResult(), 0.0, math.inf, 0
    model.train()
    try:
        while it < num_it:
            for x, y in data.train:
                lr = start_lr * (end_lr / start_lr) ** (it / max(num_it - 1, 1))
                for g in optimizer.param_groups:
                    g["lr"] = lr
                with ctx:
                    loss = loss_fn(model(x).float(), y)
                value = loss.item()
                avg = beta * avg + (1 - beta) * value
                smooth = avg / (1 - beta ** (it + 1))
                if not math.isfinite(value) or smooth > 4 * best:
                    result.stopped_early = True
                    return result
                best = min(best, smooth)
                result.lrs.append(lr)
                result.losses.append(smooth)
                result.raw_losses.append(value)
                optimizer.zero_grad(set_to_none=True)
                scaler.scale(loss).backward()
                scaler.step(optimizer)
                scaler.update()
                it += 1
                if it >= num_it:
                    break
        return result
    finally:
        model.load_state_dict(saved_model)
        data.train.load_state_dict(saved_data)
        model.train(was_training)
