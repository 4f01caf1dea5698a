// BF16 activations on the CPU backend (Ops::product_dtype): the CPU computes in fp32, so
// an op reads a BF16 tensor as its values and writes a BF16 result by computing it in
// fp32 and rounding to nearest even, the numbers a backend that stores them in bf16
// produces. F32 tensors pass straight through, with no copy.
#pragma once

#include "model/tensor.h"

namespace xcomp {

// x's values as F32: x itself when it is F32, a converted copy when BF16.
Tensor read_f32(const Tensor& x);

// Where an op computes `out` in fp32: `out` itself when it is F32, else new storage,
// holding out's values when `keep_values` (an accumulating op reads them).
Tensor f32_target(const Tensor& out, bool keep_values);

// Stores the fp32 `result` into `out` (nothing to do when they share storage), rounding
// to out's dtype, which is F32 or BF16.
void store_f32(const Tensor& result, Tensor& out);

}  // namespace xcomp
