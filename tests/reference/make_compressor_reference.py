#!/usr/bin/env python3
"""Reference loss and gradients of one compressor step (model/compressor.cc), computed
the way the 500xCompressor paper's code computes it: Hugging Face transformers'
LlamaForCausalLM with a PEFT LoRA adapter as the encoder, the K/V of the compression
positions handed to the same model with the adapter disabled as past_key_values (K/V
mode), or the encoder's final hidden states as the decoder's first input embeddings
(embedding / ICAE mode). torch.autograd gives the gradients.

CI has no PyTorch, so this script is run by hand and its outputs are committed:

    tests/reference/data/compressor_reference_stories260K.safetensors
    tests/reference/data/compressor_reference_smollm2_135m.safetensors

read by tests/unit/compressor_torch_test.cc and tests/slow/compressor_torch_smollm2_test.cc.
Rerun (venv: tests/reference/README.md; peft and accelerate are pinned in
requirements.txt):

    /tmp/refvenv/bin/python tests/reference/make_compressor_reference.py          # both
    /tmp/refvenv/bin/python tests/reference/make_compressor_reference.py --only stories260K

The models are built by reference_models.py exactly as for make_model_reference.py
(float32, eager attention, Hugging Face half-split RoPE layout, which is also the layout
xcomp's loaders produce, so LoRA rows need no permutation).

Settings (per model)
--------------------
stories260K: B = 3 samples, N = 3 compression tokens, LoRA r = 4, alpha = 8.
SmolLM2:     B = 2 samples, N = 4 compression tokens, LoRA r = 1, alpha = 2. The rank
  is 1 (not 4) only to keep the file small: 30 layers x (q, v) is 57,600 LoRA numbers
  per set at r = 1, stored 5 times (values + 4 gradients). Rank > 1 (where a transposed
  A or B would show) is covered by stories260K, which runs the same code.
Both: LoraConfig(r, lora_alpha, lora_dropout=0, target_modules=["q_proj", "v_proj"],
  bias="none", task_type="CAUSAL_LM"); scale alpha / r = 2.

Parameters (one set per model, used by every case; drawn from torch.Generator seeded
with SEED): LoRA A ~ U(-1/sqrt(in), 1/sqrt(in)) (PEFT's kaiming-uniform bound), LoRA B ~
N(0, 0.05^2) (non-zero, so that A gets a gradient), compression tokens and AE token ~
N(0, s^2) with s the standard deviation of the token-embedding matrix (so they look
like token embeddings to layer 0). Stored as float32 and loaded into PyTorch from those
float32 values, so the C++ test sets exactly the same numbers.

Cases (prefix of the tensor names)
----------------------------------
kv_regeneration, kv_qa: K/V mode, decoder positions start at N (reference)
kv_regeneration_after_prefix (stories260K only): K/V mode, decoder positions start at
  len_b + N (xcomp's DecoderPositions::kAfterPrefix)
embedding_regeneration, embedding_qa: embedding mode (decoder positions 0..)

Encoder (PEFT model, adapter on, use_cache=True): inputs_embeds [B, L + N] = the text's
  token embeddings left-padded to L (pad id 0 on the left), then the N compression
  tokens, so the compression tokens sit at rows L..L+N-1 of every sample;
  attention_mask 0 on the left padding, 1 after; position_ids 0..len_b+N-1 on the real
  rows, 0 on the padding. This is xcomp's encoder layout (model/compressor.cc).
K/V mode decoder: past_key_values = the encoder's per-layer (K after RoPE, V)
  [B, kv_heads, L+N, head_dim] sliced to the compression rows L..L+N-1; then, inside
  `with model.disable_adapter():`, model(input_ids = decoder_tokens (right-padded),
  attention_mask = [ones(N), decoder mask], position_ids = N.. (reference) or
  len_b+N.. (after_prefix), past_key_values). The compressed keys keep the encoder
  positions len_b..len_b+N-1 they were rotated at.
Embedding mode decoder: memory = hidden_states[-1] (after the final norm in HF 4.42) at
  rows L..L+N-1; with the adapter disabled, model(inputs_embeds = [memory, decoder token
  embeddings], attention_mask = [ones(N), decoder mask], position_ids = 0..N+T-1), where
  for regeneration the first decoder token (BOS) embedding is replaced by the AE token;
  QA feeds the question prompt right after the memory (no AE token). Logits at rows
  N..N+T-1 are the decoder positions.
Loss: sum over targets (not -1) of cross-entropy / number of targets, i.e. xcomp's
  compressor_step with token_weight = 1 / targets, whose CompressorLoss.sum is this.

Tensors in each file (B samples, L = longest text, T = longest decoder input)
------------------------------------------------------------------------------
ids.bos, ids.eos, ids.pad             I32 [1]
lora.alpha                            F32 [1]     (r is the first dimension of lora_A)
text                                  I32 [B, L]  right-padded with pad (xcomp's input
                                                  layout; the encoder left-pads it)
text_lengths                          I32 [B]
regeneration.decoder_tokens           I32 [B, T]  [BOS] + text, right-padded with pad
regeneration.decoder_lengths          I32 [B]
regeneration.targets                  I32 [B, T]  text + [EOS], -1 beyond the length
qa.question_prefix, qa.answer_prefix  I32 [*]     tokenizer("Question: "), tokenizer(" Answer: ")
qa.question, qa.answer                I32 [B, *]  right-padded, with qa.question_lengths,
                                                  qa.answer_lengths I32 [B]
qa.decoder_tokens, qa.decoder_lengths, qa.targets  as trainer/objective.cc's qa_batch
                                      builds them: question_prefix + question +
                                      answer_prefix + answer, targets only on answer + EOS
param.<name>                          F32         the parameters; <name> as
                                      Compressor::parameters() names them:
                                      compression_tokens [N, hidden], ae_token [1, hidden],
                                      base_model.model.model.layers.{i}.self_attn.{q,v}_proj.lora_{A,B}.weight
<case>.loss                           F32 [1]     the mean loss above
<case>.grad.<name>                    F32         d loss / d param, every parameter of the
                                      case's mode (no ae_token in K/V mode; the AE token's
                                      gradient is zero in embedding_qa); a parameter
                                      autograd leaves without a gradient (the last layer's
                                      q_proj LoRA in K/V mode) is stored as zeros
<case>.torch_f32_error.loss, <case>.torch_f32_error.<name>   F32 [1]
                                      how far PyTorch's own float32 run is from its
                                      float64 run: |l32 - l64| / |l64| for the loss,
                                      max|g32 - g64| / max|g64| per gradient (0 where g64
                                      is all zero). What float32 arithmetic can be held to.
__metadata__: versions, model config, settings, texts, reference_precision, and
  f32_vs_f64.<case> (JSON): the loss's and the worst gradient tensor's entry above.

Which run's values: by default the float64 run (the model, the RMSNorm, RoPE tables,
softmax, logits and cross-entropy all in float64; the parameters are the same float32
numbers widened), rounded to float32 for storage. It is the exact value of the computation, so a C++ float32
result is measured against the truth rather than against another float32 rounding of
it. On SmolLM2 that matters: its massive activations make some LoRA gradients
ill-conditioned in float32 (PyTorch's own float32 embedding-mode gradients are up to
~8e-3 from float64), so a fixed 1e-4 cannot hold for every tensor there; the C++ tests
allow max(1e-4, 2 x <case>.torch_f32_error.<name>) per tensor (SmolLM2's embedding-mode
cases max(2e-3, ...), see tests/slow/compressor_torch_smollm2_test.cc).

Tokens: stories260K with tok512.model (SentencePiece; text, question and answer are
encode(s) without BOS, as `xcomp prepare` stores them; BOS 1, EOS 2). SmolLM2 with the
byte-level BPE rebuilt from the GGUF (no BOS is added to texts; the regeneration BOS is
the GGUF's bos id, EOS the GGUF's eos id).
"""

