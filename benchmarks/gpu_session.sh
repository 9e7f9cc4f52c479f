#!/usr/bin/env bash
# #15 item 7 in one call of a lent GPU machine: the ResNet spec benchmark, chapters 8 and 3 at their
# full budgets, one epoch of each of chapter 7's runs, and every model's step time. Each step has a
# cap and the whole a budget, so one slow step cannot take the others' time; after each step the
# logs are packed again into OUT/gpu_session.tgz, so a call cut short still returns what finished.
#
#   bash benchmarks/gpu_session.sh OUT [BUDGET_SECONDS]      # on the GPU machine, repository root
#
# Needs there: python3 with torch (the machine's own), the packed data .gpudata/cifar2.pack
# (benchmarks/gpu_data.py pack) and, for chapter 7's panel cell and glue, wheels of IPython and
# ipywidgets in .whl/ (benchmarks/README.md, "On a lent GPU").
# QUICK=1 checks the plumbing on any machine in a minute (SMOKE chapters, small steps).
set -u
out=${1:?usage: gpu_session.sh OUT [BUDGET_SECONDS]}
budget=${2:-560}
device=${DEVICE:-cuda}
quick=${QUICK:-0}
start=$(date +%s)
logs=$(mktemp -d)
data=$(mktemp -d)
mkdir -p "$out"

left() { echo $(( budget - ($(date +%s) - start) )); }
pack() { tar czf "$out/gpu_session.tgz" -C "$logs" . ; cp "$logs/steps.txt" "$out/" 2>/dev/null; }
step() {  # step NAME CAP_SECONDS COMMAND...: run it under min(cap, time left), log, pack
  local name=$1 cap=$2 l rc t0
  shift 2
  l=$(left)
  if (( l < 20 )); then echo "$name: skipped, ${l} s of the budget left" >>"$logs/steps.txt"; pack; return; fi
  (( cap > l - 5 )) && cap=$(( l - 5 ))
  t0=$(date +%s)
  # SIGINT first: run_chapter.py then writes the cells it timed before it stops
  timeout --signal=INT --kill-after=15 "$cap" "$@" >"$logs/$name.log" 2>&1
  rc=$?
  echo "$name: rc $rc, $(( $(date +%s) - t0 )) s (cap $cap s)" | tee -a "$logs/steps.txt"
  pack
}

export PYTHONUNBUFFERED=1 MPLBACKEND=Agg NORMLAB_DATA="$data"
if ls .whl/*.whl >/dev/null 2>&1; then
  python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl \
    >"$logs/wheels.log" 2>&1 && export PYTHONPATH="/tmp/site:${PYTHONPATH:-}"
fi
export PYTHONPATH="$PWD/src:${PYTHONPATH:-}"
{
  date -u; uname -a; nproc; nvidia-smi 2>&1 | head -15
  python3 -c "import torch, platform; print('python', platform.python_version(), 'torch', torch.__version__,
'cuda', torch.version.cuda, 'cudnn', torch.backends.cudnn.version(), 'tf32 conv', torch.backends.cudnn.allow_tf32,
'tf32 matmul', torch.backends.cuda.matmul.allow_tf32)"
  python3 -c "import IPython, ipywidgets; print('IPython', IPython.__version__, 'ipywidgets', ipywidgets.__version__)"
} >"$logs/env.log" 2>&1
python3 benchmarks/gpu_data.py unpack .gpudata/cifar2.pack "$data" >>"$logs/env.log" 2>&1
pack

if [ "$quick" = 1 ]; then
  chapter_set=(SMOKE=True); epoch_args=(--norms batch); model_args=(--models resnet_spec --steps 2)
else
  chapter_set=(); epoch_args=(--norms batch layer group instance none); model_args=(--steps 10)
fi
[ "$quick" = 1 ] || step resnet_spec 120 python3 benchmarks/bench_resnet_spec.py --device "$device" --precisions auto fp32 fp16
for chapter in 08 03; do
  step "ch$chapter" 150 python3 benchmarks/run_chapter.py "$chapter" --set "DEVICE=\"$device\"" "${chapter_set[@]}" \
    --json "$logs/ch$chapter.json"
done
[ "$quick" = 1 ] || step ch07_epochs 100 python3 benchmarks/bench_epoch.py --model erav1s8 "${epoch_args[@]}" \
  --device "$device" --json "$logs/ch07_epochs.json"
step models 60 python3 benchmarks/bench_models.py --device "$device" --precisions fp32 auto "${model_args[@]}"
echo "done: $(( $(date +%s) - start )) s" | tee -a "$logs/steps.txt"
pack
