#!/usr/bin/env python3
"""The PyTorch anchor for `xcomp bench attention --reference`: the attention op of a
500xCompressor step as Hugging Face's LLaMA computes it with sdpa attention -- query
states [B, T, heads, head_dim] viewed as [B, heads, T, head_dim], the keys and values
repeated over each group's heads (repeat_kv), then F.scaled_dot_product_attention:
causal for the encoder's call (text + N tokens, no prefix), with a boolean mask for the
decoder's (text + 1 queries after the N-entry compressed prefix, which every query
sees). Forward and backward (into q, k, v) timed separately, median of --repeats.

    python tools/bench/torch_attention_reference.py --device cuda --heads 32 --kv-heads 8 --head-dim 128

Precision: bf16 on cuda (as the step's autocast computes attention), fp32 on cpu. Torch
before 2.0 has no scaled_dot_product_attention: the same computation is written out
(for trying the script on such a machine; its speed means nothing then).

Last line of standard output: one JSON object (calls: call, t, prefix, forward_ms,
backward_ms; versions) that `xcomp bench attention --reference` parses.
"""
import argparse
import json
import math
import statistics
import time

import torch
import torch.nn.functional as F


def repeat_kv(x, groups):
    """[B, kv_heads, S, D] -> [B, kv_heads * groups, S, D], as transformers' repeat_kv."""
    if groups == 1:
        return x
    b, kv_heads, s, d = x.shape
    return x[:, :, None, :, :].expand(b, kv_heads, groups, s, d).reshape(b, kv_heads * groups, s, d)


def attention(q, k, v, mask, causal):
    if hasattr(F, "scaled_dot_product_attention"):
        return F.scaled_dot_product_attention(q, k, v, attn_mask=mask, is_causal=causal)
    scores = q @ k.transpose(-1, -2) / math.sqrt(q.shape[-1])
    if causal:
        mask = torch.ones(q.shape[-2], k.shape[-2], dtype=torch.bool, device=q.device).tril()
    return scores.masked_fill(~mask, float("-inf")).softmax(-1) @ v


def synchronize(device):
    if device == "cuda":
        torch.cuda.synchronize()


def time_call(args, call, t, prefix, dtype):
    gen = torch.Generator().manual_seed(0)

    def leaf(*shape):  # uniform in [-2, 2), [B, S, heads, D] viewed as [B, heads, S, D]
        x = (torch.rand(*shape, generator=gen) * 4 - 2).to(args.device, dtype)
        return x.transpose(1, 2).requires_grad_()

    length = prefix + t
    q = leaf(args.batch, t, args.heads, args.head_dim)
    k = leaf(args.batch, length, args.kv_heads, args.head_dim)
    v = leaf(args.batch, length, args.kv_heads, args.head_dim)
    dout = (torch.rand(args.batch, args.heads, t, args.head_dim, generator=gen) * 2 - 1).to(args.device, dtype)
    causal = prefix == 0
    mask = None if causal else torch.ones(t, length, dtype=torch.bool, device=args.device).tril(diagonal=prefix)
    groups = args.heads // args.kv_heads
    forward, backward = [], []
    for i in range(args.warmup + args.repeats):
        q.grad = k.grad = v.grad = None
        synchronize(args.device)
        t0 = time.perf_counter()
        out = attention(q, repeat_kv(k, groups), repeat_kv(v, groups), mask, causal)
        synchronize(args.device)
        t1 = time.perf_counter()
        out.backward(dout)
        synchronize(args.device)
        t2 = time.perf_counter()
        if i >= args.warmup:
            forward.append((t1 - t0) * 1e3)
            backward.append((t2 - t1) * 1e3)
    return {"call": call, "t": t, "prefix": prefix, "forward_ms": statistics.median(forward),
            "backward_ms": statistics.median(backward)}


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--device", default="cpu", choices=["cpu", "cuda"])
    p.add_argument("--batch", type=int, default=8)
    p.add_argument("--heads", type=int, required=True)
    p.add_argument("--kv-heads", type=int, required=True)
    p.add_argument("--head-dim", type=int, required=True)
    p.add_argument("--text-len", type=int, default=480)
    p.add_argument("--num-tokens", type=int, default=16)
    p.add_argument("--repeats", type=int, default=10)
    p.add_argument("--warmup", type=int, default=2)
    p.add_argument("--threads", type=int, default=0)
    args = p.parse_args()
    if args.heads % args.kv_heads:
        p.error("--heads must be a multiple of --kv-heads")
    if args.threads > 0:
        torch.set_num_threads(args.threads)
    dtype = torch.bfloat16 if args.device == "cuda" else torch.float32
    calls = [time_call(args, "encoder", args.text_len + args.num_tokens, 0, dtype),
             time_call(args, "decoder", args.text_len + 1, args.num_tokens, dtype)]
    print(json.dumps({"calls": calls, "torch": torch.__version__, "dtype": str(dtype).replace("torch.", ""),
                      "sdpa": hasattr(F, "scaled_dot_product_attention")}))


if __name__ == "__main__":
    main()
