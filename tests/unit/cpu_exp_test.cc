// vector_exp, the exp of the CPU backend's softmax, SwiGLU and cross-entropy loops: as
// accurate as float exp over the range that matters, exactly 0 for masked (-inf) scores.
#include <gtest/gtest.h>

#include <cmath>
#include <limits>

#include "model/cpu/cpu_exp.h"

namespace xcomp {
namespace {

TEST(CpuExp, MatchesExpToFloatPrecisionOverTheUsedRange) {
  double worst = 0;
  for (double x = -87.0; x <= 88.0; x += 0.001) {
    const double want = std::exp(static_cast<double>(static_cast<float>(x)));
    const double got = vector_exp(static_cast<float>(x));
    worst = std::max(worst, std::abs(got - want) / want);
  }
  EXPECT_LT(worst, 4e-7);
}

TEST(CpuExp, ExactAtZeroAndZeroForMaskedScores) {
  EXPECT_EQ(vector_exp(0.0f), 1.0f);
  EXPECT_EQ(vector_exp(-std::numeric_limits<float>::infinity()), 0.0f);
  EXPECT_EQ(vector_exp(-1000.0f), 0.0f);
  EXPECT_TRUE(std::isfinite(vector_exp(1000.0f)));  // saturates instead of overflowing
}

}  // namespace
}  // namespace xcomp