import argparse
import json
import os

import numpy as np
import torch
import transformers
import peft
from peft import LoraConfig, get_peft_model
from safetensors.numpy import load_file

from reference_models import (FIXTURES, REPO, SMOLLM2_GGUF, dist_version, fail, load_llama2c,
                              load_smollm2_gguf, make_model, true_float64, write_safetensors)

HERE = os.path.dirname(os.path.abspath(__file__))
OUT_DIR = os.path.join(HERE, "data")
SEED = 500
B_STD = 0.05
TARGETS = ["q_proj", "v_proj"]

# (name, mode, objective, decoder positions)
CASES = [
    ("kv_regeneration", "kv", "regeneration", "reference"),
    ("kv_qa", "kv", "qa", "reference"),
    ("kv_regeneration_after_prefix", "kv", "regeneration", "after_prefix"),
    ("embedding_regeneration", "embedding", "regeneration", "reference"),
    ("embedding_qa", "embedding", "qa", "reference"),
]


def lora_name(layer, proj, ab):
    """xcomp's (and a saved PEFT adapter's) name; the live PEFT module adds '.default'."""
    return "base_model.model.model.layers.%d.self_attn.%s.lora_%s.weight" % (layer, proj, ab)


def pad_right(seqs, pad):
    width = max(1, max(len(s) for s in seqs))
    out = np.full((len(seqs), width), pad, np.int32)
    for i, s in enumerate(seqs):
        out[i, :len(s)] = s
    return out, np.array([len(s) for s in seqs], np.int32)


