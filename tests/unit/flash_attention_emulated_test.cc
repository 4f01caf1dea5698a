// The CUDA backend's flash attention kernels (model/cuda/flash_attention_kernels.h), run
// by a CPU emulation of their thread blocks (tests/emulated_thread_block.h), against the
// CPU backend's attention: forward and backward, with a prefix, padded keys, a query
// that sees no key, grouped heads, partial tiles and head_dims that are not a multiple
// of 16. Exact fragment products give the CPU's numbers up to summation order (the
// fp32 bound); products rounded to TF32, as on the GPU, stay within the bf16 bound the
// CUDA tests hold the GPU's TF32 attention to. What this cannot see: the GPU's fragment
// layouts, alignment faults and speed; tests/cuda runs the same kernels on a GPU.
#include <gtest/gtest.h>

#include <cmath>
#include <random>
#include <string>

#include "model/cpu/cpu_ops.h"
#include "tests/attention_against_cpu.h"
#include "tests/attention_cases.h"
#include "tests/cuda/tensor_compare.h"
#include "tests/emulated_flash_attention.h"
#include "tests/host_tensors.h"

namespace xcomp {
namespace {

using test::AttentionCase;
using test::emulated_flash_attention;
using test::emulated_flash_attention_backward;
using test::FlashOperands;

constexpr double kF32Tolerance = 1e-5;
constexpr double kTf32Tolerance = 1e-2;
constexpr double kBf16Tolerance = 1e-2;

class FlashAttentionEmulatedTest : public ::testing::TestWithParam<AttentionCase> {
 protected:
  void check(FlashOperands operands, double out_tolerance, double grad_tolerance) {
    const AttentionCase c = GetParam();
    const std::string label = std::string(c.name) + (operands == FlashOperands::kExact  ? "_exact"
                                                     : operands == FlashOperands::kTf32 ? "_tf32"
                                                                                        : "_bf16");
    test::check_attention_against_cpu(
        c, label,
        [&](const Tensor& q, const Tensor& k, const Tensor& v, int64_t length, const Tensor& valid, Tensor& out) {
          emulated_flash_attention(q, k, v, length, valid, out, operands);
        },
        [&](const Tensor& dout, const Tensor& q, const Tensor& k, const Tensor& v, int64_t length,
            const Tensor& valid, Tensor& dq, Tensor& dk, Tensor& dv) {
          emulated_flash_attention_backward(dout, q, k, v, length, valid, dq, dk, dv, operands);
        },
        out_tolerance, grad_tolerance);
  }
};

TEST_P(FlashAttentionEmulatedTest, ExactProductsMatchCpu) {
  check(FlashOperands::kExact, kF32Tolerance, kF32Tolerance);
}

TEST_P(FlashAttentionEmulatedTest, Tf32ProductsMatchCpuWithinBf16Bound) {
  check(FlashOperands::kTf32, kTf32Tolerance, kTf32Tolerance);
}

TEST_P(FlashAttentionEmulatedTest, Bf16ProductsMatchCpuWithinBf16Bound) {
  check(FlashOperands::kBf16, kBf16Tolerance, kBf16Tolerance);
}

// The shapes of tests/attention_against_cpu.h: with head_dim 24 padded to 32, and a long
// prefix with few queries (key tiles no query tile starts in).
INSTANTIATE_TEST_SUITE_P(
    Shapes, FlashAttentionEmulatedTest,
    ::testing::ValuesIn(test::kEmulatedAttentionCases),
    [](const ::testing::TestParamInfo<AttentionCase>& info) { return std::string(info.param.name); });

}  // namespace
}  // namespace xcomp
