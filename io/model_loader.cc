#include "io/model_loader.h"

#include <filesystem>

#include "io/gguf.h"
#include "io/gguf_llama.h"
#include "io/hf_model.h"
#include "io/llama2c.h"
#include "io/tokenizer_gguf.h"
#include "model/input_error.h"

namespace xcomp {

namespace fs = std::filesystem;

namespace {
bool has_suffix(const std::string& s, const std::string& suffix) {
  return s.size() >= suffix.size() && s.compare(s.size() - suffix.size(), suffix.size(), suffix) == 0;
}

// SentencePiece-style vocabularies (LLaMA-1/2, llama2.c) start every text with BOS;
// byte-level BPE vocabularies as Hugging Face configures them for SmolLM2 do not.
bool tokenizer_adds_bos(const std::string& tokenizer_path) {
  return has_suffix(tokenizer_path, ".model") || has_suffix(tokenizer_path, ".bin");
}

// The file load_tokenizer(dir) picks (same order), or "" when the directory has none.
std::string directory_tokenizer(const std::string& dir) {
  for (const char* name : {"tokenizer.model", "tokenizer.bin", "tokenizer.json"})
    if (fs::exists(fs::path(dir) / name)) return (fs::path(dir) / name).string();
  return "";
}
}  // namespace

LoadedModel load_model(const std::string& path, const std::string& tokenizer_path, ModelWeights weights) {
  LoadedModel m;
  std::error_code ec;
  if (!fs::exists(path, ec)) throw_input_error(path, ": no such file or directory");
  if (fs::is_directory(path, ec)) {
    HfModelDir dir = read_hf_model_dir(path);
    m.format = "huggingface";
    m.config = std::move(dir.config);
    m.tensors = std::move(dir.tensors);
    const std::string tokenizer_file = directory_tokenizer(path);
    if (tokenizer_path.empty() && !tokenizer_file.empty()) {
      m.tokenizer = load_tokenizer(tokenizer_file);
      m.add_bos = tokenizer_adds_bos(tokenizer_file);
    }
  } else if (has_suffix(path, ".gguf")) {
    GgufModel gguf = read_gguf_llama(
        path, weights == ModelWeights::kLoad ? GgufWeights::kDequantize : GgufWeights::kSkip);
    m.format = "gguf";
    m.config = std::move(gguf.config);
    for (auto& [name, tensor] : gguf.tensors) m.tensors.emplace(name, std::move(tensor));
    if (tokenizer_path.empty()) {
      m.tokenizer = tokenizer_from_gguf(gguf.tokenizer);
      m.add_bos = gguf.tokenizer.model == "llama";
    }
  } else if (has_suffix(path, ".bin")) {
    Llama2cModel l2c = read_llama2c(path);
    m.format = "llama2c";
    m.config = std::move(l2c.config);
    m.tensors = std::move(l2c.tensors);
  } else {
    throw_input_error(path, ": not a model (expected a Hugging Face directory, a .gguf file or a llama2.c .bin)");
  }
  if (!tokenizer_path.empty()) {
    m.tokenizer = load_tokenizer(tokenizer_path);
    m.add_bos = tokenizer_adds_bos(tokenizer_path);
  }
  if (m.tokenizer && m.tokenizer->vocab_size() > m.config.vocab_size)
    throw_input_error(m.tokenizer->name(), ": tokenizer has ", m.tokenizer->vocab_size(),
                      " tokens but the model's vocabulary (", m.config.source, ") has ", m.config.vocab_size);
  return m;
}

LlamaWeights load_weights(const LoadedModel& model) { return llama_weights_from_named(model.config, model.tensors); }

Tensor load_token_embeddings(const std::string& path) {
  constexpr const char* kName = "model.embed_tokens.weight";
  if (has_suffix(path, ".gguf") && fs::is_regular_file(path)) {
    // Dequantising the whole model to read one tensor would cost seconds and gigabytes.
    const GgufFile file = GgufFile::open(path);
    const GgufTensorInfo* info = file.find_tensor("token_embd.weight");
    if (!info) throw_input_error(path, ": GGUF file has no token_embd.weight");
    return file.dequantize(*info);
  }
  const LoadedModel model = load_model(path, "", ModelWeights::kSkipWhenCostly);
  const auto it = model.tensors.find(kName);
  if (it == model.tensors.end()) throw_input_error(path, ": model has no ", kName);
  return it->second.to_f32();
}

}  // namespace xcomp
