// The CPU backend: fp32, OpenBLAS for matrix products, OpenMP for the rest.
#pragma once

#include "model/ops.h"

namespace xcomp {

class CpuOps final : public Ops {
 public:
  const char* name() const override { return "cpu"; }
  void embedding(const Tensor& table, const Tensor& ids, Tensor& out) override;
  void linear(const Tensor& x, const Tensor& w, Tensor& y) override;
  void rmsnorm(const Tensor& x, const Tensor& w, float eps, Tensor& y) override;
  void rope(Tensor& x, const Tensor& positions, const Tensor& inv_freq) override;
  void attention(const Tensor& q, const Tensor& k, const Tensor& v, int64_t length, const Tensor& key_valid,
                 Tensor& out) override;
  void swiglu(const Tensor& gate, const Tensor& up, Tensor& out) override;
  void add_inplace(Tensor& y, const Tensor& x) override;
  void write_rows(const Tensor& src, Tensor& dst, int64_t offset) override;
};

}  // namespace xcomp
