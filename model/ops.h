// The op set: every computation the model does goes through one of these, so one model
// (model/llama.cc) runs on every backend (model/cpu/, model/cuda/). Tensors are
// row-major; "rows" are the flattened leading dimensions.
#pragma once

#include <cstdint>

#include "model/tensor.h"

namespace xcomp {

class Ops {
 public:
  virtual ~Ops() = default;
  virtual const char* name() const = 0;

  // out[n, :] = table[ids[n], :]. ids: I32 [N], each in [0, rows(table)) (the caller
  // validates user-supplied ids); out: [N, hidden].
  virtual void embedding(const Tensor& table, const Tensor& ids, Tensor& out) = 0;

  // y[M, N] = x[M, K] . w[N, K]^T, a linear layer with PyTorch's weight layout.
  virtual void linear(const Tensor& x, const Tensor& w, Tensor& y) = 0;

  // y = x / sqrt(mean(x^2) + eps) * w, per row of x [M, H]; w [H].
  virtual void rmsnorm(const Tensor& x, const Tensor& w, float eps, Tensor& y) = 0;

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
};

}  // namespace xcomp
