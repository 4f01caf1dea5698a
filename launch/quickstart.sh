#!/usr/bin/env bash
# The main job, end to end on the CPU with the embedded default (stories260K):
# install what is missing, build, prepare the TinyStories sample into HDF5 shards, train
# the K/V compressor (N=16, 96-token texts) as two data-parallel MPI ranks with
# checkpoints, evaluate regeneration on held-out stories against the no-prefix and
# full-text baselines, and show one held-out story, its compressed prompt and the text
# regenerated from it. Re-running resumes an interrupted run and reuses finished steps;
# --fresh starts over.
set -euo pipefail
# OpenMP threads that wait by spinning steal the cores from each other and from the
# other rank on a small machine (a step measured 10x slower on a loaded 2-core box).
export OMP_WAIT_POLICY="${OMP_WAIT_POLICY:-passive}"
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
# Two ranks x micro-batch 8 = the config's global batch of 16. resume=auto (the config's
# default) continues from the newest intact checkpoint and does nothing once the run has
# reached train.steps, so a re-run never trains a finished run again.
mpi=(mpirun -np 2 --oversubscribe --bind-to none)
[[ $(id -u) -ne 0 ]] || mpi+=(--allow-run-as-root)
echo "== train: K/V compressor on stories260K, $steps steps, 2 MPI ranks (configs/stories260k-regen-kv.yaml)" >&2
XCOMP_FIXTURES="$fixtures" \
  "${mpi[@]}" "$xcomp" train --config "$root/configs/stories260k-regen-kv.yaml" run_dir="$run" threads=1 \
  train.steps="$steps" train.warmup_steps=$((steps < 300 ? steps / 10 : 30)) eval.every=$((steps < 100 ? steps : 100)) checkpoint.every=$((steps < 100 ? steps : 100)) data.micro_batch=8 \
  "data.train=[\"$work/data/train-*.h5\"]" "data.validation=[\"$work/data/test-*.h5\"]"
python3 - "$run/metrics.jsonl" <<'PY' >&2
import json, sys
rows = [json.loads(l) for l in open(sys.argv[1])]
base = next(r for r in rows if "val_noprefix_loss" in r)
steps = [r for r in rows if "loss" in r]
print(f"   trained {steps[-1]['step']} steps; train loss {steps[0]['loss']:.3f} -> {steps[-1]['loss']:.3f}")
print(f"   validation without a prefix: loss {base['val_noprefix_loss']:.3f} "
      f"(text tokens {base['val_noprefix_text_loss']:.3f}, end of text {base['val_noprefix_end_loss']:.2f})")
for r in rows:
    if "val_loss" in r:
        print(f"   step {r['step']:5d}: validation loss {r['val_loss']:.3f} (text tokens {r['val_text_loss']:.3f}, "
              f"end of text {r['val_end_loss']:.2f})")
PY
ls "$run/checkpoints" | sed 's/^/   checkpoint: /' >&2

eval_dir="$work/eval"
if [[ ! -f "$eval_dir/report.md" || "$eval_dir/report.md" -ot "$run/checkpoints/latest" ]]; then
  echo "== eval: regeneration of 100 held-out stories (compressed vs full text vs no prefix), 2 ranks" >&2
  "${mpi[@]}" "$xcomp" eval --checkpoint "$run" --task regeneration \
    --data "$work/data/test-*.h5" --limit 100 --threads 1 --out "$eval_dir" >/dev/null
fi
cat "$eval_dir/report.md"

echo "== one held-out story, compressed into 16 tokens' keys and values, and regenerated from them" >&2
python3 - "$eval_dir/predictions.jsonl" "$work/story.txt" <<'PY'
import json, sys
first = next(json.loads(l) for l in open(sys.argv[1]))
open(sys.argv[2], "w").write(first["reference"])
PY
"$xcomp" compress --checkpoint "$run" --text "$work/story.txt" --out "$work/story.xkv" 2>/dev/null
echo "story ($(wc -c <"$work/story.txt") bytes of text):"
cat "$work/story.txt"; echo
echo "compressed prompt: $work/story.xkv, $(stat -c %s "$work/story.xkv") bytes (16 tokens x 5 layers x K,V x 4 heads x 8)"
echo "regenerated:"
"$xcomp" regenerate --model "$fixtures/stories260K/stories260K.bin" --tokenizer "$fixtures/stories260K/tok512.model" \
  --prompt "$work/story.xkv" --max-new-tokens 100 2>/dev/null
echo

echo "== stories260K: convert llama2.c -> Hugging Face layout, then greedy from BOS" >&2
"$xcomp" convert llama2c "$fixtures/stories260K/stories260K.bin" "$work/stories260K" \
  --tokenizer "$fixtures/stories260K/tok512.model"
"$xcomp" generate --model "$work/stories260K" --max-new-tokens 120

echo "== SmolLM2-135M-Instruct (GGUF, loaded directly): a chat question, greedy" >&2
"$xcomp" generate --model "$models/SmolLM2-135M-Instruct.Q4_1.gguf" --chat \
  --prompt "What is the capital of France? Answer in one sentence." --max-new-tokens 48
echo "== done in $(( $(date +%s) - start )) s (after setup and build)" >&2
