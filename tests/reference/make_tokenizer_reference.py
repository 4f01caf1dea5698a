#!/usr/bin/env python3
"""Reference token ids for SmolLM2's byte-level BPE tokenizer, from Hugging Face.

Re-run (from the repository root, with the venv described in tests/reference/README.md):

    /tmp/refvenv/bin/python tests/reference/make_tokenizer_reference.py

Inputs: $XCOMP_SMOLLM2_GGUF (default ~/.cache/xcomp/SmolLM2-135M-Instruct.Q4_1.gguf, from
launch/setup.sh) and the fixtures in $XCOMP_FIXTURES (default ../shared/fixtures).
Output: tests/reference/data/smollm2_tokenizer_reference.json, read by
tests/unit/tokenizer_bytelevel_test.cc.

How the reference tokenizer is built: transformers 4.42.3 does load this GGUF with
AutoTokenizer.from_pretrained(dir, gguf_file=name), but its GGUF converter gives every
"gpt2" vocabulary a plain ByteLevel pre-tokenizer, while SmolLM2's own tokenizer.json
uses Sequence[Digits(individual_digits=True), ByteLevel(add_prefix_space=False,
use_regex=True)] (llama.cpp's pre-tokenizer "smollm"). So the reference is built here
with the `tokenizers` library from the GGUF's tokens, merges and control tokens with
exactly SmolLM2's pre-tokenizer. The transformers tokenizer is still run on every text
and the number of texts on which the two agree is recorded (with this vocabulary they
can differ only where the digit rule matters; on the texts here they all agree).

Fixture texts are stored by source and index, not copied; hand-written edge cases are
stored with their text. Fixture cases carry the text's UTF-8 length ("bytes") so a reader
can check it cut the same text (stories are str.strip()ped). Ids are encoded without BOS/EOS; "parse_special" says whether
special tokens in the text (<|im_start|>, ...) are matched, as Hugging Face does by default.
"""
import gzip
import importlib.metadata
import json
import os
import sys

import gguf
import tokenizers
import transformers
from tokenizers import AddedToken, Tokenizer, decoders, models, pre_tokenizers

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
FIXTURES = os.environ.get("XCOMP_FIXTURES", os.path.join(ROOT, "..", "shared", "fixtures"))
GGUF = os.environ.get("XCOMP_SMOLLM2_GGUF",
                      os.path.expanduser("~/.cache/xcomp/SmolLM2-135M-Instruct.Q4_1.gguf"))
OUT = os.path.join(ROOT, "tests", "reference", "data", "smollm2_tokenizer_reference.json")

CONTROL = 3  # llama.cpp's token type for control tokens


def read_gguf_tokenizer(path):
    reader = gguf.GGUFReader(path)

    def strings(key):
        field = reader.fields[key]
        return [bytes(field.parts[i]).decode("utf-8") for i in field.data]

    def ints(key):
        field = reader.fields[key]
        return [int(field.parts[i][0]) for i in field.data]

    def string(key):
        return strings(key)[0]

    assert string("tokenizer.ggml.model") == "gpt2", "expected a gpt2 (byte-level BPE) vocabulary"
    assert string("tokenizer.ggml.pre") == "smollm", "expected SmolLM2's pre-tokenizer"
    return strings("tokenizer.ggml.tokens"), strings("tokenizer.ggml.merges"), ints("tokenizer.ggml.token_type")


def build_reference_tokenizer(tokens, merges, token_types, with_specials=True):
    vocab = {}
    for i, t in enumerate(tokens):
        vocab.setdefault(t, i)
    pairs = [tuple(m.split(" ")) for m in merges]
    tok = Tokenizer(models.BPE(vocab=vocab, merges=pairs, fuse_unk=False, byte_fallback=False))
    tok.pre_tokenizer = pre_tokenizers.Sequence([
        pre_tokenizers.Digits(individual_digits=True),
        pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=True),
    ])
    tok.decoder = decoders.ByteLevel()
    specials = [AddedToken(tokens[i], special=True, normalized=False)
                for i, t in enumerate(token_types) if t == CONTROL]
    if not with_specials:  # the markers stay plain vocabulary entries, matched as text
        return tok
    tok.add_special_tokens(specials)
    for s in specials:
        assert tok.token_to_id(s.content) == tokens.index(s.content)
    return tok


