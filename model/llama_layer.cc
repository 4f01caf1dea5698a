#include "model/llama_layer.h"

#include <glog/logging.h>

#include "model/random.h"

namespace xcomp {

namespace {

LoraAdapter* adapter_of(const LayerLora& lora, int layer, LoraTarget target) {
  return lora.weights ? lora.weights->find(layer, target) : nullptr;
}

uint64_t dropout_stream(const LayerLora& lora, LoraTarget target) {
  return lora.dropout_stream * kLoraTargetCount + static_cast<uint64_t>(target);
}

// drop(x) for the adapter of `target`, x seen as [rows, width]; recomputed, not stored,
// in the backward pass (the same key gives the same mask).
Tensor lora_dropout(Ops& ops, const Tensor& x, int64_t width, const LayerLora& lora, LoraTarget target) {
  if (lora.dropout == 0.0f) return x;  // the identity: no copy (callers only read it)
  Tensor out = ops.empty(x.shape());
  const uint64_t stream = dropout_stream(lora, target);
  if (lora.samples.empty() && lora.last_rows == 0) {
    ops.dropout(x, lora.dropout, lora.dropout_seed, stream, 0, out);
    return out;
  }
  const Tensor in_rows = x.reshape({x.numel() / width, width});
  Tensor out_rows = out.reshape({x.numel() / width, width});
  // Rows [first, first + count) of x, masked as the rows of a mask (`mask_stream`) that
  // follow `skipped` rows of it.
  auto draw = [&](int64_t first, int64_t count, uint64_t mask_stream, int64_t skipped) {
    Tensor dst = out_rows.slice0(first, first + count);
    ops.dropout(in_rows.slice0(first, first + count), lora.dropout, lora.dropout_seed, mask_stream,
                static_cast<uint64_t>(skipped * width), dst);
  };
  if (lora.last_rows == 0) {
    ops.zero(out);  // padding rows: nothing reads them, but they must be finite
    for (const LayerLora::SampleRows& s : lora.samples) draw(s.first_row, s.rows, mix64(s.key) ^ stream, 0);
    return out;
  }
  // x holds the last n of each sample's t rows: sample r's at [r * n, (r + 1) * n), every
  // one drawn below (real rows: the text is left-padded).
  const int64_t n = lora.last_rows, t = lora.rows_per_sample, batch = in_rows.dim(0) / n;
  CHECK_EQ(batch * n, in_rows.dim(0)) << "LoRA input of " << in_rows.dim(0) << " rows, not " << n << " a sample";
  if (lora.samples.empty()) {  // one mask over the whole [B * t, width] input
    for (int64_t r = 0; r < batch; ++r) draw(r * n, n, stream, r * t + t - n);
    return out;
  }
  CHECK_EQ(static_cast<int64_t>(lora.samples.size()), batch) << "a mask for each sample's rows";
  for (const LayerLora::SampleRows& s : lora.samples) {
    // A sample's real rows end its t rows (an encoder's text is left-padded).
    const int64_t r = s.first_row / t;
    CHECK(s.first_row + s.rows == (r + 1) * t && s.rows >= n)
        << "sample rows [" << s.first_row << ", " << s.first_row + s.rows << ") do not end with its last " << n
        << " of " << t;
    draw(r * n, n, mix64(s.key) ^ stream, s.rows - n);
  }
  return out;
}

// The last n rows of each of the B samples of x [B * t, width] (any dtype): [B * n, width].
Tensor last_rows_of(Ops& ops, const Tensor& x, int64_t b, int64_t t, int64_t n) {
  const int64_t width = x.numel() / (b * t);
  Tensor out = ops.empty({b * n, width}, x.dtype());
  Tensor out_rows = out.reshape({b, n, width});
  ops.read_rows(x.reshape({b, t, width}), t - n, out_rows);
  return out;
}

// y's last n rows of each of its B samples [B * t, width] += x [B * n, width].
void add_into_last_rows(Ops& ops, const Tensor& x, Tensor& y, int64_t b, int64_t t, int64_t n) {
  Tensor sum = last_rows_of(ops, y, b, t, n);
  ops.add_inplace(sum, x);
  Tensor y_rows = y.reshape({b, t, x.numel() / (b * n)});
  ops.write_rows(sum.reshape({b, n, y_rows.dim(2)}), y_rows, t - n);
}

// How project writes y: y = x W^T; a residual connection y += x W^T in the same product,
// in y's storage; or the same sum into a new tensor that y then is, its old storage left
// as it was (the layer's input or mid-layer stream, kept for backward).
enum class Into { kWrite, kAdd, kAddApart };

// y = x W^T or a residual connection (`into`), plus u B^T with u = scale * drop(x) A^T
// when the projection is adapted (u saved). The scale goes on u, r values per row,
// rather than on the product's full width; the adapter's update is added into y by its
// product. `x_for_product`, when given, holds x's values in the backend's product dtype
// for the frozen product (LoRA reads x).
void project(Ops& ops, const Tensor& x, const Tensor& w, const LayerLora& lora, int layer, LoraTarget target,
             Tensor& y, Tensor* saved_u, Into into = Into::kWrite, const Tensor* x_for_product = nullptr) {
  const Tensor& product_input = x_for_product ? *x_for_product : x;
  switch (into) {
    case Into::kWrite: ops.linear(product_input, w, y); break;
    case Into::kAdd: ops.linear_add(product_input, w, y); break;
    case Into::kAddApart: {
      Tensor sum = ops.empty(y.shape(), y.dtype());
      ops.linear_residual(product_input, w, y, sum);
      y = sum;
      break;
    }
  }
  const LoraAdapter* adapter = adapter_of(lora, layer, target);
  if (adapter == nullptr) return;
  const LoraSettings& settings = lora.weights->settings();
  const int64_t m = x.numel() / w.dim(1);
  const Tensor dropped = lora_dropout(ops, x, w.dim(1), lora, target);
  Tensor u = ops.empty({m, settings.r});
  ops.linear(dropped, adapter->a, u);
  ops.scale(u, static_cast<float>(settings.scale()));
  ops.linear_add(u, adapter->b, y);
  if (saved_u) *saved_u = u;
}

// dx (+)= dy W, plus the adapter's path; the adapter's gradients are accumulated:
// dB += dy^T u (u carries the scale), dA += (scale * dy B)^T drop(x).
void project_backward(Ops& ops, const Tensor& dy, const Tensor& x, const Tensor& w, const LayerLora& lora, int layer,
                      LoraTarget target, const Tensor& saved_u, Tensor& dx, bool accumulate) {
  ops.linear_backward_input(dy, w, dx, accumulate);
  LoraAdapter* found = adapter_of(lora, layer, target);
  if (found == nullptr) return;
  LoraAdapter& adapter = *found;
  const LoraSettings& settings = lora.weights->settings();
  const int64_t m = x.numel() / w.dim(1);
  ops.linear_backward_weight(dy, saved_u, adapter.grad_b, /*accumulate=*/true);
  Tensor du = ops.empty({m, settings.r});
  ops.linear_backward_input(dy, adapter.b, du, false);
  ops.scale(du, static_cast<float>(settings.scale()));
  // The dropout mask is recomputed from its key rather than stored.
  const Tensor dropped = lora_dropout(ops, x, w.dim(1), lora, target);
  ops.linear_backward_weight(du, dropped, adapter.grad_a, /*accumulate=*/true);
  if (lora.dropout == 0.0f) {  // drop is the identity: add into dx in the product
    ops.linear_backward_input(du, adapter.a, dx, /*accumulate=*/true);
    return;
  }
  Tensor ddropped = ops.empty(x.shape());
  ops.linear_backward_input(du, adapter.a, ddropped, false);
  ops.add_inplace(dx, lora_dropout(ops, ddropped, w.dim(1), lora, target));
}

// The dtype of the MLP's tensors that only products and the activation read or write:
// rmsnorm(x_mid), the products' outputs gate and up, the activation swiglu(gate, up) and
// the gradients dact, dgate and dup (all but the first 3.5 times the hidden size at
// LLaMA's shapes): the backend's product dtype, which halves their traffic (gate and up
// are written by their products in it, read once by the activation and kept for
// backward as they are, as PyTorch's bf16 step keeps them); fp32 when a LoRA adapter on
// gate, up or down reads or adds into them (its products and updates are fp32). In a
// CPU emulation of the GPU's roundings on stories260K, bf16 gate and up left the step's
// gradient error as it was (per-batch ratios' geometric mean over 32 batches 1.00 K/V,
// 1.02 embedding; tests/step_error.h), though single batches move several times up or
// down.
DType mlp_dtype(const Ops& ops, const LayerLora& lora, int layer) {
  for (LoraTarget target : {LoraTarget::kGate, LoraTarget::kUp, LoraTarget::kDown})
    if (adapter_of(lora, layer, target)) return DType::F32;
  return ops.product_dtype();
}

// The rows a layer computes outputs for (LayerExtent): all of each sample's, or its last
// `per_sample`; their positions, and the LoRA that describes them.
struct OutputRows {
  bool last = false;
  int64_t per_sample = 0;
  Tensor positions;  // I32 [B, per_sample]
  LayerLora lora;
};

OutputRows output_rows(Ops& ops, const LayerExtent& extent, const Tensor& positions, const LayerLora& lora) {
  const int64_t b = positions.dim(0), t = positions.dim(1);
  if (extent.kind != LayerExtent::Kind::kLastRows) return {false, t, positions, lora};
  const int64_t n = extent.rows;
  CHECK(n >= 1 && n <= t) << "a layer's last " << n << " rows of " << t;
  return {true, n, last_rows_of(ops, positions, b, t, n).reshape({b, n}), lora_of_last_rows(lora, n, t)};
}

}  // namespace

LayerLora lora_of_last_rows(const LayerLora& lora, int64_t rows, int64_t rows_per_sample) {
  CHECK_EQ(lora.last_rows, 0) << "the last rows of an input that holds only some already";
  LayerLora out = lora;
  out.last_rows = rows;
  out.rows_per_sample = rows_per_sample;
  return out;
}

void layer_forward(const LlamaModel& model, int layer, Tensor& x, const Tensor& positions, const LayerStore& store,
                   const LayerLora& lora, LayerExtent extent, LayerActivations* saved, LayerInput input) {
  const LlamaConfig& c = model.config();
  const LlamaLayerWeights& w = model.weights().layers[layer];
  Ops& ops = model.ops();
  const int64_t b = positions.dim(0), t = positions.dim(1), m = b * t;
  const float eps = static_cast<float>(c.rms_norm_eps);
  CHECK_EQ(x.numel(), m * c.hidden_size);
  CHECK_EQ(store.length - store.start, t);

  // h = rmsnorm(x_in) feeds the q, k and v products, in the backend's product dtype:
  // written so once rather than converted at each of the three. LoRA adapters on q, k or
  // v read it in fp32 (and their gradients read it back): then it is written in both.
  const bool attention_adapted = adapter_of(lora, layer, LoraTarget::kQ) || adapter_of(lora, layer, LoraTarget::kK) ||
                                 adapter_of(lora, layer, LoraTarget::kV);
  const DType products = ops.product_dtype();
  Tensor h = ops.empty({m, c.hidden_size}, attention_adapted ? DType::F32 : products);
  Tensor h_products = h;
  if (h.dtype() != products) {
    h_products = ops.empty({m, c.hidden_size}, products);
    ops.rmsnorm_into_two(x, w.attn_norm, eps, h, h_products);
  } else {
    ops.rmsnorm(x, w.attn_norm, eps, h);
  }
  // Where this call's entries are the whole store (an encoder's; a decoder's without a
  // prefix), the projections and RoPE write into it directly rather than into copies.
  const Shape kv_shape{b, t, c.num_key_value_heads, c.head_dim};
  const bool whole_store = store.start == 0 && store.keys->shape() == kv_shape && store.values->shape() == kv_shape;
  Tensor k = whole_store ? *store.keys : ops.empty(kv_shape);
  Tensor v = whole_store ? *store.values : ops.empty(kv_shape);
  project(ops, h, w.wk, lora, layer, LoraTarget::kK, k, saved ? &saved->lora_u[1] : nullptr, Into::kWrite,
          &h_products);
  project(ops, h, w.wv, lora, layer, LoraTarget::kV, v, saved ? &saved->lora_u[2] : nullptr, Into::kWrite,
          &h_products);
  ops.rope(k, positions, model.inv_freq());
  if (!whole_store) {
    ops.write_rows(k, *store.keys, store.start);
    ops.write_rows(v, *store.values, store.start);
  }
  // Where the input is kept, the residual connections write their sums apart.
  const Into residual = saved != nullptr || input == LayerInput::kKeep ? Into::kAddApart : Into::kAdd;
  if (saved) {
    saved->x_in = x;  // kept: the residual connections below write new tensors
    if (attention_adapted) saved->h_attn = h;  // read back only by the adapters' gradients
  }
  if (extent.kind == LayerExtent::Kind::kKeysValuesOnly) return;

  // The rows whose outputs are computed: every row, or each sample's last `extent.rows`
  // (read out of h, x and the positions; the adapters' masks follow them).
  const OutputRows rows = output_rows(ops, extent, positions, lora);
  const int64_t tq = rows.per_sample, mq = b * tq;
  Into attention_residual = residual;
  if (rows.last) {
    const bool one_input = h_products.raw() == h.raw();
    h = last_rows_of(ops, h, b, t, tq);
    h_products = one_input ? h : last_rows_of(ops, h_products, b, t, tq);
    x = last_rows_of(ops, x, b, t, tq);
    attention_residual = Into::kAdd;  // x is a copy: the kept input is not touched
  }
  const LayerLora& row_lora = rows.lora;
  Tensor q = ops.empty({b, tq, c.num_attention_heads, c.head_dim});
  project(ops, h, w.wq, row_lora, layer, LoraTarget::kQ, q, saved ? &saved->lora_u[0] : nullptr, Into::kWrite,
          &h_products);
  ops.rope(q, rows.positions, model.inv_freq());
  Tensor attended = ops.empty(q.shape());
  ops.attention(q, *store.keys, *store.values, store.length, *store.key_valid, attended);
  // x += o(attended): the residual connection added by the product itself, into new
  // storage where the input is kept.
  project(ops, attended, w.wo, row_lora, layer, LoraTarget::kO, x, saved ? &saved->lora_u[3] : nullptr,
          attention_residual);

  const DType mlp = mlp_dtype(ops, lora, layer);
  Tensor h2 = ops.empty({mq, c.hidden_size}, mlp);
  ops.rmsnorm(x, w.mlp_norm, eps, h2);
  Tensor gate = ops.empty({mq, c.intermediate_size}, mlp);
  Tensor up = ops.empty({mq, c.intermediate_size}, mlp);
  project(ops, h2, w.w_gate, row_lora, layer, LoraTarget::kGate, gate, saved ? &saved->lora_u[4] : nullptr);
  project(ops, h2, w.w_up, row_lora, layer, LoraTarget::kUp, up, saved ? &saved->lora_u[5] : nullptr);
  Tensor act = ops.empty(gate.shape(), mlp);
  ops.swiglu(gate, up, act);
  if (saved) {
    saved->q = q;
    saved->x_mid = x;  // the MLP's residual connection below writes a new tensor
    saved->gate = gate;
    saved->up = up;
    // The inputs of o_proj, gate/up_proj and down_proj are read back only by their LoRA
    // adapters' gradients: without adapters there (the usual q,v targets) they are not
    // kept, a third of a layer's activations at LLaMA-3-8B's shape.
    if (adapter_of(lora, layer, LoraTarget::kO)) saved->attended = attended;
    if (adapter_of(lora, layer, LoraTarget::kGate) || adapter_of(lora, layer, LoraTarget::kUp)) saved->h_mlp = h2;
    if (adapter_of(lora, layer, LoraTarget::kDown)) saved->act = act;
  }
  project(ops, act, w.w_down, row_lora, layer, LoraTarget::kDown, x, saved ? &saved->lora_u[6] : nullptr,
          residual);  // x += down(act)
}

void layer_backward(const LlamaModel& model, int layer, Tensor& dx, const Tensor& positions, const LayerStore& store,
                    Tensor& dkeys, Tensor& dvalues, const LayerLora& lora, LayerExtent extent,
                    const LayerActivations& s) {
  const LlamaConfig& c = model.config();
  const LlamaLayerWeights& w = model.weights().layers[layer];
  Ops& ops = model.ops();
  const int64_t b = positions.dim(0), t = positions.dim(1), m = b * t;
  const float eps = static_cast<float>(c.rms_norm_eps);
  Tensor dh = ops.empty({m, c.hidden_size});  // gradient at rmsnorm(x_in)
  bool dh_written = false;
  const OutputRows rows = output_rows(ops, extent, positions, lora);
  Tensor dh_rows;  // a last-rows layer's gradient at its rows of rmsnorm(x_in), through q

  if (extent.kind != LayerExtent::Kind::kKeysValuesOnly) {
    // MLP: x_out = x_mid + down(swiglu(gate(h2), up(h2))), h2 = rmsnorm(x_mid).
    const int64_t mq = b * rows.per_sample;
    const LayerLora& row_lora = rows.lora;
    const DType mlp = mlp_dtype(ops, lora, layer);
    Tensor dact = ops.empty(s.gate.shape(), mlp);
    project_backward(ops, dx, s.act, w.w_down, row_lora, layer, LoraTarget::kDown, s.lora_u[6], dact, false);
    Tensor dgate = ops.empty(s.gate.shape(), mlp), dup = ops.empty(s.up.shape(), mlp);
    ops.swiglu_backward(dact, s.gate, s.up, dgate, dup);
    Tensor dh2 = ops.empty({mq, c.hidden_size});
    project_backward(ops, dgate, s.h_mlp, w.w_gate, row_lora, layer, LoraTarget::kGate, s.lora_u[4], dh2, false);
    project_backward(ops, dup, s.h_mlp, w.w_up, row_lora, layer, LoraTarget::kUp, s.lora_u[5], dh2, true);
    ops.rmsnorm_backward(dh2, s.x_mid, w.mlp_norm, eps, dx, /*accumulate=*/true);  // dx is now d x_mid

    // Attention: x_mid = x_in + o(attention(q, k, v)).
    Tensor dattended = ops.empty(s.q.shape());
    project_backward(ops, dx, s.attended, w.wo, row_lora, layer, LoraTarget::kO, s.lora_u[3], dattended, false);
    Tensor dq = ops.empty(s.q.shape());
    ops.attention_backward(dattended, s.q, *store.keys, *store.values, store.length, *store.key_valid, dq, dkeys,
                           dvalues);
    ops.rope_backward(dq, rows.positions, model.inv_freq());
    // The query path reaches rmsnorm(x_in) at the rows whose queries were computed.
    const Tensor h_rows =
        rows.last && s.h_attn.defined() ? last_rows_of(ops, s.h_attn, b, t, rows.per_sample) : s.h_attn;
    if (rows.last) dh_rows = ops.empty({mq, c.hidden_size});
    project_backward(ops, dq, h_rows, w.wq, row_lora, layer, LoraTarget::kQ, s.lora_u[0], rows.last ? dh_rows : dh,
                     false);
    dh_written = !rows.last;
  }
  // This call's own keys and values: their gradients, through RoPE for the keys.
  Tensor dk = ops.empty({b, t, c.num_key_value_heads, c.head_dim});
  Tensor dv = ops.empty({b, t, c.num_key_value_heads, c.head_dim});
  ops.read_rows(dkeys, store.start, dk);
  ops.read_rows(dvalues, store.start, dv);
  ops.rope_backward(dk, positions, model.inv_freq());
  project_backward(ops, dk, s.h_attn, w.wk, lora, layer, LoraTarget::kK, s.lora_u[1], dh, dh_written);
  project_backward(ops, dv, s.h_attn, w.wv, lora, layer, LoraTarget::kV, s.lora_u[2], dh, true);
  if (!rows.last) {
    ops.rmsnorm_backward(dh, s.x_in, w.attn_norm, eps, dx, /*accumulate=*/extent.kind == LayerExtent::Kind::kFull);
    return;
  }
  // The last rows' outputs: their query path and residual connection reach only them.
  add_into_last_rows(ops, dh_rows, dh, b, t, rows.per_sample);
  Tensor dx_in = ops.empty({m, c.hidden_size});
  ops.rmsnorm_backward(dh, s.x_in, w.attn_norm, eps, dx_in, /*accumulate=*/false);
  add_into_last_rows(ops, dx, dx_in, b, t, rows.per_sample);
  dx = dx_in;
}

}  // namespace xcomp
