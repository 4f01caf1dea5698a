#include "tests/llama_reference.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>

#include "model/generation.h"

namespace xcomp::test {

namespace {
// Relative error over the real positions of a [B, T, C] logits slice against a
// reference [B, T, C'] that kept only the columns `cols`.
struct ErrorAccumulator {
  double max_diff = 0, max_ref = 0;
  void add(double got, double want) {
    max_diff = std::max(max_diff, std::fabs(got - want));
    max_ref = std::max(max_ref, std::fabs(want));
  }
  double relative() const { return max_ref > 0 ? max_diff / max_ref : max_diff; }
};

LogitsError compare_logits(const Tensor& logits, const SafetensorsFile& ref, const std::string& c) {
  const Tensor mask = ref.tensor(c + ".mask");
  const Tensor cols = ref.tensor(c + ".logits_cols");
  const Tensor want = ref.tensor(c + ".logits");
  const Tensor want_last = ref.tensor(c + ".last_logits");
  const int64_t b = mask.dim(0), t = mask.dim(1), vocab = logits.dim(2), ncols = cols.numel();
  EXPECT_EQ(want_last.dim(1), vocab);
  ErrorAccumulator all, last;
  for (int64_t bi = 0; bi < b; ++bi) {
    int64_t last_real = -1;
    for (int64_t ti = 0; ti < t; ++ti) {
      if (!mask.data<int32_t>()[bi * t + ti]) continue;
      last_real = ti;
      const float* row = logits.data<float>() + (bi * t + ti) * vocab;
      for (int64_t j = 0; j < ncols; ++j)
        all.add(row[cols.data<int32_t>()[j]], want.data<float>()[(bi * t + ti) * ncols + j]);
    }
    const float* row = logits.data<float>() + (bi * t + last_real) * vocab;
    for (int64_t v = 0; v < vocab; ++v) last.add(row[v], want_last.data<float>()[bi * vocab + v]);
  }
  return {all.relative(), last.relative()};
}

Tensor ones_like(const Tensor& t) {
  Tensor o = Tensor::empty(t.shape(), DType::I32);
  std::fill(o.data<int32_t>(), o.data<int32_t>() + o.numel(), 1);
  return o;
}
}  // namespace

LogitsError check_batch_case(LlamaModel& model, const SafetensorsFile& ref) {
  const Tensor tokens = ref.tensor("batch.tokens");
  KvCache cache(model.config(), tokens.dim(0), tokens.dim(1), model.ops());
  Tensor logits = model.forward(tokens, ref.tensor("batch.positions"), ref.tensor("batch.mask"), cache);
  return compare_logits(logits, ref, "batch");
}

LogitsError check_prefix_case(LlamaModel& model, const SafetensorsFile& ref) {
  const Tensor prefix = ref.tensor("prefix.prefix_tokens");
  const Tensor tokens = ref.tensor("prefix.tokens");
  KvCache cache(model.config(), tokens.dim(0), prefix.dim(1) + tokens.dim(1), model.ops());
  model.forward(prefix, ref.tensor("prefix.prefix_positions"), ones_like(prefix), cache);
  if (ref.contains("prefix.past_keys")) {
    // K after RoPE at the prefix positions: what a compressed prompt holds. Reference
    // layout [L, B, kv_heads, P, head_dim]; the cache's [B, capacity, kv_heads, head_dim].
    const Tensor past = ref.tensor("prefix.past_keys");
    const int64_t layers = past.dim(0), b = past.dim(1), kvh = past.dim(2), p = past.dim(3), hd = past.dim(4);
    ErrorAccumulator err;
    for (int64_t l = 0; l < layers; ++l)
      for (int64_t bi = 0; bi < b; ++bi)
        for (int64_t h = 0; h < kvh; ++h)
          for (int64_t s = 0; s < p; ++s)
            for (int64_t i = 0; i < hd; ++i)
              err.add(cache.keys(l).data<float>()[((bi * cache.capacity() + s) * kvh + h) * hd + i],
                      past.data<float>()[(((l * b + bi) * kvh + h) * p + s) * hd + i]);
    EXPECT_LT(err.relative(), 1e-5) << "prefix keys after RoPE";
  }
  Tensor logits = model.forward(tokens, ref.tensor("prefix.positions"), ref.tensor("prefix.mask"), cache);
  return compare_logits(logits, ref, "prefix");
}

std::vector<int32_t> greedy_tokens(LlamaModel& model, const SafetensorsFile& ref) {
  const Tensor prompt = ref.tensor("greedy.prompt");
  const Tensor want = ref.tensor("greedy.tokens");
  std::vector<int32_t> prompt_ids(prompt.data<int32_t>(), prompt.data<int32_t>() + prompt.numel());
  GenerationOptions options;
  options.max_new_tokens = want.numel();
  options.stop_ids = {model.config().eos_token_id};
  for (int32_t id : model.config().extra_eos_token_ids) options.stop_ids.push_back(id);
  KvCache cache(model.config(), 1, prompt.numel() + want.numel(), model.ops());
  return generate(model, cache, prompt_ids, options);
}

}  // namespace xcomp::test
