#include "io/compressed_prompt_file.h"

#include <charconv>
#include <map>
#include <system_error>
#include <utility>
#include <vector>

#include "io/safetensors.h"
#include "model/input_error.h"

namespace xcomp {

namespace {

const char* mode_text(CompressorMode m) { return m == CompressorMode::kKeyValue ? "kv" : "embedding"; }
const char* positions_text(DecoderPositions p) {
  return p == DecoderPositions::kReference ? "reference" : "after_prefix";
}

std::string layer_name(size_t layer, const char* what) { return "layers." + std::to_string(layer) + "." + what; }

const std::string& required(const std::map<std::string, std::string>& metadata, const std::string& key,
                            const std::string& path) {
  auto it = metadata.find(key);
  if (it == metadata.end()) throw_input_error(path, ": compressed prompt metadata has no '", key, "'");
  return it->second;
}

int64_t parse_count(const std::string& text, const std::string& key, const std::string& path) {
  char* end = nullptr;
  const long long v = std::strtoll(text.c_str(), &end, 10);
  if (text.empty() || *end != '\0' || v < 0)
    throw_input_error(path, ": metadata ", key, " is not a count: '", text, "'");
  return v;
}

// A [1, ...] F32 copy of a stored tensor, checked against the expected shape.
Tensor batch_of_one(const SafetensorsFile& f, const std::string& name, const Shape& shape) {
  if (!f.contains(name)) throw_input_error(f.path(), ": compressed prompt has no tensor ", name);
  if (f.shape(name) != shape)
    throw_input_error(f.path(), ": tensor ", name, " has shape ", shape_str(f.shape(name)), ", expected ",
                      shape_str(shape));
  Shape batched = shape;
  batched.insert(batched.begin(), 1);
  return f.tensor(name).to_f32().clone().reshape(batched);
}

}  // namespace

void write_compressed_prompt(const std::string& path, const CompressedPromptFile& file) {
  const CompressedPrompt& p = file.prompt;
  std::vector<std::pair<std::string, Tensor>> tensors;
  int64_t n = 0;
  if (p.mode == CompressorMode::kKeyValue) {
    for (size_t layer = 0; layer < p.keys.size(); ++layer) {
      const Tensor& k = p.keys[layer];
      n = k.dim(1);
      tensors.emplace_back(layer_name(layer, "keys"), k.reshape({k.dim(1), k.dim(2), k.dim(3)}));
      tensors.emplace_back(layer_name(layer, "values"), p.values[layer].reshape({k.dim(1), k.dim(2), k.dim(3)}));
    }
  } else {
    n = p.embeddings.dim(1);
    tensors.emplace_back("embeddings", p.embeddings.reshape({n, p.embeddings.dim(2)}));
    tensors.emplace_back("ae_token", file.ae_token);
  }
  std::map<std::string, std::string> metadata = {{"format", kCompressedPromptFormat},
                                                 {"format_version", "1"},
                                                 {"mode", mode_text(p.mode)},
                                                 {"num_tokens", std::to_string(n)},
                                                 {"decoder_positions", positions_text(file.decoder_positions)},
                                                 {"text_tokens", std::to_string(p.text_lengths.at(0))},
                                                 {"source_bytes", std::to_string(file.source_bytes)},
                                                 {"model_sha256", file.model_sha256},
                                                 {"model_source", file.model_source},
                                                 {"checkpoint_sha256", file.checkpoint_sha256}};
  if (p.mode == CompressorMode::kEmbedding) {
    char text[32];
    const auto written = std::to_chars(text, text + sizeof text, file.memory_scale);  // shortest round trip
    metadata["memory_scale"] = std::string(text, written.ptr);
  }
  write_safetensors(path, tensors, metadata);
}

CompressedPromptFile read_compressed_prompt(const std::string& path) {
  const SafetensorsFile f = SafetensorsFile::open(path);
  const auto& m = f.metadata();
  if (m.count("format") == 0 || m.at("format") != kCompressedPromptFormat)
    throw_input_error(path, ": not a compressed prompt (safetensors metadata format is not '", kCompressedPromptFormat,
                      "'; make one with xcomp compress)");
  if (required(m, "format_version", path) != "1")
    throw_input_error(path, ": compressed prompt format_version ", m.at("format_version"), " is not supported (1 is)");
  CompressedPromptFile out;
  const std::string& mode = required(m, "mode", path);
  if (mode != "kv" && mode != "embedding") throw_input_error(path, ": unknown mode '", mode, "'");
  out.prompt.mode = mode == "kv" ? CompressorMode::kKeyValue : CompressorMode::kEmbedding;
  const std::string& positions = required(m, "decoder_positions", path);
  if (positions != "reference" && positions != "after_prefix")
    throw_input_error(path, ": unknown decoder_positions '", positions, "'");
  out.decoder_positions = positions == "reference" ? DecoderPositions::kReference : DecoderPositions::kAfterPrefix;
  const int64_t n = parse_count(required(m, "num_tokens", path), "num_tokens", path);
  out.prompt.text_lengths = {parse_count(required(m, "text_tokens", path), "text_tokens", path)};
  out.source_bytes = parse_count(required(m, "source_bytes", path), "source_bytes", path);
  out.model_sha256 = required(m, "model_sha256", path);
  out.model_source = required(m, "model_source", path);
  out.checkpoint_sha256 = required(m, "checkpoint_sha256", path);
  if (n < 1) throw_input_error(path, ": num_tokens must be at least 1");
  if (out.prompt.mode == CompressorMode::kKeyValue) {
    for (size_t layer = 0; f.contains(layer_name(layer, "keys")); ++layer) {
      const Shape& shape = f.shape(layer_name(layer, "keys"));
      if (shape.size() != 3 || shape[0] != n)
        throw_input_error(path, ": tensor ", layer_name(layer, "keys"), " has shape ", shape_str(shape), ", expected [",
                          n, ", kv_heads, head_dim]");
      out.prompt.keys.push_back(batch_of_one(f, layer_name(layer, "keys"), shape));
      out.prompt.values.push_back(batch_of_one(f, layer_name(layer, "values"), shape));
    }
    if (out.prompt.keys.empty()) throw_input_error(path, ": K/V compressed prompt has no layers.0.keys");
  } else {
    if (!f.contains("embeddings") || f.shape("embeddings").size() != 2)
      throw_input_error(path, ": embedding-mode compressed prompt needs a tensor embeddings [N, hidden]");
    const int64_t hidden = f.shape("embeddings")[1];
    out.prompt.embeddings = batch_of_one(f, "embeddings", {n, hidden});
    out.ae_token = batch_of_one(f, "ae_token", {1, hidden}).reshape({1, hidden});
    if (m.count("memory_scale")) {
      const std::string& text = m.at("memory_scale");
      const auto parsed = std::from_chars(text.data(), text.data() + text.size(), out.memory_scale);
      if (text.empty() || parsed.ec != std::errc() || parsed.ptr != text.data() + text.size() || !(out.memory_scale > 0))
        throw_input_error(path, ": metadata memory_scale is not a positive number: '", text, "'");
    }
  }
  return out;
}

void check_prompt_model(const CompressedPromptFile& file, const std::string& path, const std::string& model_sha256,
                        const std::string& model_source) {
  if (file.model_sha256 != model_sha256)
    throw_input_error(path, " was compressed with another model (", file.model_source, ", identity ",
                      file.model_sha256.substr(0, 16), "...) than ", model_source, " (identity ",
                      model_sha256.substr(0, 16), "...); compress the text again with this model");
}

}  // namespace xcomp
