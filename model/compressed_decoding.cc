#include "model/compressed_decoding.h"

#include <glog/logging.h>

#include "model/input_error.h"

namespace xcomp {

namespace {

Tensor int_row(int64_t n, int32_t first, int32_t step) {
  Tensor t = Tensor::empty({1, n}, DType::I32);
  for (int64_t i = 0; i < n; ++i) t.data<int32_t>()[i] = first + step * static_cast<int32_t>(i);
  return t;
}

// Host tensors go to the backend; tensors already there stay.
Tensor on_backend(Ops& ops, const Tensor& t) { return t.on_host() ? ops.upload(t) : t; }

int64_t prompt_tokens(const DecoderPrompt& p) {
  return p.prompt->mode == CompressorMode::kKeyValue ? p.prompt->keys.at(0).dim(1) : p.prompt->embeddings.dim(1);
}

}  // namespace

int64_t decoder_cache_size(const DecoderPrompt& prompt, int64_t decoder_tokens) {
  return prompt_tokens(prompt) + decoder_tokens;
}

DecoderPrefill prefill_from_compressed(const LlamaModel& model, const DecoderPrompt& p,
                                       const std::vector<int32_t>& decoder_tokens, KvCache& cache, LogitsFor which) {
  CHECK(p.prompt != nullptr);
  CHECK_EQ(cache.batch(), 1);
  CHECK_EQ(cache.length(), 0);
  if (decoder_tokens.empty()) throw_input_error("decoding from a compressed prompt needs at least one decoder token");
  const LlamaConfig& c = model.config();
  Ops& ops = model.ops();
  const CompressedPrompt& cp = *p.prompt;
  const int64_t n = prompt_tokens(p), t = static_cast<int64_t>(decoder_tokens.size());
  Tensor tokens = Tensor::empty({1, t}, DType::I32);
  std::copy(decoder_tokens.begin(), decoder_tokens.end(), tokens.data<int32_t>());
  DecoderPrefill out;

  if (cp.mode == CompressorMode::kKeyValue) {
    CHECK(p.ae_token == nullptr) << "the AE token belongs to embedding mode";
    std::vector<Tensor> keys, values;
    for (size_t layer = 0; layer < cp.keys.size(); ++layer) {
      keys.push_back(cp.keys[layer].slice0(p.row, p.row + 1));
      values.push_back(cp.values[layer].slice0(p.row, p.row + 1));
    }
    cache.append(keys, values, int_row(n, 1, 0), ops);
    const int64_t first = p.positions == DecoderPositions::kReference ? n : cp.text_lengths.at(p.row) + n;
    out.logits = model.forward(tokens, int_row(t, static_cast<int32_t>(first), 1), int_row(t, 1, 0), cache, which);
    out.next_position = first + t;
    return out;
  }

  // Embedding mode: [memory (N rows), decoder tokens (the first maybe the AE token)],
  // assembled where the backend computes.
  const int64_t h = c.hidden_size, rows = n + t;
  Tensor token_x = ops.empty({1, t, h});
  ops.embedding(model.weights().embed, ops.upload(tokens), token_x);
  if (p.ae_token != nullptr) ops.write_rows(on_backend(ops, *p.ae_token).reshape({1, 1, h}), token_x, 0);
  Tensor x = ops.empty({1, rows, h});
  ops.write_rows(on_backend(ops, cp.embeddings).slice0(p.row, p.row + 1), x, 0);
  ops.write_rows(token_x, x, n);
  const Tensor logits = model.forward_embeddings(x, int_row(rows, 0, 1), int_row(rows, 1, 0), cache, which);
  // Host logits; with every position, the memory rows' are dropped (a view).
  out.logits = which == LogitsFor::kAllPositions
                   ? logits.reshape({rows, c.vocab_size}).slice0(n, rows).reshape({1, t, c.vocab_size})
                   : logits;
  out.next_position = rows;
  return out;
}

std::vector<int32_t> generate_from_compressed(const LlamaModel& model, const DecoderPrompt& prompt,
                                              const std::vector<int32_t>& decoder_tokens,
                                              const GenerationOptions& options) {
  KvCache cache(model.config(), 1,
                decoder_cache_size(prompt, static_cast<int64_t>(decoder_tokens.size())) + options.max_new_tokens,
                model.ops());
  DecoderPrefill start = prefill_from_compressed(model, prompt, decoder_tokens, cache, LogitsFor::kLastPosition);
  return continue_generation(model, cache, start.logits, start.next_position, options);
}

}  // namespace xcomp