# ---------------------------------------------------------------------------------------
# The batch, built as trainer/objective.cc builds it

def regeneration_batch(texts, bos, eos, pad):
    inputs = [[bos] + t for t in texts]
    targets = [t + [eos] for t in texts]
    tokens, lengths = pad_right(inputs, pad)
    tgt, _ = pad_right(targets, -1)
    return {"decoder_tokens": tokens, "decoder_lengths": lengths, "targets": tgt}


def qa_batch(questions, answers, question_prefix, answer_prefix, eos, pad):
    inputs, targets = [], []
    for q, a in zip(questions, answers):
        prompt = question_prefix + q + answer_prefix
        x = prompt + a
        # position i predicts x[i+1]; the last answer token predicts EOS; the prompt
        # (all but its last position) has no target
        t = [-1] * len(x)
        for i in range(len(prompt) - 1, len(x) - 1):
            t[i] = x[i + 1]
        t[-1] = eos
        inputs.append(x)
        targets.append(t)
    tokens, lengths = pad_right(inputs, pad)
    tgt, _ = pad_right(targets, -1)
    q, ql = pad_right(questions, pad)
    a, al = pad_right(answers, pad)
    return {"decoder_tokens": tokens, "decoder_lengths": lengths, "targets": tgt,
            "question_prefix": np.array(question_prefix, np.int32),
            "answer_prefix": np.array(answer_prefix, np.int32),
            "question": q, "question_lengths": ql, "answer": a, "answer_lengths": al}


# ---------------------------------------------------------------------------------------
# Parameters

def draw_parameters(cfg, n_tokens, r, embed):
    g = torch.Generator().manual_seed(SEED)
    hidden = cfg["hidden_size"]
    head = hidden // cfg["num_attention_heads"]
    out_dim = {"q_proj": cfg["num_attention_heads"] * head, "v_proj": cfg["num_key_value_heads"] * head}
    std = float(embed.std())
    p = {"compression_tokens": torch.randn(n_tokens, hidden, generator=g) * std,
         "ae_token": torch.randn(1, hidden, generator=g) * std}
    bound = 1.0 / np.sqrt(hidden)
    for layer in range(cfg["num_hidden_layers"]):
        for proj in TARGETS:
            p[lora_name(layer, proj, "A")] = (torch.rand(r, hidden, generator=g) * 2 - 1) * bound
            p[lora_name(layer, proj, "B")] = torch.randn(out_dim[proj], r, generator=g) * B_STD
    return {k: v.float().numpy() for k, v in p.items()}


class Trainable:
    """The PEFT model plus the compression/AE tokens as autograd leaves, set from the
    stored float32 values in the model's current dtype."""

    def __init__(self, base, r, alpha):
        config = LoraConfig(r=r, lora_alpha=alpha, lora_dropout=0.0, target_modules=TARGETS,
                            bias="none", task_type="CAUSAL_LM")
        self.model = get_peft_model(base, config)
        self.model.eval()
        self.lora = {}
        for name, param in self.model.named_parameters():
            if "lora_" in name:
                self.lora[name.replace(".default.weight", ".weight")] = param
        self.tokens = None
        self.ae = None

    def load(self, values, dtype):
        self.model.to(dtype)
        with torch.no_grad():
            for name, param in self.lora.items():
                param.copy_(torch.from_numpy(values[name]).to(dtype))
                param.grad = None
        self.tokens = torch.from_numpy(values["compression_tokens"]).to(dtype).requires_grad_()
        self.ae = torch.from_numpy(values["ae_token"]).to(dtype).requires_grad_()

    def grads(self, mode):
        out = {"compression_tokens": self.tokens.grad}
        if mode == "embedding":
            out["ae_token"] = self.ae.grad
        for name, param in self.lora.items():
            out[name] = param.grad
        leaves = {"compression_tokens": self.tokens, "ae_token": self.ae, **self.lora}
        return {k: (torch.zeros_like(leaves[k]) if g is None else g).detach().double().numpy()
                for k, g in out.items()}


