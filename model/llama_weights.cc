#include "model/llama_weights.h"

#include <glog/logging.h>

#include <cstring>

namespace xcomp {

namespace {
std::string layer_prefix(int64_t i) { return "model.layers." + std::to_string(i) + "."; }

// The per-layer tensors in Hugging Face order, with a pointer to where each lives in
// LlamaLayerWeights, so shapes, loading and saving share one list.
struct LayerSlot {
  const char* suffix;
  Tensor LlamaLayerWeights::*member;
};
constexpr LayerSlot kLayerSlots[] = {
    {"input_layernorm.weight", &LlamaLayerWeights::attn_norm},
    {"self_attn.q_proj.weight", &LlamaLayerWeights::wq},
    {"self_attn.k_proj.weight", &LlamaLayerWeights::wk},
    {"self_attn.v_proj.weight", &LlamaLayerWeights::wv},
    {"self_attn.o_proj.weight", &LlamaLayerWeights::wo},
    {"post_attention_layernorm.weight", &LlamaLayerWeights::mlp_norm},
    {"mlp.gate_proj.weight", &LlamaLayerWeights::w_gate},
    {"mlp.up_proj.weight", &LlamaLayerWeights::w_up},
    {"mlp.down_proj.weight", &LlamaLayerWeights::w_down},
};

Shape layer_shape(const LlamaConfig& c, const std::string& suffix) {
  const int64_t h = c.hidden_size, ff = c.intermediate_size;
  if (suffix == "input_layernorm.weight" || suffix == "post_attention_layernorm.weight") return {h};
  if (suffix == "self_attn.q_proj.weight") return {c.q_dim(), h};
  if (suffix == "self_attn.k_proj.weight" || suffix == "self_attn.v_proj.weight") return {c.kv_dim(), h};
  if (suffix == "self_attn.o_proj.weight") return {h, c.q_dim()};
  if (suffix == "mlp.gate_proj.weight" || suffix == "mlp.up_proj.weight") return {ff, h};
  CHECK_EQ(suffix, "mlp.down_proj.weight");
  return {h, ff};
}

Tensor take_f32(const std::map<std::string, Tensor>& named, const std::string& name, const Shape& shape) {
  auto it = named.find(name);
  CHECK(it != named.end()) << "missing tensor " << name;
  CHECK(it->second.shape() == shape) << name << " has shape " << shape_str(it->second.shape()) << ", expected "
                                     << shape_str(shape);
  return it->second.to_f32();
}
}  // namespace

std::vector<std::pair<std::string, Shape>> llama_tensor_shapes(const LlamaConfig& config) {
  std::vector<std::pair<std::string, Shape>> shapes;
  shapes.emplace_back("model.embed_tokens.weight", Shape{config.vocab_size, config.hidden_size});
  for (int64_t i = 0; i < config.num_hidden_layers; ++i) {
    for (const LayerSlot& slot : kLayerSlots) {
      shapes.emplace_back(layer_prefix(i) + slot.suffix, layer_shape(config, slot.suffix));
    }
  }
  shapes.emplace_back("model.norm.weight", Shape{config.hidden_size});
  if (!config.tie_word_embeddings) shapes.emplace_back("lm_head.weight", Shape{config.vocab_size, config.hidden_size});
  return shapes;
}

LlamaWeights llama_weights_from_named(const LlamaConfig& config, const std::map<std::string, Tensor>& named) {
  LlamaWeights w;
  w.embed = take_f32(named, "model.embed_tokens.weight", {config.vocab_size, config.hidden_size});
  w.layers.resize(static_cast<size_t>(config.num_hidden_layers));
  for (int64_t i = 0; i < config.num_hidden_layers; ++i) {
    for (const LayerSlot& slot : kLayerSlots) {
      w.layers[i].*slot.member = take_f32(named, layer_prefix(i) + slot.suffix, layer_shape(config, slot.suffix));
    }
  }
  w.final_norm = take_f32(named, "model.norm.weight", {config.hidden_size});
  w.lm_head = config.tie_word_embeddings ? w.embed
                                         : take_f32(named, "lm_head.weight", {config.vocab_size, config.hidden_size});
  return w;
}

std::vector<std::pair<std::string, Tensor>> llama_weights_to_named(const LlamaConfig& config,
                                                                   const LlamaWeights& weights) {
  CHECK_EQ(static_cast<int64_t>(weights.layers.size()), config.num_hidden_layers);
  std::vector<std::pair<std::string, Tensor>> named;
  named.emplace_back("model.embed_tokens.weight", weights.embed);
  for (int64_t i = 0; i < config.num_hidden_layers; ++i) {
    for (const LayerSlot& slot : kLayerSlots) named.emplace_back(layer_prefix(i) + slot.suffix, weights.layers[i].*slot.member);
  }
  named.emplace_back("model.norm.weight", weights.final_norm);
  if (!config.tie_word_embeddings) named.emplace_back("lm_head.weight", weights.lm_head);
  return named;
}

// Within each head, interleaved pair (2i, 2i+1) becomes half pair (i, i + head_dim/2):
// the inverse of the permute in Hugging Face's convert_llama_weights_to_hf.py. Rows are
// moved as bytes, so any dtype works.
Tensor permute_rope_interleaved_to_halves(const Tensor& w, int64_t heads) {
  CHECK_EQ(w.ndim(), 2) << "rope permutation expects a matrix, got " << shape_str(w.shape());
  CHECK_GT(heads, 0);
  CHECK_EQ(w.dim(0) % heads, 0) << shape_str(w.shape()) << " rows do not split into " << heads << " heads";
  const int64_t head_dim = w.dim(0) / heads;
  CHECK_EQ(head_dim % 2, 0) << "head_dim " << head_dim << " is odd";
  const int64_t half = head_dim / 2;
  const size_t row_bytes = static_cast<size_t>(w.dim(1)) * dtype_size(w.dtype());
  Tensor out = Tensor::empty(w.shape(), w.dtype());
  const char* src = static_cast<const char*>(w.raw());
  char* dst = static_cast<char*>(out.raw());
  for (int64_t h = 0; h < heads; ++h) {
    const int64_t base = h * head_dim;
    for (int64_t i = 0; i < half; ++i) {
      std::memcpy(dst + (base + i) * row_bytes, src + (base + 2 * i) * row_bytes, row_bytes);
      std::memcpy(dst + (base + half + i) * row_bytes, src + (base + 2 * i + 1) * row_bytes, row_bytes);
    }
  }
  return out;
}

}  // namespace xcomp
