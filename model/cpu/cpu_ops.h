// The CPU backend: fp32, OpenBLAS for matrix products, OpenMP for the rest. Its products
// read fp32 (product_dtype F32); it also takes BF16 activations where the op set allows
// them (bf16_activations.h), so every backend's numbers can be checked against it.
#pragma once

#include <utility>

#include "model/cpu/attention_probability_cache.h"
#include "model/ops.h"

namespace xcomp {

class CpuOps : public Ops {
 public:
  const char* name() const override { return "cpu"; }
  Tensor empty(Shape shape, DType dtype = DType::F32) override { return Tensor::empty(std::move(shape), dtype); }
  Tensor zeros(Shape shape, DType dtype = DType::F32) override { return Tensor::zeros(std::move(shape), dtype); }
  Tensor upload(const Tensor& host) override;
  Tensor download(const Tensor& t) override;
  void download_into(const Tensor& t, Tensor& host) override;
  void upload_into(const Tensor& host, Tensor& t) override;
  void embedding(const Tensor& table, const Tensor& ids, Tensor& out) override;
  void linear(const Tensor& x, const Tensor& w, Tensor& y) override;
  void linear_add(const Tensor& x, const Tensor& w, Tensor& y) override;
  void rmsnorm(const Tensor& x, const Tensor& w, float eps, Tensor& y) override;
  void rope(Tensor& x, const Tensor& positions, const Tensor& inv_freq) override;
  void attention(const Tensor& q, const Tensor& k, const Tensor& v, int64_t length, const Tensor& key_valid,
                 Tensor& out) override;
  void swiglu(const Tensor& gate, const Tensor& up, Tensor& out) override;
  void add_inplace(Tensor& y, const Tensor& x) override;
  void write_rows(const Tensor& src, Tensor& dst, int64_t offset) override;
  void read_rows(const Tensor& src, int64_t offset, Tensor& dst) override;
  void add_scaled(Tensor& y, const Tensor& x, float alpha) override;
  void zero(Tensor& y) override;
  void dropout(const Tensor& x, float p, uint64_t seed, uint64_t stream, uint64_t first_element,
               Tensor& out) override;

  void linear_backward_input(const Tensor& dy, const Tensor& w, Tensor& dx, bool accumulate) override;
  void linear_backward_weight(const Tensor& dy, const Tensor& x, Tensor& dw, bool accumulate) override;
  void rmsnorm_backward(const Tensor& dy, const Tensor& x, const Tensor& w, float eps, Tensor& dx,
                        bool accumulate) override;
  void rope_backward(Tensor& dx, const Tensor& positions, const Tensor& inv_freq) override;
  void swiglu_backward(const Tensor& dout, const Tensor& gate, const Tensor& up, Tensor& dgate, Tensor& dup) override;
  void attention_backward(const Tensor& dout, const Tensor& q, const Tensor& k, const Tensor& v, int64_t length,
                          const Tensor& key_valid, Tensor& dq, Tensor& dk, Tensor& dv) override;
  void cross_entropy(const Tensor& logits, const Tensor& targets, const Tensor& weights, Tensor& losses,
                     Tensor& dlogits) override;

  double sum_of_squares(const Tensor& x) override;
  void scale(Tensor& x, float factor) override;
  void adamw_update(Tensor& param, const Tensor& grad, Tensor& exp_avg, Tensor& exp_avg_sq,
                    const AdamWStepScalars& scalars) override;

 private:
  // Probabilities of recent attention forwards for their backwards (cpu_attention.cc).
  static constexpr size_t kAttentionCacheBytes = size_t{256} << 20;
  AttentionProbabilityCache attention_cache_{kAttentionCacheBytes};
};

}  // namespace xcomp
