// The two numbers the backend checks compare tensors by: the largest difference and the
// difference's norm, each relative to the reference.
#include "model/tensor_difference.h"

#include <gtest/gtest.h>

#include <cmath>
#include <vector>

namespace xcomp {
namespace {

Tensor values(const std::vector<float>& v) {
  Tensor t = Tensor::empty({static_cast<int64_t>(v.size())});
  for (size_t i = 0; i < v.size(); ++i) t.data<float>()[i] = v[i];
  return t;
}

TEST(TensorDifference, MaxIsTheLargestDifferenceOverTheLargestReference) {
  EXPECT_DOUBLE_EQ(relative_max_difference(values({1, 2, -4}), values({1, 3, -4})), 1.0 / 4);
  EXPECT_DOUBLE_EQ(relative_max_difference(values({0.5f, 0}), values({0, 0})), 0.5);  // all-zero reference
}

TEST(TensorDifference, NormIsTheDifferencesNormOverTheReferences) {
  // difference (0, 3, 4): norm 5; reference (0, 0, 10): norm 10.
  EXPECT_DOUBLE_EQ(relative_norm_difference(values({0, 3, 14}), values({0, 0, 10})), 0.5);
  EXPECT_DOUBLE_EQ(relative_norm_difference(values({3, 4}), values({0, 0})), 5.0);  // all-zero reference
  EXPECT_EQ(relative_norm_difference(values({1, 2}), values({1, 2})), 0.0);
}

TEST(TensorDifference, OneOutlierMovesTheMaxMoreThanTheNorm) {
  std::vector<float> want(100, 1.0f), got(100, 1.0f);
  got[17] = 1.5f;
  EXPECT_DOUBLE_EQ(relative_max_difference(values(got), values(want)), 0.5);
  EXPECT_DOUBLE_EQ(relative_norm_difference(values(got), values(want)), 0.05);
}

TEST(TensorDifference, SizeMismatchOrNanIsInfinite) {
  EXPECT_TRUE(std::isinf(relative_max_difference(values({1, 2}), values({1}))));
  EXPECT_TRUE(std::isinf(relative_norm_difference(values({1, 2}), values({1}))));
  EXPECT_TRUE(std::isinf(relative_max_difference(values({NAN}), values({1}))));
  EXPECT_TRUE(std::isinf(relative_norm_difference(values({NAN}), values({1}))));
}

}  // namespace
}  // namespace xcomp
