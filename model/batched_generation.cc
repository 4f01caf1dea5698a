#include "model/batched_generation.h"

#include <glog/logging.h>

#include <algorithm>

#include "model/input_error.h"
#include "model/sampling.h"

namespace xcomp {

namespace {

// The rows' inputs, left-padded to one width: row r holds `lead` non-token rows (filled
// in by the caller; token 0 stands in for them here) and then its tokens, ending at the
// last column. Positions count from first[r] over the row's real entries; padding has
// mask 0 and position 0.
struct PaddedInput {
  int64_t width = 0;
  Tensor tokens, positions, mask;          // I32 [B, width]
  std::vector<int64_t> pad, next_position;  // per row: padding columns; the position after its input
};

PaddedInput pad_left(const std::vector<BatchedRow>& rows, int64_t lead, const std::vector<int64_t>& first) {
  const int64_t b = static_cast<int64_t>(rows.size());
  PaddedInput in;
  for (const BatchedRow& row : rows) {
    if (row.tokens.empty()) throw_input_error("decoding needs at least one input token per sequence");
    in.width = std::max(in.width, lead + static_cast<int64_t>(row.tokens.size()));
  }
  in.tokens = Tensor::zeros({b, in.width}, DType::I32);
  in.positions = Tensor::zeros({b, in.width}, DType::I32);
  in.mask = Tensor::zeros({b, in.width}, DType::I32);
  for (int64_t r = 0; r < b; ++r) {
    const int64_t length = lead + static_cast<int64_t>(rows[r].tokens.size()), pad = in.width - length;
    int32_t* tokens = in.tokens.data<int32_t>() + r * in.width;
    int32_t* positions = in.positions.data<int32_t>() + r * in.width;
    int32_t* mask = in.mask.data<int32_t>() + r * in.width;
    for (int64_t i = 0; i < length; ++i) {
      positions[pad + i] = static_cast<int32_t>(first[r] + i);
      mask[pad + i] = 1;
      if (i >= lead) tokens[pad + i] = rows[r].tokens[i - lead];
    }
    in.pad.push_back(pad);
    in.next_position.push_back(first[r] + length);
  }
  return in;
}

int64_t longest_continuation(const std::vector<BatchedRow>& rows) {
  int64_t most = 0;
  for (const BatchedRow& row : rows) most = std::max(most, row.max_new_tokens);
  return most;
}

// The decoding loop after the prefill: `logits` F32 [B, vocab] on the host are each
// row's last position's. Every row draws its tokens exactly as continue_generation
// does (the same sampling step numbers); a finished row is fed token 0, masked, at an
// unchanged position until every row has finished.
std::vector<std::vector<int32_t>> decode(const LlamaModel& model, KvCache& cache, Tensor logits,
                                         std::vector<int64_t> position, const std::vector<BatchedRow>& rows,
                                         const GenerationOptions& options) {
  const int64_t b = static_cast<int64_t>(rows.size()), vocab = logits.dim(1);
  CHECK_EQ(logits.dim(0), b);
  std::vector<std::vector<int32_t>> produced(b);
  std::vector<bool> done(b);
  for (int64_t r = 0; r < b; ++r) done[r] = rows[r].max_new_tokens <= 0;
  Tensor next = Tensor::empty({b, 1}, DType::I32), next_position = Tensor::empty({b, 1}, DType::I32),
         mask = Tensor::empty({b, 1}, DType::I32);
  while (true) {
    bool finished = true;
    for (int64_t r = 0; r < b; ++r) {
      next.data<int32_t>()[r] = 0;
      next_position.data<int32_t>()[r] = static_cast<int32_t>(position[r]);
      mask.data<int32_t>()[r] = 0;
      if (done[r]) continue;
      const uint64_t step = produced[r].size();
      const int32_t token = sample_token(logits.data<float>() + r * vocab, vocab, options.sampling, step);
      produced[r].push_back(token);
      const bool stop = std::find(options.stop_ids.begin(), options.stop_ids.end(), token) != options.stop_ids.end();
      done[r] = stop || static_cast<int64_t>(produced[r].size()) == rows[r].max_new_tokens ||
                cache.length() == cache.capacity();
      if (done[r]) continue;
      finished = false;
      next.data<int32_t>()[r] = token;
      mask.data<int32_t>()[r] = 1;
      ++position[r];
    }
    if (finished) break;
    logits = model.forward(next, next_position, mask, cache, LogitsFor::kLastPosition, options.adapters);
  }
  return produced;
}

}  // namespace

std::vector<std::vector<int32_t>> generate_batch(const LlamaModel& model, const std::vector<BatchedRow>& rows,
                                                 const GenerationOptions& options) {
  if (rows.empty()) return {};
  const int64_t b = static_cast<int64_t>(rows.size());
  const PaddedInput in = pad_left(rows, 0, std::vector<int64_t>(b, options.first_position));
  KvCache cache(model.config(), b, in.width + longest_continuation(rows), model.ops());
  Tensor logits = model.forward(in.tokens, in.positions, in.mask, cache, LogitsFor::kLastPosition, options.adapters);
  return decode(model, cache, std::move(logits), in.next_position, rows, options);
}

std::vector<std::vector<int32_t>> generate_batch_from_compressed(const LlamaModel& model,
                                                                 const CompressedPrompt& prompt,
                                                                 DecoderPositions positions, const Tensor* ae_token,
                                                                 const std::vector<BatchedRow>& rows,
                                                                 const GenerationOptions& options) {
  if (rows.empty()) return {};
  const int64_t b = static_cast<int64_t>(rows.size());
  CHECK_EQ(static_cast<int64_t>(prompt.text_lengths.size()), b) << "one compressed prompt row per decoded row";
  CHECK(options.adapters == nullptr) << "the decoder of a compressed prompt is the base model";
  Ops& ops = model.ops();

  if (prompt.mode == CompressorMode::kKeyValue) {
    CHECK(ae_token == nullptr) << "the AE token belongs to embedding mode";
    const int64_t n = prompt.keys.at(0).dim(1);
    std::vector<int64_t> first(b);
    for (int64_t r = 0; r < b; ++r) first[r] = positions == DecoderPositions::kReference ? n : prompt.text_lengths[r] + n;
    const PaddedInput in = pad_left(rows, 0, first);
    KvCache cache(model.config(), b, n + in.width + longest_continuation(rows), ops);
    Tensor valid = Tensor::empty({b, n}, DType::I32);
    std::fill(valid.data<int32_t>(), valid.data<int32_t>() + valid.numel(), 1);
    cache.append(prompt.keys, prompt.values, valid, ops);
    Tensor logits = model.forward(in.tokens, in.positions, in.mask, cache, LogitsFor::kLastPosition);
    return decode(model, cache, std::move(logits), in.next_position, rows, options);
  }

  // Embedding mode: per row [padding, memory (N rows), tokens], assembled on the backend.
  CHECK(prompt.mode == CompressorMode::kEmbedding);
  const int64_t n = prompt.embeddings.dim(1), h = model.config().hidden_size;
  const PaddedInput in = pad_left(rows, n, std::vector<int64_t>(b, 0));
  KvCache cache(model.config(), b, in.width + longest_continuation(rows), ops);
  Tensor x = ops.empty({b, in.width, h});
  ops.embedding(model.weights().embed, ops.upload(in.tokens), x);
  const Tensor memory = prompt.embeddings.on_host() ? ops.upload(prompt.embeddings) : prompt.embeddings;
  const Tensor ae = ae_token == nullptr ? Tensor() : ae_token->on_host() ? ops.upload(*ae_token) : *ae_token;
  for (int64_t r = 0; r < b; ++r) {
    Tensor row = x.slice0(r, r + 1);
    ops.write_rows(memory.slice0(r, r + 1), row, in.pad[r]);
    if (ae.defined()) ops.write_rows(ae.reshape({1, 1, h}), row, in.pad[r] + n);
  }
  Tensor logits = model.forward_embeddings(x, in.positions, in.mask, cache, LogitsFor::kLastPosition);
  return decode(model, cache, std::move(logits), in.next_position, rows, options);
}

}  // namespace xcomp
