"""From-scratch BatchNorm (``normlab.norms.BatchNorm2d``) vs torch's fused ``nn.BatchNorm2d``.

The goal (performance.md §6(a).4, tightened by the project issue): on the 2-core CPU the whole
training step of a small ConvNet with the from-scratch BN costs at most **1.3x** the same net
with ``nn.BatchNorm2d`` in eager mode, and at most **1.05x** under ``torch.compile``.

What is timed: one SGD training step (forward, cross-entropy, backward, SGD-momentum step) of
conv3x3 32-64-128 (no bias) -> BN -> ReLU, max-pool 2 between blocks, global average pool,
linear 10; batch 128 of synthetic CIFAR-shaped data (3x32x32) that stays in memory (no loader).
The two nets start from the same weights (the first step's losses are compared as a sanity check).

Method: both nets are warmed up first; then, in every round, ``--steps`` steps of one net and
``--steps`` of the other are timed back to back (the order alternates between rounds), so both
see the same machine state.  The table gives, per step, the best round of each net (min: other
jobs on a shared VM only ever add time) and their ratio scratch/native ("best-of"), the median
over rounds of the ratio of the two blocks timed back to back ("paired": cancels slow drifts),
and the median round of each.  Under ``torch.compile`` the first calls (graph capture + C++
codegen: 10-30 s on 2 cores with a cold cache, a few seconds with a warm one) are warm-up and
are *not* timed; their wall time is printed separately.  Per-layer lines time the BN layer
alone (forward + backward, eager) at the three shapes it sees in this net.

Run:  python benchmarks/bench_batchnorm.py            (about 2-3 minutes on 2 cores)
      python benchmarks/bench_batchnorm.py --quick    (fewer rounds, compiles NCHW only)
Allocator: with glibc malloc as it comes, every fresh large tensor costs page faults on this VM;
by default the script raises the glibc thresholds exactly as ``normlab.train.fit`` does on the
CPU (``--allocator default`` leaves them alone; the header line says which).
Other jobs: on a shared 2-vCPU VM a busy neighbour stalls every 2-thread parallel op (it waits
for the descheduled thread), which hurts the from-scratch BN's many small ops far more than the
fused kernel.  The script prints the load average and the CPU share it got while timing, and
warns when that share is low; ``--threads 1 --clock cpu`` gives contention-robust ratios.
This is a benchmark script, not a test: nothing here asserts a timing.
"""

from __future__ import annotations

import argparse
import os
import platform
import shlex
import statistics
import sys
import time
from typing import Callable, Dict, List, Sequence, Tuple

import torch
import torch.nn.functional as F
from torch import nn

from normlab.devices import describe_device, tune_cpu_allocator
from normlab.norms import BatchNorm2d as ScratchBatchNorm2d

GOAL_EAGER = 1.30
GOAL_COMPILED = 1.05
WIDTHS = (32, 64, 128)


# --------------------------------------------------------------------------- model and step
def make_net(bn_cls: Callable[[int], nn.Module], widths: Sequence[int] = WIDTHS) -> nn.Sequential:
    """conv3x3 -> BN -> ReLU per width, max-pool 2 between blocks, global pool, linear 10."""
    layers: List[nn.Module] = []
    c = 3
    for i, w in enumerate(widths):
        layers += [nn.Conv2d(c, w, 3, padding=1, bias=False), bn_cls(w), nn.ReLU()]
        if i < len(widths) - 1:
            layers.append(nn.MaxPool2d(2))
        c = w
    layers += [nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(c, 10)]
    return nn.Sequential(*layers)


class Runner:
    """One net + its optimizer + a fixed batch; ``step()`` is one training step."""

    def __init__(self, net: nn.Module, x: torch.Tensor, y: torch.Tensor, compiled: bool) -> None:
        self.net = net.train()
        self.opt = torch.optim.SGD(net.parameters(), lr=0.01, momentum=0.9)
        self.fwd = torch.compile(net) if compiled else net
        self.x, self.y = x, y

    def step(self) -> torch.Tensor:
        self.opt.zero_grad(set_to_none=True)
        loss = F.cross_entropy(self.fwd(self.x), self.y)
        loss.backward()
        self.opt.step()
        return loss.detach()


CLOCK = time.perf_counter  # --clock cpu switches to time.process_time


def _time_block(fn: Callable[[], object], n: int) -> float:
    t0 = CLOCK()
    for _ in range(n):
        fn()
    return (CLOCK() - t0) / n


CPU_SHARE: List[float] = []  # process CPU time / (wall time x threads) of each timed run


def interleaved(fns: Dict[str, Callable[[], object]], rounds: int, steps: int) -> Dict[str, List[float]]:
    """Per-call seconds of each fn, ``rounds`` blocks of ``steps`` calls, order alternating."""
    names = list(fns)
    out: Dict[str, List[float]] = {k: [] for k in names}
    w0, c0 = time.perf_counter(), time.process_time()
    for r in range(rounds):
        for k in (names if r % 2 == 0 else names[::-1]):
            out[k].append(_time_block(fns[k], steps))
    CPU_SHARE.append((time.process_time() - c0) / ((time.perf_counter() - w0) * torch.get_num_threads()))
    return out


