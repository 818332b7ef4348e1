#!/usr/bin/env bash
# Cascade vs one-shot at the paper's recovery budgets (10 / 10 / 30 epochs; one-shot 50), which
# the 2-core CPU cannot afford (8,550 steps per run): every run of the comparison at once on one
# GPU machine, one process each. Usage (from the repository root, on a machine with CUDA):
#
#   CASCADEPRUNE_DATA=<data> RESULTS=<dir> bash benchmarks/parallel_gpu.sh [seconds per run]
#   (knobs: SEEDS, RATIOS, VARIANTS, SCALE, MODEL=gpt2-deep for the 12-layer model)
#
# Writes dense-<model>-<seed>.jsonl and cascade-<model>-<variant>-<ratio>-<seed>.jsonl under $RESULTS (merge
# them into benchmarks/results/ afterwards); the first step trains the raw-patch dense models there.
set -u
RESULTS=${RESULTS:?set RESULTS to a folder for the records}
LIMIT=${1:-480}
SEEDS=${SEEDS:-"42 123 456"}
RATIOS=${RATIOS:-"8.7 13.8"}
VARIANTS=${VARIANTS:-"cascade oneshot"}
MODEL=${MODEL:-gpt2-10m}  # a from-scratch backbone of benchmarks/dense.py, e.g. gpt2-deep
SCALE=${SCALE:-28.5}  # 60/60/180 steps x 28.5 = 1710/1710/5130 = 10/10/30 epochs of 171 steps
mkdir -p "$RESULTS"
PY=${PY:-python3}
for s in $SEEDS; do
  OMP_NUM_THREADS=4 $PY -m benchmarks.dense --models "$MODEL" --protocols cwru-4class-crossload --seeds "$s" \
    --speed-jitter 0.03 --front-end raw --device cuda --results "$RESULTS/dense-$MODEL-$s.jsonl" &
done
wait
for s in $SEEDS; do for r in $RATIOS; do for v in $VARIANTS; do
  OMP_NUM_THREADS=1 timeout "$LIMIT" $PY -m benchmarks.cascade --model "$MODEL" --front-end raw --speed-jitter 0.03 \
    --ratios "$r" --variants "$v" --seeds "$s" --recovery-scale "$SCALE" --keep last --device cuda \
    --results "$RESULTS/cascade-$MODEL-$v-$r-$s.jsonl" &
done; done; done
wait
