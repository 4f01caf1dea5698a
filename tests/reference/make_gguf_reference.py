#!/usr/bin/env python3
"""Reference data for the GGUF reader tests (tests/unit/gguf_test.cc).

Writes, under tests/reference/data/:
  toy_llama.gguf                 a tiny LLaMA-architecture model written with gguf-py's
                                 GGUFWriter: 2 layers, hidden 32, 4 heads, 2 kv heads,
                                 head_dim 8, intermediate 64, vocab 300 (a byte-level BPE
                                 "gpt2" tokenizer trained here on a short text), untied
                                 lm_head, general.alignment 64, tensors in F32, F16, BF16,
                                 Q8_0, Q4_0 and Q4_1, and one metadata key of every GGUF
                                 value type (xcomp.test.*), nested arrays included.
  toy_llama.expected.safetensors every tensor dequantised by gguf-py's own
                                 gguf.quants.dequantize, under its GGUF name in PyTorch
                                 shape and GGUF row order; plus, for q and k, the rows put
                                 back into Hugging Face's order (inverse of llama.cpp's
                                 convert_hf_to_gguf permute) as "hf.<Hugging Face name>".
  smollm2_reference.json         shape, first 64 values and sum of a few tensors of
                                 ~/.cache/xcomp/SmolLM2-135M-Instruct.Q4_1.gguf (fetched by
                                 launch/setup.sh), dequantised by gguf.quants; skipped with
                                 a note when that file is absent.

Re-run (from the repository root):
  /tmp/refvenv/bin/python tests/reference/make_gguf_reference.py
The venv pins gguf 0.10.0, numpy 1.24.2 and safetensors 0.8.0 (transformers 4.42.3 and
torch are in it too, unused here). To rebuild it elsewhere:
  python3 -m venv /tmp/refvenv && /tmp/refvenv/bin/pip install gguf==0.10.0 numpy==1.24.2 safetensors==0.8.0
Everything is seeded, so a re-run writes the same bytes.
"""

import json
import os
import sys
from collections import Counter

import numpy as np
import gguf
from gguf import GGMLQuantizationType as Q
from safetensors.numpy import save_file

HERE = os.path.dirname(os.path.abspath(__file__))
DATA = os.path.join(HERE, "data")
SMOLLM2 = os.path.join(os.environ.get("XCOMP_MODELS", os.path.expanduser("~/.cache/xcomp")),
                       "SmolLM2-135M-Instruct.Q4_1.gguf")

LAYERS, HIDDEN, HEADS, KV_HEADS, INTERMEDIATE = 2, 32, 4, 2, 64
HEAD_DIM = HIDDEN // HEADS

# ---------------------------------------------------------------------------------------
# A tiny byte-level BPE tokenizer, GPT-2 style: 3 control tokens, the 256 byte symbols,
# 40 merges learnt from TEXT, and one user-defined token (type 4).

TEXT = ("the quick brown fox jumps over the lazy dog. the dog sleeps; the fox runs "
        "there and then the other fox thinks that this is the best of them all.")
N_MERGES = 40


def bytes_to_unicode():
    """GPT-2's printable stand-ins for the 256 byte values."""
    bs = list(range(ord("!"), ord("~") + 1)) + list(range(ord("¡"), ord("¬") + 1)) + \
        list(range(ord("®"), ord("ÿ") + 1))
    cs = bs[:]
    n = 0
    for b in range(256):
        if b not in bs:
            bs.append(b)
            cs.append(256 + n)
            n += 1
    return dict(zip(bs, (chr(c) for c in cs)))


def train_merges(text, n_merges):
    b2u = bytes_to_unicode()
    words = [[b2u[b] for b in w.encode()] for w in
             [text.split(" ")[0]] + [" " + w for w in text.split(" ")[1:]]]
    merges = []
    for _ in range(n_merges):
        pairs = Counter()
        for w in words:
            pairs.update(zip(w, w[1:]))
        # most frequent, ties broken by the pair itself: deterministic
        (a, b), _ = min(pairs.items(), key=lambda kv: (-kv[1], kv[0]))
        merges.append(a + " " + b)
        for w in words:
            i = 0
            while i < len(w) - 1:
                if w[i] == a and w[i + 1] == b:
                    w[i:i + 2] = [a + b]
                i += 1
    return merges


def toy_tokenizer():
    specials = ["<|endoftext|>", "<|im_start|>", "<|im_end|>"]
    byte_tokens = list(bytes_to_unicode().values())
    merges = train_merges(TEXT, N_MERGES)
    tokens = specials + byte_tokens + [m.replace(" ", "") for m in merges] + ["<|end|>"]
    types = [3] * len(specials) + [1] * (len(byte_tokens) + len(merges)) + [4]
    assert len(tokens) == 300 and len(set(tokens)) == 300, len(tokens)
    return tokens, types, merges


# ---------------------------------------------------------------------------------------
# Tensors: made in Hugging Face's layout, q/k rows permuted as llama.cpp's converter does,
# then stored in the type chosen below.