# --------------------------------------------------------------------------- report helpers
def load_avg() -> str:
    try:
        return "%.2f %.2f %.2f" % os.getloadavg()
    except OSError:
        return "n/a"


def paired_ratio(t_nat: List[float], t_scr: List[float]) -> float:
    """Median over rounds of scratch/native, each pair timed back to back (cancels drift)."""
    return statistics.median(s / n for n, s in zip(t_nat, t_scr))


def fmt_row(label: str, t_nat: List[float], t_scr: List[float], goal: float | None) -> str:
    bn, bs = min(t_nat), min(t_scr)
    ratio, paired = bs / bn, paired_ratio(t_nat, t_scr)
    verdict = "" if goal is None else ("  ok" if ratio <= goal else f"  OVER goal {goal:.2f}x")
    return (f"{label:<28} {bn * 1e3:8.2f} {bs * 1e3:8.2f}   {ratio:7.3f}x {paired:9.3f}x"
            f"   {statistics.median(t_nat) * 1e3:8.2f} {statistics.median(t_scr) * 1e3:8.2f}{verdict}")


HEADER = (f"{'':<28} {'best round, ms':^17}   {'scratch/native':^18}   {'median round, ms':^17}\n"
          f"{'':<28} {'native':>8} {'scratch':>8}   {'best-of':>8} {'paired':>9}   {'native':>8} {'scratch':>8}")


# --------------------------------------------------------------------------- benchmarks
def bench_steps(fmt: str, compiled: bool, args, scratch_cls) -> Tuple[List[float], List[float], float]:
    torch.manual_seed(0)
    x = torch.randn(args.batch, 3, 32, 32)
    y = torch.randint(0, 10, (args.batch,))
    native = make_net(nn.BatchNorm2d)
    scratch = make_net(scratch_cls)
    scratch.load_state_dict(native.state_dict())  # same weights and buffers
    if fmt == "channels_last":
        native, scratch = native.to(memory_format=torch.channels_last), scratch.to(memory_format=torch.channels_last)
        x = x.contiguous(memory_format=torch.channels_last)
    if compiled:  # fresh dynamo caches: recompiles of the same code pile up to its cache limit
        torch._dynamo.reset()
    rn, rs = Runner(native, x, y, compiled), Runner(scratch, x, y, compiled)
    t0 = time.perf_counter()
    ln, ls = float(rn.step()), float(rs.step())  # first step: compiles when compiled
    warm_s = time.perf_counter() - t0
    if abs(ln - ls) > 1e-4 * max(1.0, abs(ln)):
        print(f"WARNING: first-step losses differ: native {ln:.6f} vs scratch {ls:.6f}", file=sys.stderr)
    for _ in range(args.warmup):
        rn.step(), rs.step()
    res = interleaved({"native": rn.step, "scratch": rs.step}, args.rounds, args.steps)
    return res["native"], res["scratch"], warm_s


def bench_layers(fmt: str, args, scratch_cls) -> List[Tuple[str, List[float], List[float]]]:
    """BN layer alone, forward + backward, at the shapes the net feeds it."""
    rows = []
    hw = 32
    for c in WIDTHS:
        torch.manual_seed(0)
        x = torch.randn(args.batch, c, hw, hw)
        if fmt == "channels_last":
            x = x.contiguous(memory_format=torch.channels_last)
        x.requires_grad_()
        g = torch.randn_like(x)
        layers = {"native": nn.BatchNorm2d(c), "scratch": scratch_cls(c)}

        def fwd_bwd(layer: nn.Module) -> Callable[[], None]:
            def run() -> None:
                x.grad = None
                layer(x).backward(g)
            return run

        fns = {k: fwd_bwd(m) for k, m in layers.items()}
        for _ in range(args.warmup):
            fns["native"](), fns["scratch"]()
        res = interleaved(fns, args.rounds, args.steps)
        rows.append((f"  BN {args.batch}x{c}x{hw}x{hw}", res["native"], res["scratch"]))
        hw //= 2
    return rows


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--threads", type=int, default=2, help="torch.set_num_threads (default 2)")
    p.add_argument("--batch", type=int, default=128)
    p.add_argument("--formats", default="nchw,channels_last",
                   help="comma list of nchw, channels_last (default both)")
    p.add_argument("--compile-formats", default=None,
                   help="formats to also run under torch.compile (default: same as --formats; "
                        "'none' to skip)")
    p.add_argument("--rounds", type=int, default=12, help="timed rounds per config (default 12)")
    p.add_argument("--steps", type=int, default=3, help="steps per round and net (default 3)")
    p.add_argument("--warmup", type=int, default=3, help="untimed steps per net after the first")
    p.add_argument("--clock", choices=("wall", "cpu"), default="wall",
                   help="wall (default) or cpu = process CPU time, robust to other jobs but only "
                        "meaningful with --threads 1 (it sums the threads' time)")
    p.add_argument("--allocator", choices=("tuned", "default"), default="tuned",
                   help="tuned (default): glibc mallopt thresholds raised, as normlab.train.fit does on "
                        "the CPU (normlab.devices.tune_cpu_allocator); default: glibc as it comes, "
                        "every fresh big tensor pays page faults")
    p.add_argument("--no-layers", action="store_true", help="skip the per-layer fwd+bwd lines")
    p.add_argument("--quick", action="store_true",
                   help="3 rounds x 2 steps, compile NCHW only: a smoke run (well under a minute with a warm compile cache)")
    args = p.parse_args(argv)
    if args.quick:
        args.rounds, args.steps, args.warmup = 3, 2, 1
        if args.compile_formats is None:
            args.compile_formats = "nchw"
    fmts = [f.strip() for f in args.formats.split(",") if f.strip()]
    cfmts = fmts if args.compile_formats is None else (
        [] if args.compile_formats == "none" else [f.strip() for f in args.compile_formats.split(",") if f.strip()])
    for f in fmts + cfmts:
        if f not in ("nchw", "channels_last"):
            p.error(f"unknown format {f!r}: use nchw or channels_last")
    args.format_list, args.compile_list = fmts, cfmts
    return args


