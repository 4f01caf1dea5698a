// A decorator over any backend that times each op: it waits for the device before and
// after every call (Ops::synchronize), so the times are the ops' own, at the price of
// losing any overlap between them. For finding where a step's time goes
// (`xcomp bench train --profile`), not for production runs.
#pragma once

#include <chrono>
#include <map>
#include <string>
#include <vector>

#include "model/ops.h"

namespace xcomp {

class ProfilingOps final : public Ops {
 public:
  explicit ProfilingOps(Ops& inner) : inner_(inner) {}

  struct OpTime {
    std::string op;
    int64_t calls = 0;
    double seconds = 0;
    double flops = 0;  // matrix products: 2 M N K a call, summed; 0 for other ops
  };
  // Every op called so far, the most time first.
  std::vector<OpTime> times() const;
  void reset() { times_.clear(); }

  const char* name() const override { return inner_.name(); }
  std::string configuration() const override { return inner_.configuration(); }
  Tensor empty(Shape shape, DType dtype = DType::F32) override;
  Tensor zeros(Shape shape, DType dtype = DType::F32) override;
  Tensor upload(const Tensor& host) override;
  Tensor upload_weight(const Tensor& host) override;
  Tensor download(const Tensor& t) override;
  void download_into(const Tensor& t, Tensor& host) override;
  void upload_into(const Tensor& host, Tensor& t) override;
  void synchronize() override { inner_.synchronize(); }
  int64_t device_memory_reserved() const override { return inner_.device_memory_reserved(); }
  int64_t device_memory_needed_at_peak() const override { return inner_.device_memory_needed_at_peak(); }
  void* stream_handle() override { return inner_.stream_handle(); }
  DType product_dtype() const override { return inner_.product_dtype(); }

  void embedding(const Tensor& table, const Tensor& ids, Tensor& out) override;
  void linear(const Tensor& x, const Tensor& w, Tensor& y) override;
  void linear_add(const Tensor& x, const Tensor& w, Tensor& y) override;
  void linear_residual(const Tensor& x, const Tensor& w, const Tensor& residual, Tensor& y) override;
  void rmsnorm_into_two(const Tensor& x, const Tensor& w, float eps, Tensor& y, Tensor& y2) override;
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
  std::vector<double> sums_of_squares(const std::vector<Tensor>& xs) override;
  void scale(Tensor& x, float factor) override;
  void adamw_update(Tensor& param, const Tensor& grad, Tensor& exp_avg, Tensor& exp_avg_sq,
                    const AdamWStepScalars& scalars) override;

 private:
  // Runs `call` between two waits for the device and adds its time (and `flops`) under
  // `op`. Matrix products are named by shape (`linear/BF16 M=.. N=.. K=..`).
  template <class Call> auto timed(const std::string& op, Call&& call, double flops = 0);

  Ops& inner_;
  std::map<std::string, OpTime> times_;
};

}  // namespace xcomp
