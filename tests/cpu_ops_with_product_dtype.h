// The CPU backend standing in for one whose frozen-weight products read another dtype
// (the CUDA backend with bf16 weights asks for BF16): model code then writes the
// activations that only those products read in that dtype, and the CPU ops, which accept
// it, compute on their values. So the model's mixed-precision path runs, and is checked,
// without a GPU.
#pragma once

#include "model/cpu/cpu_ops.h"

namespace xcomp::test {

class CpuOpsWithProductDtype : public CpuOps {
 public:
  explicit CpuOpsWithProductDtype(DType products = DType::F32) : products_(products) {}
  DType product_dtype() const override { return products_; }

 private:
  DType products_;
};

}  // namespace xcomp::test
