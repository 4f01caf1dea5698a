// AdamW's device update (model/cuda/cuda_adamw.h) beside the host optimizer
// (trainer/adamw.cc, itself checked against torch.optim.AdamW in tests/unit/adamw_test.cc)
// on the same random parameters and gradients, step after step, with and without weight
// decay, at several learning rates that change from step to step.
//
// The bound. Both sides start each step from the same float scalars (adamw_step_scalars)
// and the kernel does the host's operations in the host's order, each rounded once (no
// contraction into fma where the host has none), so they should agree bit for bit. The
// test allows what a different order or contraction could cost: a few roundings of the
// quantities involved per step, i.e. |p_gpu - p_cpu| <= 1e-6 * (|p_cpu| + sum of the
// learning rates so far) -- about 8 ulps of p, or of the largest total movement Adam can
// make (each step moves p by at most about lr times a bias-correction factor of order 1)
// -- and 1e-6 relative for the moments m and v. A wrong formula is far outside it:
//   - a sign error in the update: 2 * lr per element with a gradient, against 1e-6 * (|p| +
//     6 * lr): at lr = 1e-4 and |p| <= 1 that is 2e-4 against 1.6e-6;
//   - a missing bias correction: at step 1 the update changes by a factor 10 (1 / (1 -
//     beta1)) or 31.6 (sqrt(1 / (1 - beta2))), several lr;
//   - weight decay dropped, or applied to the gradient instead of p: lr * wd * |p|, at
//     least 1e-4 * 0.1 * |p| = 1e-5 |p| in the cases with decay, against 1e-6 |p|;
//   - eps inside the square root or before the bias correction: the gradients span 1e-10
//     to 1, so for the smallest ones eps dominates the denominator and the update changes
//     by a large factor.
#include <cuda_runtime.h>
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <random>
#include <string>
#include <vector>

#include "model/adamw_step.h"
#include "model/cuda/cuda_adamw.h"
#include "model/cuda/cuda_ops.h"
#include "model/cuda/cuda_check.h"
#include "model/cuda/rmsnorm.h"
#include "trainer/adamw.h"

