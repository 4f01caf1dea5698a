#!/usr/bin/env bash
# The main job, end to end on the CPU: install what is missing, build, convert the
# stories260K tiny LLaMA to a Hugging Face directory, and generate with it and with
# SmolLM2-135M-Instruct. (Training arrives with the training issue and will take over
# this script.)
set -euo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
fixtures="${XCOMP_FIXTURES:-$root/../shared/fixtures}"
models="${XCOMP_MODELS:-$HOME/.cache/xcomp}"
work="${XCOMP_WORK:-$root/runs/quickstart}"

bash "$root/launch/setup.sh"
build=$(bash "$root/launch/build.sh")
xcomp="$build/xcomp"
mkdir -p "$work"

echo "== stories260K: convert llama2.c -> Hugging Face layout, then greedy from BOS" >&2
"$xcomp" convert llama2c "$fixtures/stories260K/stories260K.bin" "$work/stories260K" \
  --tokenizer "$fixtures/stories260K/tok512.model"
"$xcomp" generate --model "$work/stories260K" --max-new-tokens 120

echo "== SmolLM2-135M-Instruct (GGUF, loaded directly): a chat question, greedy" >&2
"$xcomp" generate --model "$models/SmolLM2-135M-Instruct.Q4_1.gguf" --chat \
  --prompt "What is the capital of France? Answer in one sentence." --max-new-tokens 48