# ---------------------------------------------------------------------------------------
# One step

def lt(a):
    return torch.from_numpy(np.asarray(a, dtype=np.int64))


def run_case(tr, text, text_lengths, batch, mode, objective, positions):
    model = tr.model
    embed = model.get_input_embeddings()
    dtype = tr.tokens.dtype
    B, L = text.shape
    N = tr.tokens.shape[0]
    H = tr.tokens.shape[1]

    # encoder input, left-padded: sample b's text at rows L-len_b..L-1, tokens at L..L+N-1
    left = np.zeros((B, L), np.int64)
    enc_mask = np.zeros((B, L + N), np.int64)
    enc_pos = np.zeros((B, L + N), np.int64)
    for b in range(B):
        n = int(text_lengths[b])
        left[b, L - n:] = text[b, :n]
        enc_mask[b, L - n:] = 1
        enc_pos[b, L - n:] = np.arange(n + N)
    x = torch.cat([embed(lt(left)).to(dtype), tr.tokens[None].expand(B, N, H)], dim=1)
    enc = model(inputs_embeds=x, attention_mask=lt(enc_mask), position_ids=lt(enc_pos),
                use_cache=(mode == "kv"), output_hidden_states=(mode == "embedding"))

    dec = batch["decoder_tokens"]
    dec_len = batch["decoder_lengths"]
    T = dec.shape[1]
    dec_mask = np.zeros((B, T), np.int64)
    for b in range(B):
        dec_mask[b, :dec_len[b]] = 1
    mask = np.concatenate([np.ones((B, N), np.int64), dec_mask], axis=1)
    with model.disable_adapter():
        if mode == "kv":
            past = tuple((k[:, :, L:], v[:, :, L:]) for k, v in enc.past_key_values)
            start = [N if positions == "reference" else int(text_lengths[b]) + N for b in range(B)]
            dec_pos = np.stack([np.arange(s, s + T) for s in start])
            out = model(input_ids=lt(dec), attention_mask=lt(mask), position_ids=lt(dec_pos),
                        past_key_values=past, use_cache=True, output_hidden_states=True)
        else:
            memory = enc.hidden_states[-1][:, L:]
            tok = embed(lt(dec)).to(dtype)
            if objective == "regeneration":
                tok = torch.cat([tr.ae[None].expand(B, 1, H), tok[:, 1:]], dim=1)
            inputs = torch.cat([memory, tok], dim=1)
            dec_pos = np.tile(np.arange(N + T), (B, 1))
            out = model(inputs_embeds=inputs, attention_mask=lt(mask), position_ids=lt(dec_pos),
                        use_cache=False, output_hidden_states=True)
    # Not out.logits: HF 4.42's LlamaForCausalLM returns logits.float(), which in the
    # float64 run would round the logits to float32 and take the 49,152-way cross-entropy
    # in float32 (PyTorch's float32 log-softmax there is ~1e-5 off in d loss / d logits,
    # an error its float32 run shares, so a reference with it hides PyTorch's own float32
    # error). The same head on the final hidden state keeps the model's dtype.
    logits = model.get_output_embeddings()(out.hidden_states[-1])
    if mode != "kv":
        logits = logits[:, N:]
    targets = lt(batch["targets"])
    keep = targets >= 0
    loss = torch.nn.functional.cross_entropy(logits[keep], targets[keep], reduction="sum") / keep.sum()
    loss.backward()
    return float(loss.detach()), tr.grads(mode)


def rel(a, b):
    m = np.max(np.abs(b))
    d = np.max(np.abs(a - b))
    return float(d / m) if m > 0 else float(d)


# ---------------------------------------------------------------------------------------

