#include "model/profiling_ops.h"

#include <algorithm>

namespace xcomp {

namespace {
// A product's row: the op, its weight's storage type (bf16 and fp32 products take
// different paths: tensor cores or not), and its sizes for y[M, N] = x[M, K] w[N, K]^T
// (the input gradient and LoRA's weight gradient have the same three), so each shape of
// the step gets its own time and rate. `rows` holds the M rows, each N wide (dy) or K
// wide (x). The wrapped op checks the shapes; these only name them.
struct Product {
  std::string op;
  double flops;
};
Product product(const char* op, DType storage, const Tensor& w, const Tensor& rows, bool rows_are_n_wide) {
  const int64_t n = w.ndim() == 2 ? w.dim(0) : 0, k = w.ndim() == 2 ? w.dim(1) : 0;
  const int64_t width = rows_are_n_wide ? n : k;
  const int64_t m = width > 0 ? rows.numel() / width : 0;
  return {std::string(op) + "/" + dtype_name(storage) + " M=" + std::to_string(m) + " N=" + std::to_string(n) +
              " K=" + std::to_string(k),
          2.0 * static_cast<double>(m) * static_cast<double>(n) * static_cast<double>(k)};
}
}  // namespace

template <class Call> auto ProfilingOps::timed(const std::string& op, Call&& call, double flops) {
  inner_.synchronize();
  const auto start = std::chrono::steady_clock::now();
  struct Record {  // adds the time however the call returns
    ProfilingOps* self;
    const std::string& op;
    std::chrono::steady_clock::time_point start;
    double flops;
    ~Record() {
      self->inner_.synchronize();
      OpTime& t = self->times_[op];
      t.op = op;
      ++t.calls;
      t.flops += flops;
      t.seconds += std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
    }
  } record{this, op, start, flops};
  return call();
}

std::vector<ProfilingOps::OpTime> ProfilingOps::times() const {
  std::vector<OpTime> out;
  for (const auto& [name, t] : times_) out.push_back(t);
  std::sort(out.begin(), out.end(), [](const OpTime& a, const OpTime& b) { return a.seconds > b.seconds; });
  return out;
}

Tensor ProfilingOps::empty(Shape shape, DType dtype) {
  return timed("empty", [&] { return inner_.empty(std::move(shape), dtype); });
}
Tensor ProfilingOps::zeros(Shape shape, DType dtype) {
  return timed("zeros", [&] { return inner_.zeros(std::move(shape), dtype); });
}
Tensor ProfilingOps::upload(const Tensor& host) { return timed("upload", [&] { return inner_.upload(host); }); }
Tensor ProfilingOps::upload_weight(const Tensor& host) {
  return timed("upload_weight", [&] { return inner_.upload_weight(host); });
}
Tensor ProfilingOps::download(const Tensor& t) { return timed("download", [&] { return inner_.download(t); }); }
void ProfilingOps::download_into(const Tensor& t, Tensor& host) {
  timed("download", [&] { inner_.download_into(t, host); });
}
void ProfilingOps::upload_into(const Tensor& host, Tensor& t) {
  timed("upload", [&] { inner_.upload_into(host, t); });
}

void ProfilingOps::embedding(const Tensor& table, const Tensor& ids, Tensor& out) {
  timed("embedding", [&] { inner_.embedding(table, ids, out); });
}
void ProfilingOps::linear(const Tensor& x, const Tensor& w, Tensor& y) {
  const Product p = product("linear", w.dtype(), w, x, false);
  timed(p.op, [&] { inner_.linear(x, w, y); }, p.flops);
}
void ProfilingOps::linear_residual(const Tensor& x, const Tensor& w, const Tensor& residual, Tensor& y) {
  const Product p = product("linear_residual", w.dtype(), w, x, false);
  timed(p.op, [&] { inner_.linear_residual(x, w, residual, y); }, p.flops);
}
void ProfilingOps::rmsnorm_into_two(const Tensor& x, const Tensor& w, float eps, Tensor& y, Tensor& y2) {
  timed("rmsnorm", [&] { inner_.rmsnorm_into_two(x, w, eps, y, y2); });
}
void ProfilingOps::rmsnorm(const Tensor& x, const Tensor& w, float eps, Tensor& y) {
  timed("rmsnorm", [&] { inner_.rmsnorm(x, w, eps, y); });
}
void ProfilingOps::rope(Tensor& x, const Tensor& positions, const Tensor& inv_freq) {
  timed("rope", [&] { inner_.rope(x, positions, inv_freq); });
}
void ProfilingOps::attention(const Tensor& q, const Tensor& k, const Tensor& v, int64_t length,
                             const Tensor& key_valid, Tensor& out) {
  timed("attention", [&] { inner_.attention(q, k, v, length, key_valid, out); });
}
void ProfilingOps::swiglu(const Tensor& gate, const Tensor& up, Tensor& out) {
  timed("swiglu", [&] { inner_.swiglu(gate, up, out); });
}
void ProfilingOps::add_inplace(Tensor& y, const Tensor& x) {
  timed("add_inplace", [&] { inner_.add_inplace(y, x); });
}
void ProfilingOps::write_rows(const Tensor& src, Tensor& dst, int64_t offset) {
  timed("write_rows", [&] { inner_.write_rows(src, dst, offset); });
}
void ProfilingOps::read_rows(const Tensor& src, int64_t offset, Tensor& dst) {
  timed("read_rows", [&] { inner_.read_rows(src, offset, dst); });
}
void ProfilingOps::add_scaled(Tensor& y, const Tensor& x, float alpha) {
  timed("add_scaled", [&] { inner_.add_scaled(y, x, alpha); });
}
void ProfilingOps::zero(Tensor& y) { timed("zero", [&] { inner_.zero(y); }); }
void ProfilingOps::dropout(const Tensor& x, float p, uint64_t seed, uint64_t stream, uint64_t first_element,
                           Tensor& out) {
  timed("dropout", [&] { inner_.dropout(x, p, seed, stream, first_element, out); });
}
void ProfilingOps::linear_add(const Tensor& x, const Tensor& w, Tensor& y) {
  const Product p = product("linear_add", w.dtype(), w, x, false);
  timed(p.op, [&] { inner_.linear_add(x, w, y); }, p.flops);
}
void ProfilingOps::linear_backward_input(const Tensor& dy, const Tensor& w, Tensor& dx, bool accumulate) {
  const Product p = product("linear_backward_input", w.dtype(), w, dy, true);
  timed(p.op, [&] { inner_.linear_backward_input(dy, w, dx, accumulate); }, p.flops);
}
void ProfilingOps::linear_backward_weight(const Tensor& dy, const Tensor& x, Tensor& dw, bool accumulate) {
  const Product p = product("linear_backward_weight", dw.dtype(), dw, dy, true);
  timed(p.op, [&] { inner_.linear_backward_weight(dy, x, dw, accumulate); }, p.flops);
}
void ProfilingOps::rmsnorm_backward(const Tensor& dy, const Tensor& x, const Tensor& w, float eps, Tensor& dx,
                                    bool accumulate) {
  timed("rmsnorm_backward", [&] { inner_.rmsnorm_backward(dy, x, w, eps, dx, accumulate); });
}
void ProfilingOps::rope_backward(Tensor& dx, const Tensor& positions, const Tensor& inv_freq) {
  timed("rope_backward", [&] { inner_.rope_backward(dx, positions, inv_freq); });
}
void ProfilingOps::swiglu_backward(const Tensor& dout, const Tensor& gate, const Tensor& up, Tensor& dgate,
                                   Tensor& dup) {
  timed("swiglu_backward", [&] { inner_.swiglu_backward(dout, gate, up, dgate, dup); });
}
void ProfilingOps::attention_backward(const Tensor& dout, const Tensor& q, const Tensor& k, const Tensor& v,
                                      int64_t length, const Tensor& key_valid, Tensor& dq, Tensor& dk, Tensor& dv) {
  timed("attention_backward", [&] { inner_.attention_backward(dout, q, k, v, length, key_valid, dq, dk, dv); });
}
void ProfilingOps::cross_entropy(const Tensor& logits, const Tensor& targets, const Tensor& weights, Tensor& losses,
                                 Tensor& dlogits) {
  timed("cross_entropy", [&] { inner_.cross_entropy(logits, targets, weights, losses, dlogits); });
}
std::vector<double> ProfilingOps::sums_of_squares(const std::vector<Tensor>& xs) {
  return timed("sum_of_squares", [&] { return inner_.sums_of_squares(xs); });
}
double ProfilingOps::sum_of_squares(const Tensor& x) {
  return timed("sum_of_squares", [&] { return inner_.sum_of_squares(x); });
}
void ProfilingOps::scale(Tensor& x, float factor) {
  timed("scale", [&] { inner_.scale(x, factor); });
}
void ProfilingOps::adamw_update(Tensor& param, const Tensor& grad, Tensor& exp_avg, Tensor& exp_avg_sq,
                                const AdamWStepScalars& scalars) {
  timed("adamw_update", [&] { inner_.adamw_update(param, grad, exp_avg, exp_avg_sq, scalars); });
}

}  // namespace xcomp