TYPES = {
    "token_embd.weight": Q.Q8_0,
    "output_norm.weight": Q.F32,
    "output.weight": Q.Q4_1,
    "blk.0.attn_norm.weight": Q.F32,
    "blk.0.attn_q.weight": Q.Q4_0,
    "blk.0.attn_k.weight": Q.Q4_1,
    "blk.0.attn_v.weight": Q.Q8_0,
    "blk.0.attn_output.weight": Q.F16,
    "blk.0.ffn_norm.weight": Q.BF16,
    "blk.0.ffn_gate.weight": Q.Q4_1,
    "blk.0.ffn_up.weight": Q.Q4_0,
    "blk.0.ffn_down.weight": Q.BF16,
    "blk.1.attn_norm.weight": Q.BF16,
    "blk.1.attn_q.weight": Q.Q8_0,
    "blk.1.attn_k.weight": Q.Q4_0,
    "blk.1.attn_v.weight": Q.F16,
    "blk.1.attn_output.weight": Q.BF16,
    "blk.1.ffn_norm.weight": Q.F32,
    "blk.1.ffn_gate.weight": Q.Q8_0,
    "blk.1.ffn_up.weight": Q.F16,
    "blk.1.ffn_down.weight": Q.Q4_1,
}


def llama_cpp_permute(w, n_head):
    """convert_hf_to_gguf.py's permute: Hugging Face's rotate-halves rows -> interleaved pairs."""
    return w.reshape(n_head, 2, w.shape[0] // n_head // 2, *w.shape[1:]).swapaxes(1, 2).reshape(w.shape)


def inverse_permute(w, n_head):
    """Interleaved pairs -> Hugging Face halves: the reader must do exactly this."""
    return w.reshape(n_head, w.shape[0] // n_head // 2, 2, *w.shape[1:]).swapaxes(1, 2).reshape(w.shape)


def toy_shapes(vocab):
    shapes = {"token_embd.weight": (vocab, HIDDEN), "output_norm.weight": (HIDDEN,),
              "output.weight": (vocab, HIDDEN)}
    for i in range(LAYERS):
        p = f"blk.{i}."
        shapes.update({
            p + "attn_norm.weight": (HIDDEN,), p + "ffn_norm.weight": (HIDDEN,),
            p + "attn_q.weight": (HEADS * HEAD_DIM, HIDDEN),
            p + "attn_k.weight": (KV_HEADS * HEAD_DIM, HIDDEN),
            p + "attn_v.weight": (KV_HEADS * HEAD_DIM, HIDDEN),
            p + "attn_output.weight": (HIDDEN, HEADS * HEAD_DIM),
            p + "ffn_gate.weight": (INTERMEDIATE, HIDDEN), p + "ffn_up.weight": (INTERMEDIATE, HIDDEN),
            p + "ffn_down.weight": (HIDDEN, INTERMEDIATE),
        })
    return shapes


def make_values(name, shape, rng):
    if name.endswith("norm.weight"):
        return (1.0 + 0.1 * rng.standard_normal(shape)).astype(np.float32)
    w = (0.2 * rng.standard_normal(shape)).astype(np.float32)
    # edge cases for the block formats: an all-zero block (d = 0), a constant block
    # (Q4_1 with d = 0, m != 0), and a block with one large outlier
    w[0, :32] = 0.0
    if shape[0] > 2:
        w[1, :32] = 0.75
        w[2, 5] = 40.0
    return w


def quantise(values, qtype):
    if qtype == Q.F32:
        return values
    if qtype == Q.F16:
        return values.astype(np.float16)
    return gguf.quants.quantize(values, qtype)  # uint8 blocks (gguf 0.10 has Q4_0/Q4_1/Q8_0/BF16)


def add_test_metadata(w):
    """One key of every GGUF value type, for the generic metadata reader."""
    w.add_uint8("xcomp.test.u8", 200)
    w.add_int8("xcomp.test.i8", -100)
    w.add_uint16("xcomp.test.u16", 60000)
    w.add_int16("xcomp.test.i16", -30000)
    w.add_uint32("xcomp.test.u32", 4000000000)
    w.add_int32("xcomp.test.i32", -2000000000)
    w.add_float32("xcomp.test.f32", 0.5)
    w.add_uint64("xcomp.test.u64", 2**63 + 5)
    w.add_int64("xcomp.test.i64", -(2**62))
    w.add_float64("xcomp.test.f64", 0.1)
    w.add_bool("xcomp.test.bool", True)
    w.add_string("xcomp.test.string", "h\u00e9llo")
    w.add_array("xcomp.test.int_array", [1, -2, 3])
    w.add_array("xcomp.test.float_array", [0.25, -1.5])
    w.add_array("xcomp.test.bool_array", [True, False])
    w.add_array("xcomp.test.string_array", ["a", "bc"])
    w.add_array("xcomp.test.byte_array", b"\x01\x02\xff")
    w.add_array("xcomp.test.nested_array", [[1, 2], [3], [4, 5, 6]])
    w.add_array("xcomp.test.nested_string_array", [["x"], ["y", "z"]])


def write_toy():
    rng = np.random.default_rng(20240601)
    tokens, types, merges = toy_tokenizer()
    vocab = len(tokens)
    path = os.path.join(DATA, "toy_llama.gguf")
    w = gguf.GGUFWriter(path, "llama")
    w.add_name("xcomp toy llama")
    w.add_custom_alignment(64)
    w.add_context_length(256)
    w.add_embedding_length(HIDDEN)
    w.add_block_count(LAYERS)
    w.add_feed_forward_length(INTERMEDIATE)
    w.add_head_count(HEADS)
    w.add_head_count_kv(KV_HEADS)
    w.add_rope_dimension_count(HEAD_DIM)
    w.add_rope_freq_base(50000.0)
    w.add_layer_norm_rms_eps(1e-6)
    w.add_vocab_size(vocab)
    w.add_tokenizer_model("gpt2")
    w.add_tokenizer_pre("smollm")
    w.add_token_list(tokens)
    w.add_token_types(types)
    w.add_token_merges(merges)
    w.add_bos_token_id(1)
    # eos is <|endoftext|>; <|im_end|> (a control token) must come out as an extra eos id
    w.add_eos_token_id(0)
    w.add_unk_token_id(0)
    w.add_pad_token_id(2)
    w.add_add_bos_token(False)
    w.add_chat_template("{% for m in messages %}<|im_start|>{{ m['content'] }}<|im_end|>{% endfor %}")
    add_test_metadata(w)

    expected = {}
    for name, shape in toy_shapes(vocab).items():
        values = make_values(name, shape, rng)
        if name.endswith("attn_q.weight"):
            values = llama_cpp_permute(values, HEADS)
        elif name.endswith("attn_k.weight"):
            values = llama_cpp_permute(values, KV_HEADS)
        qtype = TYPES[name]
        data = quantise(values, qtype)
        if data.dtype == np.uint8:
            w.add_tensor(name, data, raw_dtype=qtype)
        else:
            w.add_tensor(name, data)
        raw = data.view(np.uint8) if qtype in (Q.F32, Q.F16) else data
        deq = gguf.quants.dequantize(raw, qtype).reshape(shape).astype(np.float32)
        expected[name] = np.ascontiguousarray(deq)
        layer = name.split(".")[1] if name.startswith("blk.") else None
        if name.endswith("attn_q.weight"):
            expected[f"hf.model.layers.{layer}.self_attn.q_proj.weight"] = \
                np.ascontiguousarray(inverse_permute(deq, HEADS))
        elif name.endswith("attn_k.weight"):
            expected[f"hf.model.layers.{layer}.self_attn.k_proj.weight"] = \
                np.ascontiguousarray(inverse_permute(deq, KV_HEADS))

    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()
    expected_path = os.path.join(DATA, "toy_llama.expected.safetensors")
    save_file(expected, expected_path)
    os.chmod(expected_path, 0o644)  # safetensors creates it owner-only


def write_smollm2():
    if not os.path.exists(SMOLLM2):
        print(f"note: {SMOLLM2} is absent (launch/setup.sh fetches it); smollm2_reference.json not rewritten")
        return
    reader = gguf.GGUFReader(SMOLLM2)
    by_name = {t.name: t for t in reader.tensors}
    out = {"file": os.path.basename(SMOLLM2), "tensors": {}}
    heads = {"attn_q": 9, "attn_k": 3}
    for name in ["token_embd.weight", "blk.0.attn_q.weight", "blk.0.attn_k.weight",
                 "blk.0.attn_norm.weight", "blk.29.ffn_down.weight", "output_norm.weight"]:
        t = by_name[name]
        deq = gguf.quants.dequantize(t.data, t.tensor_type).astype(np.float32)
        shape = [int(d) for d in reversed(t.shape.tolist())]  # PyTorch order
        deq = deq.reshape(shape)
        entry = {"type": t.tensor_type.name, "shape": shape,
                 "first64": [float(x) for x in deq.reshape(-1)[:64]],
                 "sum": float(deq.astype(np.float64).sum())}
        kind = name.split(".")[2] if name.startswith("blk.") else ""
        if kind in heads:
            # Hugging Face's row 1 is GGUF row 2 (first of the second interleaved pair)
            hf = inverse_permute(deq, heads[kind])
            entry["hf_row1_first8"] = [float(x) for x in hf[1, :8]]
        out["tensors"][name] = entry
    with open(os.path.join(DATA, "smollm2_reference.json"), "w") as f:
        json.dump(out, f, indent=1)
        f.write("\n")


def main():
    os.makedirs(DATA, exist_ok=True)
    write_toy()
    write_smollm2()
    for name in sorted(os.listdir(DATA)):
        if name.startswith(("toy_llama", "smollm2_reference")):
            size = os.path.getsize(os.path.join(DATA, name))
            print(f"{name}: {size} bytes")
            if size > 200 * 1024:
                sys.exit(f"{name} is over 200 KB: too big to commit")


if __name__ == "__main__":
    main()
