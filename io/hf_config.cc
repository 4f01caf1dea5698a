#include "io/hf_config.h"

#include <cstdint>
#include <limits>
#include <nlohmann/json.hpp>

#include "io/atomic_file.h"
#include "io/mapped_file.h"
#include "model/input_error.h"

namespace xcomp {

namespace {
using json = nlohmann::json;

// Typed access to one JSON object, with errors that name the file and the key.
class ConfigObject {
 public:
  ConfigObject(std::string path, std::string prefix, const json& object)
      : path_(std::move(path)), prefix_(std::move(prefix)), object_(object) {}

  bool has(const char* key) const { return object_.contains(key) && !object_.at(key).is_null(); }

  const json& get(const char* key, const char* expected) const {
    if (!has(key)) throw_input_error(path_, ": missing key \"", prefix_, key, "\" (expected ", expected, ")");
    return object_.at(key);
  }

  [[noreturn]] void wrong(const char* key, const char* expected) const {
    throw_input_error(path_, ": key \"", prefix_, key, "\": expected ", expected, ", got ", object_.at(key).dump());
  }

  int64_t integer(const char* key) const {
    const json& v = get(key, "an integer");
    if (v.is_number_unsigned() && v.get<uint64_t>() > static_cast<uint64_t>(std::numeric_limits<int64_t>::max())) {
      wrong(key, "an integer in int64 range");
    }
    if (!v.is_number_integer()) wrong(key, "an integer");
    return v.get<int64_t>();
  }
  int64_t integer_or(const char* key, int64_t fallback) const { return has(key) ? integer(key) : fallback; }

  double number(const char* key) const {
    const json& v = get(key, "a number");
    if (!v.is_number()) wrong(key, "a number");
    return v.get<double>();
  }
  double number_or(const char* key, double fallback) const { return has(key) ? number(key) : fallback; }

  bool boolean_or(const char* key, bool fallback) const {
    if (!has(key)) return fallback;
    const json& v = object_.at(key);
    if (!v.is_boolean()) wrong(key, "true or false");
    return v.get<bool>();
  }

  std::string string(const char* key) const {
    const json& v = get(key, "a string");
    if (!v.is_string()) wrong(key, "a string");
    return v.get<std::string>();
  }

  int32_t token_id(const json& v, const char* key) const {
    if (!v.is_number_integer() || v.get<int64_t>() < -1 || v.get<int64_t>() > std::numeric_limits<int32_t>::max()) {
      wrong(key, "a token id (a non-negative integer, or a list of them)");
    }
    return static_cast<int32_t>(v.get<int64_t>());
  }

  const std::string& path() const { return path_; }
  const json& at(const char* key) const { return object_.at(key); }

