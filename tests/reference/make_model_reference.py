#!/usr/bin/env python3
"""Reference logits and greedy generations for xcomp's LLaMA forward, from PyTorch +
Hugging Face transformers' LlamaForCausalLM (the stack the 500xCompressor paper used).

CI has no PyTorch, so this script is run by hand and its outputs are committed:

    tests/reference/data/stories260K_reference.safetensors
    tests/reference/data/smollm2_135m_reference.safetensors

Rerun (see tests/reference/README.md for the venv):

    /tmp/refvenv/bin/python tests/reference/make_model_reference.py            # both models
    /tmp/refvenv/bin/python tests/reference/make_model_reference.py --only stories260K

Inputs: $XCOMP_FIXTURES (default ../shared/fixtures relative to the repository root) for
stories260K/stories260K.bin and tok512.model; $XCOMP_SMOLLM2_GGUF (default
~/.cache/xcomp/SmolLM2-135M-Instruct.Q4_1.gguf) for SmolLM2.

Models
------
stories260K: llama2.c checkpoint loaded here with numpy (dim 64, hidden 172, 5 layers, 8
  heads, 4 KV heads, vocab 512), rope_theta 10000, rms_norm_eps 1e-5, tied embeddings,
  bos 1, eos 2; w1 -> gate_proj, w3 -> up_proj, w2 -> down_proj. llama2.c's RoPE rotates
  interleaved pairs, HF's rotates halves, so the rows of wq (8 heads) and wk (4 heads) are
  permuted into HF order: w.reshape(n_heads, head_dim//2, 2, dim).swapaxes(1, 2).reshape(...)
  (as HF's convert_llama_weights_to_hf.py does). Logits do not depend on this choice, but
  any cached K stored here (prefix.past_keys) is in HF's half-split layout.
SmolLM2-135M-Instruct: the Q4_1 GGUF (token_embd Q8_0, norms F32) dequantised with
  gguf.quants.dequantize (llama.cpp's definition; cross-checked here against a small
  independent Q4_1 decoder and transformers' own Q8_0 decoder). 30 layers, hidden 576,
  intermediate 1536, 9 heads, 3 KV heads, head_dim 64, vocab 49152, tied embeddings,
  rope_theta 100000, rms_norm_eps 1e-5. llama.cpp's converter permuted q/k rows into the
  interleaved convention; this script undoes it with the same reshape/swapaxes as above
  (9 heads for attn_q, 3 for attn_k). So the weights are the *dequantised* Q4_1 model, not
  the original bf16 SmolLM2: a C++ test must load the same GGUF and dequantise it.

All runs: float32, attn_implementation="eager", model.eval(), torch.no_grad().

Tensors in each file (I32 and F32 only; B = batch rows, T = sequence length)
----------------------------------------------------------------------------
"batch" case, one call model(input_ids, attention_mask, position_ids), no cache:
  batch.tokens     I32 [B,T]  three prompts of different lengths, right-padded with id 0
                              (stories260K: BOS 1 prepended; SmolLM2: no BOS)
  batch.mask       I32 [B,T]  1 = real token, 0 = pad; passed as attention_mask
  batch.positions  I32 [B,T]  0..len-1 on real tokens, 0 on pads; passed as position_ids
  batch.logits_cols I32 [C]   vocabulary ids kept in batch.logits (stories260K: all 512;
                              SmolLM2: 0, 48, 96, ... -> 1024 columns)
  batch.logits     F32 [B,T,C] logits[:, :, cols]; pad positions included (ignore them)
  batch.last_logits F32 [B,V] full-vocabulary logits at each row's last real position
"prefix" case, a K/V prefix then a second call that attends to it:
  prefix.prefix_tokens    I32 [B,P]  B = 2, all real tokens
  prefix.prefix_positions I32 [B,P]  0..P-1
      call 1: model(prefix_tokens, attention_mask=ones[B,P], position_ids=prefix_positions,
              use_cache=True) -> past_key_values (K after RoPE, V)
  prefix.tokens    I32 [B,T]  second row right-padded with 0
  prefix.mask      I32 [B,T]  1 real, 0 pad
  prefix.positions I32 [B,T]  real tokens at 2, 3, ... (deliberately < P, as the
                              500xCompressor reference decoder does); 0 on pads
      call 2: model(tokens, attention_mask=concat(ones[B,P], mask), position_ids=positions,
              past_key_values=call 1's). Causality follows sequence order, not positions:
              query t (0-based in call 2) sees all P prefix keys and keys 0..t of call 2
              that are not pads (HF 4.42 builds the causal mask from
              cache_position = arange(P, P+T), independent of position_ids). RoPE uses
              position_ids for queries/new keys; prefix keys keep positions 0..P-1.
  prefix.logits_cols, prefix.logits [B,T,C], prefix.last_logits [B,V]: of call 2, as above
  stories260K only (small enough): prefix.past_keys / prefix.past_values F32
      [L,B,kv_heads,P,head_dim] from call 1, K after RoPE, HF half-split head layout
      (for llama2.c's interleaved layout apply the inverse of the permutation above to
      the head_dim axis: dims (0..hd/2-1, hd/2..hd-1) -> interleave).
"greedy" case, model.generate(prompt, do_sample=False, num_beams=1, no repetition penalty):
  greedy.prompt I32 [Lp]  stories260K: [1] (BOS); SmolLM2: the chat prompt below
  greedy.tokens I32 [n]   the newly generated ids only (prompt excluded), EOS included
                          if generation stopped on it. stories260K: 200 new tokens
                          (eos 2 never appears); SmolLM2: up to 48 new tokens,
                          eos_token_id = 2 (<|im_end|>)
  SmolLM2 chat prompt (the GGUF's chat template applied by hand):
  "<|im_start|>system\\nYou are a helpful AI assistant named SmolLM, trained by Hugging
  Face<|im_end|>\\n<|im_start|>user\\nWhat is the capital of France?<|im_end|>\\n
  <|im_start|>assistant\\n" (no line break before the last <|im_start|>)
__metadata__ (strings): greedy.text (decoded greedy output), greedy.prompt_text, the
  versions of torch / transformers / gguf / numpy, model config (JSON), the prompt texts,
  and f32_vs_f64.<case>: the relative difference of the stored float32 logits from a
  float64 run of the same model.

The files are written by write_safetensors below (keys sorted, so a rerun writes the same
bytes; read back with the safetensors package as a check).

Cross-check: every case is recomputed with the model in float64 (RMSNorm, RoPE and
softmax forced to float64 too; HF would otherwise upcast/downcast them to float32) and
the script prints max|f32 - f64| / max|f64| per case over real (non-pad) positions. It
aborts if stories260K's greedy text is not Karpathy's published sample, if SmolLM2's
answer does not mention Paris, or if explicit prefix positions make no difference.
"""