def build(args, name, base, cfg, texts, questions, answers, question_prefix, answer_prefix,
          bos, eos, pad, n_tokens, r, alpha, cases, extra_meta):
    print(name)
    text, text_lengths = pad_right(texts, pad)
    batches = {"regeneration": regeneration_batch(texts, bos, eos, pad),
               "qa": qa_batch(questions, answers, question_prefix, answer_prefix, eos, pad)}
    values = draw_parameters(cfg, n_tokens, r, base.model.embed_tokens.weight.detach())
    tr = Trainable(base, r, alpha)
    if sorted(tr.lora) != sorted(k for k in values if k.startswith("base_model.")):
        fail("PEFT's LoRA names differ from the ones drawn: %s" % sorted(tr.lora)[:4])

    out = {"ids.bos": np.array([bos], np.int32), "ids.eos": np.array([eos], np.int32),
           "ids.pad": np.array([pad], np.int32), "text": text, "text_lengths": text_lengths,
           "lora.alpha": np.array([alpha], np.float32)}
    for obj, batch in batches.items():
        for k, v in batch.items():
            out["%s.%s" % (obj, k)] = np.ascontiguousarray(v, np.int32)
    for k, v in values.items():
        out["param." + k] = v
    meta = {"model": name, "generator": "tests/reference/make_compressor_reference.py",
            "torch": torch.__version__, "transformers": transformers.__version__,
            "peft": peft.__version__, "accelerate": dist_version("accelerate"),
            "numpy": np.__version__, "config": json.dumps(cfg, sort_keys=True),
            "compression_tokens": str(n_tokens), "seed": str(SEED),
            "lora": json.dumps({"r": r, "alpha": alpha, "dropout": 0.0, "targets": TARGETS}),
            "loss": "sum of cross-entropy over targets / number of targets"}
    meta.update({k: str(v) for k, v in extra_meta.items()})

    print("  case                          loss      f32 vs f64: loss     worst grad (tensor)")
    results = {"float32": {}, "float64": {}}
    for case, mode, objective, positions in cases:
        batch = batches[objective]
        tr.load(values, torch.float32)
        loss, grads = run_case(tr, text, text_lengths, batch, mode, objective, positions)
        tr.load(values, torch.float64)
        with true_float64():
            loss64, grads64 = run_case(tr, text, text_lengths, batch, mode, objective, positions)
        results["float32"][case] = (loss, grads)
        results["float64"][case] = (loss64, grads64)
        d_loss = abs(loss - loss64) / abs(loss64)
        d_grad = {k: rel(grads[k], grads64[k]) for k in grads}
        worst = max(d_grad, key=d_grad.get)
        meta["f32_vs_f64." + case] = json.dumps({"loss": "%.3e" % d_loss, "worst_grad": "%.3e" % d_grad[worst],
                                                 "worst_tensor": worst})
        print("  %-28s %9.5f  %9.2e          %9.2e (%s)" % (case, loss64, d_loss, d_grad[worst], worst))
        zero = [k for k, g in grads64.items() if not np.any(g)]
        above = sorted((v, k) for k, v in d_grad.items() if v > 1e-4)
        print("    %d gradient tensors; exactly zero: %s; f32 vs f64 above 1e-4: %d %s" %
              (len(grads), zero, len(above), ["%s %.1e" % (k.replace("base_model.model.model.", ""), v)
                                              for v, k in above[-4:]]))
    tr.load(values, torch.float32)

    for precision, directory in ((args.reference, OUT_DIR), (other(args.reference), args.variant_dir)):
        if directory is None:
            continue
        stored = dict(out)
        for case, (loss, grads) in results[precision].items():
            stored[case + ".loss"] = np.array([loss], np.float32)
            loss32, grads32 = results["float32"][case]
            loss64, grads64 = results["float64"][case]
            stored[case + ".torch_f32_error.loss"] = np.array([abs(loss32 - loss64) / abs(loss64)], np.float32)
            for k, g in grads.items():
                stored["%s.grad.%s" % (case, k)] = g.astype(np.float32)
                stored["%s.torch_f32_error.%s" % (case, k)] = np.array([rel(grads32[k], grads64[k])], np.float32)
        write(directory, name, stored, dict(meta, reference_precision=precision))


def other(precision):
    return "float32" if precision == "float64" else "float64"


