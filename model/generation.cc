#include "model/generation.h"

#include <glog/logging.h>

#include <algorithm>

#include "model/input_error.h"

namespace xcomp {

namespace {
Tensor row_of(const std::vector<int32_t>& values) {
  Tensor t = Tensor::empty({1, static_cast<int64_t>(values.size())}, DType::I32);
  std::copy(values.begin(), values.end(), t.data<int32_t>());
  return t;
}

std::vector<int32_t> counting_from(int64_t first, int64_t n) {
  std::vector<int32_t> v(n);
  for (int64_t i = 0; i < n; ++i) v[i] = static_cast<int32_t>(first + i);
  return v;
}
}  // namespace

std::vector<int32_t> generate(LlamaModel& model, KvCache& cache, const std::vector<int32_t>& prompt,
                              const GenerationOptions& options, const std::function<bool(int32_t)>& on_token) {
  if (prompt.empty()) throw_input_error("generation needs a prompt of at least one token");
  CHECK_EQ(cache.batch(), 1);
  const int64_t n = static_cast<int64_t>(prompt.size());
  Tensor logits = model.forward(row_of(prompt), row_of(counting_from(options.first_position, n)),
                                row_of(std::vector<int32_t>(n, 1)), cache, LogitsFor::kLastPosition, options.adapters);
  return continue_generation(model, cache, std::move(logits), options.first_position + n, options, on_token);
}

std::vector<int32_t> continue_generation(const LlamaModel& model, KvCache& cache, Tensor logits, int64_t next_position,
                                         const GenerationOptions& options,
                                         const std::function<bool(int32_t)>& on_token) {
  CHECK_EQ(cache.batch(), 1);
  std::vector<int32_t> produced;
  int64_t position = next_position;
  for (int64_t step = 0; step < options.max_new_tokens; ++step) {
    const int32_t next = sample_token(logits.data<float>(), logits.dim(1), options.sampling, step);
    produced.push_back(next);
    const bool stop = std::find(options.stop_ids.begin(), options.stop_ids.end(), next) != options.stop_ids.end();
    if (on_token && !on_token(next)) break;
    if (stop || step + 1 == options.max_new_tokens || cache.length() == cache.capacity()) break;
    logits = model.forward(row_of({next}), row_of({static_cast<int32_t>(position++)}), row_of({1}), cache,
                           LogitsFor::kLastPosition, options.adapters);
  }
  return produced;
}

}  // namespace xcomp
