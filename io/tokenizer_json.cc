// Reading Hugging Face tokenizer.json files into a ByteLevelTokenizer. Only what
// byte-level BPE models use is supported (SmolLM2, LLaMA-3, GPT-2); anything else is
// refused by name rather than tokenized differently from Hugging Face.
#include <algorithm>
#include <cctype>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <sstream>

#include "io/gpt2_byte_unicode.h"
#include "io/sha256.h"
#include "io/mapped_file.h"
#include "io/tokenizer_bytelevel.h"
#include "model/input_error.h"

namespace xcomp {
namespace {

using nlohmann::json;

// Ids beyond this are refused before anything is sized by them.
constexpr int64_t kMaxVocab = 1 << 24;

// Where in the file a key sits, for messages: "tok.json: pre_tokenizer.pretokenizers[1]".
struct Where {
  const std::string& source;
  std::string key;
  Where at(const std::string& child) const { return {source, key.empty() ? child : key + "." + child}; }
  Where index(size_t i) const { return {source, key + "[" + std::to_string(i) + "]"}; }
  std::string str() const { return source + ": " + key; }
};

const json& member(const json& obj, const char* key, const Where& w) {
  if (!obj.is_object()) throw_input_error(w.str(), ": expected a JSON object");
  auto it = obj.find(key);
  if (it == obj.end()) throw_input_error(w.at(key).str(), ": missing");
  return *it;
}

std::string get_string(const json& obj, const char* key, const Where& w) {
  const json& v = member(obj, key, w);
  if (!v.is_string()) throw_input_error(w.at(key).str(), ": expected a string");
  return v.get<std::string>();
}

bool get_bool(const json& obj, const char* key, bool fallback, const Where& w) {
  auto it = obj.find(key);
  if (it == obj.end() || it->is_null()) return fallback;
  if (!it->is_boolean()) throw_input_error(w.at(key).str(), ": expected true or false");
  return it->get<bool>();
}

// A key that must be absent, null or equal to its neutral value.
void require_neutral(const json& obj, const char* key, const json& neutral, const Where& w) {
  auto it = obj.find(key);
  if (it != obj.end() && !it->is_null() && *it != neutral) {
    throw_input_error(w.at(key).str(), ": ", it->dump(), " is not supported (expected null or ", neutral.dump(), ")");
  }
}

SplitBehavior parse_behavior(const json& obj, const Where& w) {
  std::string b = get_string(obj, "behavior", w);
  if (b == "Isolated") return SplitBehavior::kIsolated;
  if (b == "Removed") return SplitBehavior::kRemoved;
  if (b == "MergedWithPrevious") return SplitBehavior::kMergedWithPrevious;
  if (b == "MergedWithNext") return SplitBehavior::kMergedWithNext;
  if (b == "Contiguous") return SplitBehavior::kContiguous;
  throw_input_error(w.at("behavior").str(), ": unknown split behavior \"", b, "\"");
}

// A literal split string as a regex that matches exactly it.
std::string quote_regex(const std::string& literal) {
  std::string out;
  for (char c : literal) {
    if (std::isalnum(static_cast<unsigned char>(c)) || static_cast<unsigned char>(c) >= 0x80) {
      out += c;
    } else {
      out += '\\';
      out += c;
    }
  }
  return out;
}

void parse_split(const json& obj, const Where& w, PreTokenizer& pre) {
  const json& pattern = member(obj, "pattern", w);
  std::string regex;
  if (pattern.is_object() && pattern.contains("Regex") && pattern["Regex"].is_string()) {
    regex = pattern["Regex"].get<std::string>();
  } else if (pattern.is_object() && pattern.contains("String") && pattern["String"].is_string()) {
    regex = quote_regex(pattern["String"].get<std::string>());
  } else {
    throw_input_error(w.at("pattern").str(), ": expected {\"Regex\": ...} or {\"String\": ...}");
  }
  pre.add_split(regex, parse_behavior(obj, w), get_bool(obj, "invert", false, w), w.at("pattern").str());
}

// Returns whether a ByteLevel step was seen (its vocabulary is then in GPT-2's byte alphabet).
bool parse_pre_tokenizer(const json& obj, const Where& w, PreTokenizer& pre) {
  std::string type = get_string(obj, "type", w);
  if (type == "Sequence") {
    const json& list = member(obj, "pretokenizers", w);
    if (!list.is_array()) throw_input_error(w.at("pretokenizers").str(), ": expected an array");
    bool byte_level = false;
    for (size_t i = 0; i < list.size(); ++i) {
      byte_level |= parse_pre_tokenizer(list[i], w.at("pretokenizers").index(i), pre);
    }
    return byte_level;
  }
  if (type == "ByteLevel") {
    if (get_bool(obj, "add_prefix_space", true, w)) pre.add_prefix_space();
    if (get_bool(obj, "use_regex", true, w)) pre.add_split(kGpt2Pattern, SplitBehavior::kIsolated, false, w.str());
    return true;
  }
  if (type == "Digits") {
    const char* pattern = get_bool(obj, "individual_digits", false, w) ? R"(\p{N})" : R"(\p{N}+)";
    pre.add_split(pattern, SplitBehavior::kIsolated, false, w.str());
    return false;
  }
  if (type == "Split") {
    parse_split(obj, w, pre);
    return false;
  }
  throw_input_error(w.at("type").str(), ": pre-tokenizer \"", type,
                    "\" is not supported (expected ByteLevel, Digits, Split or Sequence)");
}

std::vector<std::pair<std::string, std::string>> parse_merges(const json& merges, const Where& w) {
  if (!merges.is_array()) throw_input_error(w.str(), ": expected an array");
  std::vector<std::pair<std::string, std::string>> out;
  out.reserve(merges.size());
  for (size_t i = 0; i < merges.size(); ++i) {
    const json& m = merges[i];
    std::string left, right;
    if (m.is_string()) {
      const std::string& s = m.get_ref<const std::string&>();
      size_t space = s.find(' ');
      if (space == std::string::npos || s.find(' ', space + 1) != std::string::npos) {
        throw_input_error(w.index(i).str(), ": expected \"left right\" with one space");
      }
      left = s.substr(0, space);
      right = s.substr(space + 1);
    } else if (m.is_array() && m.size() == 2 && m[0].is_string() && m[1].is_string()) {
      left = m[0].get<std::string>();
      right = m[1].get<std::string>();
    } else {
      throw_input_error(w.index(i).str(), ": expected \"left right\" or [left, right]");
    }
    auto l = bytes_from_gpt2_unicode(left), r = bytes_from_gpt2_unicode(right);
    if (!l || !r) throw_input_error(w.index(i).str(), ": a side is not in GPT-2's byte-level alphabet");
    out.emplace_back(std::move(*l), std::move(*r));
  }
  return out;
}

std::vector<AddedToken> parse_added_tokens(const json& j, const Where& w) {
  std::vector<AddedToken> out;
  auto it = j.find("added_tokens");
  if (it == j.end() || it->is_null()) return out;
  Where list = w.at("added_tokens");
  if (!it->is_array()) throw_input_error(list.str(), ": expected an array");
  for (size_t i = 0; i < it->size(); ++i) {
    const json& t = (*it)[i];
    Where tw = list.index(i);
    const json& id = member(t, "id", tw);
    if (!id.is_number_integer() || id.get<int64_t>() < 0 || id.get<int64_t>() >= kMaxVocab) {
      throw_input_error(tw.at("id").str(), ": expected an id in [0, ", kMaxVocab, ")");
    }
    if (get_bool(t, "single_word", false, tw)) throw_input_error(tw.at("single_word").str(), ": true is not supported");
    AddedToken a;
    a.id = static_cast<int32_t>(id.get<int64_t>());
    a.content = get_string(t, "content", tw);
    a.special = get_bool(t, "special", false, tw);
    a.lstrip = get_bool(t, "lstrip", false, tw);
    a.rstrip = get_bool(t, "rstrip", false, tw);
    out.push_back(std::move(a));
  }
  return out;
}

// id -> vocabulary text, sized to cover every vocabulary and added-token id.
std::vector<std::string> parse_vocab(const json& vocab, const std::vector<AddedToken>& added, const Where& w) {
  if (!vocab.is_object()) throw_input_error(w.str(), ": expected an object of token -> id");
  int64_t size = 0;
  for (auto it = vocab.begin(); it != vocab.end(); ++it) {
    if (!it.value().is_number_integer() || it.value().get<int64_t>() < 0 || it.value().get<int64_t>() >= kMaxVocab) {
      throw_input_error(w.str(), ": token ", json(it.key()).dump(), " has no id in [0, ", kMaxVocab, ")");
    }
    size = std::max(size, it.value().get<int64_t>() + 1);
  }
  for (const AddedToken& a : added) size = std::max<int64_t>(size, a.id + 1);
  std::vector<std::string> texts(size);
  std::vector<bool> seen(size, false);
  for (auto it = vocab.begin(); it != vocab.end(); ++it) {
    auto id = it.value().get<int64_t>();
    if (seen[id]) throw_input_error(w.str(), ": id ", id, " is used twice");
    seen[id] = true;
    texts[id] = it.key();
  }
  for (const AddedToken& a : added) {
    if (!seen[a.id]) texts[a.id] = a.content;
  }
  return texts;
}

// The model section: a BPE core over the vocabulary's bytes.
std::shared_ptr<const BytePairEncoder> parse_bpe_model(const json& model, const std::vector<std::string>& texts,
                                                       const Where& w) {
  std::string type = get_string(model, "type", w);
  if (type != "BPE") throw_input_error(w.at("type").str(), ": model \"", type, "\" is not supported (expected \"BPE\")");
  require_neutral(model, "dropout", 0.0, w);
  require_neutral(model, "continuing_subword_prefix", "", w);
  require_neutral(model, "end_of_word_suffix", "", w);
  require_neutral(model, "byte_fallback", false, w);
  std::vector<std::string> bytes(texts.size());
  for (size_t id = 0; id < texts.size(); ++id) {
    // Tokens outside the byte alphabet (added tokens spelled plainly) cannot come out of BPE.
    if (auto b = bytes_from_gpt2_unicode(texts[id])) bytes[id] = std::move(*b);
  }
  int32_t unk_id = -1;
  auto unk = model.find("unk_token");
  if (unk != model.end() && unk->is_string()) {
    for (size_t id = 0; id < texts.size() && unk_id < 0; ++id)
      if (texts[id] == unk->get<std::string>()) unk_id = static_cast<int32_t>(id);
    if (unk_id < 0) throw_input_error(w.at("unk_token").str(), ": ", unk->dump(), " is not in the vocabulary");
  }
  auto bpe = std::make_shared<BytePairEncoder>(std::move(bytes), unk_id);
  bpe->add_merges(parse_merges(member(model, "merges", w), w.at("merges")), w.at("merges").str());
  bpe->set_whole_piece_lookup(get_bool(model, "ignore_merges", false, w));
  return bpe;
}

json parse_json(const std::string& bytes, const std::string& path) {
  try {
    return json::parse(bytes);
  } catch (const json::exception& e) {
    throw_input_error(path, ": not valid JSON: ", e.what());
  }
}

// bos_token / eos_token of a tokenizer_config.json ("<s>" or {"content": "<s>"}).
std::string config_token(const json& config, const char* key) {
  auto it = config.find(key);
  if (it == config.end()) return "";
  if (it->is_string()) return it->get<std::string>();
  if (it->is_object() && it->contains("content") && (*it)["content"].is_string()) return (*it)["content"].get<std::string>();
  return "";
}

int32_t find_text(const std::vector<std::string>& texts, const std::string& text) {
  if (text.empty()) return -1;
  for (size_t id = 0; id < texts.size(); ++id)
    if (texts[id] == text) return static_cast<int32_t>(id);
  return -1;
}

// Everything but bos/eos, which tokenizer.json does not record.
ByteLevelTokenizer::Parts parts_from_json(const json& j, const std::string& source) {
  Where root{source, ""};
  if (!j.is_object()) throw_input_error(source, ": expected a JSON object at the top level");
  require_neutral(j, "normalizer", json::object(), root);
  ByteLevelTokenizer::Parts parts;
  parts.added = parse_added_tokens(j, root);
  const json& model = member(j, "model", root);
  parts.token_texts = parse_vocab(member(model, "vocab", root.at("model")), parts.added, root.at("model.vocab"));
  parts.bpe = parse_bpe_model(model, parts.token_texts, root.at("model"));
  const json& pre = member(j, "pre_tokenizer", root);
  if (pre.is_null() || !parse_pre_tokenizer(pre, root.at("pre_tokenizer"), parts.pre)) {
    throw_input_error(root.at("pre_tokenizer").str(), ": byte-level BPE needs a ByteLevel pre-tokenizer");
  }
  parts.name = "byte-level BPE from " + source;
  return parts;
}

}  // namespace

std::unique_ptr<Tokenizer> tokenizer_from_json(const json& j, const std::string& source, int32_t bos_id,
                                               int32_t eos_id, const std::string& sha256) {
  ByteLevelTokenizer::Parts parts = parts_from_json(j, source);
  parts.sha256 = sha256;
  auto in_range = [&](int32_t id) { return id >= 0 && static_cast<size_t>(id) < parts.token_texts.size() ? id : -1; };
  parts.bos_id = in_range(bos_id);
  parts.eos_id = in_range(eos_id);
  return std::make_unique<ByteLevelTokenizer>(std::move(parts));
}

std::unique_ptr<Tokenizer> load_tokenizer_json(const std::string& path) {
  const std::string bytes = read_file_bytes(path);
  ByteLevelTokenizer::Parts parts = parts_from_json(parse_json(bytes, path), path);
  parts.sha256 = sha256_hex(bytes);
  // tokenizer.json does not say which tokens are BOS/EOS; tokenizer_config.json does.
  // Without one, the usual names are tried.
  std::string bos, eos;
  auto config_path = std::filesystem::path(path).parent_path() / "tokenizer_config.json";
  if (std::filesystem::exists(config_path)) {
    json config = parse_json(read_file_bytes(config_path.string()), config_path.string());
    if (config.is_object()) {
      bos = config_token(config, "bos_token");
      eos = config_token(config, "eos_token");
    }
  }
  auto pick = [&](const std::string& configured, std::initializer_list<const char*> usual) {
    if (!configured.empty()) return find_text(parts.token_texts, configured);
    for (const char* name : usual) {
      int32_t id = find_text(parts.token_texts, name);
      if (id >= 0) return id;
    }
    return -1;
  };
  parts.bos_id = pick(bos, {"<|begin_of_text|>", "<s>", "<|endoftext|>"});
  parts.eos_id = pick(eos, {"<|end_of_text|>", "</s>", "<|endoftext|>"});
  return std::make_unique<ByteLevelTokenizer>(std::move(parts));
}

}  // namespace xcomp
