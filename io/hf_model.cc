#include "io/hf_model.h"

#include <glog/logging.h>

#include <filesystem>
#include <nlohmann/json.hpp>

#include "io/hf_config.h"
#include "io/mapped_file.h"
#include "io/safetensors.h"
#include "model/input_error.h"
#include "model/llama_weights.h"

namespace xcomp {

namespace {
namespace fs = std::filesystem;
using json = nlohmann::json;

constexpr const char* kSingleFile = "model.safetensors";
constexpr const char* kIndexFile = "model.safetensors.index.json";

// A tensor and the file it came from, for error messages.
struct Located {
  std::string file;
  Tensor tensor;
};
using LocatedMap = std::map<std::string, Located>;

void add_file_tensors(const SafetensorsFile& f, LocatedMap& out) {
  for (const std::string& name : f.names()) {
    auto [it, inserted] = out.emplace(name, Located{f.path(), Tensor()});
    if (!inserted) throw_input_error(f.path(), ": tensor ", name, " is also in ", it->second.file);
    it->second.tensor = f.tensor(name);
  }
}

// weight_map: tensor name -> shard file name (relative to the directory).
std::map<std::string, std::string> read_weight_map(const std::string& index_path) {
  std::shared_ptr<MappedFile> file = MappedFile::open(index_path);
  const char* text = reinterpret_cast<const char*>(file->data());
  json j;
  try {
    j = json::parse(text, text + file->size());
  } catch (const json::exception& e) {
    throw_input_error(index_path, ": malformed JSON: ", e.what());
  }
  if (!j.is_object() || !j.contains("weight_map") || !j["weight_map"].is_object()) {
    throw_input_error(index_path, ": expected an object with a \"weight_map\" object");
  }
  std::map<std::string, std::string> map;
  for (const auto& [name, shard] : j["weight_map"].items()) {
    // Shards live beside the index; a path elsewhere is not something to follow.
    if (!shard.is_string() || shard.get<std::string>().empty() ||
        shard.get<std::string>().find('/') != std::string::npos) {
      throw_input_error(index_path, ": weight_map entry for tensor ", name, " must be a shard file name, got ",
                        shard.dump());
    }
    map[name] = shard.get<std::string>();
  }
  return map;
}

LocatedMap read_sharded(const std::string& dir, const std::string& index_path) {
  std::map<std::string, std::string> weight_map = read_weight_map(index_path);
  std::map<std::string, std::string> first_tensor_of_shard;
  for (const auto& [name, shard] : weight_map) first_tensor_of_shard.emplace(shard, name);

  LocatedMap located;
  for (const auto& [shard, tensor] : first_tensor_of_shard) {
    std::string path = dir + "/" + shard;
    if (!fs::is_regular_file(path)) {
      throw_input_error(index_path, ": shard ", shard, " (holding tensor ", tensor, ") does not exist in ", dir);
    }
    add_file_tensors(SafetensorsFile::open(path), located);
  }
  for (const auto& [name, shard] : weight_map) {
    auto it = located.find(name);
    if (it == located.end() || it->second.file != dir + "/" + shard) {
      throw_input_error(index_path, ": tensor ", name, " is listed in shard ", shard, ", which does not hold it");
    }
  }
  for (const auto& [name, where] : located) {
    if (!weight_map.count(name)) throw_input_error(where.file, ": tensor ", name, " is not listed in ", index_path);
  }
  return located;
}

bool ends_with(const std::string& s, const std::string& suffix) {
  return s.size() >= suffix.size() && s.compare(s.size() - suffix.size(), suffix.size(), suffix) == 0;
}

// Tensors some exporters add that carry nothing the model needs.
bool is_ignorable(const std::string& name, const LlamaConfig& config) {
  return (config.tie_word_embeddings && name == "lm_head.weight") || ends_with(name, ".rotary_emb.inv_freq");
}

std::map<std::string, Tensor> check_against_config(const LocatedMap& located, const LlamaConfig& config,
                                                   const std::string& described_by) {
  std::map<std::string, Shape> expected;
  for (auto& [name, shape] : llama_tensor_shapes(config)) expected.emplace(name, shape);

  std::map<std::string, Tensor> tensors;
  for (const auto& [name, where] : located) {
    auto it = expected.find(name);
    if (it == expected.end()) {
      if (is_ignorable(name, config)) {
        LOG(WARNING) << where.file << ": skipping tensor " << name << ", which the model does not use";
        continue;
      }
      throw_input_error(where.file, ": unexpected tensor ", name, " (not part of a LLaMA model with config ",
                        config.source, ")");
    }
    const Tensor& t = where.tensor;
    if (t.dtype() == DType::I32) {
      throw_input_error(where.file, ": tensor ", name, " has dtype I32, expected F32, F16 or BF16");
    }
    if (t.shape() != it->second) {
      throw_input_error(where.file, ": tensor ", name, " has shape ", shape_str(t.shape()), ", expected ",
                        shape_str(it->second), " from ", config.source);
    }
    tensors.emplace(name, t);
  }
  for (const auto& [name, shape] : expected) {
    if (!tensors.count(name)) {
      throw_input_error(described_by, ": missing tensor ", name, " (expected shape ", shape_str(shape), " from ",
                        config.source, ")");
    }
  }
  return tensors;
}
}  // namespace

std::map<std::string, Tensor> read_hf_weights(const std::string& dir, const LlamaConfig& config) {
  const std::string index_path = dir + "/" + kIndexFile;
  const std::string single_path = dir + "/" + kSingleFile;
  if (fs::exists(index_path)) return check_against_config(read_sharded(dir, index_path), config, index_path);
  if (!fs::exists(single_path)) throw_input_error(dir, ": neither ", kSingleFile, " nor ", kIndexFile, " found");
  LocatedMap located;
  add_file_tensors(SafetensorsFile::open(single_path), located);
  return check_against_config(located, config, single_path);
}

HfModelDir read_hf_model_dir(const std::string& dir) {
  HfModelDir model;
  model.config = read_hf_config(dir + "/config.json");
  model.tensors = read_hf_weights(dir, model.config);
  return model;
}

void write_hf_model_dir(const std::string& dir, const LlamaConfig& config,
                        const std::vector<std::pair<std::string, Tensor>>& tensors) {
  std::error_code ec;
  fs::create_directories(dir, ec);
  if (ec) throw_input_error(dir, ": cannot create directory: ", ec.message());
  // A stale shard index would take precedence over the file written here.
  fs::remove(dir + "/" + kIndexFile, ec);
  if (ec) throw_input_error(dir, "/", kIndexFile, ": cannot remove stale index: ", ec.message());
  write_hf_config(config, dir + "/config.json");
  // transformers refuses safetensors weights without format metadata.
  write_safetensors(dir + "/" + kSingleFile, tensors, {{"format", "pt"}});
}

}  // namespace xcomp
