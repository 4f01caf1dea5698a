// An attention implementation (forward and backward with Ops::attention's arguments, on
// host tensors) against the CPU backend's, on random inputs: how the unit suite checks
// the CUDA kernels' arithmetic in emulation (tests/unit/flash_attention_emulated_test.cc,
// tests/unit/bf16_product_attention_test.cc). Every output entry must be written (out
// and dq start as garbage); dk and dv are added into, and their increments compared
// alone; a query that sees no key gets zeros exactly; entries past `length` keep their
// gradients.
#pragma once

#include <gtest/gtest.h>

#include <cstdint>
#include <cstdio>
#include <string>

#include "model/cpu/cpu_ops.h"
#include "tests/attention_cases.h"
#include "tests/cuda/tensor_compare.h"
#include "tests/host_tensors.h"

namespace xcomp::test {

// {name, batch, T, heads, kv heads, head_dim, capacity, length}: the stories260K shapes of
// the CUDA tests; several query tiles with a partial last one and a prefix (head_dim 64);
// head_dim 128 with 4 heads a kv head; head_dim 24; a long prefix with few queries.
inline const AttentionCase kEmulatedAttentionCases[] = {
    {"stories260k", 2, 6, 8, 4, 8, 16, 12},      {"stories260k_no_prefix", 2, 7, 8, 4, 8, 7, 7},
    {"tiles_d64", 2, 100, 2, 1, 64, 140, 133},   {"group4_d128", 1, 70, 4, 1, 128, 90, 80},
    {"padded_d24", 2, 40, 6, 3, 24, 50, 45},     {"long_prefix_d64", 1, 3, 2, 1, 64, 300, 290}};

// forward(q, k, v, length, key_valid, out); backward(dout, q, k, v, length, key_valid,
// dq, dk, dv).
template <class Forward, class Backward>
void check_attention_against_cpu(const AttentionCase& c, const std::string& label, Forward forward,
                                 Backward backward, double out_tolerance, double grad_tolerance) {
  CpuOps cpu;
  const Shape q_shape{c.batch, c.t, c.heads, c.d}, kv_shape{c.batch, c.capacity, c.kv_heads, c.d};
  const Tensor q = random_tensor(q_shape, 30, 2.0f), k = random_tensor(kv_shape, 31, 2.0f);
  const Tensor v = random_tensor(kv_shape, 32), valid = test::attention_key_valid(c);
  Tensor want = Tensor::empty(q_shape);
  cpu.attention(q, k, v, c.length, valid, want);
  Tensor out = random_tensor(q_shape, 33);  // garbage: every entry must be written
  forward(q, k, v, c.length, valid, out);
  const double out_error = relative_max_error(out, want);
  EXPECT_LE(out_error, out_tolerance) << label << " out";

  const Tensor dout = random_tensor(q_shape, 34);
  const Tensor dk0 = random_tensor(kv_shape, 35), dv0 = random_tensor(kv_shape, 36);
  Tensor want_dq = random_tensor(q_shape, 37), want_dk = dk0.clone(), want_dv = dv0.clone();
  cpu.attention_backward(dout, q, k, v, c.length, valid, want_dq, want_dk, want_dv);
  Tensor dq = random_tensor(q_shape, 38), dk = dk0.clone(), dv = dv0.clone();  // dq: garbage; dk, dv add
  backward(dout, q, k, v, c.length, valid, dq, dk, dv);
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

}  // namespace xcomp::test