namespace xcomp {
namespace {

// Parameters in [-1, 1], every 89th exactly 0.
std::vector<float> random_parameters(int64_t n, uint32_t seed) {
  std::mt19937 gen(seed);
  std::uniform_real_distribution<float> dist(-1.0f, 1.0f);
  std::vector<float> p(static_cast<size_t>(n));
  for (int64_t i = 0; i < n; ++i) p[static_cast<size_t>(i)] = i % 89 == 0 ? 0.0f : dist(gen);
  return p;
}

// Gradients of either sign with magnitudes log-uniform in [1e-10, 1] (so eps matters for
// some and not for others), every 97th exactly 0.
std::vector<float> random_gradients(int64_t n, uint32_t seed) {
  std::mt19937 gen(seed);
  std::uniform_real_distribution<double> exponent(-10.0, 0.0);
  std::bernoulli_distribution negative(0.5);
  std::vector<float> g(static_cast<size_t>(n));
  for (int64_t i = 0; i < n; ++i) {
    const double magnitude = std::pow(10.0, exponent(gen));
    g[static_cast<size_t>(i)] = i % 97 == 0 ? 0.0f : static_cast<float>(negative(gen) ? -magnitude : magnitude);
  }
  return g;
}

float* device_copy(const std::vector<float>& host) {
  float* device = nullptr;
  XCOMP_CUDA_CHECK(cudaMalloc(&device, host.size() * sizeof(float)));
  XCOMP_CUDA_CHECK(cudaMemcpy(device, host.data(), host.size() * sizeof(float), cudaMemcpyHostToDevice));
  return device;
}

std::vector<float> host_copy(const float* device, int64_t n) {
  std::vector<float> host(static_cast<size_t>(n));
  XCOMP_CUDA_CHECK(cudaMemcpy(host.data(), device, host.size() * sizeof(float), cudaMemcpyDeviceToHost));
  return host;
}

// The largest |got - want| / (|want| + floor) and how many elements exceed `tolerance` of it.
struct Agreement {
  double worst = 0;
  int64_t over = 0;
  int64_t first_over = -1;
};

Agreement compare(const std::vector<float>& got, const float* want, double floor, double tolerance) {
  Agreement a;
  for (size_t i = 0; i < got.size(); ++i) {
    const double diff = std::fabs(static_cast<double>(got[i]) - want[i]);
    const double scaled = diff == 0 ? 0 : diff / (std::fabs(static_cast<double>(want[i])) + floor);
    if (!(scaled <= tolerance)) {  // also NaN
      if (a.over++ == 0) a.first_over = static_cast<int64_t>(i);
    }
    if (!std::isnan(scaled)) a.worst = std::max(a.worst, scaled);
  }
  return a;
}

struct Case {
  const char* name;
  AdamWOptions options;
  double lr;
};

constexpr double kTolerance = 1e-6;
// The learning rate of step s is lr times this (a schedule that moves).
constexpr double kLrFactors[] = {1.0, 0.5, 2.0, 1.0, 0.25, 1.0};

class AdamWCudaTest : public ::testing::Test {
 protected:
  void SetUp() override {
    ASSERT_GT(cuda_device_count(), 0)
        << "no CUDA device: the cuda_tests run only on a GPU machine (tools/gpu_check.sh)";
    XCOMP_CUDA_CHECK(cudaSetDevice(0));
    XCOMP_CUDA_CHECK(cudaStreamCreateWithFlags(&stream_, cudaStreamNonBlocking));
  }
  void TearDown() override {
    if (stream_ != nullptr) XCOMP_CUDA_CHECK(cudaStreamDestroy(stream_));
  }
  cudaStream_t stream_ = nullptr;
};

TEST_F(AdamWCudaTest, MatchesTheHostOptimizerStepByStep) {
  const Case cases[] = {
      {"lr 1e-3, no decay", {0.9, 0.999, 1e-8, 0.0}, 1e-3},
      {"lr 1e-2, decay 0.1", {0.9, 0.999, 1e-8, 0.1}, 1e-2},
      {"lr 1e-4, decay 0.1, betas 0.8/0.95, eps 1e-6", {0.8, 0.95, 1e-6, 0.1}, 1e-4},
      {"lr 3e-4, decay 0.01", {0.9, 0.999, 1e-8, 0.01}, 3e-4},
  };
  const int64_t n = 10007;  // not a multiple of the block size
  double worst_p = 0, worst_m = 0, worst_v = 0;
  uint32_t seed = 0;
  for (const Case& c : cases) {
    SCOPED_TRACE(c.name);
    const std::vector<float> initial = random_parameters(n, ++seed);
    Tensor host_p = Tensor::empty({n});
    std::copy(initial.begin(), initial.end(), host_p.data<float>());
    AdamW host(c.options);
    host.add_parameter("p", host_p);  // shares host_p's storage: updated in place

    float* p = device_copy(initial);
    float* m = device_copy(std::vector<float>(static_cast<size_t>(n), 0.0f));
    float* v = device_copy(std::vector<float>(static_cast<size_t>(n), 0.0f));
    double lr_sum = 0;
    int64_t step = 0;
    for (const double factor : kLrFactors) {
      ++step;
      SCOPED_TRACE("step " + std::to_string(step));
      const double lr = c.lr * factor;
      lr_sum += lr;
      const std::vector<float> gradient = random_gradients(n, 1000 * seed + static_cast<uint32_t>(step));
      Tensor host_g = Tensor::empty({n});
      std::copy(gradient.begin(), gradient.end(), host_g.data<float>());
      host.step({host_g}, lr);

      float* g = device_copy(gradient);
      const AdamWStepScalars scalars = adamw_step_scalars(lr, c.options.beta1, c.options.beta2, c.options.eps,
                                                          c.options.weight_decay, step);
      cuda::adamw_update(p, m, v, g, n, scalars, stream_);
      XCOMP_CUDA_CHECK(cudaStreamSynchronize(stream_));
      XCOMP_CUDA_CHECK(cudaFree(g));

      const Agreement a = compare(host_copy(p, n), host_p.data<float>(), lr_sum, kTolerance);
      worst_p = std::max(worst_p, a.worst);
      EXPECT_EQ(a.over, 0) << "parameters: " << a.over << " elements off, first [" << a.first_over
                           << "]; worst scaled error " << a.worst;
    }
    EXPECT_EQ(host.step_count(), step);
    const auto state = host.state_tensors();  // p.exp_avg, p.exp_avg_sq, step
    ASSERT_EQ(state.size(), 3u);
    const Agreement am = compare(host_copy(m, n), state[0].second.data<float>(), 0.0, kTolerance);
    const Agreement av = compare(host_copy(v, n), state[1].second.data<float>(), 0.0, kTolerance);
    worst_m = std::max(worst_m, am.worst);
    worst_v = std::max(worst_v, av.worst);
    EXPECT_EQ(am.over, 0) << "exp_avg: " << am.over << " elements off, first [" << am.first_over << "]";
    EXPECT_EQ(av.over, 0) << "exp_avg_sq: " << av.over << " elements off, first [" << av.first_over << "]";
    XCOMP_CUDA_CHECK(cudaFree(p));
    XCOMP_CUDA_CHECK(cudaFree(m));
    XCOMP_CUDA_CHECK(cudaFree(v));
  }
  RecordProperty("param_error", std::to_string(worst_p));
  RecordProperty("exp_avg_error", std::to_string(worst_m));
  RecordProperty("exp_avg_sq_error", std::to_string(worst_v));
}

TEST_F(AdamWCudaTest, EmptyTensorIsANoOp) {
  const AdamWStepScalars scalars = adamw_step_scalars(1e-3, 0.9, 0.999, 1e-8, 0.0, 1);
  cuda::adamw_update(nullptr, nullptr, nullptr, nullptr, 0, scalars, stream_);
  XCOMP_CUDA_CHECK(cudaStreamSynchronize(stream_));
}

}  // namespace
}  // namespace xcomp