import argparse
import json
import os

import numpy as np
import torch
import transformers
from transformers import DynamicCache
import gguf
from safetensors.numpy import load_file

from reference_models import (FIXTURES, REPO, SMOLLM2_GGUF, dist_version, fail, load_llama2c,
                              load_smollm2_gguf, make_model, true_float64, write_safetensors)

HERE = os.path.dirname(os.path.abspath(__file__))
OUT_DIR = os.path.join(HERE, "data")

STORIES_EXPECTED = ("Once upon a time, there was a little girl named Lily. She loved to play "
                    "outside in the park.")
SMOL_CHAT_PROMPT = ("<|im_start|>system\nYou are a helpful AI assistant named SmolLM, trained by "
                    "Hugging Face<|im_end|>\n<|im_start|>user\nWhat is the capital of France?"
                    "<|im_end|>\n<|im_start|>assistant\n")


# ---------------------------------------------------------------------------------------
# Cases

def pad_right(seqs):
    T = max(len(s) for s in seqs)
    tokens = np.zeros((len(seqs), T), np.int32)
    mask = np.zeros((len(seqs), T), np.int32)
    for i, s in enumerate(seqs):
        tokens[i, :len(s)] = s
        mask[i, :len(s)] = 1
    return tokens, mask


def positions_from(mask, start):
    pos = np.zeros(mask.shape, np.int32)
    for i in range(mask.shape[0]):
        n = int(mask[i].sum())
        pos[i, :n] = np.arange(start, start + n)
    return pos


