"""The reference models shared by the scripts in tests/reference/: stories260K from its
llama2.c checkpoint and SmolLM2-135M-Instruct from its Q4_1 GGUF, both as Hugging Face
transformers' LlamaForCausalLM in float32 with eager attention (q/k rows permuted from
interleaved to half-split RoPE order, so the weights are the ones xcomp's loaders
produce); a context that makes a float64 model compute in float64 throughout; and a
safetensors writer whose output is the same bytes on a rerun.

make_model_reference.py's docstring documents how each model is built; the scripts
import from here so that all of them use exactly the same models.
"""

import contextlib
import json
import os
import struct
import sys

import numpy as np
import torch
from transformers import LlamaConfig, LlamaForCausalLM
from transformers.models.llama import modeling_llama
import gguf
import gguf.quants

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(os.path.dirname(HERE))
FIXTURES = os.environ.get("XCOMP_FIXTURES", os.path.join(REPO, "..", "shared", "fixtures"))
SMOLLM2_GGUF = os.environ.get(
    "XCOMP_SMOLLM2_GGUF", os.path.expanduser("~/.cache/xcomp/SmolLM2-135M-Instruct.Q4_1.gguf"))

def fail(msg):
    print("ERROR: " + msg, file=sys.stderr)
    sys.exit(1)


