"""Dropout's sampler in erav1s8 (chapter 7): torch's per-value draw vs the geometric gaps.

erav1s8 puts ``Dropout(0.01)`` after each of its 8 conv layers. ``F.dropout`` draws one random
number per value; ``normlab.dropout``'s ``sampler="gaps"`` draws the positions of the dropped
values as geometric gaps, about 1 % as many numbers for the same distribution of masks (another
random stream). erav1s8's default, ``dropout_sampler="auto"``, takes the gaps on the CPU.

Timed, in interleaved rounds (``bench_batchnorm.interleaved``), the best round of each side:
  1. the dropout alone, on each of erav1s8's dropout shapes at the recipe's batch of 32 (or
     --batch-size: chapter 7's batch-size grid goes down to 2);
  2. one SGD training step of erav1s8 (batch norm, channels_last as fit() picks, the optimizer
     fit() makes) with each sampler, the same weights.

  python benchmarks/bench_dropout.py
  python benchmarks/bench_dropout.py --norms batch instance --rounds 10
  python benchmarks/bench_dropout.py --batch-size 2
"""
from __future__ import annotations

import argparse
import copy

import torch
import torch.nn.functional as F

from bench_batchnorm import interleaved
from common import hardware_line
from normlab.devices import tune_cpu_allocator
from normlab.dropout import Dropout, dropout
from normlab.models import MODELS, build_model
from normlab.recipes import RECIPES
from normlab.train import make_optimizer, picks_channels_last


def dropout_shapes(model: torch.nn.Module, x: torch.Tensor) -> list[tuple[int, ...]]:
    """The input shape of every Dropout of `model` on batch `x` (one forward pass)."""
    shapes, hooks = [], [m.register_forward_hook(lambda m, i, o: shapes.append(tuple(i[0].shape)))
                         for m in model.modules() if isinstance(m, Dropout)]
    with torch.no_grad():
        model(x)
    for h in hooks:
        h.remove()
    return shapes


def stepper(model, x, y):
    opt = make_optimizer(model.parameters(), "sgd", 0.01, momentum=0.9)

    def step():
        loss = F.nll_loss(model(x), y)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
    return step


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--rounds", type=int, default=12)
    p.add_argument("--steps", type=int, default=10, help="calls per timed block")
    p.add_argument("--norms", nargs="*", default=["batch"])
    p.add_argument("--batch-size", type=int, default=RECIPES["erav1s8"].batch_size)
    args = p.parse_args()
    torch.set_num_threads(args.threads)
    tune_cpu_allocator()
    print(hardware_line())
    bs = args.batch_size
    x = torch.randn(bs, *MODELS["erav1s8"].input_shape)
    y = torch.randint(0, 10, (bs,))

    torch.manual_seed(0)
    net = build_model("erav1s8", dropout_sampler="torch")
    if picks_channels_last(net, "cpu"):
        net, x = net.to(memory_format=torch.channels_last), x.contiguous(memory_format=torch.channels_last)
    shapes = dropout_shapes(net, x)
    print(f"\n1. the dropout alone (p = 0.01), erav1s8's {len(shapes)} dropout inputs at batch {bs}")
    print(f"{'shape':<22}{'values':>10}{'torch ms':>10}{'gaps ms':>10}{'speed-up':>10}")
    total = {"torch": 0.0, "gaps": 0.0}
    for shape in shapes:
        a = torch.randn(shape).contiguous(memory_format=torch.channels_last)
        fns = {s: (lambda s=s: dropout(a, 0.01, True, s)) for s in ("torch", "gaps")}
        t = {k: min(v) for k, v in interleaved(fns, args.rounds, args.steps).items()}
        total = {k: total[k] + t[k] for k in total}
        print(f"{str(shape):<22}{a.numel():>10,}{t['torch'] * 1e3:>10.3f}{t['gaps'] * 1e3:>10.3f}"
              f"{t['torch'] / t['gaps']:>9.1f}x")
    print(f"{'all, per step':<32}{total['torch'] * 1e3:>10.3f}{total['gaps'] * 1e3:>10.3f}"
          f"{total['torch'] / total['gaps']:>9.1f}x  (forward only)")

    print(f"\n2. one erav1s8 training step, batch {bs}, SGD momentum 0.9")
    print(f"{'norm':<10}{'torch ms':>10}{'gaps ms':>10}{'speed-up':>10}")
    for norm in args.norms:
        torch.manual_seed(0)
        ours = build_model("erav1s8", norm=norm, dropout_sampler="torch")
        gaps = build_model("erav1s8", norm=norm, dropout_sampler="gaps")
        gaps.load_state_dict(copy.deepcopy(ours.state_dict()))
        if picks_channels_last(ours, "cpu"):
            ours, gaps = (m.to(memory_format=torch.channels_last) for m in (ours, gaps))
        fns = {"torch": stepper(ours, x, y), "gaps": stepper(gaps, x, y)}
        for f in fns.values():
            f()
        t = {k: min(v) for k, v in interleaved(fns, args.rounds, args.steps).items()}
        print(f"{norm:<10}{t['torch'] * 1e3:>10.1f}{t['gaps'] * 1e3:>10.1f}{t['torch'] / t['gaps']:>9.2f}x")


if __name__ == "__main__":
    main()
