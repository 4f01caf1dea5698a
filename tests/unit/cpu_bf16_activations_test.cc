// The CPU ops that take BF16 activations (Ops::product_dtype): each reads a BF16 tensor
// as its values and writes a BF16 result as the fp32 result rounded to nearest even, so
// on BF16 tensors it gives exactly what it gives on their F32 values, rounded. That is
// what the CUDA backend's bf16 variants are checked against.
#include <gtest/gtest.h>

#include <string>

#include "model/cpu/cpu_ops.h"
#include "model/half.h"
#include "tests/op_tensors.h"

namespace xcomp {
namespace {

using test::smooth_tensor;

Tensor to_bf16(const Tensor& f32) {
  Tensor out = Tensor::empty(f32.shape(), DType::BF16);
  for (int64_t i = 0; i < f32.numel(); ++i) out.data<uint16_t>()[i] = f32_to_bf16(f32.data<float>()[i]);
  return out;
}

// The F32 tensor of a BF16 tensor's values.
Tensor values_of(const Tensor& bf16) { return bf16.to_f32().clone(); }

Tensor rounded(const Tensor& f32) { return values_of(to_bf16(f32)); }

void expect_same_values(const std::string& what, const Tensor& got, const Tensor& want) {
  ASSERT_EQ(got.numel(), want.numel()) << what;
  const Tensor g = got.to_f32(), w = want.to_f32();
  for (int64_t i = 0; i < g.numel(); ++i)
    ASSERT_EQ(g.data<float>()[i], w.data<float>()[i]) << what << " element " << i;
}

TEST(CpuBf16Activations, LinearReadsAndWritesBf16AsRoundedFp32) {
  CpuOps ops;
  const Tensor x = to_bf16(smooth_tensor({5, 7}, 0.1)), w = smooth_tensor({3, 7}, 0.9);
  Tensor want = Tensor::empty({5, 3});
  ops.linear(values_of(x), w, want);

  Tensor y32 = Tensor::empty({5, 3}), y16 = Tensor::empty({5, 3}, DType::BF16);
  ops.linear(x, w, y32);
  expect_same_values("bf16 input", y32, want);
  ops.linear(x, w, y16);
  ASSERT_EQ(y16.dtype(), DType::BF16);
  expect_same_values("bf16 input and output", y16, rounded(want));
  // The rounding is real: these outputs are not all representable in bf16.
  bool any_rounded = false;
  for (int64_t i = 0; i < want.numel(); ++i)
    any_rounded |= rounded(want).data<float>()[i] != want.data<float>()[i];
  EXPECT_TRUE(any_rounded);
}

TEST(CpuBf16Activations, LinearBackwardInputAccumulatesIntoBf16) {
  CpuOps ops;
  const Tensor dy = to_bf16(smooth_tensor({5, 3}, 0.4)), w = smooth_tensor({3, 7}, 0.9);
  const Tensor start = to_bf16(smooth_tensor({5, 7}, 2.2));
  for (bool accumulate : {false, true}) {
    SCOPED_TRACE(accumulate ? "accumulate" : "overwrite");
    Tensor want = values_of(start);
    ops.linear_backward_input(values_of(dy), w, want, accumulate);
    Tensor dx = start.clone();
    ops.linear_backward_input(dy, w, dx, accumulate);
    expect_same_values("dx", dx, rounded(want));
  }
}

TEST(CpuBf16Activations, RmsnormWritesBf16) {
  CpuOps ops;
  const Tensor x = smooth_tensor({4, 9}, 0.2), w = smooth_tensor({9}, 1.7);
  Tensor want = Tensor::empty({4, 9}), y = Tensor::empty({4, 9}, DType::BF16);
  ops.rmsnorm(x, w, 1e-5f, want);
  ops.rmsnorm(x, w, 1e-5f, y);
  expect_same_values("rmsnorm", y, rounded(want));
}

TEST(CpuBf16Activations, SwigluAndBackwardOnBf16) {
  CpuOps ops;
  const Tensor gate = to_bf16(smooth_tensor({6, 11}, 0.5)), up = to_bf16(smooth_tensor({6, 11}, 2.5));
  const Tensor dout = to_bf16(smooth_tensor({6, 11}, 1.1));
  Tensor want = Tensor::empty({6, 11});
  ops.swiglu(values_of(gate), values_of(up), want);
  Tensor out = Tensor::empty({6, 11}, DType::BF16);
  ops.swiglu(gate, up, out);
  expect_same_values("swiglu", out, rounded(want));

  Tensor want_dgate = Tensor::empty({6, 11}), want_dup = Tensor::empty({6, 11});
  ops.swiglu_backward(values_of(dout), values_of(gate), values_of(up), want_dgate, want_dup);
  Tensor dgate = Tensor::empty({6, 11}, DType::BF16), dup = Tensor::empty({6, 11}, DType::BF16);
  ops.swiglu_backward(dout, gate, up, dgate, dup);
  expect_same_values("dgate", dgate, rounded(want_dgate));
  expect_same_values("dup", dup, rounded(want_dup));
  // In place, as the op allows: the gradients overwrite the inputs they are computed from.
  Tensor gate_in_place = gate.clone(), up_in_place = up.clone();
  ops.swiglu_backward(dout, gate_in_place, up_in_place, gate_in_place, up_in_place);
  expect_same_values("dgate in place", gate_in_place, rounded(want_dgate));
  expect_same_values("dup in place", up_in_place, rounded(want_dup));
}

TEST(CpuBf16Activations, OtherDtypesAreRefusedNamingThem) {
  CpuOps ops;
  const Tensor w = smooth_tensor({3, 7}, 0.9);
  const Tensor x16 = Tensor::zeros({5, 7}, DType::F16);
  Tensor y = Tensor::empty({5, 3});
  EXPECT_DEATH(ops.linear(x16, w, y), "activation of dtype F16");
}

}  // namespace
}  // namespace xcomp