def write(directory, name, out, meta):
    os.makedirs(directory, exist_ok=True)
    path = os.path.join(directory, "compressor_reference_%s.safetensors" % name)
    tmp = path + ".tmp"
    write_safetensors(tmp, out, meta)
    check = load_file(tmp)
    if sorted(check) != sorted(out) or not all(np.array_equal(check[k], out[k]) for k in out):
        fail("safetensors round trip failed for " + tmp)
    os.chmod(tmp, 0o644)
    os.replace(tmp, path)
    print("  wrote %s (%d bytes, %d tensors, %s run)" % (os.path.relpath(path, REPO), os.path.getsize(path),
                                                         len(out), meta["reference_precision"]))


def do_stories260k(args):
    import sentencepiece as spm
    cfg, st = load_llama2c(os.path.join(FIXTURES, "stories260K", "stories260K.bin"))
    base = make_model(cfg, st)
    # xcomp's SentencePiece tokenizer (io/tokenizer_sentencepiece.cc) turns the model's
    # remove_extra_whitespaces off so that text round-trips; the same one-field patch
    # (normalizer_spec.remove_extra_whitespaces = false, merged by protobuf) here makes
    # "Question: " keep its trailing space as it does in xcomp's QA prompts.
    with open(os.path.join(FIXTURES, "stories260K", "tok512.model"), "rb") as f:
        sp = spm.SentencePieceProcessor(model_proto=f.read() + b"\x1a\x02\x20\x00")
    enc = lambda s: sp.encode(s)
    contexts = ["Lily had a red ball. She played with it in the park every day.",
                "Tom saw a big dog.",
                "The sun was hot, so Sam and his mom went to the lake to swim."]
    questions = ["What did Lily have?", "What did Tom see?", "Where did Sam go?"]
    answers = ["a red ball", "a big dog", "to the lake"]
    build(args, "stories260K", base, cfg, [enc(t) for t in contexts], [enc(q) for q in questions],
          [enc(a) for a in answers], enc("Question: "), enc(" Answer: "), 1, 2, 0,
          n_tokens=3, r=4, alpha=8, cases=CASES,
          extra_meta={"contexts": json.dumps(contexts), "questions": json.dumps(questions),
                      "answers": json.dumps(answers),
                      "tokens": "SentencePiece tok512.model, encode(s) without BOS; BOS 1, EOS 2, pad 0"})


def do_smollm2(args):
    cfg, st, tok, gmeta = load_smollm2_gguf(SMOLLM2_GGUF)
    base = make_model(cfg, st)
    enc = lambda s: tok.encode(s, add_special_tokens=False).ids
    contexts = ["The Eiffel Tower is a wrought-iron lattice tower on the Champ de Mars in Paris, France.",
                "Water boils at 100 degrees Celsius at sea level."]
    questions = ["Where is the Eiffel Tower?", "At what temperature does water boil?"]
    answers = ["In Paris, France.", "100 degrees Celsius"]
    bos, eos = int(gmeta["gguf_bos_token_id"]), int(gmeta["gguf_eos_token_id"])
    build(args, "smollm2_135m", base, cfg, [enc(t) for t in contexts], [enc(q) for q in questions],
          [enc(a) for a in answers], enc("Question: "), enc(" Answer: "), bos, eos, 0,
          n_tokens=4, r=1, alpha=2, cases=[c for c in CASES if c[3] == "reference"],
          extra_meta={"contexts": json.dumps(contexts), "questions": json.dumps(questions),
                      "answers": json.dumps(answers),
                      "source": os.path.basename(SMOLLM2_GGUF) + " (weights dequantised from Q4_1/Q8_0)",
                      "tokens": "byte-level BPE rebuilt from the GGUF; no BOS in texts; regeneration "
                                "BOS %d and EOS %d from the GGUF, pad 0" % (bos, eos)})


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--only", choices=["stories260K", "smollm2"], help="build one model's file")
    ap.add_argument("--reference", choices=["float64", "float32"], default="float64",
                    help="which run's loss and gradients the committed file holds (default float64)")
    ap.add_argument("--variant-dir", help="also write a file holding the other run's values there")
    args = ap.parse_args()
    torch.set_num_threads(max(1, min(8, os.cpu_count() or 1)))
    if args.only in (None, "stories260K"):
        do_stories260k(args)
    if args.only in (None, "smollm2"):
        do_smollm2(args)


if __name__ == "__main__":
    main()