def lt(a):
    return torch.from_numpy(np.asarray(a, dtype=np.int64))


def last_real(logits, mask):
    idx = mask.sum(axis=1) - 1
    return np.stack([logits[i, idx[i]] for i in range(mask.shape[0])])


def run_batch(model, c):
    with torch.no_grad():
        out = model(input_ids=lt(c["tokens"]), attention_mask=lt(c["mask"]),
                    position_ids=lt(c["positions"]), use_cache=False)
    return out.logits.double().numpy()


def run_prefix(model, c, positions=None, want_cache=False):
    positions = c["positions"] if positions is None else positions
    B, P = c["prefix_tokens"].shape
    with torch.no_grad():
        past = DynamicCache()
        model(input_ids=lt(c["prefix_tokens"]), attention_mask=torch.ones(B, P, dtype=torch.long),
              position_ids=lt(c["prefix_positions"]), past_key_values=past, use_cache=True)
        # call 2 appends to the cache: copy the prefix K/V out first
        keys = np.stack([k.float().numpy().copy() for k in past.key_cache])
        values = np.stack([v.float().numpy().copy() for v in past.value_cache])
        mask = torch.cat([torch.ones(B, P, dtype=torch.long), lt(c["mask"])], dim=1)
        out = model(input_ids=lt(c["tokens"]), attention_mask=mask, position_ids=lt(positions),
                    past_key_values=past, use_cache=True)
    logits = out.logits.double().numpy()
    if want_cache:
        return logits, keys, values
    return logits


def run_prefix_as_one_call(model, c, start):
    """The prefix case without a cache: prefix + tokens in one call, positions 0..P-1 then
    start.. — equals the cached run when start = P (a check on how the cache is used)."""
    B, P = c["prefix_tokens"].shape
    tokens = np.concatenate([c["prefix_tokens"], c["tokens"]], axis=1)
    mask = np.concatenate([np.ones((B, P), np.int32), c["mask"]], axis=1)
    pos = np.concatenate([c["prefix_positions"], positions_from(c["mask"], start)], axis=1)
    with torch.no_grad():
        out = model(input_ids=lt(tokens), attention_mask=lt(mask), position_ids=lt(pos), use_cache=False)
    return out.logits.double().numpy()[:, P:]


def greedy(model, prompt, n, eos):
    ids = lt(prompt)[None, :]
    with torch.no_grad():
        out = model.generate(ids, attention_mask=torch.ones_like(ids), max_new_tokens=n,
                             do_sample=False, num_beams=1, repetition_penalty=1.0,
                             eos_token_id=eos, pad_token_id=0, temperature=None, top_p=None,
                             top_k=None)
    return out[0, len(prompt):].numpy().astype(np.int32)


def rel_diff(a, b, mask=None):
    """max|a-b| / max|b|, over real positions when mask [B,T] is given."""
    if mask is not None:
        a, b = a[mask.astype(bool)], b[mask.astype(bool)]
    return float(np.max(np.abs(a - b)) / np.max(np.abs(b)))


