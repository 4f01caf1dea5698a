#!/usr/bin/env python3
"""Reference token ids for LLaMA-3's tokenizer, from OpenAI's `tiktoken`.

Re-run (from the repository root, with the venv described in tests/reference/README.md):

    /tmp/refvenv/bin/python tests/reference/make_llama3_tokenizer_reference.py

Input: $XCOMP_FIXTURES (default ../shared/fixtures): llama3/tokenizer.model (128,000
base64 BPE ranks, tiktoken format), llama3/tokenizer_config.json (special tokens
128000-128255), and the texts below. Output:
tests/reference/data/llama3_tokenizer_reference.json, read by
tests/unit/tokenizer_tiktoken_test.cc.

The reference tokenizer is built exactly as Meta's llama3/tokenizer.py builds it:
tiktoken.Encoding with the ranks from tiktoken.load.load_tiktoken_bpe, Meta's pre-tokenizer
pattern and the 256 special tokens numbered from 128000 (taken here from
tokenizer_config.json's added_tokens_decoder; the script checks they are Meta's standard
list). "parse_special": false cases use encode_ordinary (special-token text is ordinary
text); true cases use encode(text, allowed_special="all").

Fixture texts are stored by source and index, not copied; hand-written edge cases are
stored inline. Fixture cases carry the text's UTF-8 length ("bytes") so a reader can check
it cut the same text. Sources: arXiv abstracts (all 200), SQuAD contexts (the first 200
after the MRQA header line), TinyStories stories (split on <|endoftext|>, str.strip()ped,
empty ones dropped, the first 200).
"""
import gzip
import json
import os
import sys

import tiktoken
import tiktoken.load

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
FIXTURES = os.environ.get("XCOMP_FIXTURES", os.path.join(ROOT, "..", "shared", "fixtures"))
RANKS = os.path.join(FIXTURES, "llama3", "tokenizer.model")
CONFIG = os.path.join(FIXTURES, "llama3", "tokenizer_config.json")
OUT = os.path.join(ROOT, "tests", "reference", "data", "llama3_tokenizer_reference.json")

# Meta's llama3/tokenizer.py pattern (the same string as kLlama3Pattern in io/pretokenizer.cc).
PATTERN = (r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*"
           r"|\s*[\r\n]+|\s+(?!\S)|\s+")
PER_SOURCE = 200


def standard_special_tokens():
    """Meta's list: 10 named/reserved tokens, then reserved 5..250."""
    names = ["<|begin_of_text|>", "<|end_of_text|>", "<|reserved_special_token_0|>",
             "<|reserved_special_token_1|>", "<|reserved_special_token_2|>",
             "<|reserved_special_token_3|>", "<|start_header_id|>", "<|end_header_id|>",
             "<|reserved_special_token_4|>", "<|eot_id|>"]
    names += [f"<|reserved_special_token_{i}|>" for i in range(5, 251)]
    return names


def build_encoding():
    ranks = tiktoken.load.load_tiktoken_bpe(RANKS)
    with open(CONFIG, encoding="utf-8") as f:
        decoder = json.load(f)["added_tokens_decoder"]
    specials = {t["content"]: int(i) for i, t in decoder.items()}
    standard = {name: len(ranks) + i for i, name in enumerate(standard_special_tokens())}
    assert specials == standard, "tokenizer_config.json's special tokens are not LLaMA-3's standard list"
    return tiktoken.Encoding(name="llama3", pat_str=PATTERN, mergeable_ranks=ranks, special_tokens=specials)


def fixture_texts():
    """(source, index, text) for every fixture text used."""
    with open(os.path.join(FIXTURES, "arxiv", "arxiv-metadata-oai-snapshot.first200.jsonl"), encoding="utf-8") as f:
        for i, line in enumerate(f):
            if i == PER_SOURCE:
                break
            yield "arxiv", i, json.loads(line)["abstract"]
    with gzip.open(os.path.join(FIXTURES, "qa", "mrqa_SQuAD_dev.jsonl.gz"), "rt", encoding="utf-8") as f:
        next(f)  # the MRQA header line
        for i, line in enumerate(f):
            if i == PER_SOURCE:
                break
            yield "squad", i, json.loads(line)["context"]
    with open(os.path.join(FIXTURES, "tinystories", "tinystories_sample.txt"), encoding="utf-8") as f:
        stories = [s.strip() for s in f.read().split("<|endoftext|>")]
    for i, s in enumerate([s for s in stories if s][:PER_SOURCE]):
        yield "tinystories", i, s