def main(argv: Sequence[str] | None = None, scratch_cls=ScratchBatchNorm2d) -> int:
    global CLOCK
    args = parse_args(argv)
    torch.set_num_threads(args.threads)
    CLOCK = time.process_time if args.clock == "cpu" else time.perf_counter
    tuned = args.allocator == "tuned" and tune_cpu_allocator()
    cmd = " ".join(shlex.quote(a) for a in [os.path.relpath(sys.executable), *sys.argv])
    env = [f"{k}={os.environ[k]}" for k in ("LD_PRELOAD", "GLIBC_TUNABLES") if os.environ.get(k)]
    malloc = ("glibc, mallopt-tuned like fit()" if tuned else "malloc as it comes") + "".join(", " + e for e in env)
    print(f"command : {cmd}")
    print(f"hardware: {describe_device('cpu')}, {os.cpu_count()} logical CPUs; torch {torch.__version__}, "
          f"python {platform.python_version()}; allocator: {malloc}")
    print(f"load avg: {load_avg()} (start)")
    nparams = sum(p.numel() for p in make_net(nn.BatchNorm2d).parameters())
    print(f"net     : conv3x3 {'-'.join(map(str, WIDTHS))} + BN + ReLU, maxpool, GAP, linear 10 "
          f"({nparams:,} params); batch {args.batch}x3x32x32 fp32; SGD momentum 0.9, cross-entropy")
    print(f"timing  : {args.clock} clock, {args.rounds} rounds x {args.steps} steps per net, interleaved, after "
          f"{args.warmup + 1} warm-up steps; ratio = scratch / native (goals: eager <= {GOAL_EAGER}x, "
          f"compiled <= {GOAL_COMPILED}x)\n")
    print(HEADER)
    summary = []
    configs = [(f, False) for f in args.format_list] + [(f, True) for f in args.compile_list]
    for fmt, compiled in configs:
        label = f"{'compiled' if compiled else 'eager'} {fmt}"
        t_nat, t_scr, warm_s = bench_steps(fmt, compiled, args, scratch_cls)
        goal = GOAL_COMPILED if compiled else GOAL_EAGER
        print(fmt_row(f"step {label}", t_nat, t_scr, goal), flush=True)
        if compiled:
            print(f"{'':<28} (compile warm-up, not timed: {warm_s:.1f} s for both nets' first steps)")
        summary.append((label, min(t_scr) / min(t_nat), paired_ratio(t_nat, t_scr), goal))
        if not compiled and not args.no_layers:
            for name, tn, ts in bench_layers(fmt, args, scratch_cls):
                print(fmt_row(name + " fwd+bwd", tn, ts, None), flush=True)
    print(f"\nload avg: {load_avg()} (end)")
    if not CPU_SHARE:
        return 0
    share = min(CPU_SHARE)
    print(f"cpu share: {share:.2f} to {max(CPU_SHARE):.2f} of {args.threads} thread(s) while timing "
          f"(process CPU time / wall time / threads)")
    if share < 0.8 and args.clock == "wall":
        print("WARNING: other jobs took the cores during the timing (cpu share < 0.8). With 2 threads "
              "each torch op waits for a descheduled thread, which hurts the many small ops of the "
              "from-scratch BN far more than the fused kernel: rerun on an idle machine, or use "
              "--threads 1 --clock cpu for contention-robust ratios.")
    print("summary, scratch/native per training step (best-of / median paired):")
    for label, r, rp, g in summary:
        verdict = "meets" if max(r, rp) <= g else ("misses" if min(r, rp) > g else "borderline")
        print(f"  {label:<24} {r:.3f}x / {rp:.3f}x  {verdict} goal <= {g}x")
    return 0


if __name__ == "__main__":
    sys.exit(main())
