// The CUDA backend's flash attention kernels (model/cuda/flash_attention_kernels.h) run on
// host tensors by the CPU emulation of their thread blocks (tests/emulated_thread_block.h),
// with Ops::attention's and Ops::attention_backward's arguments, and a CPU backend whose
// attention is them: how the unit suite checks those kernels, alone and inside a whole
// compressor step, without a GPU.
#pragma once

#include <cstdint>

#include "model/cpu/cpu_ops.h"
#include "model/cuda/flash_attention_kernels.h"
#include "tests/emulated_thread_block.h"

namespace xcomp::test {

inline flash::Dims flash_dims_of(const Tensor& q, const Tensor& k, int64_t length) {
  return flash::dims_of_attention(q.dim(0), q.dim(1), q.dim(2), q.dim(3), k.dim(1), k.dim(2), length);
}

// The kernels' operands: exact floats, floats rounded to TF32 at each fragment load (the
// GPU's flash kernels), or bf16 (flash_bf16).
enum class FlashOperands { kExact, kTf32, kBf16 };

// Calls f(Operand{}) with the emulation's operand type, and whether floats round to TF32.
template <class F> void with_operands(FlashOperands operands, F&& f) {
  if (operands == FlashOperands::kBf16) return f(EmulatedBf16{}, false);
  f(0.f, operands == FlashOperands::kTf32);
}

template <int Dp, class Operand>
void emulated_flash_forward(const flash::Dims& s, const Tensor& q, const Tensor& k, const Tensor& v,
                            const Tensor& valid, Tensor& out, bool tf32) {
  run_emulated_grid<Operand>(flash::tiles_of(s.t), s.heads, s.batch, flash::kThreads,
                             flash::ForwardLayout<Dp, Operand>::kBytes, tf32,
                             [&](const EmulatedExecutor<Operand>& ex, unsigned char* shared) {
                               flash::forward_body<Dp>(ex, s, q.data<float>(), k.data<float>(), v.data<float>(),
                                                       valid.data<int32_t>(), out.data<float>(), shared);
                             });
}

template <int Dp, class Operand>
void emulated_flash_backward(const flash::Dims& s, const Tensor& dout, const Tensor& q, const Tensor& k,
                             const Tensor& v, const Tensor& valid, Tensor& dq, Tensor& dk, Tensor& dv, bool tf32) {
  Tensor lse = Tensor::empty({s.batch * s.t * s.heads}), means = Tensor::empty({s.batch * s.t * s.heads});
  run_emulated_grid<Operand>(
      flash::tiles_of(s.t), s.heads, s.batch, flash::kThreads, flash::BackwardQueryLayout<Dp, Operand>::kBytes, tf32,
      [&](const EmulatedExecutor<Operand>& ex, unsigned char* shared) {
        flash::backward_query_body<Dp>(ex, s, dout.data<float>(), q.data<float>(), k.data<float>(), v.data<float>(),
                                       valid.data<int32_t>(), dq.data<float>(), lse.data<float>(),
                                       means.data<float>(), shared);
      });
  run_emulated_grid<Operand>(
      flash::tiles_of(s.length), s.kv_heads, s.batch, flash::kKeyValueThreads,
      flash::BackwardKeyValueLayout<Dp, Operand>::kBytes, tf32,
      [&](const EmulatedExecutor<Operand>& ex, unsigned char* shared) {
        flash::backward_key_value_body<Dp>(ex, s, dout.data<float>(), q.data<float>(), k.data<float>(),
                                           v.data<float>(), valid.data<int32_t>(), lse.data<float>(),
                                           means.data<float>(), dk.data<float>(), dv.data<float>(), shared);
      });
}

// Ops::attention through the kernels, head_dim padded as CudaOps::flash_attention pads it.
inline void emulated_flash_attention(const Tensor& q, const Tensor& k, const Tensor& v, int64_t length,
                                     const Tensor& valid, Tensor& out, FlashOperands operands) {
  const flash::Dims s = flash_dims_of(q, k, length);
  flash::with_padded_head_dim(s.d, [&](auto dp) {
    with_operands(operands, [&](auto operand, bool tf32) {
      emulated_flash_forward<decltype(dp)::value, decltype(operand)>(s, q, k, v, valid, out, tf32);
    });
  });
}

// Ops::attention_backward through the kernels: dq written, dk and dv added to.
inline void emulated_flash_attention_backward(const Tensor& dout, const Tensor& q, const Tensor& k, const Tensor& v,
                                              int64_t length, const Tensor& valid, Tensor& dq, Tensor& dk, Tensor& dv,
                                              FlashOperands operands) {
  const flash::Dims s = flash_dims_of(q, k, length);
  flash::with_padded_head_dim(s.d, [&](auto dp) {
    with_operands(operands, [&](auto operand, bool tf32) {
      emulated_flash_backward<decltype(dp)::value, decltype(operand)>(s, dout, q, k, v, valid, dq, dk, dv, tf32);
    });
  });
}

// The CPU backend with the emulated flash kernels (exact products) as its attention.
class FlashEmulatingCpuOps : public CpuOps {
 public:
  void attention(const Tensor& q, const Tensor& k, const Tensor& v, int64_t length, const Tensor& key_valid,
                 Tensor& out) override {
    emulated_flash_attention(q, k, v, length, key_valid, out, FlashOperands::kExact);
  }
  void attention_backward(const Tensor& dout, const Tensor& q, const Tensor& k, const Tensor& v, int64_t length,
                          const Tensor& key_valid, Tensor& dq, Tensor& dk, Tensor& dv) override {
    emulated_flash_attention_backward(dout, q, k, v, length, key_valid, dq, dk, dv, FlashOperands::kExact);
  }
};

}  // namespace xcomp::test
