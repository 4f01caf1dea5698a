// tiktoken rank files on the byte-level BPE core. tiktoken merges, inside each
// pre-token, the adjacent pair whose joined bytes have the lowest rank (leftmost first)
// and emits a pre-token that is itself a token whole; BytePairEncoder's rank merges with
// whole-piece lookup do exactly that.
#include "io/mapped_file.h"
#include "io/tokenizer_tiktoken.h"

#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <sstream>

#include "io/gpt2_byte_unicode.h"
#include "io/sha256.h"
#include "io/tokenizer_bytelevel.h"
#include "model/input_error.h"

namespace xcomp {
namespace {

using nlohmann::json;

// Ranks beyond this are refused before anything is sized by them.
constexpr int64_t kMaxRank = 1 << 24;
// Special-token ids may follow the ranks by at most this much.
constexpr int64_t kMaxSpecialTokens = 1 << 16;

int base64_value(char c) {
  if (c >= 'A' && c <= 'Z') return c - 'A';
  if (c >= 'a' && c <= 'z') return c - 'a' + 26;
  if (c >= '0' && c <= '9') return c - '0' + 52;
  if (c == '+') return 62;
  if (c == '/') return 63;
  return -1;
}

// Standard padded base64; false on any other character or a bad length.
bool decode_base64(std::string_view text, std::string& out) {
  out.clear();
  if (text.empty() || text.size() % 4 != 0) return false;
  size_t padding = 0;
  while (padding < 2 && text[text.size() - 1 - padding] == '=') ++padding;
  uint32_t bits = 0;
  int nbits = 0;
  for (size_t i = 0; i < text.size() - padding; ++i) {
    int v = base64_value(text[i]);
    if (v < 0) return false;
    bits = (bits << 6) | static_cast<uint32_t>(v);
    nbits += 6;
    if (nbits >= 8) {
      nbits -= 8;
      out += static_cast<char>((bits >> nbits) & 0xFF);
    }
  }
  return true;
}

// "<base64> <rank>" -> (bytes, rank); false when the line does not have that form.
bool parse_rank_line(std::string_view line, std::string& bytes, int64_t& rank) {
  size_t space = line.find(' ');
  if (space == std::string_view::npos || space + 1 >= line.size()) return false;
  if (!decode_base64(line.substr(0, space), bytes)) return false;
  rank = 0;
  for (char c : line.substr(space + 1)) {
    if (c < '0' || c > '9' || rank >= kMaxRank) return false;
    rank = rank * 10 + (c - '0');
  }
  return rank < kMaxRank;
}

// The next line of text from pos (without its '\n' or "\r\n"); advances pos.
std::string_view next_line(std::string_view text, size_t& pos) {
  size_t end = text.find('\n', pos);
  if (end == std::string_view::npos) end = text.size();
  std::string_view line = text.substr(pos, end - pos);
  pos = end + 1;
  if (!line.empty() && line.back() == '\r') line.remove_suffix(1);
  return line;
}

// rank -> token bytes, checked to be a permutation of 0..n-1 that has every single byte.
std::vector<std::string> parse_ranks(const std::string& text, const std::string& path) {
  std::vector<std::string> tokens;
  std::vector<bool> seen;
  std::string bytes;
  size_t line_number = 0;
  for (size_t pos = 0; pos < text.size();) {
    std::string_view line = next_line(text, pos);
    ++line_number;
    if (line.empty()) continue;
    int64_t rank = 0;
    if (!parse_rank_line(line, bytes, rank)) {
      throw_input_error(path, ": line ", line_number, ": expected \"<base64 token> <rank below ", kMaxRank, ">\"");
    }
    if (rank >= static_cast<int64_t>(tokens.size())) {
      tokens.resize(rank + 1);
      seen.resize(rank + 1, false);
    }
    if (seen[rank]) throw_input_error(path, ": line ", line_number, ": rank ", rank, " appears twice");
    seen[rank] = true;
    tokens[rank] = bytes;
  }
  if (tokens.empty()) throw_input_error(path, ": no ranks (expected \"<base64 token> <rank>\" lines)");
  for (size_t rank = 0; rank < tokens.size(); ++rank) {
    if (!seen[rank]) throw_input_error(path, ": rank ", rank, " is missing (ranks must be 0..", tokens.size() - 1, ")");
  }
  return tokens;
}

std::vector<std::string> standard_llama3_special_tokens() {
  std::vector<std::string> names = {"<|begin_of_text|>", "<|end_of_text|>", "<|reserved_special_token_0|>",
                                    "<|reserved_special_token_1|>", "<|reserved_special_token_2|>",
                                    "<|reserved_special_token_3|>", "<|start_header_id|>", "<|end_header_id|>",
                                    "<|reserved_special_token_4|>", "<|eot_id|>"};
  for (int i = 5; i <= 250; ++i) names.push_back("<|reserved_special_token_" + std::to_string(i) + "|>");
  return names;
}

struct SpecialTokens {
  std::vector<AddedToken> added;
  std::string bos = "<|begin_of_text|>", eos = "<|end_of_text|>";
};

// bos_token / eos_token of a tokenizer_config.json ("<s>" or {"content": "<s>"}).
void read_config_token(const json& config, const char* key, std::string& out) {
  auto it = config.find(key);
  if (it == config.end()) return;
  if (it->is_string()) out = it->get<std::string>();
  if (it->is_object() && it->contains("content") && (*it)["content"].is_string()) out = (*it)["content"];
}

std::vector<AddedToken> parse_added_tokens_decoder(const json& decoder, int64_t first_id, const std::string& where) {
  if (!decoder.is_object()) throw_input_error(where, ": expected an object of id -> token");
  std::vector<AddedToken> added;
  for (auto it = decoder.begin(); it != decoder.end(); ++it) {
    std::string key = where + "[\"" + it.key() + "\"]";
    char* end = nullptr;
    long long id = std::strtoll(it.key().c_str(), &end, 10);
    if (it.key().empty() || *end != '\0' || id < first_id || id >= first_id + kMaxSpecialTokens) {
      throw_input_error(key, ": expected an id in [", first_id, ", ", first_id + kMaxSpecialTokens,
                        ") (special tokens follow the ranks)");
    }
    const json& t = it.value();
    if (!t.is_object() || !t.contains("content") || !t["content"].is_string() || t["content"].get<std::string>().empty()) {
      throw_input_error(key, ".content: expected a non-empty string");
    }
    AddedToken a;
    a.id = static_cast<int32_t>(id);
    a.content = t["content"];
    a.special = t.value("special", true);
    a.lstrip = t.value("lstrip", false);
    a.rstrip = t.value("rstrip", false);
    added.push_back(std::move(a));
  }
  return added;
}

// From tokenizer_config.json beside the ranks, or LLaMA-3's standard list.
SpecialTokens special_tokens_for(const std::string& path, int64_t first_id) {
  SpecialTokens out;
  auto config_path = (std::filesystem::path(path).parent_path() / "tokenizer_config.json").string();
  if (std::filesystem::exists(config_path)) {
    json config;
    try {
      config = json::parse(read_file_bytes(config_path));
    } catch (const json::exception& e) {
      throw_input_error(config_path, ": not valid JSON: ", e.what());
    }
    if (!config.is_object()) throw_input_error(config_path, ": expected a JSON object");
    read_config_token(config, "bos_token", out.bos);
    read_config_token(config, "eos_token", out.eos);
    if (config.contains("added_tokens_decoder")) {
      out.added = parse_added_tokens_decoder(config["added_tokens_decoder"], first_id,
                                             config_path + ": added_tokens_decoder");
      return out;
    }
  }
  std::vector<std::string> names = standard_llama3_special_tokens();
  for (size_t i = 0; i < names.size(); ++i) out.added.push_back({static_cast<int32_t>(first_id + i), names[i]});
  return out;
}

int32_t added_id(const std::vector<AddedToken>& added, const std::string& content) {
  for (const AddedToken& t : added)
    if (t.content == content) return t.id;
  return -1;
}

}  // namespace

bool looks_like_tiktoken_file(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return false;
  char head[512];
  in.read(head, sizeof head);
  std::string_view text(head, static_cast<size_t>(in.gcount()));
  size_t pos = 0;
  std::string_view line = next_line(text, pos);
  if (pos > text.size() && text.size() == sizeof head) return false;  // no line end in the head
  std::string bytes;
  int64_t rank;
  return parse_rank_line(line, bytes, rank);
}

std::unique_ptr<Tokenizer> load_tiktoken_tokenizer(const std::string& path) {
  const std::string file = read_file_bytes(path);
  std::vector<std::string> tokens = parse_ranks(file, path);
  auto bpe = std::make_shared<BytePairEncoder>(tokens);
  for (int b = 0; b < 256; ++b) {
    if (bpe->find(std::string(1, static_cast<char>(b))) < 0) {
      throw_input_error(path, ": byte ", b, " is not a token (tiktoken needs all 256 single bytes)");
    }
  }
  bpe->add_rank_merges();
  bpe->set_whole_piece_lookup(true);

  const auto n = static_cast<int64_t>(tokens.size());
  SpecialTokens special = special_tokens_for(path, n);
  ByteLevelTokenizer::Parts parts;
  parts.bpe = std::move(bpe);
  // Shown as Hugging Face's converted LLaMA-3 tokenizer.json spells them ("Ġthe").
  parts.token_texts.resize(n);
  for (int64_t id = 0; id < n; ++id) parts.token_texts[id] = gpt2_unicode_from_bytes(tokens[id]);
  for (const AddedToken& t : special.added) {
    if (t.id >= static_cast<int64_t>(parts.token_texts.size())) parts.token_texts.resize(t.id + 1);
    parts.token_texts[t.id] = t.content;
  }
  parts.pre.add_split(kLlama3Pattern, SplitBehavior::kIsolated, false, path);
  parts.added = std::move(special.added);
  parts.bos_id = added_id(parts.added, special.bos);
  parts.eos_id = added_id(parts.added, special.eos);
  parts.name = "tiktoken BPE " + path;
  parts.sha256 = sha256_hex(file);
  return std::make_unique<ByteLevelTokenizer>(std::move(parts));
}

}  // namespace xcomp
