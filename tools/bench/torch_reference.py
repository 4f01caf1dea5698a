#!/usr/bin/env python3
"""The PyTorch anchor for `xcomp bench train`: one 500xCompressor training step built the
way the paper's code builds it -- Hugging Face transformers' LlamaForCausalLM, a PEFT
LoRA adapter (q_proj, v_proj) as the encoder over [text, N compression tokens], the
encoder's K/V at the N positions as the decoder's past_key_values (kv mode) or its final
hidden states as the decoder's first input embeddings (embedding mode, with an AE token),
the decoder with the adapter disabled, mean cross-entropy, backward, gradient clipping
at 1.0 and torch.optim.AdamW -- timed step by step.

    /tmp/refvenv/bin/python tools/bench/torch_reference.py --shape stories260k --threads 2

Shapes, batch and settings mirror `xcomp bench train` (same option names, same
defaults): every sample is a full-length text of --text-len random tokens, regeneration
targets ([BOS] + text -> text + [EOS]). Weights are N(0, 0.02) (norms 1) except for
stories260k, which loads $XCOMP_FIXTURES/stories260K/stories260K.bin through
tests/reference/reference_models.py. Precision: float32 on cpu; on cuda bf16 weights
and bf16 autocast (what the paper's DeepSpeed bf16 setup computes in), trainable
parameters as PEFT keeps them.

The encoder runs the inner LlamaModel (no LM head over the encoder positions, which the
step never reads), so PyTorch does not pay for work xcomp skips by design.

Last line of standard output: one JSON object (step_s_median, step_s, tokens_per_step,
tokens_per_s, loss, peak_memory_bytes, versions) that `xcomp bench train --reference`
parses. Written for torch 1.13 + transformers 4.42 + peft 0.11 (the reference venv) and
torch 2.x + transformers 5.x (tuple caches there became DynamicCache objects).
"""
import argparse
import json
import os
import resource
import statistics
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

# name: (hidden, layers, heads, kv_heads, intermediate, vocab, tied); keep in step with
# trainer/bench_train.cc.
SHAPES = {
    "dim512": (512, 8, 8, 8, 1408, 32000, False),
    "llama3.2-1b": (2048, 16, 32, 8, 8192, 128256, True),
    "llama3-8b": (4096, 32, 32, 8, 14336, 128256, False),
}
LLAMA_SHAPES = ("llama3.2-1b", "llama3-8b")


def parse_args():
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--shape", default="stories260k", choices=["stories260k"] + sorted(SHAPES))
    p.add_argument("--device", default="cpu", choices=["cpu", "cuda"])
    p.add_argument("--batch", type=int, default=8)
    p.add_argument("--text-len", type=int, default=None, help="default 96; 480 for the llama shapes")
    p.add_argument("--num-tokens", type=int, default=16)
    p.add_argument("--lora-r", type=int, default=None, help="default 16; 64 for the llama shapes")
    p.add_argument("--lora-alpha", type=float, default=None, help="default 2 r")
    p.add_argument("--mode", default="kv", choices=["kv", "embedding"])
    p.add_argument("--steps", type=int, default=10)
    p.add_argument("--warmup", type=int, default=2)
    p.add_argument("--threads", type=int, default=None, help="torch intra-op threads (default: all cores)")
    p.add_argument("--seed", type=int, default=0)
    a = p.parse_args()
    llama = a.shape in LLAMA_SHAPES
    if a.text_len is None:
        a.text_len = 480 if llama else 96
    if a.lora_r is None:
        a.lora_r = 64 if llama else 16
    if a.lora_alpha is None:
        a.lora_alpha = 2.0 * a.lora_r
    if a.threads is None:
        a.threads = os.cpu_count() or 1
    return a


ARGS = parse_args()
# One thread pool: the BLAS under torch gets the same count as torch's own pool (two
# pools spinning on the same cores made steps ~2x slower; DESIGN.md, Pitfalls). Set
# before torch is imported, which is when the pools read it.
for var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(var, str(ARGS.threads))

import torch  # noqa: E402
import transformers  # noqa: E402
import peft  # noqa: E402
from peft import LoraConfig, get_peft_model  # noqa: E402
from transformers import LlamaConfig, LlamaForCausalLM  # noqa: E402

try:
    from transformers import DynamicCache
except ImportError:  # transformers before 4.36 had only tuple caches
    DynamicCache = None


def fail(msg):
    print("torch_reference.py: " + msg, file=sys.stderr)
    sys.exit(1)


def new_model(config):
    """LlamaForCausalLM with the attention implementation from_pretrained would choose
    (sdpa where this torch has it, else eager), as the paper's code gets it."""
    if hasattr(LlamaForCausalLM, "_from_config"):
        return LlamaForCausalLM._from_config(config)
    return LlamaForCausalLM(config)


