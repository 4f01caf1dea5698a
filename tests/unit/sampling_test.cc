#include <gtest/gtest.h>

#include <cmath>
#include <map>
#include <vector>

#include "model/sampling.h"

namespace xcomp {
namespace {

TEST(Sampling, GreedyTakesFirstMaximum) {
  std::vector<float> logits = {0.1f, 3.0f, -1.0f, 3.0f};
  EXPECT_EQ(sample_token(logits.data(), 4, SamplingOptions{}, 0), 1);
}

TEST(Sampling, SameSeedAndStepGiveSameToken) {
  std::vector<float> logits = {1.0f, 1.1f, 0.9f, 1.05f, 0.7f};
  SamplingOptions o;
  o.temperature = 1.0f;
  o.seed = 42;
  for (uint64_t step = 0; step < 20; ++step)
    EXPECT_EQ(sample_token(logits.data(), 5, o, step), sample_token(logits.data(), 5, o, step));
}

TEST(Sampling, FrequenciesFollowTheSoftmax) {
  std::vector<float> logits = {0.0f, std::log(3.0f)};  // probabilities 1/4, 3/4
  SamplingOptions o;
  o.temperature = 1.0f;
  o.seed = 7;
  int ones = 0;
  const int n = 20000;
  for (int step = 0; step < n; ++step) ones += sample_token(logits.data(), 2, o, step);
  EXPECT_NEAR(ones / double(n), 0.75, 0.015);
}

TEST(Sampling, SmallTopPKeepsOnlyTheMostLikely) {
  std::vector<float> logits = {2.0f, 1.0f, 0.5f};
  SamplingOptions o;
  o.temperature = 1.0f;
  o.top_p = 0.1f;
  for (uint64_t step = 0; step < 50; ++step) EXPECT_EQ(sample_token(logits.data(), 3, o, step), 0);
}

}  // namespace
}  // namespace xcomp
