#!/usr/bin/env bash
# The main job, end to end on the CPU with the embedded default (stories260K):
# install what is missing, build, prepare the TinyStories sample into HDF5 shards, train
# the K/V compressor (N=16, 96-token texts) for a few hundred steps, then generate with
# stories260K and SmolLM2-135M-Instruct. A finished training run is reused; pass
# --fresh to start over. (Data-parallel ranks, checkpoints and evaluation join this
# script with their issues.)
set -euo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
fixtures="${XCOMP_FIXTURES:-$root/../shared/fixtures}"
models="${XCOMP_MODELS:-$HOME/.cache/xcomp}"
work="${XCOMP_WORK:-$root/runs/quickstart}"
steps="${XCOMP_QUICKSTART_STEPS:-300}"

if [[ "${1:-}" == "--fresh" ]]; then rm -rf "$work"; fi
for f in stories260K/stories260K.bin stories260K/tok512.model tinystories/tinystories_sample.txt; do
  if [[ ! -f "$fixtures/$f" ]]; then
    echo "quickstart: missing $fixtures/$f — set XCOMP_FIXTURES to the fixtures folder (see README.md, 'Data and models')" >&2
    exit 1
  fi
done

bash "$root/launch/setup.sh"
build=$(bash "$root/launch/build.sh")
xcomp="$build/xcomp"
mkdir -p "$work"
start=$(date +%s)

if [[ ! -f "$work/data/train-00000.h5" ]]; then
  echo "== prepare: TinyStories sample -> HDF5 token shards (85% train / 15% test by id hash)" >&2
  "$xcomp" prepare --format text --input "$fixtures/tinystories/tinystories_sample.txt" --out "$work/data" \
    --tokenizer "$fixtures/stories260K/tok512.model" --split-by hash --test-fraction 0.15 --overwrite
fi

run="$work/stories260k-regen-kv"
if [[ ! -f "$run/trainable.safetensors" ]]; then
  echo "== train: K/V compressor on stories260K, $steps steps (configs/stories260k-regen-kv.yaml)" >&2
  rm -rf "$run"
  XCOMP_FIXTURES="$fixtures" \
    "$xcomp" train --config "$root/configs/stories260k-regen-kv.yaml" run_dir="$run" resume= \
    train.steps="$steps" train.warmup_steps=30 eval.every=100 \
    "data.train=[\"$work/data/train-*.h5\"]" "data.validation=[\"$work/data/test-*.h5\"]"
else
  echo "== train: $run is finished; reusing it (--fresh starts over)" >&2
fi
python3 - "$run/metrics.jsonl" <<'PY' >&2
import json, sys
rows = [json.loads(l) for l in open(sys.argv[1])]
val = [r for r in rows if "val_loss" in r]
print(f"   trained {rows[-1]['step']} steps; train loss {rows[0]['loss']:.3f} -> {rows[-1]['loss']:.3f}")
for r in val:
    print(f"   step {r['step']:5d}: validation loss {r['val_loss']:.3f} (text tokens {r['val_text_loss']:.3f}, end of text {r['val_end_loss']:.2f})")
PY

echo "== stories260K: convert llama2.c -> Hugging Face layout, then greedy from BOS" >&2
"$xcomp" convert llama2c "$fixtures/stories260K/stories260K.bin" "$work/stories260K" \
  --tokenizer "$fixtures/stories260K/tok512.model"
"$xcomp" generate --model "$work/stories260K" --max-new-tokens 120

echo "== SmolLM2-135M-Instruct (GGUF, loaded directly): a chat question, greedy" >&2
"$xcomp" generate --model "$models/SmolLM2-135M-Instruct.Q4_1.gguf" --chat \
  --prompt "What is the capital of France? Answer in one sentence." --max-new-tokens 48
echo "== done in $(( $(date +%s) - start )) s (after setup and build)" >&2
