// The op set: every computation the model does goes through one of these, so one model
// (model/llama.cc) runs on every backend (model/cpu/, model/cuda/). Tensors are
// row-major; "rows" are the flattened leading dimensions.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "model/adamw_step.h"
#include "model/tensor.h"

namespace xcomp {

class Ops {
 public:
  virtual ~Ops() = default;
  virtual const char* name() const = 0;
  // How this backend computes, where that changes the numbers or the speed beyond what
  // the backend's name says (the CUDA backend's kernels and allocator, chosen by the cuda:
  // keys or XCOMP_CUDA_* variables), for logs and reports to record; empty where there is
  // nothing to say.
  virtual std::string configuration() const { return ""; }

  // ---- Memory. The ops read and write tensors where this backend computes; model code
  // allocates through these so it never needs to know which backend that is.

  // Uninitialised / zero-filled storage on this backend's device.
  virtual Tensor empty(Shape shape, DType dtype = DType::F32) = 0;
  virtual Tensor zeros(Shape shape, DType dtype = DType::F32) = 0;
  // A host tensor's contents on this backend. The CPU backend returns the tensor itself
  // (no copy): write to the result only when the caller may write to the input.
  virtual Tensor upload(const Tensor& host) = 0;
  // A frozen weight on this backend, in the storage type its products use (the CUDA
  // backend keeps matrices in bf16); loaded once, shared by encoder and decoder.
  virtual Tensor upload_weight(const Tensor& host) { return upload(host); }
  // A tensor's contents on the host (the CPU backend returns the tensor itself).
  virtual Tensor download(const Tensor& t) = 0;
  // t = host's contents, into existing storage of this backend of the same shape and dtype
  // (nothing to do when they already share storage).
  virtual void upload_into(const Tensor& host, Tensor& t) = 0;
  // host = t's contents, into existing host storage of the same shape and dtype (nothing
  // to do when they already share storage).
  virtual void download_into(const Tensor& t, Tensor& host) = 0;
  // Returns when every op queued so far has finished (for timing; the CPU backend's ops
  // finish before they return).
  virtual void synchronize() {}
  // Device memory this backend holds from its driver, in bytes (the CUDA backend's
  // caching allocator keeps what it frees, so its high-water mark; its arena, all of it),
  // or -1 where that is not a separate memory.
  virtual int64_t device_memory_reserved() const { return -1; }
  // The most device memory this backend's tensors needed at once, in bytes (the CUDA
  // backend's DeviceAllocator::bytes_needed_at_peak), or -1 as above.
  virtual int64_t device_memory_needed_at_peak() const { return -1; }
  // The device stream this backend queues its work on, as an opaque handle for whoever
  // must order its own work after it (a communicator reducing gradients that backward
  // is still writing, comm/communicator.h); null where ops finish before they return.
  virtual void* stream_handle() { return nullptr; }
  // The dtype this backend's frozen-weight products read their inputs in: BF16 where
  // they run in bf16 (the CUDA backend with bf16 weights), else F32. An activation that
  // only such products read can be written in it directly (linear, linear_backward_input,
  // swiglu, swiglu_backward and rmsnorm accept it, below), which saves its conversion at
  // the product and half its memory. Every backend accepts BF16 there, so the same model
  // code runs on each; the CPU backend computes on the bf16 values in fp32.
  virtual DType product_dtype() const { return DType::F32; }

  // out[n, :] = table[ids[n], :]. ids: I32 [N], each in [0, rows(table)) (the caller
  // validates user-supplied ids); out: [N, hidden].
  virtual void embedding(const Tensor& table, const Tensor& ids, Tensor& out) = 0;

  // y[M, N] = x[M, K] . w[N, K]^T, a linear layer with PyTorch's weight layout.
  // x and y are F32 or, for a frozen weight, BF16 (product_dtype): a BF16 input is read
  // as its values, a BF16 output is the fp32 result rounded to nearest even. The same
  // holds for linear_backward_input's dy and dx, and for every tensor of swiglu and
  // swiglu_backward and rmsnorm's y.
  virtual void linear(const Tensor& x, const Tensor& w, Tensor& y) = 0;