def build_model(args, dtype, device):
    if args.shape == "stories260k":
        sys.path.insert(0, os.path.join(ROOT, "tests", "reference"))
        try:
            from reference_models import FIXTURES, load_llama2c  # the same model the parity tests use
        except ImportError as e:
            fail("--shape stories260k reads the model with tests/reference/reference_models.py, which needs "
                 "the reference venv (tests/reference/README.md): %s" % e)
        cfg, state = load_llama2c(os.path.join(FIXTURES, "stories260K", "stories260K.bin"))
        model = new_model(LlamaConfig(**cfg))
        tensors = {k: torch.tensor(v, dtype=torch.float32) for k, v in state.items()}
        tensors["lm_head.weight"] = tensors["model.embed_tokens.weight"]
        model.load_state_dict(tensors, strict=True)
        return model.to(device=device, dtype=dtype), cfg
    hidden, layers, heads, kv, inter, vocab, tied = SHAPES[args.shape]
    cfg = dict(vocab_size=vocab, hidden_size=hidden, intermediate_size=inter, num_hidden_layers=layers,
               num_attention_heads=heads, num_key_value_heads=kv, max_position_embeddings=8192,
               rms_norm_eps=1e-5, rope_theta=500000.0 if args.shape in LLAMA_SHAPES else 10000.0,
               tie_word_embeddings=tied, bos_token_id=1, eos_token_id=2, pad_token_id=0,
               hidden_act="silu", initializer_range=0.02)
    previous = torch.get_default_dtype()
    torch.set_default_dtype(dtype)  # build in the run's dtype: an 8B model in fp32 first would need 32 GB
    try:
        if device == "cuda" and hasattr(torch, "get_default_device"):
            with torch.device("cuda"):
                model = new_model(LlamaConfig(**cfg))
        else:
            model = new_model(LlamaConfig(**cfg)).to(device)
    finally:
        torch.set_default_dtype(previous)
    with torch.no_grad():  # N(0, 0.02) matrices, unit norms, whatever the library's init did
        g = torch.Generator(device=device).manual_seed(args.seed)
        for p in model.parameters():
            if p.dim() == 2:
                p.normal_(0.0, 0.02, generator=g)
            else:
                p.fill_(1.0)
    return model.to(dtype), cfg


def cache_layers(cache):
    """[(K, V)] per layer, [B, kv_heads, positions, head_dim], from any cache type."""
    if isinstance(cache, (tuple, list)):
        return [(kv[0], kv[1]) for kv in cache]
    if hasattr(cache, "layers"):  # transformers 5
        return [(layer.keys, layer.values) for layer in cache.layers]
    if hasattr(cache, "key_cache"):  # transformers 4.36 .. 4.5x
        return list(zip(cache.key_cache, cache.value_cache))
    return cache.to_legacy_cache()


def prefix_cache(layers):
    """The decoder's past_key_values holding the compressed K/V."""
    if DynamicCache is None:
        return tuple(layers)
    cache = DynamicCache()
    for i, (k, v) in enumerate(layers):
        cache.update(k, v, i)
    return cache


