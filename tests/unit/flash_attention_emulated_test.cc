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
#include "tests/attention_cases.h"
#include "tests/cuda/tensor_compare.h"
#include "tests/emulated_flash_attention.h"
#include "tests/host_tensors.h"

namespace xcomp {
namespace {

using test::random_tensor;
using test::AttentionCase;
using test::emulated_flash_attention;
using test::emulated_flash_attention_backward;
using test::FlashOperands;
using test::relative_max_error;

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
    const Shape q_shape{c.batch, c.t, c.heads, c.d}, kv_shape{c.batch, c.capacity, c.kv_heads, c.d};
    const Tensor q = random_tensor(q_shape, 30, 2.0f), k = random_tensor(kv_shape, 31, 2.0f);
    const Tensor v = random_tensor(kv_shape, 32), valid = test::attention_key_valid(c);
    Tensor want = Tensor::empty(q_shape);
    cpu_.attention(q, k, v, c.length, valid, want);
    Tensor out = random_tensor(q_shape, 33);  // garbage: every entry must be written
    emulated_flash_attention(q, k, v, c.length, valid, out, operands);
    const double out_error = relative_max_error(out, want);
    EXPECT_LE(out_error, out_tolerance) << label << " out";

    const Tensor dout = random_tensor(q_shape, 34);
    const Tensor dk0 = random_tensor(kv_shape, 35), dv0 = random_tensor(kv_shape, 36);
    Tensor want_dq = random_tensor(q_shape, 37), want_dk = dk0.clone(), want_dv = dv0.clone();
    cpu_.attention_backward(dout, q, k, v, c.length, valid, want_dq, want_dk, want_dv);
    Tensor dq = random_tensor(q_shape, 38), dk = dk0.clone(), dv = dv0.clone();  // dq: garbage; dk, dv add
    emulated_flash_attention_backward(dout, q, k, v, c.length, valid, dq, dk, dv, operands);
    const double dq_error = relative_max_error(dq, want_dq);
    EXPECT_LE(dq_error, grad_tolerance) << label << " dq";
    // The increments alone (the accumulation onto dk0, dv0 would hide small ones).
    Tensor dk_increment = dk.clone(), dv_increment = dv.clone();
    Tensor want_dk_increment = want_dk.clone(), want_dv_increment = want_dv.clone();
    for (int64_t i = 0; i < dk0.numel(); ++i) {
      dk_increment.data<float>()[i] -= dk0.data<float>()[i];
      want_dk_increment.data<float>()[i] -= dk0.data<float>()[i];
      dv_increment.data<float>()[i] -= dv0.data<float>()[i];
      want_dv_increment.data<float>()[i] -= dv0.data<float>()[i];
    }
    const double dk_error = relative_max_error(dk_increment, want_dk_increment);
    const double dv_error = relative_max_error(dv_increment, want_dv_increment);
    EXPECT_LE(dk_error, grad_tolerance) << label << " dk";
    EXPECT_LE(dv_error, grad_tolerance) << label << " dv";
    std::printf("%s: out %.3g dq %.3g dk %.3g dv %.3g\n", label.c_str(), out_error, dq_error, dk_error, dv_error);
    if (c.batch > 1) {  // row 1's query 0 sees no key: zeros, exactly
      for (int64_t i = 0; i < c.heads * c.d; ++i) {
        ASSERT_EQ(out.data<float>()[c.t * c.heads * c.d + i], 0.0f) << label << ": out of a query with no key";
        ASSERT_EQ(dq.data<float>()[c.t * c.heads * c.d + i], 0.0f) << label << ": dq of a query with no key";
      }
    }
    // Entries past `length` are no key of this call: their gradients stay as they were.
    for (int64_t b = 0; b < c.batch; ++b)
      for (int64_t i = c.length * c.kv_heads * c.d; i < c.capacity * c.kv_heads * c.d; ++i) {
        const int64_t at = b * c.capacity * c.kv_heads * c.d + i;
        ASSERT_EQ(dk.data<float>()[at], dk0.data<float>()[at]) << label << ": dk past length";
        ASSERT_EQ(dv.data<float>()[at], dv0.data<float>()[at]) << label << ": dv past length";
      }
  }

  CpuOps cpu_;
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

// {name, batch, T, heads, kv heads, head_dim, capacity, length}: the stories260K shapes of
// the CUDA tests; several query tiles with a partial last one and a prefix (head_dim 64);
// head_dim 128 with 4 heads a kv head; head_dim 24 (padded to 32); a long prefix with few
// queries (key tiles no query tile starts in).
INSTANTIATE_TEST_SUITE_P(
    Shapes, FlashAttentionEmulatedTest,
    ::testing::Values(AttentionCase{"stories260k", 2, 6, 8, 4, 8, 16, 12},
                      AttentionCase{"stories260k_no_prefix", 2, 7, 8, 4, 8, 7, 7},
                      AttentionCase{"tiles_d64", 2, 100, 2, 1, 64, 140, 133},
                      AttentionCase{"group4_d128", 1, 70, 4, 1, 128, 90, 80},
                      AttentionCase{"padded_d24", 2, 40, 6, 3, 24, 50, 45},
                      AttentionCase{"long_prefix_d64", 1, 3, 2, 1, 64, 300, 290}),
    [](const ::testing::TestParamInfo<AttentionCase>& info) { return std::string(info.param.name); });

}  // namespace
}  // namespace xcomp