CHAT = ("<|begin_of_text|><|start_header_id|>system<|end_header_id|>\n\nYou are a helpful assistant.<|eot_id|>"
        "<|start_header_id|>user<|end_header_id|>\n\nWhat is the capital of France?<|eot_id|>"
        "<|start_header_id|>assistant<|end_header_id|>\n\n")

EDGE_CASES = [
    "",
    "1", "12", "123", "1234", "12345", "123456", "1234567",
    "In 2024, 3.14159 and 1,000,000 were 42nd; ٣٤٥٦ and ²³ and Ⅻ are numbers too.",
    "Contractions: it's we're they've I'm you'll he'd DON'T It'S WE'LL THEY'VE 'VE 'll 's",
    "quotes 'single' and \"double\" and ‘curly’ ’s",
    "Unicode: naïve café, Ærøskøbing, Żółć, São Paulo, Ελληνικά, русский, 日本語のテキスト, 中文字符, עברית, العربية, हिन्दी.",
    "Emoji: 😀👍🏽 🇫🇷 👨‍👩‍👧‍👦 ❤️ 🤖🤖🤖",
    "Accents: é è ê ë à â ä î ï ô ö û ü ç ñ Å Ø; combining: e\u0301 a\u0308",
    "multiple   spaces\tand\ttabs\n\nnewlines\r\n  indented\n\n\n",
    "   leading and trailing spaces   ",
    " ", "  ", "\n", "\n\n", " \n", "\n ", "\t\t", "a\r\nb\rc\nd",
    "x  \n  y   \n\n   z",
    "unicode spaces:\u00a0nbsp\u2003em\u3000ideographic\u2028line\u2029para\u0085nel end",
    "code: def f(x):\n    return x**2 + 1  # comment\n\tif a!=b: print('ok')\n",
    "punctuation!!! ... ??? --- *** ### $$$ (((x))) [[y]] {{z}} <<>>",
    "URLs https://example.com/path?q=1&r=two#frag and e-mail someone@example.org",
    "MiXeD CaSe WoRdS and ALLCAPS and camelCaseIdentifiers and snake_case_names",
    "A" * 300,
    "ab" * 200 + " " + "9" * 50,
    CHAT,
    "<|end_of_text|>text between<|eot_id|><|reserved_special_token_42|>",
    "not special: <|begin_of_text |> <|unknown|> <| eot_id|>",
]


def main():
    enc = build_encoding()
    cases = []

    def add(source, text, parse_special, index=None):
        ids = enc.encode(text, allowed_special="all") if parse_special else enc.encode_ordinary(text)
        assert enc.decode_bytes(ids) == text.encode("utf-8")
        case = {"source": source}
        if index is None:
            case["text"] = text
        else:
            case["index"] = index
            case["bytes"] = len(text.encode("utf-8"))
        case["parse_special"] = parse_special
        case["ids"] = ids
        cases.append(case)

    for source, index, text in fixture_texts():
        add(source, text, False, index)
    for text in EDGE_CASES:
        add("text", text, False)
    # Special tokens parsed: the chat prompt and the marker-only text again.
    add("text", CHAT, True)
    add("text", EDGE_CASES[-2], True)
    add("text", EDGE_CASES[-1], True)

    doc = {
        "description": "LLaMA-3 tokenizer ids from tiktoken "
                       "(see tests/reference/make_llama3_tokenizer_reference.py)",
        "ranks": "llama3/tokenizer.model",
        "pattern": PATTERN,
        "special_tokens": "128000-128255 from llama3/tokenizer_config.json (Meta's standard list)",
        "sources": {
            "arxiv": "arxiv/arxiv-metadata-oai-snapshot.first200.jsonl, field abstract, line index",
            "squad": "qa/mrqa_SQuAD_dev.jsonl.gz, header line skipped, field context, line index",
            "tinystories": "tinystories/tinystories_sample.txt split on <|endoftext|>, stripped, non-empty, index",
            "text": "the text itself",
        },
        "versions": {"python": sys.version.split()[0], "tiktoken": tiktoken.__version__},
        "cases": cases,
    }
    os.makedirs(os.path.dirname(OUT), exist_ok=True)
    with open(OUT, "w", encoding="utf-8") as f:
        json.dump(doc, f, ensure_ascii=False, separators=(",", ":"))
        f.write("\n")
    print(f"wrote {OUT}: {len(cases)} cases, {os.path.getsize(OUT)} bytes")


if __name__ == "__main__":
    main()