def fixture_texts():
    """(source, index, text) for every fixture text used."""
    with open(os.path.join(FIXTURES, "tinystories", "tinystories_sample.txt"), encoding="utf-8") as f:
        stories = [s.strip() for s in f.read().split("<|endoftext|>")]
    stories = [s for s in stories if s][:100]
    for i, s in enumerate(stories):
        yield "tinystories", i, s
    with open(os.path.join(FIXTURES, "arxiv", "arxiv-metadata-oai-snapshot.first200.jsonl"), encoding="utf-8") as f:
        for i, line in enumerate(f):
            yield "arxiv", i, json.loads(line)["abstract"]
    with gzip.open(os.path.join(FIXTURES, "qa", "mrqa_SQuAD_dev.jsonl.gz"), "rt", encoding="utf-8") as f:
        next(f)  # the MRQA header line
        for i, line in enumerate(f):
            if i == 100:
                break
            yield "squad", i, json.loads(line)["context"]


EDGE_CASES = [
    "12345",
    "In 2024, 3.14159 and 1,000,000 were 42nd.",
    "Unicode: naïve café, Ærøskøbing, Żółć, São Paulo, Ελληνικά, русский, 日本語のテキスト, 中文字符.",
    "Emoji: 😀👍🏽 🇫🇷 👨‍👩‍👧‍👦 ❤️",
    "Accents: é è ê ë à â ä î ï ô ö û ü ç ñ Å Ø",
    "multiple   spaces\tand\ttabs\n\nnewlines\r\n  indented\n\n\n",
    "   leading and trailing spaces   ",
    "Contractions: it's we're they've I'm you'll he'd DON'T",
    "code: def f(x):\n    return x**2 + 1  # comment\n",
    "<|im_start|>system\nYou are a helpful AI assistant named SmolLM, trained by Hugging Face<|im_end|>\n"
    "<|im_start|>user\nWhat is the capital of France?<|im_end|>\n<|im_start|>assistant\n",
    "<|endoftext|>text between<|im_end|><|im_start|>",
    "",
]


def main():
    tokens, merges, token_types = read_gguf_tokenizer(GGUF)
    tok = build_reference_tokenizer(tokens, merges, token_types)
    hf_dir, hf_name = os.path.split(GGUF)
    auto = transformers.AutoTokenizer.from_pretrained(hf_dir, gguf_file=hf_name)

    cases, agree = [], 0
    for source, index, text in fixture_texts():
        ids = tok.encode(text, add_special_tokens=False).ids
        assert tok.decode(ids, skip_special_tokens=False) == text
        agree += auto.encode(text, add_special_tokens=False) == ids
        cases.append({"source": source, "index": index, "bytes": len(text.encode("utf-8")),
                      "parse_special": True, "ids": ids})
    for text in EDGE_CASES:
        ids = tok.encode(text, add_special_tokens=False).ids
        agree += auto.encode(text, add_special_tokens=False) == ids
        cases.append({"source": "text", "text": text, "parse_special": True, "ids": ids})
    # The chat prompt again without parsing special tokens: its markers become characters.
    chat = EDGE_CASES[9]
    # tokenizers 0.19 has no split_special_tokens, so a tokenizer without added tokens
    # stands in for parse_special=False.
    plain = build_reference_tokenizer(tokens, merges, token_types, with_specials=False)
    plain_ids = plain.encode(chat, add_special_tokens=False).ids
    assert plain.decode(plain_ids) == chat
    cases.append({"source": "text", "text": chat, "parse_special": False, "ids": plain_ids})

    doc = {
        "description": "SmolLM2-135M-Instruct tokenizer ids from Hugging Face tokenizers "
                       "(see tests/reference/make_tokenizer_reference.py)",
        "gguf": os.path.basename(GGUF),
        "pre_tokenizer": "Sequence[Digits(individual_digits=True), ByteLevel(add_prefix_space=False, use_regex=True)]",
        "sources": {
            "tinystories": "tinystories/tinystories_sample.txt split on <|endoftext|>, stripped, non-empty, first 100",
            "arxiv": "arxiv/arxiv-metadata-oai-snapshot.first200.jsonl, field abstract, line index",
            "squad": "qa/mrqa_SQuAD_dev.jsonl.gz, header line skipped, field context, line index",
            "text": "the text itself",
        },
        "versions": {
            "python": sys.version.split()[0],
            "tokenizers": tokenizers.__version__,
            "transformers": transformers.__version__,
            "gguf": importlib.metadata.version("gguf"),
        },
        "transformers_gguf_tokenizer_agrees_on": f"{agree} of {len(cases) - 1} texts",
        "cases": cases,
    }
    os.makedirs(os.path.dirname(OUT), exist_ok=True)
    with open(OUT, "w", encoding="utf-8") as f:
        json.dump(doc, f, ensure_ascii=False, separators=(",", ":"))
        f.write("\n")
    print(f"wrote {OUT}: {len(cases)} cases, {os.path.getsize(OUT)} bytes; "
          f"transformers' GGUF tokenizer agrees on {agree} of {len(cases) - 1}")


if __name__ == "__main__":
    main()
