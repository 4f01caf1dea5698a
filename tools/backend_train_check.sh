#!/usr/bin/env bash
# Trains and evaluates the study's embedded-default row (stories260K, K/V mode, N=16,
# 96-token texts, 300 steps, seed 0: tools/study.sh stories260k row regen-kv-n16-l96) on
# the backend named, so that a GPU run can be set beside the CPU row of the README's
# results. Runs anywhere xcomp runs; on a lent GPU machine, through tools/gpu_check.sh:
#
#   tools/backend_train_check.sh cuda OUT_DIR [key=value ...]    (or cpu, to try it out)
#
# Extra arguments are config overrides (cuda_weights=f32, ...). NP=2 trains with
# `mpirun -np 2` and micro-batch 8 a rank (the same global batch of 16); on one GPU the
# ranks share it.
#
# Needs XCOMP_FIXTURES (stories260K/ and tinystories/ are all it reads) and xcomp on PATH
# or in $XCOMP. Writes OUT_DIR/data (shards), OUT_DIR/run (metrics.jsonl, checkpoints),
# OUT_DIR/eval (report.md); prints the last metrics line and the evaluation table. The
# evaluation decodes on EVAL_DEVICE (default cpu, so rows trained on either backend are
# decoded alike; cuda decodes on the GPU with EVAL_CUDA_WEIGHTS, default bf16), on the
# CPU with one thread by default: stories260K decodes a token in microseconds, and more
# threads only add wake-ups (with OMP_WAIT_POLICY=passive, 2 threads took 12x as long as 1
# here).
set -euo pipefail

backend=${1:?usage: tools/backend_train_check.sh cpu|cuda OUT_DIR}
out=${2:?usage: tools/backend_train_check.sh cpu|cuda OUT_DIR}
shift 2
np=${NP:-1}
launch=()
if ((np > 1)); then
  launch=(mpirun -np "$np" --oversubscribe --bind-to none)
  [[ $(id -u) -ne 0 ]] || launch+=(--allow-run-as-root)
fi
steps=${STEPS:-300}
REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
fixtures=${XCOMP_FIXTURES:-$REPO/../shared/fixtures}
xcomp=${XCOMP:-xcomp}
for need in stories260K/stories260K.bin stories260K/tok512.model tinystories/tinystories_sample.txt; do
  [[ -f $fixtures/$need ]] || { echo "missing fixture: $fixtures/$need (set XCOMP_FIXTURES)" >&2; exit 1; }
done
mkdir -p "$out"

start=$(date +%s)
"$xcomp" prepare --format text --input "$fixtures/tinystories/tinystories_sample.txt" --out "$out/data" \
  --tokenizer "$fixtures/stories260K/tok512.model" --split-by hash --test-fraction 0.15 --overwrite >"$out/prepare.log" 2>&1
echo "prepared in $(($(date +%s) - start)) s"

start=$(date +%s)
# The study row's settings (tools/study.sh), backend aside.
XCOMP_FIXTURES="$fixtures" ${launch[@]+"${launch[@]}"} "$xcomp" train --config "$REPO/configs/stories260k-regen-kv.yaml" run_dir="$out/run" \
  backend="$backend" threads="${THREADS:-0}" resume=auto seed=0 train.steps="$steps" train.warmup_steps=$((steps < 300 ? steps / 10 : 30)) \
  eval.every="$steps" checkpoint.every="$steps" log.progress=never compressor.mode=kv compressor.num_tokens=16 \
  compressor.max_text_len=96 compressor.decoder_positions=reference \
  data.micro_batch=$((16 / np)) "data.train=[\"$out/data/train-*.h5\"]" "data.validation=[\"$out/data/test-*.h5\"]" \
  "$@" 2>"$out/train.log" ||
  { tail -20 "$out/train.log" >&2; exit 1; }
echo "trained $steps steps on $backend ($np rank(s)${*:+, $*}) in $(($(date +%s) - start)) s"
# The trajectory at a few steps (loss over the batch), then the last line in full.
grep -E '"step":(1|10|50|100|200),' "$out/run/metrics.jsonl" | sed -E 's/.*"loss":([0-9.e+-]+).*"step":([0-9]+).*/  step \2 loss \1/'
tail -1 "$out/run/metrics.jsonl"

start=$(date +%s)
XCOMP_FIXTURES="$fixtures" "$xcomp" eval --checkpoint "$out/run" --task regeneration --data "$out/data/test-*.h5" \
  --limit 200 --threads "${EVAL_THREADS:-1}" --device "${EVAL_DEVICE:-cpu}" --cuda-weights "${EVAL_CUDA_WEIGHTS:-bf16}" \
  --out "$out/eval" 2>"$out/eval.log" || { tail -20 "$out/eval.log" >&2; exit 1; }
echo "evaluated on ${EVAL_DEVICE:-cpu} in $(($(date +%s) - start)) s"
