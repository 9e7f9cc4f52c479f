"""normlab's LocalResponseNorm (``normlab.lrn``) vs torch's ``nn.LocalResponseNorm``, in one run.

The goal (issue 15, item 3): on the 2-core CPU, forward + backward of the layer at least **3x**
faster than ``nn.LocalResponseNorm`` in the TF-tutorial CNN (chapter 6), equal to it within 1e-6
in float64 (that is tests/test_lrn.py's job; this script only times).

What is timed, at ``--threads`` (default 2) threads:

* the layer alone, forward + backward (``y.backward(g)`` with a fixed g), at the two shapes the
  TF-tutorial CNN feeds its two LRN layers: batch 128, 64 channels, 24x24 and 12x12; in
  channels_last (how ``normlab.train.fit`` runs conv nets on the CPU) and in NCHW;
* one whole training step (forward, cross-entropy, backward, Adam step: the recipe of chapter 6)
  of ``TFTutorialCNN(norm="lrn")`` built with each layer (same weights), batch 128 of 3x24x24,
  plus ``TFTutorialCNN(norm="none")`` as the floor: what the step would cost without any LRN.

Method (as bench_batchnorm.py): everything is warmed up first; then, in every round, ``--steps``
calls of each contender are timed back to back, the order rotating between rounds, so all see
the same machine state.  Reported: the best round of each (min: other jobs on a shared VM only
ever add time), the ratio torch / normlab of the best rounds ("speed-up"), and the median over
rounds of the ratio of blocks timed back to back ("paired").  ``--window-sums`` adds the
comparison behind the layer's design: the windowed channel sum alone, four ways, per layout.

Run:  python benchmarks/bench_lrn.py                 (about 2-3 minutes on 2 cores)
      python benchmarks/bench_lrn.py --quick         (a smoke run, under a minute)
      python benchmarks/bench_lrn.py --window-sums   (adds the window-sum comparison)
Allocator: by default glibc's thresholds are raised as ``fit()`` does on the CPU
(``--allocator default`` leaves them alone).  On a shared 2-vCPU VM run it alone: a busy
neighbour stalls every 2-thread op; the script prints the load average and the CPU share it got,
and ``--threads 1 --clock cpu`` gives ratios that other jobs barely move.
This is a benchmark script, not a test: nothing here asserts a timing.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from typing import Callable, Dict, List, Sequence

import torch
import torch.nn.functional as F
from torch import nn

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from common import hardware_line  # noqa: E402

from normlab.devices import tune_cpu_allocator  # noqa: E402
from normlab.lrn import LocalResponseNorm, _window_sum_doubling, _window_sum_unfold  # noqa: E402
from normlab.models import TFTutorialCNN  # noqa: E402

GOAL = 3.0
BATCH, CHANNELS = 128, 64
FORMATS = {"channels_last": torch.channels_last, "nchw": torch.contiguous_format}
CPU_SHARE: List[float] = []  # process CPU time / (wall time x threads) of each timed block
CLOCK = time.perf_counter  # --clock cpu switches to time.process_time


def torch_lrn() -> nn.Module:
    return nn.LocalResponseNorm(9, 0.001, 0.75, 1.0)  # make_norm("lrn")'s arguments, torch's layer


def ours_lrn() -> nn.Module:
    return LocalResponseNorm(9, 0.001, 0.75, 1.0)


# --------------------------------------------------------------------------- timing
def interleaved(fns: Dict[str, Callable[[], object]], rounds: int, steps: int) -> Dict[str, List[float]]:
    """Seconds per call of each fn: ``rounds`` blocks of ``steps`` calls, the order rotating."""
    names = list(fns)
    out: Dict[str, List[float]] = {k: [] for k in names}
    w0, c0 = time.perf_counter(), time.process_time()
    for r in range(rounds):
        order = names[r % len(names):] + names[:r % len(names)]
        for k in order:
            t0 = CLOCK()
            for _ in range(steps):
                fns[k]()
            out[k].append((CLOCK() - t0) / steps)
    CPU_SHARE.append((time.process_time() - c0) / ((time.perf_counter() - w0) * torch.get_num_threads()))
    return out


def paired(slow: List[float], fast: List[float]) -> float:
    return statistics.median(s / f for s, f in zip(slow, fast))


def row(label: str, t: List[float], o: List[float], goal: float | None = None) -> str:
    ratio = min(t) / min(o)
    verdict = "" if goal is None else ("  goal met" if ratio >= goal else f"  BELOW goal {goal:.0f}x")
    return (f"{label:<34} {min(t) * 1e3:9.2f} {min(o) * 1e3:9.2f}   {ratio:6.2f}x {paired(t, o):7.2f}x"
            f"   {statistics.median(t) * 1e3:9.2f} {statistics.median(o) * 1e3:9.2f}{verdict}")


HEADER = (f"{'':<34} {'best round, ms':^19}   {'speed-up':^16}   {'median round, ms':^19}\n"
          f"{'':<34} {'torch':>9} {'normlab':>9}   {'best-of':>7} {'paired':>8}   {'torch':>9} {'normlab':>9}")


# --------------------------------------------------------------------------- the layer alone
def bench_layer(fmt: str, hw: int, args) -> str:
    torch.manual_seed(0)
    # conv-output-like values: the book's LRN sees conv activations of scale ~1
    x = torch.randn(BATCH, CHANNELS, hw, hw).contiguous(memory_format=FORMATS[fmt]).requires_grad_()
    g = torch.randn_like(x)

    def fwd_bwd(layer: nn.Module) -> Callable[[], None]:
        def run() -> None:
            x.grad = None
            layer(x).backward(g)
        return run

    fns = {"torch": fwd_bwd(torch_lrn()), "normlab": fwd_bwd(ours_lrn())}
    for _ in range(args.warmup):
        for f in fns.values():
            f()
    res = interleaved(fns, args.rounds, args.steps)
    return row(f"  layer {BATCH}x{CHANNELS}x{hw}x{hw}, {fmt}", res["torch"], res["normlab"], GOAL)


# --------------------------------------------------------------------------- the training step
class Step:
    """One TFTutorialCNN, its Adam optimizer (the chapter's recipe: lr 1e-3) and a fixed batch."""

    def __init__(self, model: nn.Module, x: torch.Tensor, y: torch.Tensor) -> None:
        self.model, self.x, self.y = model.train(), x, y
        self.opt = torch.optim.Adam(model.parameters(), lr=1e-3)

    def __call__(self) -> torch.Tensor:
        self.opt.zero_grad(set_to_none=True)
        loss = F.cross_entropy(self.model(self.x), self.y)
        loss.backward()
        self.opt.step()
        return loss.detach()


def bench_step(fmt: str, args) -> List[str]:
    torch.manual_seed(0)
    ours = TFTutorialCNN(norm="lrn")
    assert type(ours.norm1) is LocalResponseNorm, "make_norm('lrn') should build normlab.lrn.LocalResponseNorm"
    ref = TFTutorialCNN(norm="lrn")
    ref.load_state_dict(ours.state_dict())
    ref.norm1, ref.norm2 = torch_lrn(), torch_lrn()
    none = TFTutorialCNN(norm="none")
    none.load_state_dict(ours.state_dict())  # LRN has no parameters: same keys
    x = torch.randn(BATCH, 3, 24, 24).contiguous(memory_format=FORMATS[fmt])
    y = torch.randint(0, 10, (BATCH,))
    mf = FORMATS[fmt]
    steps = {name: Step(m.to(memory_format=mf), x, y) for name, m in
             (("torch", ref), ("normlab", ours), ("none", none))}
    torch.manual_seed(1)
    l_ref = float(steps["torch"]())
    torch.manual_seed(1)  # same dropout masks
    l_ours = float(steps["normlab"]())
    if abs(l_ref - l_ours) > 1e-4 * max(1.0, abs(l_ref)):
        print(f"WARNING: first-step losses differ: torch {l_ref:.6f} vs normlab {l_ours:.6f}", file=sys.stderr)
    for _ in range(args.warmup):
        for s in steps.values():
            s()
    res = interleaved(steps, args.rounds, max(1, args.steps - 1))
    t, o, n = res["torch"], res["normlab"], res["none"]
    share_t = 1 - min(n) / min(t)
    share_o = 1 - min(n) / min(o)
    return [row(f"  training step, {fmt}", t, o),
            f"  {'':<32} without LRN (norm='none'): {min(n) * 1e3:.2f} ms; the two LRN layers are "
            f"{share_t:.0%} of the step with torch's, {share_o:.0%} with normlab's "
            f"(step / no-LRN step: {min(t) / min(n):.2f}x -> {min(o) / min(n):.2f}x)"]


# --------------------------------------------------------------------------- the design choice
def bench_window_sums(args) -> List[str]:
    """The windowed sum over 9 channels of a padded (A, C + 8, B) buffer, four ways, per layout:
    unfold + sum (one reduction pass), doubling (sums of shifted slices), a banded GEMM, and a
    cumulative sum with a difference."""
    size = 9
    lines = [f"{'  window sum of 9 channels (ms)':<34} {'unfold-sum':>10} {'doubling':>9} {'GEMM':>7} {'cumsum':>7}"]

    def gemm(s: torch.Tensor, out: torch.Tensor) -> torch.Tensor:
        a, length, b = s.shape
        c = out.shape[1]
        i = torch.arange(length)[:, None] - torch.arange(c)[None, :]
        band = ((i >= 0) & (i < size)).to(s.dtype)  # band[j, c] = 1 if j in [c, c + size)
        if b == 1:
            return torch.mm(s.view(a, length), band, out=out.view(a, c))
        return torch.matmul(band.t(), s, out=out)

    def cumsum(s: torch.Tensor, out: torch.Tensor) -> torch.Tensor:
        a, length, b = s.shape
        p = s.new_zeros((a, length + 1, b))
        torch.cumsum(s, 1, out=p.narrow(1, 1, length))
        return torch.sub(p.narrow(1, size, out.shape[1]), p.narrow(1, 0, out.shape[1]), out=out)

    for fmt, hw in (("channels_last", 24), ("nchw", 24), ("channels_last", 12), ("nchw", 12)):
        a, b = (BATCH * hw * hw, 1) if fmt == "channels_last" else (BATCH, hw * hw)
        s = torch.rand(a, CHANNELS + size - 1, b)
        out = s.new_empty((a, CHANNELS, b))
        fns = {"unfold": lambda: _window_sum_unfold(s, size, out),
               "doubling": lambda: _window_sum_doubling(s, size, out),
               "gemm": lambda: gemm(s, out), "cumsum": lambda: cumsum(s, out)}
        want = _window_sum_unfold(s, size, torch.empty_like(out))
        for name, f in fns.items():
            f()
            if not torch.allclose(out, want, rtol=1e-5, atol=1e-5):
                print(f"WARNING: window sum {name!r} disagrees with unfold-sum", file=sys.stderr)
        res = interleaved(fns, args.rounds, args.steps)
        lines.append(f"  {fmt}, {hw}x{hw}{'':<{21 - len(fmt)}} " + " ".join(
            f"{min(res[k]) * 1e3:{w}.2f}" for k, w in (("unfold", 10), ("doubling", 9), ("gemm", 7), ("cumsum", 7))))
    return lines


# --------------------------------------------------------------------------- main
def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--threads", type=int, default=2, help="torch.set_num_threads (default 2)")
    p.add_argument("--formats", default="channels_last,nchw", help="comma list of channels_last, nchw")
    p.add_argument("--rounds", type=int, default=8, help="timed rounds per comparison (default 8)")
    p.add_argument("--steps", type=int, default=3, help="calls per round and contender (default 3; steps - 1 "
                   "for whole training steps)")
    p.add_argument("--warmup", type=int, default=2, help="untimed calls per contender first (default 2)")
    p.add_argument("--clock", choices=("wall", "cpu"), default="wall",
                   help="wall (default) or cpu = process CPU time: robust to other jobs on a shared VM, "
                        "but only meaningful with --threads 1 (it sums the threads' time)")
    p.add_argument("--allocator", choices=("tuned", "default"), default="tuned",
                   help="tuned (default): glibc thresholds raised as fit() does on the CPU; default: as it comes")
    p.add_argument("--no-step", action="store_true", help="skip the whole-training-step comparison")
    p.add_argument("--window-sums", action="store_true", help="also time the window sum alone, four ways")
    p.add_argument("--quick", action="store_true", help="3 rounds x 2 calls, 1 warm-up: a smoke run")
    args = p.parse_args(argv)
    if args.quick:
        args.rounds, args.steps, args.warmup = 3, 2, 1
    args.format_list = [f.strip() for f in args.formats.split(",") if f.strip()]
    for f in args.format_list:
        if f not in FORMATS:
            p.error(f"unknown format {f!r}: use channels_last or nchw")
    return args


def load_avg() -> str:
    try:
        return "%.2f %.2f %.2f" % os.getloadavg()
    except OSError:
        return "n/a"


def main(argv: Sequence[str] | None = None) -> int:
    global CLOCK
    args = parse_args(argv)
    torch.set_num_threads(args.threads)
    CLOCK = time.process_time if args.clock == "cpu" else time.perf_counter
    tuned = args.allocator == "tuned" and tune_cpu_allocator()
    print(f"host    : {hardware_line('cpu')}")
    print(f"          {os.cpu_count()} logical CPUs; allocator: "
          f"{'glibc, mallopt-tuned like fit()' if tuned else 'malloc as it comes'}")
    print(f"load avg: {load_avg()} (start)")
    print(f"timing  : {args.clock} clock, {args.rounds} rounds x {args.steps} calls per contender, interleaved, after "
          f"{args.warmup} warm-up calls; speed-up = torch / normlab (goal for the layer: >= {GOAL:.0f}x)\n")
    print(HEADER)
    for fmt in args.format_list:
        for hw in (24, 12):
            print(bench_layer(fmt, hw, args), flush=True)
    if not args.no_step:
        for fmt in args.format_list:
            for line in bench_step(fmt, args):
                print(line, flush=True)
    if args.window_sums:
        print()
        for line in bench_window_sums(args):
            print(line, flush=True)
    share = min(CPU_SHARE) if CPU_SHARE else float("nan")
    noisy = args.clock == "wall" and share < 0.8  # the CPU clock does not count time taken by others
    print(f"\nload avg: {load_avg()} (end); lowest CPU share while timing: {share:.0%} of "
          f"{args.threads} thread(s)" + ("  (WARNING: other jobs were running; ratios are noisy)" if noisy else ""))
    return 0


if __name__ == "__main__":
    sys.exit(main())
