"""Chapter 7's group-norm run with torch's dropout sampler at other seeds: does the sampler move
its accuracy beyond the run-to-run spread? (#15: a faster path may not move a chapter's accuracy
beyond its spread; erav1s8 draws its masks as geometric gaps on the CPU since registry revision 1.)

  python benchmarks/bench_sampler_seeds.py --seeds 1 2 3        # about 17 min a run on 2 cores

The gaps sampler's seeds are tools/seed_spread.py's config erav1s8_group (chapter 9 shows them);
these runs are the same calls with `dropout_sampler="torch"`, kept apart from chapter 9 in
benchmarks/results/07_group_norm_torch_sampler.json (resumed: seeds already there are skipped).
"""
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tools"))
import seed_spread  # noqa: E402

NAME = "erav1s8_group_torch"
OUT = Path(__file__).resolve().parent / "results" / "07_group_norm_torch_sampler.json"

if __name__ == "__main__":
    gaps = seed_spread.CONFIGS["erav1s8_group"]
    seed_spread.CONFIGS[NAME] = seed_spread.Config(
        gaps.chapter, gaps.experiment, gaps.model, gaps.chapter_seed, gaps.norm,
        {**gaps.model_kwargs, "dropout_sampler": "torch"}, gaps.measures,
        note="torch's dropout sampler; the chapter's run draws its masks as gaps")
    sys.exit(seed_spread.main(["--configs", NAME, "--out", str(OUT), *sys.argv[1:]]))