  // y[M, N] += x[M, K] . w[N, K]^T, y F32: linear added into y, for residual connections
  // and LoRA's update; where the backend can (cuBLAS's beta = 1), in the same product,
  // without a temporary.
  virtual void linear_add(const Tensor& x, const Tensor& w, Tensor& y) = 0;

  // y[M, N] = residual[M, N] + x[M, K] . w[N, K]^T, y and residual F32 and distinct: a
  // residual connection into a tensor of its own, so that the stream's previous value
  // stays for backward without a copy of it. This default copies, then adds (the CPU
  // backend's numbers either way); the CUDA backend reads the residual as the product's C
  // and writes y as its D (cuBLASLt), one pass.
  virtual void linear_residual(const Tensor& x, const Tensor& w, const Tensor& residual, Tensor& y) {
    Tensor y_row = y.reshape({1, 1, y.numel()});
    write_rows(residual.reshape({1, 1, residual.numel()}), y_row, 0);
    linear_add(x, w, y);
  }

  // y = x / sqrt(mean(x^2) + eps) * w, per row of x [M, H]; w [H].
  virtual void rmsnorm(const Tensor& x, const Tensor& w, float eps, Tensor& y) = 0;
  // rmsnorm into two outputs, each in its own dtype (the attention norm's, where LoRA
  // adapters read it in fp32 beside the frozen products' bf16): the CUDA backend reads x
  // once for both. Each output as rmsnorm alone writes it.
  virtual void rmsnorm_into_two(const Tensor& x, const Tensor& w, float eps, Tensor& y, Tensor& y2) {
    rmsnorm(x, w, eps, y);
    rmsnorm(x, w, eps, y2);
  }

  // Rotary embedding in place, Hugging Face's rotate-half convention. x: [B, T, heads,
  // head_dim]; positions: I32 [B, T]; inv_freq: F32 [head_dim / 2]. The angle is
  // float(position) * inv_freq in float32, as transformers computes it.
  virtual void rope(Tensor& x, const Tensor& positions, const Tensor& inv_freq) = 0;

  // Grouped-query causal attention over a key/value store.
  //   q: [B, T, heads, head_dim], the T newest positions;
  //   k, v: [B, capacity, kv_heads, head_dim], of which entries [0, length) are in use and
  //         the last T of those belong to the queries (entries before are a prefix: a KV
  //         cache or a compressed prompt);
  //   key_valid: I32 [B, capacity], 0 for keys no query may see (padding).
  // Query t of row b sees key s iff s <= length - T + t and key_valid[b, s] != 0; the
  // order is by entry index, whatever the RoPE positions were. A query that sees no key
  // gets zeros. out: [B, T, heads, head_dim].
  virtual void attention(const Tensor& q, const Tensor& k, const Tensor& v, int64_t length,
                         const Tensor& key_valid, Tensor& out) = 0;

  // out = silu(gate) * up, elementwise.
  virtual void swiglu(const Tensor& gate, const Tensor& up, Tensor& out) = 0;

  // y += x, elementwise (residual connections).
  virtual void add_inplace(Tensor& y, const Tensor& x) = 0;

  // dst[b, offset + t, :] = src[b, t, :] for src [B, T, W], dst [B, capacity, W], any dtype.
  virtual void write_rows(const Tensor& src, Tensor& dst, int64_t offset) = 0;
  // dst[b, t, :] = src[b, offset + t, :]: the inverse of write_rows.
  virtual void read_rows(const Tensor& src, int64_t offset, Tensor& dst) = 0;

  // y += alpha * x, elementwise.
  virtual void add_scaled(Tensor& y, const Tensor& x, float alpha) = 0;
  // y = 0.
  virtual void zero(Tensor& y) = 0;

