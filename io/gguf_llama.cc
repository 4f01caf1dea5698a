#include "io/gguf_llama.h"

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <limits>
#include <map>
#include <set>

#include "model/input_error.h"
#include "model/llama_weights.h"

namespace xcomp {

namespace {

// Sizes beyond this are corruption, and bounding them keeps products like
// heads * head_dim far from overflow.
constexpr int64_t kMaxSize = int64_t{1} << 31;

// Token texts that end a turn or a document. GGUF names a single eos id, but a chat
// model must also stop at its end-of-turn token, whatever eos says: SmolLM2-Instruct's
// chat template ends every turn with <|im_end|> (id 2) while <|endoftext|> (id 0) ends
// documents, and some of its GGUF conversions name eos_token_id = 1, which is
// <|im_start|>; generation would then run past every <|im_end|>. (The copy that
// launch/setup.sh fetches names 2, so there the extra id is <|endoftext|>.) llama.cpp
// likewise stops at any such control token (its "end of generation" set).
const char* const kEndOfTurnTexts[] = {"<|im_end|>", "<|eot_id|>", "<|end_of_text|>", "<|endoftext|>", "</s>",
                                       "<|end|>"};
constexpr int32_t kControlTokenType = 3;

// GGUF stores hyperparameters as float32 while config.json keeps the decimal the model's
// authors wrote (1e-05, not 9.999999747378752e-06). The shortest decimal that rounds to
// the same float32 recovers it, so a converted config.json matches the original.
double shortest_decimal(double value) {
  const float f = static_cast<float>(value);
  if (static_cast<double>(f) != value) return value;  // a float64 key: keep as is
  char text[32];
  for (int digits = 1; digits <= 9; ++digits) {
    std::snprintf(text, sizeof text, "%.*g", digits, static_cast<double>(f));
    const double parsed = std::strtod(text, nullptr);
    if (static_cast<float>(parsed) == f) return parsed;
  }
  return value;
}

int64_t required_size(const GgufFile& file, const std::string& key) {
  const int64_t v = file.get_int(key);
  if (v <= 0 || v > kMaxSize) throw_input_error(file.path(), ": metadata key '", key, "': ", v, " is not a valid size");
  return v;
}

int64_t optional_size(const GgufFile& file, const std::string& key, int64_t fallback) {
  return file.has(key) ? required_size(file, key) : fallback;
}

double positive_float(const GgufFile& file, const std::string& key, double value) {
  if (!(value > 0) || value == std::numeric_limits<double>::infinity()) {
    throw_input_error(file.path(), ": metadata key '", key, "': ", value, " is not a positive number");
  }
  return shortest_decimal(value);
}

// A token id key, or -1 when absent; must name a token.
int32_t token_id(const GgufFile& file, const std::string& key, size_t n_tokens) {
  if (!file.has(key)) return -1;
  const int64_t id = file.get_int(key);
  if (id < 0 || static_cast<uint64_t>(id) >= n_tokens) {
    throw_input_error(file.path(), ": metadata key '", key, "': token id ", id, " is outside the vocabulary [0, ",
                      n_tokens, ")");
  }
  return static_cast<int32_t>(id);
}

void check_architecture(const GgufFile& file) {
  const std::string arch = file.get_string("general.architecture");
  if (arch != "llama") {
    throw_input_error(file.path(), ": general.architecture is \"", arch,
                      "\"; xcomp reads LLaMA-architecture GGUF models (\"llama\")");
  }
}

void check_rope_scaling(const GgufFile& file) {
  if (file.find_tensor("rope_freqs.weight") != nullptr) {
    throw_input_error(file.path(), ": tensor 'rope_freqs.weight' holds LLaMA-3.1 (llama3) rope scaling, which "
                      "xcomp cannot read from GGUF yet; convert the model from its Hugging Face checkpoint instead");
  }
  const std::string type = file.get_string("llama.rope.scaling.type", "none");
  if (type != "none") {
    throw_input_error(file.path(), ": metadata key 'llama.rope.scaling.type': \"", type,
                      "\" rope scaling is not supported (expected none)");
  }
}

// Control tokens whose text ends a turn, other than eos itself, in id order.
std::vector<int32_t> end_of_turn_ids(const GgufTokenizerData& tok, int32_t eos_id) {
  std::vector<int32_t> ids;
  for (size_t id = 0; id < tok.tokens.size() && id < tok.token_types.size(); ++id) {
    if (tok.token_types[id] != kControlTokenType || static_cast<int32_t>(id) == eos_id) continue;
    for (const char* text : kEndOfTurnTexts) {
      if (tok.tokens[id] == text) ids.push_back(static_cast<int32_t>(id));
    }
  }
  return ids;
}

LlamaConfig read_config(const GgufFile& file, const GgufTokenizerData& tok) {
  LlamaConfig c;
  c.source = file.path();
  c.hidden_size = required_size(file, "llama.embedding_length");
  c.intermediate_size = required_size(file, "llama.feed_forward_length");
  c.num_hidden_layers = required_size(file, "llama.block_count");
  c.num_attention_heads = required_size(file, "llama.attention.head_count");
  c.num_key_value_heads = optional_size(file, "llama.attention.head_count_kv", c.num_attention_heads);
  c.head_dim = optional_size(file, "llama.attention.key_length", c.hidden_size / c.num_attention_heads);
  // RoPE rotates the whole head in LLaMA; a partial rotary dimension is another model.
  const int64_t rope_dim = optional_size(file, "llama.rope.dimension_count", c.head_dim);
  if (!file.has("llama.attention.key_length")) c.head_dim = rope_dim;
  if (rope_dim != c.head_dim) {
    throw_input_error(file.path(), ": metadata key 'llama.rope.dimension_count': ", rope_dim,
                      " differs from the head dimension ", c.head_dim, " (partial rotary embeddings are not LLaMA)");
  }
  c.vocab_size = optional_size(file, "llama.vocab_size", static_cast<int64_t>(tok.tokens.size()));
  c.max_position_embeddings = required_size(file, "llama.context_length");
  c.rms_norm_eps = positive_float(file, "llama.attention.layer_norm_rms_epsilon",
                                  file.get_float("llama.attention.layer_norm_rms_epsilon"));
  c.rope_theta = positive_float(file, "llama.rope.freq_base", file.get_float("llama.rope.freq_base", 10000.0));
  c.tie_word_embeddings = file.find_tensor("output.weight") == nullptr;
  if (tok.bos_id >= 0) c.bos_token_id = tok.bos_id;
  if (tok.eos_id >= 0) c.eos_token_id = tok.eos_id;
  c.extra_eos_token_ids = end_of_turn_ids(tok, c.eos_token_id);
  // Bounds the per-layer tensor list before it is built: a block count above the
  // number of tensors is corruption, not a model.
  if (static_cast<uint64_t>(c.num_hidden_layers) > file.tensors().size()) {
    throw_input_error(file.path(), ": metadata key 'llama.block_count': ", c.num_hidden_layers,
                      " layers but the file holds only ", file.tensors().size(), " tensors");
  }
  validate_llama_config(c);
  return c;
}

// "blk.<N>." followed by a layer tensor; returns the Hugging Face name or "".
std::string layer_tensor_name(const std::string& name) {
  static const std::map<std::string, std::string> kLayerNames = {
      {"attn_norm.weight", "input_layernorm.weight"},
      {"attn_q.weight", "self_attn.q_proj.weight"},
      {"attn_k.weight", "self_attn.k_proj.weight"},
      {"attn_v.weight", "self_attn.v_proj.weight"},
      {"attn_output.weight", "self_attn.o_proj.weight"},
      {"ffn_norm.weight", "post_attention_layernorm.weight"},
      {"ffn_gate.weight", "mlp.gate_proj.weight"},
      {"ffn_up.weight", "mlp.up_proj.weight"},
      {"ffn_down.weight", "mlp.down_proj.weight"},
  };
  const std::string prefix = "blk.";
  if (name.compare(0, prefix.size(), prefix) != 0) return "";
  size_t pos = prefix.size();
  const size_t digits_begin = pos;
  while (pos < name.size() && pos - digits_begin < 9 && name[pos] >= '0' && name[pos] <= '9') ++pos;
  if (pos == digits_begin || pos >= name.size() || name[pos] != '.') return "";
  const std::string layer = name.substr(digits_begin, pos - digits_begin);
  if (layer.size() > 1 && layer[0] == '0') return "";  // "blk.01" is not layer 1
  auto it = kLayerNames.find(name.substr(pos + 1));
  if (it == kLayerNames.end()) return "";
  return "model.layers." + layer + "." + it->second;
}

// GGUF name of every tensor, keyed by its Hugging Face name; InputError on a tensor
// that is not part of a LLaMA model.
std::map<std::string, const GgufTensorInfo*> map_tensor_names(const GgufFile& file) {
  std::map<std::string, const GgufTensorInfo*> by_hf_name;
  for (const GgufTensorInfo& info : file.tensors()) {
    const std::string hf = gguf_to_hf_tensor_name(info.name);
    if (hf.empty()) throw_input_error(file.path(), ": unexpected tensor '", info.name, "' in a LLaMA model");
    by_hf_name[hf] = &info;  // GGUF names are unique, and so is the mapping
  }
  return by_hf_name;
}

// Every expected tensor present with its shape, and nothing else.
void check_tensor_shapes(const GgufFile& file, const LlamaConfig& config,
                         const std::map<std::string, const GgufTensorInfo*>& by_hf_name) {
  std::set<std::string> expected_names;
  for (const auto& [hf_name, shape] : llama_tensor_shapes(config)) {
    expected_names.insert(hf_name);
    auto it = by_hf_name.find(hf_name);
    if (it == by_hf_name.end()) throw_input_error(file.path(), ": missing tensor for ", hf_name);
    const GgufTensorInfo& info = *it->second;
    if (info.shape() != shape) {
      throw_input_error(file.path(), ": tensor '", info.name, "' (", hf_name, ") has shape ", shape_str(info.shape()),
                        ", expected ", shape_str(shape), " from the model's metadata");
    }
  }
  for (const auto& [hf_name, info] : by_hf_name) {
    if (expected_names.count(hf_name) == 0) {
      throw_input_error(file.path(), ": unexpected tensor '", info->name, "' (", hf_name, ") for a model with ",
                        config.num_hidden_layers, " layers");
    }
  }
}

// llama.cpp's converter reorders q and k rows for ggml's interleaved-pair RoPE; put
// them back into Hugging Face's rotate-halves order.
Tensor to_hf_rope_order(const std::string& hf_name, Tensor w, const LlamaConfig& config) {
  const auto ends_with = [&](const char* suffix) {
    const std::string s = suffix;
    return hf_name.size() >= s.size() && hf_name.compare(hf_name.size() - s.size(), s.size(), s) == 0;
  };
  if (ends_with("self_attn.q_proj.weight")) return permute_rope_interleaved_to_halves(w, config.num_attention_heads);
  if (ends_with("self_attn.k_proj.weight")) return permute_rope_interleaved_to_halves(w, config.num_key_value_heads);
  return w;
}

}  // namespace

std::string gguf_to_hf_tensor_name(const std::string& gguf_name) {
  if (gguf_name == "token_embd.weight") return "model.embed_tokens.weight";
  if (gguf_name == "output_norm.weight") return "model.norm.weight";
  if (gguf_name == "output.weight") return "lm_head.weight";
  return layer_tensor_name(gguf_name);
}

GgufTokenizerData read_gguf_tokenizer(const GgufFile& file) {
  GgufTokenizerData tok;
  tok.source = file.path();
  tok.model = file.get_string("tokenizer.ggml.model");
  tok.pre = file.get_string("tokenizer.ggml.pre", "");
  tok.tokens = file.get_string_array("tokenizer.ggml.tokens");
  const size_t n = tok.tokens.size();
  if (file.has("tokenizer.ggml.scores")) {
    for (double s : file.get_float_array("tokenizer.ggml.scores")) tok.scores.push_back(static_cast<float>(s));
    if (tok.scores.size() != n) {
      throw_input_error(file.path(), ": metadata key 'tokenizer.ggml.scores': ", tok.scores.size(),
                        " scores for ", n, " tokens");
    }
  }
  if (file.has("tokenizer.ggml.token_type")) {
    for (int64_t t : file.get_int_array("tokenizer.ggml.token_type")) {
      if (t < 0 || t > 6) throw_input_error(file.path(), ": metadata key 'tokenizer.ggml.token_type': type ", t, " (expected 0 to 6)");
      tok.token_types.push_back(static_cast<int32_t>(t));
    }
    if (tok.token_types.size() != n) {
      throw_input_error(file.path(), ": metadata key 'tokenizer.ggml.token_type': ", tok.token_types.size(),
                        " types for ", n, " tokens");
    }
  }
  if (file.has("tokenizer.ggml.merges")) tok.merges = file.get_string_array("tokenizer.ggml.merges");
  tok.bos_id = token_id(file, "tokenizer.ggml.bos_token_id", n);
  tok.eos_id = token_id(file, "tokenizer.ggml.eos_token_id", n);
  tok.unk_id = token_id(file, "tokenizer.ggml.unknown_token_id", n);
  tok.pad_id = token_id(file, "tokenizer.ggml.padding_token_id", n);
  tok.add_bos = file.get_bool("tokenizer.ggml.add_bos_token", false);
  tok.chat_template = file.get_string("tokenizer.chat_template", "");
  return tok;
}

GgufModel read_gguf_llama(const std::string& path, GgufWeights weights) {
  const GgufFile file = GgufFile::open(path);
  check_architecture(file);
  check_rope_scaling(file);
  GgufModel model;
  model.tokenizer = read_gguf_tokenizer(file);
  model.config = read_config(file, model.tokenizer);
  const auto by_hf_name = map_tensor_names(file);
  check_tensor_shapes(file, model.config, by_hf_name);
  if (weights == GgufWeights::kSkip) return model;
  // Only now, with every name and shape known good, the (slow) dequantisation.
  for (const auto& [hf_name, shape] : llama_tensor_shapes(model.config)) {
    Tensor w = file.dequantize(*by_hf_name.at(hf_name));
    model.tensors.emplace_back(hf_name, to_hf_rope_order(hf_name, std::move(w), model.config));
  }
  return model;
}

}  // namespace xcomp