def permute_interleaved_to_halves(w, n_heads):
    """Rows of a q/k projection [n_heads*head_dim, in]: within each head, row order
    (0,1),(2,3),... pairs (interleaved RoPE) -> first halves then second halves (HF)."""
    rows, cols = w.shape
    head_dim = rows // n_heads
    return w.reshape(n_heads, head_dim // 2, 2, cols).swapaxes(1, 2).reshape(rows, cols)


# ---------------------------------------------------------------------------------------
# Model construction

def make_model(cfg, state):
    config = LlamaConfig(attn_implementation="eager", **cfg)
    torch.manual_seed(0)
    model = LlamaForCausalLM(config)
    tensors = {k: torch.from_numpy(np.array(v, dtype=np.float32)) for k, v in state.items()}
    tensors["lm_head.weight"] = tensors["model.embed_tokens.weight"]  # tied
    model.load_state_dict(tensors, strict=True)
    if type(model.model.layers[0].self_attn) is not modeling_llama.LlamaAttention:
        fail("expected eager LlamaAttention, got %s" % type(model.model.layers[0].self_attn))
    if model.lm_head.weight.data_ptr() != model.model.embed_tokens.weight.data_ptr():
        fail("lm_head is not tied to embed_tokens")
    model.eval()
    return model


def load_llama2c(path):
    with open(path, "rb") as f:
        raw = f.read()
    dim, hidden, n_layers, n_heads, n_kv, vocab, seq_len = struct.unpack("<7i", raw[:28])
    shared = vocab > 0
    vocab = abs(vocab)
    head = dim // n_heads
    kv_dim = n_kv * head
    data = np.frombuffer(raw, dtype="<f4", offset=28)
    pos = 0

    def take(*shape):
        nonlocal pos
        n = int(np.prod(shape))
        if pos + n > data.size:
            fail("%s: truncated" % path)
        a = data[pos:pos + n].reshape(shape)
        pos += n
        return a

    emb = take(vocab, dim)
    rms_att = take(n_layers, dim)
    wq = take(n_layers, dim, dim)
    wk = take(n_layers, kv_dim, dim)
    wv = take(n_layers, kv_dim, dim)
    wo = take(n_layers, dim, dim)
    rms_ffn = take(n_layers, dim)
    w1 = take(n_layers, hidden, dim)
    w2 = take(n_layers, dim, hidden)
    w3 = take(n_layers, hidden, dim)
    rms_final = take(dim)
    take(seq_len, head // 2)  # freq_cis_real (HF computes its own)
    take(seq_len, head // 2)  # freq_cis_imag
    if not shared:
        fail("expected a shared classifier in %s" % path)
    if pos != data.size:
        fail("%s: %d trailing floats" % (path, data.size - pos))

    cfg = dict(vocab_size=vocab, hidden_size=dim, intermediate_size=hidden,
               num_hidden_layers=n_layers, num_attention_heads=n_heads,
               num_key_value_heads=n_kv, max_position_embeddings=seq_len,
               rms_norm_eps=1e-5, rope_theta=10000.0, tie_word_embeddings=True,
               bos_token_id=1, eos_token_id=2, pad_token_id=0, hidden_act="silu")
    st = {"model.embed_tokens.weight": emb, "model.norm.weight": rms_final}
    for l in range(n_layers):
        p = "model.layers.%d." % l
        st[p + "input_layernorm.weight"] = rms_att[l]
        st[p + "self_attn.q_proj.weight"] = permute_interleaved_to_halves(wq[l], n_heads)
        st[p + "self_attn.k_proj.weight"] = permute_interleaved_to_halves(wk[l], n_kv)
        st[p + "self_attn.v_proj.weight"] = wv[l]
        st[p + "self_attn.o_proj.weight"] = wo[l]
        st[p + "post_attention_layernorm.weight"] = rms_ffn[l]
        st[p + "mlp.gate_proj.weight"] = w1[l]
        st[p + "mlp.up_proj.weight"] = w3[l]
        st[p + "mlp.down_proj.weight"] = w2[l]
    return cfg, st


def gguf_field(reader, key):
    f = reader.fields[key]
    if f.types and f.types[0] == gguf.GGUFValueType.STRING:
        return bytes(f.parts[f.data[0]]).decode("utf-8")
    v = f.parts[f.data[0]]
    return v.tolist()[0]


def gguf_strings(reader, key):
    f = reader.fields[key]
    return [bytes(f.parts[i]).decode("utf-8") for i in f.data]


def dequant_q4_1_independent(raw, rows, cols):
    """Q4_1 block of 32: f16 d, f16 m, 16 bytes; low nibbles are elements 0..15, high
    nibbles 16..31; x = d*q + m. Written separately from gguf.quants as a cross-check."""
    blocks = raw.reshape(rows, cols // 32, 20)
    d = blocks[:, :, 0:2].copy().view("<f2").astype(np.float32)
    m = blocks[:, :, 2:4].copy().view("<f2").astype(np.float32)
    qs = blocks[:, :, 4:20]
    q = np.concatenate([qs & 0x0F, qs >> 4], axis=-1).astype(np.float32)
    return (d * q + m).reshape(rows, cols)


def load_smollm2_gguf(path):
    r = gguf.GGUFReader(path)
    arch = gguf_field(r, "general.architecture")
    if arch != "llama":
        fail("%s: architecture %s, expected llama" % (path, arch))
    n_layers = gguf_field(r, "llama.block_count")
    hidden = gguf_field(r, "llama.embedding_length")
    inter = gguf_field(r, "llama.feed_forward_length")
    n_heads = gguf_field(r, "llama.attention.head_count")
    n_kv = gguf_field(r, "llama.attention.head_count_kv")
    # GGUF stores these as float32; take the shortest decimal that round-trips (1e-05).
    theta = float(str(np.float32(gguf_field(r, "llama.rope.freq_base"))))
    eps = float(str(np.float32(gguf_field(r, "llama.attention.layer_norm_rms_epsilon"))))
    tokens = gguf_strings(r, "tokenizer.ggml.tokens")
    vocab = len(tokens)
    head = hidden // n_heads
    cfg = dict(vocab_size=vocab, hidden_size=hidden, intermediate_size=inter,
               num_hidden_layers=n_layers, num_attention_heads=n_heads,
               num_key_value_heads=n_kv,
               max_position_embeddings=gguf_field(r, "llama.context_length"),
               rms_norm_eps=eps, rope_theta=theta, tie_word_embeddings=True,
               bos_token_id=1, eos_token_id=2, pad_token_id=0, hidden_act="silu")
    expect = dict(vocab_size=49152, hidden_size=576, intermediate_size=1536, num_hidden_layers=30,
                  num_attention_heads=9, num_key_value_heads=3, rope_theta=100000.0,
                  rms_norm_eps=1e-5)
    for k, v in expect.items():
        if abs(cfg[k] - v) > 1e-12 * abs(v):
            fail("%s: %s = %s, expected %s" % (path, k, cfg[k], v))

    names = {"attn_norm": "input_layernorm", "attn_q": "self_attn.q_proj",
             "attn_k": "self_attn.k_proj", "attn_v": "self_attn.v_proj",
             "attn_output": "self_attn.o_proj", "ffn_norm": "post_attention_layernorm",
             "ffn_gate": "mlp.gate_proj", "ffn_up": "mlp.up_proj", "ffn_down": "mlp.down_proj"}
    kv_dim = n_kv * head
    hf_shapes = {"input_layernorm": (hidden,), "post_attention_layernorm": (hidden,),
                 "self_attn.q_proj": (hidden, hidden), "self_attn.k_proj": (kv_dim, hidden),
                 "self_attn.v_proj": (kv_dim, hidden), "self_attn.o_proj": (hidden, hidden),
                 "mlp.gate_proj": (inter, hidden), "mlp.up_proj": (inter, hidden),
                 "mlp.down_proj": (hidden, inter)}
    st = {}
    checked_q4_1 = False
    for t in r.tensors:
        w = gguf.quants.dequantize(t.data, t.tensor_type).astype(np.float32)
        # GGUF lists shapes innermost-first; the reader's numpy data is row-major [out, in].
        if tuple(w.shape) != tuple(int(x) for x in reversed(t.shape)):
            fail("%s: dequantised shape %s vs gguf shape %s" % (t.name, w.shape, list(t.shape)))
        if t.tensor_type == gguf.GGMLQuantizationType.Q4_1 and not checked_q4_1:
            mine = dequant_q4_1_independent(np.asarray(t.data), *w.shape)
            if not np.array_equal(mine, w):
                fail("Q4_1 dequantisation disagrees on %s" % t.name)
            checked_q4_1 = True
        if t.name == "token_embd.weight":
            if t.tensor_type == gguf.GGMLQuantizationType.Q8_0:
                from transformers.integrations.ggml import dequantize_q8_0
                theirs = dequantize_q8_0(np.asarray(t.data).reshape(-1)).reshape(w.shape)
                if np.max(np.abs(theirs - w)) != 0:
                    fail("Q8_0 dequantisation disagrees with transformers' on token_embd")
            if w.shape != (vocab, hidden):
                fail("token_embd shape %s" % (w.shape,))
            st["model.embed_tokens.weight"] = w
        elif t.name == "output_norm.weight":
            st["model.norm.weight"] = w
        elif t.name == "output.weight":
            fail("unexpected untied output.weight")
        else:
            blk, l, part, _ = t.name.split(".")
            hf = names[part]
            if hf_shapes[hf] != w.shape:
                fail("%s: shape %s, expected %s" % (t.name, w.shape, hf_shapes[hf]))
            if part == "attn_q":
                w = permute_interleaved_to_halves(w, n_heads)   # undo llama.cpp's permute
            elif part == "attn_k":
                w = permute_interleaved_to_halves(w, n_kv)
            st["model.layers.%s.%s.weight" % (l, hf)] = w
    if not checked_q4_1:
        fail("no Q4_1 tensor was cross-checked")
    if len(st) != 2 + 9 * n_layers:
        fail("expected %d tensors, got %d" % (2 + 9 * n_layers, len(st)))

    # Tokenizer (transformers 4.42's GGUF tokenizer converter only knows SentencePiece-style
    # llama vocabularies, not this gpt2-style BPE): rebuild SmolLM2's with `tokenizers`.
    from tokenizers import Tokenizer, AddedToken, models, pre_tokenizers, decoders
    types = [int(r.fields["tokenizer.ggml.token_type"].parts[i][0])
             for i in r.fields["tokenizer.ggml.token_type"].data]
    merges = [tuple(m.split(" ")) for m in gguf_strings(r, "tokenizer.ggml.merges")]
    tok = Tokenizer(models.BPE(vocab={s: i for i, s in enumerate(tokens)}, merges=merges,
                               fuse_unk=False, byte_fallback=False))
    tok.pre_tokenizer = pre_tokenizers.Sequence([
        pre_tokenizers.Digits(individual_digits=True),
        pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=True)])
    tok.decoder = decoders.ByteLevel()
    tok.add_special_tokens([AddedToken(s, special=True, normalized=False)
                            for s, ty in zip(tokens, types) if ty == 3])
    meta = {"gguf_eos_token_id": gguf_field(r, "tokenizer.ggml.eos_token_id"),
            "gguf_bos_token_id": gguf_field(r, "tokenizer.ggml.bos_token_id")}
    return cfg, st, tok, meta


# ---------------------------------------------------------------------------------------
# float64 helpers: HF 4.42 computes RMSNorm, RoPE tables and the attention softmax in
# float32 even for a float64 model; patch them so the cross-check is float64 throughout.
# LlamaForCausalLM also returns logits.float() (not patched here): a caller that needs
# float64 logits applies the head to the final hidden state (make_compressor_reference.py).

@contextlib.contextmanager
def true_float64():
    orig_norm = modeling_llama.LlamaRMSNorm.forward
    orig_rope = modeling_llama.LlamaRotaryEmbedding.forward
    orig_softmax = torch.nn.functional.softmax

    def norm(self, x):
        if x.dtype != torch.float64:
            return orig_norm(self, x)
        var = x.pow(2).mean(-1, keepdim=True)
        return self.weight * (x * torch.rsqrt(var + self.variance_epsilon))

    def rope(self, x, position_ids):
        if x.dtype != torch.float64:
            return orig_rope(self, x, position_ids)
        inv = 1.0 / (self.base ** (torch.arange(0, self.dim, 2, dtype=torch.float64) / self.dim))
        freqs = position_ids.to(torch.float64)[:, :, None] * inv[None, None, :]
        emb = torch.cat((freqs, freqs), dim=-1)
        return emb.cos(), emb.sin()

    def softmax(x, dim=None, _stacklevel=3, dtype=None):
        if x.dtype == torch.float64:
            dtype = None
        return orig_softmax(x, dim=dim, _stacklevel=_stacklevel, dtype=dtype)

    modeling_llama.LlamaRMSNorm.forward = norm
    modeling_llama.LlamaRotaryEmbedding.forward = rope
    torch.nn.functional.softmax = softmax
    try:
        yield
    finally:
        modeling_llama.LlamaRMSNorm.forward = orig_norm
        modeling_llama.LlamaRotaryEmbedding.forward = orig_rope
        torch.nn.functional.softmax = orig_softmax


# ---------------------------------------------------------------------------------------
# Output

def write_safetensors(path, tensors, metadata):
    """safetensors with keys in sorted order, so a rerun writes the same bytes (the
    safetensors package orders __metadata__ by hash). Checked by reading back with it."""
    header = {"__metadata__": {k: metadata[k] for k in sorted(metadata)}}
    offset = 0
    blobs = []
    for name in sorted(tensors):
        a = np.ascontiguousarray(tensors[name])
        dtype = {np.dtype(np.int32): "I32", np.dtype(np.float32): "F32"}[a.dtype]
        data = a.astype(a.dtype.newbyteorder("<"), copy=False).tobytes()
        header[name] = {"dtype": dtype, "shape": list(a.shape), "data_offsets": [offset, offset + len(data)]}
        blobs.append(data)
        offset += len(data)
    text = json.dumps(header, separators=(",", ":")).encode("utf-8")
    text += b" " * (-len(text) % 8)
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(text)))
        f.write(text)
        for data in blobs:
            f.write(data)


def dist_version(name):
    from importlib.metadata import version
    return version(name)
