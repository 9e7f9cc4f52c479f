"""tairtahar's batch-norm layers, as autograd would run them vs as normlab runs them.

Chapter 5 trains LeNets with the BN layers tairtahar wrote, a per-position gamma/beta
(``TairBatchNorm2d`` / ``TairBatchNorm1d``). normlab runs their normalization through
``_BatchNormTrainFn``, the hand-written backward of ``normlab.norms.BatchNorm2d``. The "autograd"
side here is the same layer with its statistics and normalization written as the source wrote them
(``torch.var_mean`` and elementwise ops), differentiated by autograd: what these layers did before
2026-11-29. Both sides start from the same weights; the first step's losses are compared.
(fast.ai's ``BnLayer`` stays on autograd: see its comment in ``normlab/norms.py``.)

What is timed: one SGD training step (forward, cross-entropy, backward, step) of each chapter net
at its recipe's batch size on one synthetic batch, in the memory format fit() picks, in
interleaved rounds (``bench_batchnorm.interleaved``); the table gives each side's best round and
the speed-up autograd / normlab.

  python benchmarks/bench_tair_bn.py                   # the four BN LeNets
  python benchmarks/bench_tair_bn.py --models lenet_fc_bn2 --rounds 8
"""
from __future__ import annotations

import argparse
import copy

import torch
import torch.nn.functional as F

from bench_batchnorm import interleaved
from common import hardware_line
from normlab.devices import tune_cpu_allocator
from normlab.models import MODELS, build_model
from normlab.norms import TairBatchNorm1d, TairBatchNorm2d, _normalize, _per_channel, _reduce_dims
from normlab.recipes import RECIPES
from normlab.train import picks_channels_last

DEFAULT_MODELS = ("lenet_bn1", "lenet_bn2", "lenet_fc_bn1", "lenet_fc_bn2")


class _AutogradTair:
    """tairtahar's training-mode arithmetic, left to autograd (running averages kept)."""

    def _normalized(self, x):
        if not self.training:
            return super()._normalized(x)
        var, mean = torch.var_mean(x, dim=_reduce_dims(x), correction=0)
        self._update_running(mean.detach(), var.detach(), x)
        return _normalize(x, _per_channel(mean, x), _per_channel(var, x), self.eps)


class AutogradTair2d(_AutogradTair, TairBatchNorm2d):
    pass


class AutogradTair1d(_AutogradTair, TairBatchNorm1d):
    pass


AUTOGRAD_TWIN = {TairBatchNorm2d: AutogradTair2d, TairBatchNorm1d: AutogradTair1d}


def autograd_twin(model: torch.nn.Module) -> torch.nn.Module:
    """A copy of ``model`` (same weights) whose tairtahar BN layers compute through autograd."""
    twin = copy.deepcopy(model)
    for m in twin.modules():
        if type(m) in AUTOGRAD_TWIN:
            m.__class__ = AUTOGRAD_TWIN[type(m)]
    return twin


def stepper(model, x, y):
    opt = torch.optim.SGD(model.parameters(), lr=1e-3, momentum=0.9)

    def step():
        loss = F.cross_entropy(model(x), y)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        return loss.detach()
    return step


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--rounds", type=int, default=20)
    p.add_argument("--steps", type=int, default=10, help="steps per timed block")
    p.add_argument("--models", nargs="*", default=list(DEFAULT_MODELS))
    args = p.parse_args()
    torch.set_num_threads(args.threads)
    tune_cpu_allocator()
    print(hardware_line())
    print(f"{'model':<14}{'batch':>6}{'autograd ms':>13}{'normlab ms':>12}{'speed-up':>10}{'first losses equal':>20}")
    for name in args.models:
        bs = RECIPES[name].batch_size
        torch.manual_seed(0)
        ours = build_model(name)
        x = torch.randn(bs, *MODELS[name].input_shape)
        y = torch.randint(0, 10, (bs,))
        if picks_channels_last(ours, "cpu"):
            ours, x = ours.to(memory_format=torch.channels_last), x.contiguous(memory_format=torch.channels_last)
        theirs = autograd_twin(ours)
        steps = {"autograd": stepper(theirs, x, y), "normlab": stepper(ours, x, y)}
        first = {k: s().item() for k, s in steps.items()}   # also the warm-up
        same = abs(first["autograd"] - first["normlab"]) <= 1e-5 * abs(first["autograd"])
        for s in steps.values():
            s()
        t = interleaved(steps, args.rounds, args.steps)
        a, o = min(t["autograd"]), min(t["normlab"])
        print(f"{name:<14}{bs:>6}{a * 1e3:>13.1f}{o * 1e3:>12.1f}{a / o:>9.2f}x{str(same):>20}")


if __name__ == "__main__":
    main()
