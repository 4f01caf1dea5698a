// RMSNorm's row kernels (model/cuda/rmsnorm_rows.h), forward and backward, in registers
// and looped, run by the CPU emulation of their thread blocks (tests/emulated_thread_block.h:
// 256 threads a row, the block sum through warp shuffles and shared memory) on widths
// from 1 to past the register forms. Every form must give the same bits (the kernels
// promise it whichever form runs) and RMSNorm (its gradient) to within fp32 rounding of
// double precision. What this cannot see: the GPU's speed and its memory faults; the
// cuda tests run these kernels through CudaOps there.
#include <gtest/gtest.h>

#include <cmath>
#include <cstdint>
#include <cstring>
#include <random>
#include <string>
#include <vector>

#include "model/cuda/rmsnorm_rows.h"
#include "tests/emulated_thread_block.h"

namespace xcomp {
namespace {

constexpr float kEps = 1e-5f;
constexpr int64_t kRows = 2;

std::vector<float> random_values(int64_t count, float low, float high, uint32_t seed) {
  std::mt19937 rng(seed);
  std::uniform_real_distribution<float> uniform(low, high);
  std::vector<float> values(count);
  for (float& v : values) v = uniform(rng);
  return values;
}

// Runs body(executor, scratch) for every row, a block a row.
template <class Body> void emulate_rows(const Body& body) {
  test::run_emulated_grid<float>(kRows, 1, 1, rmsnorm_rows::kThreads, rmsnorm_rows::kScratch * sizeof(double), false,
                                 [&](const test::EmulatedExecutor<float>& ex, unsigned char* shared) {
                                   body(ex, reinterpret_cast<double*>(shared));
                                 });
}

// The forms a width can run: looped, and in registers with the fewest that hold the row
// and with twice that.
std::vector<int> forms_for(int64_t width) {
  std::vector<int> forms{0};
  const int fewest = rmsnorm_rows::row_registers(width);
  if (fewest != 0) forms.push_back(fewest);
  if (fewest != 0 && fewest < 32) forms.push_back(2 * fewest);
  return forms;
}

template <class F> void with_per_thread(int per_thread, F&& f) {
  switch (per_thread) {
    case 1: return f(std::integral_constant<int, 1>{});
    case 2: return f(std::integral_constant<int, 2>{});
    case 4: return f(std::integral_constant<int, 4>{});
    case 8: return f(std::integral_constant<int, 8>{});
    case 16: return f(std::integral_constant<int, 16>{});
    case 32: return f(std::integral_constant<int, 32>{});
    default: FAIL() << "no register form with " << per_thread << " a thread";
  }
}

std::vector<float> emulated_forward(int per_thread, const std::vector<float>& x, const std::vector<float>& w,
                                    int64_t width) {
  std::vector<float> y(x.size(), NAN);
  const auto store = [&](int64_t i, float v) { y[i] = v; };
  if (per_thread == 0) {
    emulate_rows([&](const auto& ex, double* scratch) {
      rmsnorm_rows::forward_row_looped(ex, x.data(), w.data(), kEps, width, scratch, store);
    });
  } else {
    with_per_thread(per_thread, [&](auto p) {
      emulate_rows([&](const auto& ex, double* scratch) {
        rmsnorm_rows::forward_row_in_registers<decltype(p)::value>(ex, x.data(), w.data(), kEps, width, scratch,
                                                                   store);
      });
    });
  }
  return y;
}

std::vector<float> emulated_backward(int per_thread, const std::vector<float>& dy, const std::vector<float>& x,
                                     const std::vector<float>& w, int64_t width, bool accumulate,
                                     std::vector<float> dx) {
  if (per_thread == 0) {
    emulate_rows([&](const auto& ex, double* scratch) {
      rmsnorm_rows::backward_row_looped(ex, dy.data(), x.data(), w.data(), kEps, width, accumulate, dx.data(),
                                        scratch);
    });
  } else {
    with_per_thread(per_thread, [&](auto p) {
      emulate_rows([&](const auto& ex, double* scratch) {
        rmsnorm_rows::backward_row_in_registers<decltype(p)::value>(ex, dy.data(), x.data(), w.data(), kEps, width,
                                                                    accumulate, dx.data(), scratch);
      });
    });
  }
  return dx;
}

bool same_bits(const std::vector<float>& a, const std::vector<float>& b) {
  return a.size() == b.size() && std::memcmp(a.data(), b.data(), a.size() * sizeof(float)) == 0;
}

class RmsnormRowsTest : public ::testing::TestWithParam<int64_t> {};

TEST_P(RmsnormRowsTest, ForwardFormsGiveTheSameBitsAndRmsnorm) {
  const int64_t width = GetParam();
  const std::vector<float> x = random_values(kRows * width, -2.f, 2.f, 3), w = random_values(width, 0.5f, 1.5f, 5);
  std::vector<std::vector<float>> outputs;
  for (int per_thread : forms_for(width)) outputs.push_back(emulated_forward(per_thread, x, w, width));
  for (size_t f = 1; f < outputs.size(); ++f) EXPECT_TRUE(same_bits(outputs[f], outputs[0])) << "form " << f;
  for (int64_t r = 0; r < kRows; ++r) {
    double sum = 0;
    for (int64_t i = 0; i < width; ++i) sum += double{x[r * width + i]} * x[r * width + i];
    const double inv = 1.0 / std::sqrt(sum / width + kEps);
    for (int64_t i = 0; i < width; ++i) {
      const double want = w[i] * x[r * width + i] * inv;
      ASSERT_NEAR(outputs[0][r * width + i], want, 1e-6 * (1 + std::fabs(want))) << "row " << r << " element " << i;
    }
  }
}

TEST_P(RmsnormRowsTest, BackwardFormsGiveTheSameBitsAndTheGradient) {
  const int64_t width = GetParam();
  const std::vector<float> x = random_values(kRows * width, -2.f, 2.f, 7), w = random_values(width, 0.5f, 1.5f, 11),
                           dy = random_values(kRows * width, -1.f, 1.f, 13),
                           dx_before = random_values(kRows * width, -1.f, 1.f, 17);
  for (bool accumulate : {false, true}) {
    std::vector<std::vector<float>> outputs;
    for (int per_thread : forms_for(width))
      outputs.push_back(emulated_backward(per_thread, dy, x, w, width, accumulate, dx_before));
    for (size_t f = 1; f < outputs.size(); ++f)
      EXPECT_TRUE(same_bits(outputs[f], outputs[0])) << "form " << f << ", accumulate " << accumulate;
    for (int64_t r = 0; r < kRows; ++r) {
      double sum_sq = 0, dot = 0;
      for (int64_t i = 0; i < width; ++i) {
        sum_sq += double{x[r * width + i]} * x[r * width + i];
        dot += double{dy[r * width + i]} * w[i] * x[r * width + i];
      }
      const double inv = 1.0 / std::sqrt(sum_sq / width + kEps);
      for (int64_t i = 0; i < width; ++i) {
        const double g = inv * w[i] * dy[r * width + i] - inv * inv * inv * x[r * width + i] * dot / width;
        const double want = accumulate ? dx_before[r * width + i] + g : g;
        ASSERT_NEAR(outputs[0][r * width + i], want, 1e-5 * (1 + std::fabs(want)))
            << "row " << r << " element " << i << ", accumulate " << accumulate;
      }
    }
  }
}

// 1 and 64 (stories260K's width) in one register a thread, 513 partial, 4096
// (LLaMA-3-8B's) in 16, 8200 past the register forms.
INSTANTIATE_TEST_SUITE_P(Widths, RmsnormRowsTest, ::testing::Values(1, 64, 513, 4096, 8200),
                         [](const ::testing::TestParamInfo<int64_t>& info) {
                           return "width_" + std::to_string(info.param);
                         });

TEST(RmsnormRows, RowRegistersAreTheFewestThatHoldTheRow) {
  EXPECT_EQ(rmsnorm_rows::row_registers(1), 1);
  EXPECT_EQ(rmsnorm_rows::row_registers(256), 1);
  EXPECT_EQ(rmsnorm_rows::row_registers(257), 2);
  EXPECT_EQ(rmsnorm_rows::row_registers(4096), 16);
  EXPECT_EQ(rmsnorm_rows::row_registers(8192), 32);
  EXPECT_EQ(rmsnorm_rows::row_registers(8193), 0);
}

}  // namespace
}  // namespace xcomp
