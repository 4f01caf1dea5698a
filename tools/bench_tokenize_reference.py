#!/usr/bin/env python3
"""The anchors for `xcomp bench tokenize`: tiktoken (LLaMA-3's ranks and pattern) and
Hugging Face tokenizers (SmolLM2's byte-level BPE), plus SentencePiece (tok512.model), on
the same documents, printed in the same units (MB/s of UTF-8 input; warm; whole passes
until --seconds have passed).

    /tmp/refvenv/bin/python tools/bench_tokenize_reference.py [--text FILE] [--seconds S] [--threads N]
        [--smollm2-json PATH]

"1 thread" is encode_ordinary / encode called per document from Python (the interpreter's
per-call cost included, as a Python user sees it); the parallel column is
encode_ordinary_batch(num_threads=N) for tiktoken and encode_batch (Rayon, limited with
RAYON_NUM_THREADS=N, set before the import) for tokenizers; SentencePiece has
encode(list, num_threads=N). SmolLM2's tokenizer comes from --smollm2-json (a
tokenizer.json, e.g. written by `xcomp convert gguf`) or else is built from
$XCOMP_SMOLLM2_GGUF exactly as tests/reference/make_tokenizer_reference.py builds it.
Documents are cut as xcomp cuts them: on <|endoftext|> when the file has it, else one per
non-empty line, each whitespace-stripped. Environment: the venv of
tests/reference/README.md (tiktoken, tokenizers, sentencepiece, gguf).
"""
import argparse
import os
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
FIXTURES = os.environ.get("XCOMP_FIXTURES", os.path.join(ROOT, "..", "shared", "fixtures"))
GGUF = os.environ.get("XCOMP_SMOLLM2_GGUF", os.path.expanduser("~/.cache/xcomp/SmolLM2-135M-Instruct.Q4_1.gguf"))
LLAMA3_PATTERN = (r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*"
                  r"|\s*[\r\n]+|\s+(?!\S)|\s+")


def parse_args():
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--text", default=os.path.join(FIXTURES, "tinystories", "tinystories_sample.txt"))
    p.add_argument("--seconds", type=float, default=2.0)
    p.add_argument("--threads", type=int, default=os.cpu_count())
    p.add_argument("--smollm2-json", default=None)
    return p.parse_args()


ARGS = parse_args()
os.environ["RAYON_NUM_THREADS"] = str(ARGS.threads)  # read by tokenizers' thread pool at first use

import tiktoken  # noqa: E402
import tiktoken.load  # noqa: E402
import tokenizers  # noqa: E402


def read_documents(path):
    with open(path, encoding="utf-8") as f:
        text = f.read()
    separator = "<|endoftext|>" if "<|endoftext|>" in text else "\n"
    return [d.strip() for d in text.split(separator) if d.strip()]


def measure(encode_all, docs, seconds):
    """(MB/s, tokens per pass): whole passes until `seconds` have passed."""
    size = sum(len(d.encode("utf-8")) for d in docs)
    passes, start = 0, time.perf_counter()
    while True:
        tokens = encode_all(docs)
        passes += 1
        elapsed = time.perf_counter() - start
        if elapsed >= seconds:
            return size * passes / elapsed / 1e6, tokens


def llama3_tiktoken():
    ranks = tiktoken.load.load_tiktoken_bpe(os.path.join(FIXTURES, "llama3", "tokenizer.model"))
    enc = tiktoken.Encoding(name="llama3", pat_str=LLAMA3_PATTERN, mergeable_ranks=ranks, special_tokens={})
    one = lambda docs: sum(len(enc.encode_ordinary(d)) for d in docs)
    many = lambda docs: sum(len(ids) for ids in enc.encode_ordinary_batch(docs, num_threads=ARGS.threads))
    return "tiktoken LLaMA-3", one, many


def smollm2_tokenizers():
    if ARGS.smollm2_json:
        tok = tokenizers.Tokenizer.from_file(ARGS.smollm2_json)
    else:
        sys.path.insert(0, os.path.join(ROOT, "tests", "reference"))
        import make_tokenizer_reference as ref  # builds it from the GGUF, as the reference test data
        tok = ref.build_reference_tokenizer(*ref.read_gguf_tokenizer(GGUF))
    one = lambda docs: sum(len(tok.encode(d, add_special_tokens=False).ids) for d in docs)
    many = lambda docs: sum(len(e.ids) for e in tok.encode_batch(docs, add_special_tokens=False))
    return "HF tokenizers SmolLM2", one, many


def sentencepiece_tok512():
    import sentencepiece
    sp = sentencepiece.SentencePieceProcessor(model_file=os.path.join(FIXTURES, "stories260K", "tok512.model"))
    one = lambda docs: sum(len(sp.encode(d)) for d in docs)
    many = lambda docs: sum(len(ids) for ids in sp.encode(docs, num_threads=ARGS.threads))
    return "sentencepiece tok512.model", one, many


def main():
    docs = read_documents(ARGS.text)
    size = sum(len(d.encode("utf-8")) for d in docs)
    print(f"text {ARGS.text}: {len(docs)} documents, {size} bytes; {ARGS.seconds:g} s per measurement, warm caches")
    print(f"{'anchor':<32} {'1 thread':>12} {'':>12} {'tokens':>10} {'bytes/':>8}")
    print(f"{'':<32} {'MB/s':>12} {ARGS.threads:>9} thr {'':>10} {'token':>8}")
    print(f"  (tiktoken {tiktoken.__version__}, tokenizers {tokenizers.__version__})", file=sys.stderr)
    for make in (sentencepiece_tok512, smollm2_tokenizers, llama3_tiktoken):
        try:
            label, one, many = make()
        except (ImportError, FileNotFoundError) as e:
            print(f"skipping {make.__name__}: {e}", file=sys.stderr)
            continue
        one(docs)  # warm-up
        mb1, tokens = measure(one, docs, ARGS.seconds)
        mbn, tokens_n = measure(many, docs, ARGS.seconds)
        assert tokens == tokens_n, f"{label}: batch gave {tokens_n} tokens, single {tokens}"
        print(f"{label:<32} {mb1:>12.2f} {mbn:>12.2f} {tokens:>10} {size / max(tokens, 1):>8.2f}", flush=True)


if __name__ == "__main__":
    main()
