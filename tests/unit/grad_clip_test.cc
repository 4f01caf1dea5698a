// Global-norm gradient clipping against torch.nn.utils.clip_grad_norm_
// (tests/reference/make_adamw_reference.py), and what it does with non-finite gradients.
#include "trainer/grad_clip.h"

#include <gtest/gtest.h>
#include <omp.h>

#include <cmath>
#include <cstring>
#include <limits>
#include <nlohmann/json.hpp>

#include "model/cpu/cpu_ops.h"
#include "tests/test_support.h"

namespace xcomp {
namespace {

using json = nlohmann::json;

Tensor tensor_of(const Shape& shape, const json& values) {
  Tensor t = Tensor::empty(shape);
  for (int64_t i = 0; i < t.numel(); ++i) t.data<float>()[i] = values[static_cast<size_t>(i)].get<float>();
  return t;
}

TEST(GradClip, MatchesTorchClipGradNorm) {
  CpuOps ops;
  const json ref = json::parse(test::read_file(test::source_dir() + "/tests/reference/data/adamw_reference.json"));
  ASSERT_EQ(ref["clip"].size(), 3u);
  for (const json& c : ref["clip"]) {
    std::vector<Tensor> grads;
    for (const json& g : c["grads"]) grads.push_back(tensor_of(g["shape"].get<Shape>(), g["values"]));
    const double max_norm = c["max_norm"], torch_norm = c["norm"];
    const GradClipResult r = clip_grad_norm(ops, grads, max_norm);
    EXPECT_TRUE(r.finite);
    EXPECT_NEAR(r.norm, torch_norm, 1e-6 * torch_norm);
    EXPECT_EQ(r.clipped, torch_norm > max_norm);
    for (size_t i = 0; i < grads.size(); ++i) {
      const json& expected = c["clipped"][i];
      for (int64_t j = 0; j < grads[i].numel(); ++j) {
        const double e = expected[static_cast<size_t>(j)];
        EXPECT_NEAR(grads[i].data<float>()[j], e, 1e-6 * std::fabs(e) + 1e-12) << "grad " << i << "[" << j << "]";
      }
    }
  }
}

TEST(GradClip, NonFiniteNormIsReportedAndNothingIsScaled) {
  CpuOps ops;
  for (float bad : {std::numeric_limits<float>::quiet_NaN(), std::numeric_limits<float>::infinity()}) {
    std::vector<Tensor> grads = {Tensor::zeros({3}), Tensor::zeros({2})};
    grads[0].data<float>()[0] = 100.0f;
    grads[1].data<float>()[1] = bad;
    const GradClipResult r = clip_grad_norm(ops, grads, 1.0);
    EXPECT_FALSE(r.finite);
    EXPECT_FALSE(r.clipped);
    EXPECT_EQ(grads[0].data<float>()[0], 100.0f);
  }
}

TEST(GradClip, ZeroMaxNormMeasuresWithoutClipping) {
  CpuOps ops;
  std::vector<Tensor> grads = {Tensor::zeros({2})};
  grads[0].data<float>()[0] = 3.0f;
  grads[0].data<float>()[1] = 4.0f;
  const GradClipResult r = clip_grad_norm(ops, grads, 0.0);
  EXPECT_DOUBLE_EQ(r.norm, 5.0);
  EXPECT_FALSE(r.clipped);
  EXPECT_EQ(grads[0].data<float>()[1], 4.0f);
  EXPECT_DOUBLE_EQ(global_grad_norm(ops, grads), 5.0);
}

TEST(GradClip, NormDoesNotDependOnTheThreadCount) {
  CpuOps ops;
  Tensor big = Tensor::empty({300001});
  for (int64_t i = 0; i < big.numel(); ++i) big.data<float>()[i] = std::sin(0.37 * static_cast<double>(i)) * 1e-3f;
  const int threads = omp_get_max_threads();
  omp_set_num_threads(1);
  const double one = global_grad_norm(ops, {big});
  omp_set_num_threads(3);
  const double three = global_grad_norm(ops, {big});
  omp_set_num_threads(threads);
  EXPECT_EQ(std::memcmp(&one, &three, sizeof one), 0) << one << " vs " << three;
}

// The norm reads every tensor's sum of squares in one call (Ops::sums_of_squares): each
// as sum_of_squares gives it alone, in order, an empty tensor's 0.
TEST(GradClip, SumsOfSquaresAreEachTensorsOwn) {
  CpuOps ops;
  Tensor a = Tensor::empty({70001}), b = Tensor::zeros({0}), c = Tensor::empty({5});
  for (int64_t i = 0; i < a.numel(); ++i) a.data<float>()[i] = std::cos(0.11 * static_cast<double>(i)) * 0.5f;
  for (int64_t i = 0; i < c.numel(); ++i) c.data<float>()[i] = static_cast<float>(i) - 2.0f;
  const std::vector<double> sums = ops.sums_of_squares({a, b, c});
  ASSERT_EQ(sums.size(), 3u);
  EXPECT_EQ(sums[0], ops.sum_of_squares(a));
  EXPECT_EQ(sums[1], 0.0);
  EXPECT_EQ(sums[2], 10.0);
  EXPECT_DOUBLE_EQ(global_grad_norm(ops, {a, b, c}), std::sqrt(sums[0] + 10.0));
}

}  // namespace
}  // namespace xcomp
