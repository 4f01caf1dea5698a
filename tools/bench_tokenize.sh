#!/usr/bin/env bash
# Tokenizer throughput, xcomp beside its anchors (tiktoken, Hugging Face tokenizers,
# sentencepiece), on the same documents and in the same units (MB/s of UTF-8 input).
#
#   tools/bench_tokenize.sh [--text FILE] [--seconds S] [--threads N]
#
# Environment: XCOMP (the xcomp binary; default build/xcomp), PYTHON (a Python with
# tiktoken, tokenizers, sentencepiece and gguf; default /tmp/refvenv/bin/python, see
# tests/reference/README.md), XCOMP_FIXTURES, XCOMP_MODELS. Run from the repository root
# on an otherwise idle machine: the numbers are only as steady as the machine is.
set -euo pipefail
XCOMP=${XCOMP:-build/xcomp}
PYTHON=${PYTHON:-/tmp/refvenv/bin/python}
here=$(cd "$(dirname "$0")" && pwd)

echo "== xcomp bench tokenize"
"$XCOMP" bench tokenize "$@"
echo
echo "== anchors (tools/bench_tokenize_reference.py)"
"$PYTHON" "$here/bench_tokenize_reference.py" "$@"