 private:
  std::string path_;
  std::string prefix_;
  const json& object_;
};

json parse_json_file(const std::string& path) {
  std::shared_ptr<MappedFile> file = MappedFile::open(path);
  const char* begin = reinterpret_cast<const char*>(file->data());
  json j;
  try {
    j = json::parse(begin, begin + file->size());
  } catch (const json::exception& e) {
    throw_input_error(path, ": malformed JSON: ", e.what());
  }
  if (!j.is_object()) throw_input_error(path, ": expected a JSON object at the top level");
  return j;
}

// config.json describes many model families; only LLaMA's tensor layout is understood.
void check_architecture(const ConfigObject& c) {
  if (c.has("architectures")) {
    const json& a = c.at("architectures");
    if (!a.is_array()) c.wrong("architectures", "a list of class names");
    for (const json& name : a) {
      if (name == "LlamaForCausalLM") return;
    }
  }
  if (c.has("model_type")) {
    if (c.string("model_type") == "llama") return;
    c.wrong("model_type", "\"llama\" (a LlamaForCausalLM model)");
  }
  if (c.has("architectures")) c.wrong("architectures", "a list containing \"LlamaForCausalLM\"");
}

void read_unsupported_features(const ConfigObject& c) {
  if (c.has("hidden_act") && c.string("hidden_act") != "silu") c.wrong("hidden_act", "\"silu\"");
  if (c.boolean_or("attention_bias", false)) c.wrong("attention_bias", "false (biases are not supported)");
  if (c.boolean_or("mlp_bias", false)) c.wrong("mlp_bias", "false (biases are not supported)");
}

RopeScaling read_rope_scaling(const ConfigObject& c) {
  RopeScaling s;
  if (!c.has("rope_scaling")) return s;
  const json& j = c.at("rope_scaling");
  if (!j.is_object()) c.wrong("rope_scaling", "null or an object");
  ConfigObject r(c.path(), "rope_scaling.", j);
  const char* type_key = r.has("rope_type") ? "rope_type" : "type";
  std::string type = r.string(type_key);
  // Newer transformers may spell "no scaling" explicitly.
  if (type == "default") return s;
  if (type != "llama3") r.wrong(type_key, "\"llama3\" (the only rope scaling supported)");
  s.type = type;
  s.factor = r.number("factor");
  s.low_freq_factor = r.number("low_freq_factor");
  s.high_freq_factor = r.number("high_freq_factor");
  s.original_max_position_embeddings = r.integer("original_max_position_embeddings");
  return s;
}

// A token id key given as null means "no such token" (-1); an absent key keeps
// transformers' default, which LlamaConfig's initialisers already hold.
void read_bos(const ConfigObject& c, const json& root, LlamaConfig& config) {
  if (!root.contains("bos_token_id")) return;
  config.bos_token_id = c.has("bos_token_id") ? c.token_id(root.at("bos_token_id"), "bos_token_id") : -1;
}

// eos_token_id is one id or a list (LLaMA-3 instruct models end turns on several).
void read_eos(const ConfigObject& c, const json& root, LlamaConfig& config) {
  if (!root.contains("eos_token_id")) return;
  if (!c.has("eos_token_id")) {
    config.eos_token_id = -1;
    return;
  }
  const json& v = root.at("eos_token_id");
  if (!v.is_array()) {
    config.eos_token_id = c.token_id(v, "eos_token_id");
    return;
  }
  if (v.empty()) c.wrong("eos_token_id", "a token id or a non-empty list of them");
  config.eos_token_id = c.token_id(v[0], "eos_token_id");
  for (size_t i = 1; i < v.size(); ++i) config.extra_eos_token_ids.push_back(c.token_id(v[i], "eos_token_id"));
}
}  // namespace

LlamaConfig read_hf_config(const std::string& path) {
  json root = parse_json_file(path);
  ConfigObject c(path, "", root);
  check_architecture(c);
  read_unsupported_features(c);

  LlamaConfig config;
  config.source = path;
  config.hidden_size = c.integer("hidden_size");
  config.intermediate_size = c.integer("intermediate_size");
  config.num_hidden_layers = c.integer("num_hidden_layers");
  config.num_attention_heads = c.integer("num_attention_heads");
  if (config.num_attention_heads <= 0) c.wrong("num_attention_heads", "a positive integer");
  config.num_key_value_heads = c.integer_or("num_key_value_heads", config.num_attention_heads);
  if (!c.has("head_dim") && config.hidden_size % config.num_attention_heads != 0) {
    throw_input_error(path, ": hidden_size (", config.hidden_size, ") is not a multiple of num_attention_heads (",
                      config.num_attention_heads, ") and no head_dim is given");
  }
  config.head_dim = c.integer_or("head_dim", config.hidden_size / config.num_attention_heads);
  config.vocab_size = c.integer("vocab_size");
  config.max_position_embeddings = c.integer_or("max_position_embeddings", config.max_position_embeddings);
  config.rms_norm_eps = c.number_or("rms_norm_eps", 1e-6);  // transformers' LlamaConfig default
  config.rope_theta = c.number_or("rope_theta", 10000.0);
  config.rope_scaling = read_rope_scaling(c);
  config.tie_word_embeddings = c.boolean_or("tie_word_embeddings", false);
  read_bos(c, root, config);
  read_eos(c, root, config);
  validate_llama_config(config);
  return config;
}

void write_hf_config(const LlamaConfig& config, const std::string& path) {
  nlohmann::ordered_json j;
  j["architectures"] = {"LlamaForCausalLM"};
  j["model_type"] = "llama";
  j["hidden_act"] = "silu";
  j["torch_dtype"] = "float32";
  j["attention_bias"] = false;
  j["attention_dropout"] = 0.0;
  j["mlp_bias"] = false;
  j["hidden_size"] = config.hidden_size;
  j["intermediate_size"] = config.intermediate_size;
  j["num_hidden_layers"] = config.num_hidden_layers;
  j["num_attention_heads"] = config.num_attention_heads;
  j["num_key_value_heads"] = config.num_key_value_heads;
  j["head_dim"] = config.head_dim;
  j["vocab_size"] = config.vocab_size;
  j["max_position_embeddings"] = config.max_position_embeddings;
  j["rms_norm_eps"] = config.rms_norm_eps;
  j["rope_theta"] = config.rope_theta;
  if (config.rope_scaling.type.empty()) {
    j["rope_scaling"] = nullptr;
  } else {
    const RopeScaling& s = config.rope_scaling;
    j["rope_scaling"] = {{"rope_type", s.type},
                         {"factor", s.factor},
                         {"low_freq_factor", s.low_freq_factor},
                         {"high_freq_factor", s.high_freq_factor},
                         {"original_max_position_embeddings", s.original_max_position_embeddings}};
  }
  j["tie_word_embeddings"] = config.tie_word_embeddings;
  j["bos_token_id"] = config.bos_token_id < 0 ? nlohmann::ordered_json(nullptr) : nlohmann::ordered_json(config.bos_token_id);
  if (config.extra_eos_token_ids.empty()) {
    j["eos_token_id"] = config.eos_token_id < 0 ? nlohmann::ordered_json(nullptr) : nlohmann::ordered_json(config.eos_token_id);
  } else {
    nlohmann::ordered_json ids = {config.eos_token_id};
    for (int32_t id : config.extra_eos_token_ids) ids.push_back(id);
    j["eos_token_id"] = ids;
  }
  j["initializer_range"] = 0.02;
  j["pretraining_tp"] = 1;
  j["use_cache"] = true;
  write_file_atomically(path, j.dump(2) + "\n");
}

}  // namespace xcomp
