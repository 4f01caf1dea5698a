#include "model/sampling.h"

#include <glog/logging.h>

#include <algorithm>
#include <cmath>
#include <numeric>
#include <vector>

#include "model/random.h"

namespace xcomp {

namespace {
int32_t argmax(const float* logits, int64_t vocab) {
  // First maximum wins, like torch.argmax.
  return static_cast<int32_t>(std::max_element(logits, logits + vocab) - logits);
}
}  // namespace

int32_t sample_token(const float* logits, int64_t vocab, const SamplingOptions& options, uint64_t step) {
  CHECK_GT(vocab, 0);
  if (options.temperature <= 0.0f) return argmax(logits, vocab);

  std::vector<double> probs(vocab);
  const double max_logit = *std::max_element(logits, logits + vocab);
  double total = 0;
  for (int64_t i = 0; i < vocab; ++i) {
    probs[i] = std::exp((logits[i] - max_logit) / options.temperature);
    total += probs[i];
  }
  std::vector<int32_t> order(vocab);
  std::iota(order.begin(), order.end(), 0);
  std::stable_sort(order.begin(), order.end(), [&](int32_t a, int32_t b) { return probs[a] > probs[b]; });
  // Nucleus: the most likely tokens up to cumulative probability top_p (at least one).
  int64_t keep = 0;
  double kept_mass = 0;
  while (keep < vocab && (keep == 0 || kept_mass < options.top_p * total)) kept_mass += probs[order[keep++]];
  const double u = counter_random_uniform(options.seed, RandomPurpose::kSampling, step, 0) * kept_mass;
  double cumulative = 0;
  for (int64_t i = 0; i < keep; ++i) {
    cumulative += probs[order[i]];
    if (u < cumulative) return order[i];
  }
  return order[keep - 1];
}

}  // namespace xcomp
