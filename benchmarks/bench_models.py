"""Every model of the book against the machine's limit: FLOPs per training step, step time, the
throughput reached as a fraction of this machine's measured fp32 convolution peak, and the time
the model's own compute sets for one full-budget run of its recipe (a floor for any loop).

  python benchmarks/bench_models.py                 # all models, 2 threads
  python benchmarks/bench_models.py --models erav1s8 resnet_spec
  python benchmarks/bench_models.py --device cuda --precisions fp32 auto   # a GPU, float32 and its autocast

Step times are the best of --steps steps after warm-up, on synthetic data at the recipe's batch
size, in the memory format fit() chooses (channels_last for conv nets unless the model opts out).
"""
from __future__ import annotations

import argparse

import torch

from common import best_step_seconds, conv_peak_gflops, hardware_line, train_step_flops
from normlab.devices import resolve_device, tune_cpu_allocator
from normlab.precision import PRECISIONS, choose_precision
from normlab.models import MODELS, build_model
from normlab.recipes import RECIPES
from normlab.train import picks_channels_last

TRAIN_IMAGES = {"cifar10": 50_000, "cifar2": 10_000, "mnist": 60_000, "mnist_tairtahar": 51_000}


def steps_per_run(recipe) -> int:
    """Training steps of one full-budget run: every fit call of the recipe (fast.ai's two)."""
    epochs = sum(e for _, e, _ in recipe.calls) if recipe.calls else recipe.epochs
    return epochs * -(-TRAIN_IMAGES[recipe.dataset] // recipe.batch_size)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--steps", type=int, default=8)
    p.add_argument("--models", nargs="*", default=list(MODELS))
    p.add_argument("--device", default="cpu", help="cpu, cuda, mps or auto (default cpu)")
    p.add_argument("--precisions", nargs="*", default=["fp32"], choices=PRECISIONS,
                   help="one table per precision (normlab.precision; auto: the device's choice)")
    args = p.parse_args()
    torch.set_num_threads(args.threads)
    device = resolve_device(args.device)
    if device.type == "cpu":
        tune_cpu_allocator()
    print(hardware_line(device))
    for name in args.precisions:
        precision = choose_precision(device, name)
        # the fraction of peak is taken against the same arithmetic (float32 or the autocast dtype)
        peak, what = conv_peak_gflops(device=device, precision=precision)
        print(f"\nprecision {precision}")
        print(f"measured convolution peak: {peak:.1f} GFLOP/s ({what})")
        print(f"{'model':<15}{'batch':>6}{'GFLOP/step':>11}{'ms/step':>9}{'GFLOP/s':>9}{'of peak':>9}"
              f"{'steps/run':>10}{'compute/run':>13}")
        for model_name in args.models:
            spec, recipe = MODELS[model_name], RECIPES[model_name]
            bs = recipe.batch_size
            torch.manual_seed(0)
            model = build_model(model_name).to(device)
            x = torch.randn(bs, *spec.input_shape, device=device)
            y = torch.randint(0, 2 if recipe.dataset == "cifar2" else 10, (bs,), device=device)
            if picks_channels_last(model, device):  # the memory format fit() picks
                model, x = model.to(memory_format=torch.channels_last), x.contiguous(memory_format=torch.channels_last)
            flops = train_step_flops(model, x, y)
            sec = best_step_seconds(model, x, y, args.steps, precision)
            steps = steps_per_run(recipe)
            print(f"{model_name:<15}{bs:>6}{flops / 1e9:>11.2f}{sec * 1e3:>9.1f}{flops / sec / 1e9:>9.1f}"
                  f"{flops / sec / 1e9 / peak:>9.0%}{steps:>10}{steps * sec / 60:>11.1f} min")


if __name__ == "__main__":
    main()