def build_and_write(name, model, cfg, batch_seqs, prefix_seqs, prefix_len, tail_seqs, cols,
                    greedy_prompt, prompt_text, greedy_n, eos, decode, store_cache, extra_meta, check_greedy):
    V = cfg["vocab_size"]
    out = {}
    meta = {"model": name, "torch": torch.__version__, "transformers": transformers.__version__,
            "gguf": getattr(gguf, "__version__", None) or dist_version("gguf"),
            "numpy": np.__version__, "config": json.dumps(cfg, sort_keys=True),
            "generator": "tests/reference/make_model_reference.py"}
    meta.update({k: str(v) for k, v in extra_meta.items()})

    # batch
    bt, bm = pad_right(batch_seqs)
    batch = {"tokens": bt, "mask": bm, "positions": positions_from(bm, 0)}
    lb = run_batch(model, batch)
    # prefix
    pre = np.array([s[:prefix_len] for s in prefix_seqs], np.int32)
    if any(len(s) < prefix_len for s in prefix_seqs):
        fail("prefix prompt shorter than P")
    pt, pm = pad_right(tail_seqs)
    prefix = {"prefix_tokens": pre, "prefix_positions": positions_from(np.ones_like(pre), 0),
              "tokens": pt, "mask": pm, "positions": positions_from(pm, 2)}
    lp, keys, values = run_prefix(model, prefix, want_cache=True)

    # checks on the prefix case
    seq_pos = positions_from(pm, prefix_len)
    lp_seq = run_prefix(model, prefix, positions=seq_pos)
    d_pos = rel_diff(lp_seq, lp, pm)
    if d_pos < 1e-3:
        fail("prefix: explicit positions made no difference (%.3g)" % d_pos)
    d_one = rel_diff(run_prefix_as_one_call(model, prefix, prefix_len), lp_seq, pm)
    if d_one > 1e-5:
        fail("prefix: cached call differs from one uncached call (%.3g)" % d_one)
    d_one2 = rel_diff(run_prefix_as_one_call(model, prefix, 2), lp, pm)
    if d_one2 > 1e-5:
        fail("prefix: cached call with positions from 2 differs from one uncached call (%.3g)" % d_one2)
    print("  prefix: positions 2.. vs %d..: rel diff %.3g (must be large); cached vs one call: "
          "%.2g, %.2g" % (prefix_len, d_pos, d_one, d_one2))

    # greedy
    gp = np.array(greedy_prompt, np.int32)
    gt = greedy(model, gp, greedy_n, eos)
    text = decode(gt)
    check_greedy(text)
    meta["greedy.text"] = text
    meta["greedy.prompt_text"] = prompt_text

    # float64 cross-check
    model64 = model.double()
    with true_float64():
        lb64 = run_batch(model64, batch)
        lp64 = run_prefix(model64, prefix)
        gt64 = greedy(model64, gp, greedy_n, eos)
    model.float()
    diffs = {"batch": rel_diff(lb, lb64, bm), "prefix": rel_diff(lp, lp64, pm),
             "batch.last_logits": rel_diff(last_real(lb, bm), last_real(lb64, bm)),
             "prefix.last_logits": rel_diff(last_real(lp, pm), last_real(lp64, pm))}
    same_greedy = np.array_equal(gt, gt64)
    for k, v in diffs.items():
        meta["f32_vs_f64." + k] = "%.3e" % v
    meta["f32_vs_f64.greedy_tokens_equal"] = str(same_greedy)

    cols = np.asarray(cols, np.int32)
    for case, c, logits in (("batch", batch, lb), ("prefix", prefix, lp)):
        for k, v in c.items():
            out["%s.%s" % (case, k)] = np.ascontiguousarray(v, np.int32)
        out[case + ".logits_cols"] = cols
        out[case + ".logits"] = np.ascontiguousarray(logits[:, :, cols], np.float32)
        out[case + ".last_logits"] = np.ascontiguousarray(last_real(logits, c["mask"]), np.float32)
        assert out[case + ".last_logits"].shape == (c["mask"].shape[0], V)
    if store_cache:
        out["prefix.past_keys"] = np.ascontiguousarray(keys, np.float32)
        out["prefix.past_values"] = np.ascontiguousarray(values, np.float32)
    out["greedy.prompt"] = gp
    out["greedy.tokens"] = gt

    os.makedirs(OUT_DIR, exist_ok=True)
    path = os.path.join(OUT_DIR, "%s_reference.safetensors" % name)
    tmp = path + ".tmp"
    write_safetensors(tmp, out, meta)
    check = load_file(tmp)
    if sorted(check) != sorted(out) or not all(np.array_equal(check[k], out[k]) for k in out):
        fail("safetensors round trip failed for " + tmp)
    os.chmod(tmp, 0o644)
    os.replace(tmp, path)

    print("  wrote %s (%d bytes)" % (os.path.relpath(path, REPO), os.path.getsize(path)))
    for k in sorted(out):
        print("    %-26s %s %s" % (k, "I32" if out[k].dtype == np.int32 else "F32", list(out[k].shape)))
    print("  greedy prompt: %r" % meta["greedy.prompt_text"])
    print("  greedy text (%d tokens): %r" % (len(gt), text))
    print("  float32 vs float64, max|a-b|/max|b| over real positions:")
    for k, v in diffs.items():
        print("    %-20s %.3e" % (k, v))
    print("    greedy tokens equal in float64: %s" % same_greedy)


