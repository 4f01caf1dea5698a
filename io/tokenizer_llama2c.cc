#include "io/tokenizer_llama2c.h"

#include "io/mapped_file.h"

#include <glog/logging.h>

#include <algorithm>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <queue>
#include <sstream>

#include "io/mapped_file.h"
#include "io/sha256.h"
#include "model/input_error.h"

namespace xcomp {
namespace {

// "<0xAB>" -> 0xAB, or -1.
int parse_byte_piece(const std::string& text) {
  if (text.size() != 6 || text.compare(0, 3, "<0x") != 0 || text[5] != '>') return -1;
  int value = 0;
  for (int i = 3; i < 5; ++i) {
    char c = text[i];
    int digit = (c >= '0' && c <= '9') ? c - '0' : (c >= 'A' && c <= 'F') ? c - 'A' + 10 : (c >= 'a' && c <= 'f') ? c - 'a' + 10 : -1;
    if (digit < 0) return -1;
    value = value * 16 + digit;
  }
  return value;
}

std::vector<AddedToken> control_tokens(const std::vector<ScoredPiece>& pieces) {
  std::vector<AddedToken> out;
  for (size_t id = 0; id < pieces.size(); ++id) {
    if (pieces[id].kind == ScoredPiece::Kind::kControl) out.push_back({static_cast<int32_t>(id), pieces[id].text});
  }
  return out;
}

}  // namespace

Llama2cTokenizer::Llama2cTokenizer(std::vector<ScoredPiece> pieces, int32_t bos_id, int32_t eos_id, std::string name,
                                   std::string sha256)
    : pieces_(std::move(pieces)), bos_id_(bos_id), eos_id_(eos_id), name_(std::move(name)), sha256_(std::move(sha256)) {
  std::fill(std::begin(byte_ids_), std::end(byte_ids_), -1);
  for (size_t i = 0; i < pieces_.size(); ++i) {
    auto id = static_cast<int32_t>(i);
    const ScoredPiece& p = pieces_[i];
    if (p.kind == ScoredPiece::Kind::kNormal) ids_.emplace(p.text, id);  // the first of duplicates wins
    if (p.kind == ScoredPiece::Kind::kUnknown && unk_id_ < 0) unk_id_ = id;
    int byte = p.kind == ScoredPiece::Kind::kByte ? parse_byte_piece(p.text) : -1;
    if (byte >= 0 && byte_ids_[byte] < 0) byte_ids_[byte] = id;
  }
  control_splitter_ = AddedTokenSplitter(control_tokens(pieces_));
  build_pair_merges();
}

namespace {
uint64_t pair_key(int32_t left, int32_t right) {
  return (static_cast<uint64_t>(static_cast<uint32_t>(left)) << 32) | static_cast<uint32_t>(right);
}
}  // namespace

// The ids encoding can put side by side are normal pieces (the first of duplicates),
// byte pieces and the unknown piece; every way a normal piece's text splits into the
// texts of two such ids is a merge.
void Llama2cTokenizer::build_pair_merges() {
  std::unordered_map<std::string, std::vector<int32_t>> symbols;
  for (const auto& [text, id] : ids_) symbols[text].push_back(id);
  for (int32_t id : byte_ids_) {
    if (id >= 0 && pieces_[id].kind == ScoredPiece::Kind::kByte) symbols[pieces_[id].text].push_back(id);
  }
  if (unk_id_ >= 0) symbols[pieces_[unk_id_].text].push_back(unk_id_);
  for (auto& [text, ids] : symbols) {
    std::sort(ids.begin(), ids.end());
    ids.erase(std::unique(ids.begin(), ids.end()), ids.end());
  }
  for (const auto& [text, merged] : ids_) {
    for (size_t split = 1; split < text.size(); ++split) {
      auto left = symbols.find(text.substr(0, split)), right = symbols.find(text.substr(split));
      if (left == symbols.end() || right == symbols.end()) continue;
      for (int32_t l : left->second)
        for (int32_t r : right->second) pair_merges_.emplace(pair_key(l, r), merged);
    }
  }
}

int32_t Llama2cTokenizer::find_pair(int32_t left, int32_t right) const {
  auto it = pair_merges_.find(pair_key(left, right));
  return it == pair_merges_.end() ? -1 : it->second;
}

int32_t Llama2cTokenizer::find(const std::string& text) const {
  auto it = ids_.find(text);
  return it == ids_.end() ? -1 : it->second;
}

std::vector<int32_t> Llama2cTokenizer::encode(const std::string& text, bool parse_special) const {
  std::vector<int32_t> ids;
  if (!parse_special) {
    encode_text(text, true, ids);
    return ids;
  }
  bool after_control = true;  // the text start counts as one: it gets the dummy prefix
  for (const auto& segment : control_splitter_.split(text, true)) {
    if (segment.id >= 0) {
      ids.push_back(segment.id);
      after_control = true;
    } else {
      encode_text(std::string(segment.text), after_control, ids);
      after_control = false;
    }
  }
  return ids;
}

// Byte fallback: one id per byte, or the unknown piece when the vocabulary lacks it.
void Llama2cTokenizer::append_bytes(const std::string& bytes, std::vector<int32_t>& ids) const {
  for (unsigned char b : bytes) {
    int32_t id = byte_ids_[b] >= 0 ? byte_ids_[b] : unk_id_;
    if (id < 0) {
      char hex[8];
      std::snprintf(hex, sizeof hex, "0x%02X", b);
      throw_input_error(name_, ": cannot encode byte ", hex, ": the vocabulary has no byte piece and no unknown piece");
    }
    ids.push_back(id);
  }
}

void Llama2cTokenizer::encode_text(const std::string& text, bool dummy_prefix, std::vector<int32_t>& ids) const {
  if (text.empty()) return;
  std::vector<int32_t> symbols;
  if (dummy_prefix) {
    int32_t space = find(" ");
    if (space >= 0) {
      symbols.push_back(space);
    } else {
      append_bytes(" ", symbols);
    }
  }
  // Group bytes into code points exactly as run.c does: a sequence starts at any
  // non-continuation byte and takes at most 4 bytes.
  std::string code_point;
  for (size_t i = 0; i < text.size(); ++i) {
    code_point += text[i];
    bool continues = i + 1 < text.size() && (static_cast<unsigned char>(text[i + 1]) & 0xC0) == 0x80;
    if (continues && code_point.size() < 4) continue;
    int32_t id = find(code_point);
    if (id >= 0) {
      symbols.push_back(id);
    } else {
      append_bytes(code_point, symbols);
    }
    code_point.clear();
  }
  merge(symbols);
  ids.insert(ids.end(), symbols.begin(), symbols.end());
}

// run.c merges the best-scoring adjacent pair (leftmost on ties) until none is a piece.
// A heap of candidates over a linked list gives the same sequence of merges without
// rescanning the whole text after each one; entries made stale by a merge are skipped.
void Llama2cTokenizer::merge(std::vector<int32_t>& ids) const {
  const int n = static_cast<int>(ids.size());
  std::vector<int> prev(n), next(n);
  for (int i = 0; i < n; ++i) {
    prev[i] = i - 1;
    next[i] = i + 1 < n ? i + 1 : -1;
  }
  struct Candidate {
    float score;
    int pos;
    int32_t left, right, merged;
    bool operator<(const Candidate& o) const { return score != o.score ? score < o.score : pos > o.pos; }
  };
  std::priority_queue<Candidate> heap;  // best score first, then leftmost
  auto push = [&](int pos) {
    if (pos < 0 || next[pos] < 0) return;
    int32_t merged = find_pair(ids[pos], ids[next[pos]]);
    if (merged >= 0) heap.push({pieces_[merged].score, pos, ids[pos], ids[next[pos]], merged});
  };
  for (int i = 0; i + 1 < n; ++i) push(i);
  while (!heap.empty()) {
    Candidate c = heap.top();
    heap.pop();
    int right = next[c.pos];
    if (ids[c.pos] != c.left || right < 0 || ids[right] != c.right) continue;  // stale
    ids[c.pos] = c.merged;
    ids[right] = -1;
    next[c.pos] = next[right];
    if (next[right] >= 0) prev[next[right]] = c.pos;
    push(prev[c.pos]);
    push(c.pos);
  }
  std::vector<int32_t> out;
  for (int i = 0; i >= 0 && n > 0; i = next[i]) out.push_back(ids[i]);
  ids = std::move(out);
}

void Llama2cTokenizer::check_id(int32_t id) const {
  if (id < 0 || id >= vocab_size()) {
    throw_input_error(name_, ": token id ", id, " is outside the vocabulary of ", vocab_size());
  }
}

std::string Llama2cTokenizer::decode(const std::vector<int32_t>& ids, bool skip_special) const {
  std::string text;
  bool strip_space = true;  // SentencePiece drops the dummy prefix at the start
  for (int32_t id : ids) {
    check_id(id);
    const ScoredPiece& p = pieces_[id];
    if (p.kind == ScoredPiece::Kind::kControl) {
      if (!skip_special) text += p.text;
      strip_space = true;
      continue;
    }
    int byte = p.kind == ScoredPiece::Kind::kByte ? parse_byte_piece(p.text) : -1;
    if (byte >= 0) {
      text += static_cast<char>(byte);
    } else if (strip_space && !p.text.empty() && p.text[0] == ' ') {
      text.append(p.text, 1, std::string::npos);
    } else {
      text += p.text;
    }
    strip_space = false;
  }
  return text;
}

std::string Llama2cTokenizer::token_text(int32_t id) const {
  check_id(id);
  return pieces_[id].text;
}

namespace {

// llama2.c's export wraps BOS/EOS in newlines for its own printing; the plain text
// matches SentencePiece's pieces.
std::string unwrap_newlines(const std::string& text) {
  if (text.size() >= 2 && text.front() == '\n' && text.back() == '\n') return text.substr(1, text.size() - 2);
  return text;
}

ScoredPiece::Kind llama2c_kind(int32_t id, const std::string& text) {
  if (id == 0 && text == "<unk>") return ScoredPiece::Kind::kUnknown;
  if ((id == 1 && text == "<s>") || (id == 2 && text == "</s>")) return ScoredPiece::Kind::kControl;
  if (parse_byte_piece(text) >= 0) return ScoredPiece::Kind::kByte;
  return ScoredPiece::Kind::kNormal;
}

template <class T>
T read_le(const std::string& bytes, size_t offset) {
  T value;
  std::memcpy(&value, bytes.data() + offset, sizeof value);  // x86/ARM are little-endian, as the format
  return value;
}

}  // namespace

std::unique_ptr<Tokenizer> load_llama2c_tokenizer(const std::string& path) {
  const std::string bytes = read_file_bytes(path);
  if (bytes.size() < 4) throw_input_error(path, ": too short for llama2.c's tokenizer header (4 bytes)");
  if (read_le<int32_t>(bytes, 0) <= 0) throw_input_error(path, ": max_token_length must be positive");
  std::vector<ScoredPiece> pieces;
  size_t offset = 4;
  while (offset < bytes.size()) {
    auto id = static_cast<int32_t>(pieces.size());
    if (bytes.size() - offset < 8) {
      throw_input_error(path, ": truncated at token ", id, " (byte ", offset, "): expected score and length");
    }
    float score = read_le<float>(bytes, offset);
    int32_t length = read_le<int32_t>(bytes, offset + 4);
    offset += 8;
    if (length < 0 || static_cast<size_t>(length) > bytes.size() - offset) {
      throw_input_error(path, ": token ", id, " has length ", length, " but ", bytes.size() - offset,
                        " bytes remain");
    }
    std::string text = bytes.substr(offset, length);
    offset += length;
    if (id == 1 || id == 2) text = unwrap_newlines(text);
    pieces.push_back({text, score, llama2c_kind(id, text)});
  }
  if (pieces.size() < 3) throw_input_error(path, ": has ", pieces.size(), " tokens; expected at least <unk>, <s>, </s>");
  return std::make_unique<Llama2cTokenizer>(std::move(pieces), 1, 2, "llama2.c tokenizer " + path, sha256_hex(bytes));
}

std::string llama2c_tokenizer_bytes(const std::vector<ScoredPiece>& pieces) {
  int32_t max_length = 1;
  for (const ScoredPiece& p : pieces) max_length = std::max<int32_t>(max_length, static_cast<int32_t>(p.text.size()));
  std::string out(reinterpret_cast<const char*>(&max_length), 4);
  for (const ScoredPiece& p : pieces) {
    auto length = static_cast<int32_t>(p.text.size());
    out.append(reinterpret_cast<const char*>(&p.score), 4);
    out.append(reinterpret_cast<const char*>(&length), 4);
    out += p.text;
  }
  return out;
}

}  // namespace xcomp