class Step:
    def __init__(self, args, device, dtype):
        self.args, self.device = args, device
        base, self.cfg = build_model(args, dtype, device)
        lora = LoraConfig(r=args.lora_r, lora_alpha=args.lora_alpha, lora_dropout=0.0,
                          target_modules=["q_proj", "v_proj"], bias="none", task_type="CAUSAL_LM")
        self.model = get_peft_model(base, lora)
        self.model.train()
        hidden = self.cfg["hidden_size"]
        g = torch.Generator(device=device).manual_seed(args.seed + 1)
        param_dtype = torch.float32 if device == "cpu" else dtype
        self.tokens = torch.nn.Parameter(
            torch.randn(args.num_tokens, hidden, generator=g, device=device, dtype=param_dtype) * 0.02)
        self.ae = torch.nn.Parameter(torch.randn(1, hidden, generator=g, device=device, dtype=param_dtype) * 0.02)
        self.params = [p for p in self.model.parameters() if p.requires_grad] + [self.tokens]
        if args.mode == "embedding":
            self.params.append(self.ae)
        self.optimizer = torch.optim.AdamW(self.params, lr=1e-4, weight_decay=0.0)
        self.embed = self.model.get_input_embeddings()
        self.inner = self.model.get_base_model().model  # LlamaModel: no LM head for the encoder
        vocab = self.cfg["vocab_size"]
        B, L, N = args.batch, args.text_len, args.num_tokens
        text = torch.randint(3, vocab, (B, L), generator=torch.Generator().manual_seed(args.seed + 2))
        self.text = text.to(device)
        self.dec = torch.cat([torch.full((B, 1), 1), text], dim=1).to(device)          # [BOS] + text
        self.targets = torch.cat([text, torch.full((B, 1), 2)], dim=1).to(device)      # text + [EOS]
        self.enc_pos = torch.arange(L + N, device=device).expand(B, L + N)
        self.tokens_per_step = B * (L + N) + B * (L + 1) + (B * N if args.mode == "embedding" else 0)

    def autocast(self):
        if self.device == "cuda":
            return torch.autocast("cuda", dtype=torch.bfloat16)
        return torch.autocast("cpu", enabled=False)

    def run(self):
        a = self.args
        B, L, N = a.batch, a.text_len, a.num_tokens
        T = L + 1
        self.optimizer.zero_grad(set_to_none=True)
        with self.autocast():
            x = torch.cat([self.embed(self.text), self.tokens.to(self.embed.weight.dtype)[None].expand(B, N, -1)],
                          dim=1)
            enc = self.inner(inputs_embeds=x, attention_mask=torch.ones(B, L + N, dtype=torch.long, device=self.device),
                             position_ids=self.enc_pos, use_cache=(a.mode == "kv"))
            mask = torch.ones(B, N + T, dtype=torch.long, device=self.device)
            with self.model.disable_adapter():
                if a.mode == "kv":
                    past = prefix_cache([(k[:, :, L:], v[:, :, L:]) for k, v in cache_layers(enc.past_key_values)])
                    pos = torch.arange(N, N + T, device=self.device).expand(B, T)
                    logits = self.model(input_ids=self.dec, attention_mask=mask, position_ids=pos,
                                        past_key_values=past, use_cache=True).logits
                else:
                    memory = enc.last_hidden_state[:, L:]
                    tok = self.embed(self.dec[:, 1:])
                    inputs = torch.cat([memory, self.ae.to(tok.dtype)[None].expand(B, 1, -1), tok], dim=1)
                    pos = torch.arange(N + T, device=self.device).expand(B, N + T)
                    logits = self.model(inputs_embeds=inputs, attention_mask=mask, position_ids=pos,
                                        use_cache=False).logits[:, N:]
            loss = torch.nn.functional.cross_entropy(logits.float().reshape(-1, logits.shape[-1]),
                                                     self.targets.reshape(-1))
        loss.backward()
        torch.nn.utils.clip_grad_norm_(self.params, 1.0)
        self.optimizer.step()
        return float(loss.detach())


def peak_memory_bytes(device):
    if device == "cuda":
        return int(torch.cuda.max_memory_allocated())
    return int(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss) * 1024  # host peak RSS (Linux: KiB)


def main():
    a = ARGS
    if a.device == "cuda" and not torch.cuda.is_available():
        fail("--device cuda: torch sees no CUDA device")
    torch.set_num_threads(a.threads)
    torch.manual_seed(a.seed)
    dtype = torch.float32 if a.device == "cpu" else torch.bfloat16
    step = Step(a, a.device, dtype)

    def sync():
        if a.device == "cuda":
            torch.cuda.synchronize()

    for _ in range(a.warmup):
        step.run()
    sync()
    if a.device == "cuda":
        torch.cuda.reset_peak_memory_stats()
    times, cpu, loss = [], [], float("nan")
    for _ in range(a.steps):
        start, cpu_start = time.perf_counter(), time.process_time()
        loss = step.run()
        sync()
        times.append(time.perf_counter() - start)
        cpu.append(time.process_time() - cpu_start)
    median = statistics.median(times)
    result = {"impl": "pytorch", "shape": a.shape, "device": a.device, "dtype": str(dtype).replace("torch.", ""),
              "mode": a.mode, "batch": a.batch, "text_len": a.text_len, "num_tokens": a.num_tokens,
              "lora_r": a.lora_r, "threads": a.threads, "steps": a.steps,
              "step_s_median": median, "step_s": times, "cpu_s_median": statistics.median(cpu),
              "tokens_per_step": step.tokens_per_step,
              "tokens_per_s": step.tokens_per_step / median, "loss": loss,
              "peak_memory_bytes": peak_memory_bytes(a.device),
              "torch": torch.__version__, "transformers": transformers.__version__, "peft": peft.__version__,
              "attention": getattr(step.model.config, "_attn_implementation", "?")}
    print("pytorch %s %s: median step %.4f s, %.0f tokens/s, loss %.4f" %
          (a.shape, a.device, median, result["tokens_per_s"], loss), file=sys.stderr)
    print(json.dumps(result))


if __name__ == "__main__":
    main()
