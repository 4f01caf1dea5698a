// GGUF tokenizers. A "gpt2" vocabulary is turned into the tokenizer.json Hugging Face
// would have, and that one JSON both builds the in-memory tokenizer and is what gets
// written, so the direct and the converted paths cannot disagree. A "llama" vocabulary
// (scored SentencePiece pieces) becomes the llama2.c-style scored tokenizer.
#include "io/tokenizer_gguf.h"

#include <filesystem>
#include <nlohmann/json.hpp>
#include <unordered_set>

#include "io/atomic_file.h"
#include "io/pretokenizer.h"
#include "io/sha256.h"
#include "io/tokenizer_bytelevel.h"
#include "io/tokenizer_llama2c.h"
#include "model/input_error.h"

namespace xcomp {
namespace {

using nlohmann::json;
namespace fs = std::filesystem;

constexpr int32_t kControl = 3, kUserDefined = 4;

void check_sizes(const GgufTokenizerData& d) {
  if (d.tokens.empty()) throw_input_error(d.source, ": tokenizer.ggml.tokens is missing or empty");
  if (!d.token_types.empty() && d.token_types.size() != d.tokens.size()) {
    throw_input_error(d.source, ": tokenizer.ggml.token_type has ", d.token_types.size(), " entries for ",
                      d.tokens.size(), " tokens");
  }
  auto check_id = [&](int32_t id, const char* key) {
    if (id < -1 || id >= static_cast<int64_t>(d.tokens.size())) {
      throw_input_error(d.source, ": ", key, " = ", id, " is outside the vocabulary of ", d.tokens.size());
    }
  };
  check_id(d.bos_id, "tokenizer.ggml.bos_token_id");
  check_id(d.eos_id, "tokenizer.ggml.eos_token_id");
}

int32_t token_type(const GgufTokenizerData& d, size_t id) { return d.token_types.empty() ? 1 : d.token_types[id]; }

json byte_level(bool use_regex) {
  return {{"type", "ByteLevel"}, {"add_prefix_space", false}, {"trim_offsets", true}, {"use_regex", use_regex}};
}

// The pre_tokenizer section of the model's own tokenizer.json, by llama.cpp's name for it.
json pre_tokenizer_for(const GgufTokenizerData& d) {
  if (d.pre == "smollm") {
    // SmolLM2's tokenizer.json: digits one by one, then GPT-2's regex.
    return {{"type", "Sequence"},
            {"pretokenizers", {{{"type", "Digits"}, {"individual_digits", true}}, byte_level(true)}}};
  }
  if (d.pre == "llama-bpe") {
    // LLaMA-3's tokenizer.json: its own regex, then ByteLevel without GPT-2's regex.
    json split = {{"type", "Split"},
                  {"pattern", {{"Regex", kLlama3Pattern}}},
                  {"behavior", "Isolated"},
                  {"invert", false}};
    return {{"type", "Sequence"}, {"pretokenizers", {split, byte_level(false)}}};
  }
  if (d.pre == "gpt-2" || d.pre == "default" || d.pre.empty()) return byte_level(true);
  throw_input_error(d.source, ": tokenizer.ggml.pre = \"", d.pre,
                    "\" is not supported (expected smollm, llama-bpe, gpt-2 or default)");
}

json added_tokens_json(const GgufTokenizerData& d) {
  json added = json::array();
  for (size_t id = 0; id < d.tokens.size(); ++id) {
    int32_t type = token_type(d, id);
    if (type != kControl && type != kUserDefined) continue;
    added.push_back({{"id", id},
                     {"content", d.tokens[id]},
                     {"single_word", false},
                     {"lstrip", false},
                     {"rstrip", false},
                     {"normalized", false},
                     {"special", type == kControl}});
  }
  return added;
}

json tokenizer_json_from_gguf(const GgufTokenizerData& d) {
  check_sizes(d);
  json vocab = json::object();
  for (size_t id = 0; id < d.tokens.size(); ++id) {
    // JSON keys are unique: a repeated token keeps its first id, as llama.cpp's lookup does.
    if (!vocab.contains(d.tokens[id])) vocab[d.tokens[id]] = id;
  }
  json model = {{"type", "BPE"},
                {"dropout", nullptr},
                {"unk_token", nullptr},
                {"continuing_subword_prefix", nullptr},
                {"end_of_word_suffix", nullptr},
                {"fuse_unk", false},
                {"byte_fallback", false},
                {"ignore_merges", d.pre == "llama-bpe"},  // as LLaMA-3's tokenizer.json
                {"vocab", std::move(vocab)},
                {"merges", d.merges}};
  return {{"version", "1.0"},
          {"truncation", nullptr},
          {"padding", nullptr},
          {"added_tokens", added_tokens_json(d)},
          {"normalizer", nullptr},
          {"pre_tokenizer", pre_tokenizer_for(d)},
          {"post_processor", nullptr},
          {"decoder", byte_level(true)},
          {"model", std::move(model)}};
}

// What a Hugging Face directory records beside tokenizer.json: which tokens are BOS/EOS.
json tokenizer_config_from_gguf(const GgufTokenizerData& d) {
  json config = {{"tokenizer_class", "PreTrainedTokenizerFast"}, {"add_bos_token", d.add_bos}};
  if (d.bos_id >= 0) config["bos_token"] = d.tokens[d.bos_id];
  if (d.eos_id >= 0) config["eos_token"] = d.tokens[d.eos_id];
  if (d.unk_id >= 0 && d.unk_id < static_cast<int32_t>(d.tokens.size())) config["unk_token"] = d.tokens[d.unk_id];
  if (d.pad_id >= 0 && d.pad_id < static_cast<int32_t>(d.tokens.size())) config["pad_token"] = d.tokens[d.pad_id];
  if (!d.chat_template.empty()) config["chat_template"] = d.chat_template;
  return config;
}

ScoredPiece::Kind piece_kind(int32_t gguf_type) {
  switch (gguf_type) {
    case 2: return ScoredPiece::Kind::kUnknown;
    case kControl: return ScoredPiece::Kind::kControl;
    case 5: return ScoredPiece::Kind::kUnused;
    case 6: return ScoredPiece::Kind::kByte;
    default: return ScoredPiece::Kind::kNormal;  // normal and user-defined
  }
}

std::vector<ScoredPiece> scored_pieces(const GgufTokenizerData& d) {
  check_sizes(d);
  if (d.scores.size() != d.tokens.size()) {
    throw_input_error(d.source, ": tokenizer.ggml.scores has ", d.scores.size(), " entries for ", d.tokens.size(),
                      " tokens");
  }
  static const std::string kSentencePieceSpace = "\xE2\x96\x81";  // U+2581
  std::vector<ScoredPiece> pieces(d.tokens.size());
  for (size_t id = 0; id < d.tokens.size(); ++id) {
    std::string text = d.tokens[id];
    for (size_t at = text.find(kSentencePieceSpace); at != std::string::npos; at = text.find(kSentencePieceSpace, at + 1)) {
      text.replace(at, kSentencePieceSpace.size(), " ");
    }
    pieces[id] = {std::move(text), d.scores[id], piece_kind(token_type(d, id))};
  }
  return pieces;
}

void require_model(const GgufTokenizerData& d) {
  if (d.model != "gpt2" && d.model != "llama") {
    throw_input_error(d.source, ": tokenizer.ggml.model = \"", d.model, "\" is not supported (expected gpt2 or llama)");
  }
}

// The exact bytes of the tokenizer.json written for a "gpt2" vocabulary; Tokenizer::sha256
// hashes the same dump(2), so a GGUF and its converted directory agree.
std::string tokenizer_json_text(const json& tokenizer_json, const std::string& source) {
  try {
    return tokenizer_json.dump(2);
  } catch (const json::exception& e) {  // a token that is not UTF-8
    throw_input_error(source, ": tokenizer.ggml.tokens cannot be written as JSON: ", e.what());
  }
}

}  // namespace

std::unique_ptr<Tokenizer> tokenizer_from_gguf(const GgufTokenizerData& data) {
  require_model(data);
  if (data.model == "gpt2") {
    json j = tokenizer_json_from_gguf(data);
    // A token that is not UTF-8 makes the file unwritable but the tokenizer still usable;
    // its identity then hashes the text with such bytes replaced (U+FFFD).
    std::string sha256 = sha256_hex(j.dump(2, ' ', false, json::error_handler_t::replace));
    return tokenizer_from_json(j, data.source, data.bos_id, data.eos_id, sha256);
  }
  std::vector<ScoredPiece> pieces = scored_pieces(data);
  std::string sha256 = sha256_hex(llama2c_tokenizer_bytes(pieces));  // what the writer writes
  return std::make_unique<Llama2cTokenizer>(std::move(pieces), data.bos_id, data.eos_id,
                                            "scored-piece tokenizer from " + data.source, sha256);
}

std::string write_tokenizer_from_gguf(const GgufTokenizerData& data, const std::string& out_dir) {
  require_model(data);
  std::error_code ec;
  fs::create_directories(out_dir, ec);
  if (ec) throw_input_error(out_dir, ": cannot create directory: ", ec.message());
  if (data.model == "llama") {
    std::string path = (fs::path(out_dir) / "tokenizer.bin").string();
    write_file_atomically(path, llama2c_tokenizer_bytes(scored_pieces(data)));
    return path;
  }
  std::string path = (fs::path(out_dir) / "tokenizer.json").string();
  write_file_atomically(path, tokenizer_json_text(tokenizer_json_from_gguf(data), data.source));
  // A converter writing the model's own tokenizer_config.json knows better; keep it.
  fs::path config = fs::path(out_dir) / "tokenizer_config.json";
  if (!fs::exists(config)) write_file_atomically(config.string(), tokenizer_config_from_gguf(data).dump(2));
  return path;
}

}  // namespace xcomp