  // Inverted dropout with a counter-based mask: element i is kept iff
  // counter_random_uniform(seed, kLoraDropout, stream, first_element + i) >= p, and kept
  // elements are scaled by 1 / (1 - p). The same (seed, stream) gives the same mask, so
  // the backward pass is the same call on the output gradient; first_element lets a call
  // over part of a mask's elements (a later run of rows) draw that part of it.
  virtual void dropout(const Tensor& x, float p, uint64_t seed, uint64_t stream, uint64_t first_element,
                       Tensor& out) = 0;

  // ---- Backward. Gradients flow through frozen weights to activations; weight
  // gradients are computed only for trained parameters. `accumulate` adds into the
  // output instead of overwriting it.

  // dx[M, K] (+)= dy[M, N] . w[N, K]: the input gradient of linear.
  virtual void linear_backward_input(const Tensor& dy, const Tensor& w, Tensor& dx, bool accumulate) = 0;
  // dw[N, K] (+)= dy[M, N]^T . x[M, K]: the weight gradient of linear.
  virtual void linear_backward_weight(const Tensor& dy, const Tensor& x, Tensor& dw, bool accumulate) = 0;
  // dx (+)= the gradient of rmsnorm(x, w) for output gradient dy (w frozen).
  virtual void rmsnorm_backward(const Tensor& dy, const Tensor& x, const Tensor& w, float eps, Tensor& dx,
                                bool accumulate) = 0;
  // RoPE is a rotation, so its backward rotates the gradient by the negative angle, in place.
  virtual void rope_backward(Tensor& dx, const Tensor& positions, const Tensor& inv_freq) = 0;
  // dgate, dup = the gradients of silu(gate) * up.
  virtual void swiglu_backward(const Tensor& dout, const Tensor& gate, const Tensor& up, Tensor& dgate,
                               Tensor& dup) = 0;
  // Gradients of attention (same visibility rule as forward; the softmax is recomputed):
  // dq [B, T, heads, head_dim] is overwritten; dk, dv [B, capacity, kv_heads, head_dim]
  // are accumulated into (+=), since prefix entries collect gradient from every query.
  virtual void attention_backward(const Tensor& dout, const Tensor& q, const Tensor& k, const Tensor& v,
                                  int64_t length, const Tensor& key_valid, Tensor& dq, Tensor& dk, Tensor& dv) = 0;

  // ---- The optimizer's arithmetic, so that trainable tensors, their gradients and
  // AdamW's moments can stay where the backend computes (F32 tensors throughout).

  // The sum of x^2 over all elements, accumulated in double. The CPU backend adds
  // fixed blocks of 65536 elements in order, so its result does not depend on the thread
  // count (a resumed run clips exactly as an uninterrupted one).
  virtual double sum_of_squares(const Tensor& x) = 0;
  // The sums of squares of several tensors, each as sum_of_squares computes it, in
  // order: a device backend waits for them once rather than once a tensor (a training
  // step's gradient norm reads some 130 LoRA tensors at LLaMA-3-8B's shape).
  virtual std::vector<double> sums_of_squares(const std::vector<Tensor>& xs) {
    std::vector<double> sums;
    sums.reserve(xs.size());
    for (const Tensor& x : xs) sums.push_back(sum_of_squares(x));
    return sums;
  }
  // x *= factor, elementwise.
  virtual void scale(Tensor& x, float factor) = 0;
  // One AdamW update of param from grad, moments updated in place, per element in
  // model/adamw_step.h's order of operations.
  virtual void adamw_update(Tensor& param, const Tensor& grad, Tensor& exp_avg, Tensor& exp_avg_sq,
                            const AdamWStepScalars& scalars) = 0;

  // Softmax cross-entropy of logits [M, V] against targets I32 [M] (-1: no target),
  // each row weighted by weights F32 [M]: losses[m] = weight[m] * -log softmax(logits[m])
  // [target[m]] (0 without a target), and dlogits = weight[m] * (softmax - onehot): F32,
  // or the backend's product_dtype (rounded from the fp32 values, for a product to read).
  virtual void cross_entropy(const Tensor& logits, const Tensor& targets, const Tensor& weights, Tensor& losses,
                             Tensor& dlogits) = 0;
};

}  // namespace xcomp
