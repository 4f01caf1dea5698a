// load_tokenizer: picks the reader by file name, or by which tokenizer file a model
// directory holds.
#include "io/tokenizer.h"

#include <filesystem>

#include "io/tokenizer_bytelevel.h"
#include "io/tokenizer_llama2c.h"
#include "io/tokenizer_sentencepiece.h"
#include "io/tokenizer_tiktoken.h"
#include "model/input_error.h"

namespace xcomp {
namespace fs = std::filesystem;

namespace {

bool ends_with(const std::string& s, const std::string& suffix) {
  return s.size() >= suffix.size() && s.compare(s.size() - suffix.size(), suffix.size(), suffix) == 0;
}

std::unique_ptr<Tokenizer> load_file(const std::string& path) {
  std::error_code ec;
  if (!fs::is_regular_file(path, ec)) throw_input_error(path, ": no such tokenizer file");
  // LLaMA-3 ships its tiktoken ranks as tokenizer.model, so the content decides first.
  if (looks_like_tiktoken_file(path)) return load_tiktoken_tokenizer(path);
  if (ends_with(path, ".model")) return load_sentencepiece_tokenizer(path);
  if (ends_with(path, ".bin")) return load_llama2c_tokenizer(path);
  if (ends_with(path, ".json")) return load_tokenizer_json(path);
  throw_input_error(path, ": unknown tokenizer file type (expected *.model, *.bin, *.json or tiktoken ranks)");
}

}  // namespace

std::unique_ptr<Tokenizer> load_tokenizer(const std::string& path) {
  std::error_code ec;
  if (!fs::is_directory(path, ec)) return load_file(path);
  // The order prefers SentencePiece's own file where a directory has several.
  for (const char* name : {"tokenizer.model", "tokenizer.bin", "tokenizer.json"}) {
    fs::path candidate = fs::path(path) / name;
    if (fs::is_regular_file(candidate, ec)) return load_file(candidate.string());
  }
  throw_input_error(path, ": directory has no tokenizer.model, tokenizer.bin or tokenizer.json");
}

}  // namespace xcomp