def do_stories260k():
    import sentencepiece as spm
    print("stories260K")
    cfg, st = load_llama2c(os.path.join(FIXTURES, "stories260K", "stories260K.bin"))
    model = make_model(cfg, st)
    sp = spm.SentencePieceProcessor(model_file=os.path.join(FIXTURES, "stories260K", "tok512.model"))
    known = sp.encode("Once upon a time, there was a little girl named Lily.")
    if known != [403, 407, 261, 378, 432, 383, 286, 261, 376, 298, 315, 421, 395, 317, 426]:
        fail("tok512.model encodes differently from the fixtures README")
    enc = lambda s: [1] + sp.encode(s)
    batch_texts = ["Once upon a time, there was a little girl", "The cat sat",
                   "Tom and his mom went to the park. They saw a big dog with a red ball."]
    prefix_texts = ["Once upon a time, there was a", "Tom had a big red ball and a"]
    tail_texts = ["little boy who liked to play with his toys.", "happy dog"]

    def check(text):
        if not text.startswith(STORIES_EXPECTED):
            fail("stories260K greedy text does not start with the published sample: %r" % text)

    build_and_write("stories260K", model, cfg,
                    [enc(t) for t in batch_texts], [enc(t) for t in prefix_texts], 8,
                    [sp.encode(t) for t in tail_texts], np.arange(cfg["vocab_size"]),
                    [1], "<s> (BOS, id 1)", 200, 2, lambda ids: sp.decode([int(i) for i in ids]), True,
                    {"batch.texts": json.dumps(batch_texts), "prefix.texts": json.dumps(prefix_texts),
                     "prefix.tail_texts": json.dumps(tail_texts),
                     "tokens": "SentencePiece tok512.model; BOS 1 prepended to batch and prefix rows"},
                    check)


def do_smollm2():
    print("SmolLM2-135M-Instruct (Q4_1 GGUF, dequantised)")
    cfg, st, tok, gmeta = load_smollm2_gguf(SMOLLM2_GGUF)
    model = make_model(cfg, st)
    enc = lambda s: tok.encode(s, add_special_tokens=False).ids
    if enc("<|im_start|>user\n") [0] != 1:
        fail("special tokens not recognised by the rebuilt tokenizer")
    batch_texts = ["Once upon a time, there was a little girl", "The cat sat",
                   "We propose 500xCompressor, a method that compresses extensive natural language "
                   "contexts into a minimum of one single special token."]
    prefix_texts = ["The quick brown fox jumps over the lazy dog", "In 1905, Albert Einstein published four papers"]
    tail_texts = [" and then it ran into the forest to find food.", " on physics"]
    chat = enc(SMOL_CHAT_PROMPT)

    def check(text):
        if "Paris" not in text:
            fail("SmolLM2 greedy answer does not mention Paris: %r" % text)

    build_and_write("smollm2_135m", model, cfg,
                    [enc(t) for t in batch_texts], [enc(t) for t in prefix_texts], 8,
                    [enc(t) for t in tail_texts], np.arange(0, cfg["vocab_size"], 48),
                    chat, SMOL_CHAT_PROMPT, 48, 2, lambda ids: tok.decode([int(i) for i in ids], skip_special_tokens=False),
                    False,
                    {"batch.texts": json.dumps(batch_texts), "prefix.texts": json.dumps(prefix_texts),
                     "prefix.tail_texts": json.dumps(tail_texts),
                     "source": os.path.basename(SMOLLM2_GGUF) + " (weights dequantised from Q4_1/Q8_0)",
                     "tokens": "byte-level BPE rebuilt from the GGUF vocab/merges; no BOS",
                     "gguf_eos_token_id": gmeta["gguf_eos_token_id"],
                     "generate_eos_token_id": 2},
                    check)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--only", choices=["stories260K", "smollm2"], help="build one model's file")
    args = ap.parse_args()
    torch.set_num_threads(max(1, min(8, os.cpu_count() or 1)))
    if args.only in (None, "stories260K"):
        do_stories260k()
    if args.only in (None, "smollm2"):
        do_smollm2()


if __name__ == "__main__":
    main()
