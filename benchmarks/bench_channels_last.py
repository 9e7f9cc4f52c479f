"""channels_last vs NCHW per training step, for every model of the book at its seed's batch size.

fit(channels_last="auto") uses channels_last for conv nets on the CPU and on CUDA; this prints the
measured ratio per model so that default can be checked on any machine (ratio > 1: channels_last
is faster)."""
from __future__ import annotations

import argparse

import torch

from common import best_step_seconds, hardware_line
from normlab.devices import tune_cpu_allocator
from normlab.models import LENET_VARIANTS, MODELS, build_model
from normlab.recipes import RECIPES


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--steps", type=int, default=6)
    p.add_argument("--models", nargs="*", default=list(MODELS))
    args = p.parse_args()
    torch.set_num_threads(args.threads)
    tune_cpu_allocator()
    print(hardware_line())
    print(f"{'model':<27}{'batch':>6}{'NCHW ms':>10}{'CL ms':>10}{'CL speed-up':>13}")
    for name in args.models:
        spec, bs = MODELS[name], RECIPES[name].batch_size
        # the tairtahar LeNets are trained with the author's BN and with torch's (bn="standard")
        variants = [{}, {"bn": "standard"}] if name in LENET_VARIANTS and name != "lenet" else [{}]
        for kwargs in variants:
            torch.manual_seed(0)
            x = torch.randn(bs, *spec.input_shape)
            y = torch.randint(0, 10 if name != "resnet_spec" else 2, (bs,))
            model = build_model(name, **kwargs)
            nchw = best_step_seconds(model, x, y, args.steps)
            cl = best_step_seconds(model.to(memory_format=torch.channels_last),
                                   x.contiguous(memory_format=torch.channels_last), y, args.steps)
            label = name + (", standard BN" if kwargs else "")
            print(f"{label:<27}{bs:>6}{nchw * 1e3:>10.1f}{cl * 1e3:>10.1f}{nchw / cl:>12.2f}x")

if __name__ == "__main__":
    main()
