// The byte-pair-encoding core shared by every byte-level tokenizer: GPT-2-style
// vocabularies with an explicit merge list (Hugging Face tokenizer.json, GGUF "gpt2")
// and tiktoken rank files (LLaMA-3), where the priority of a merge is the rank of the
// token it produces. Both reduce to one table: (left id, right id) -> (rank, merged id).
// Tokens are raw byte strings here; any text mapping (GPT-2's byte-to-unicode) is the
// front end's business.
#pragma once

#include <cstdint>
#include <mutex>
#include <string>
#include <unordered_map>
#include <utility>
#include <vector>

namespace xcomp {

class BytePairEncoder {
 public:
  struct Merge {
    int32_t rank;       // lower merges first
    int32_t merged_id;  // the token the pair becomes
  };

  // token_bytes[id] is the byte string of token id (may be empty for unused ids).
  // A byte that is not a token becomes unk_id, or is dropped when unk_id < 0, as in
  // Hugging Face (SmolLM2's vocabulary lacks bytes that never occur in UTF-8 text,
  // 0xC0 and 0xF5..0xFF, and a few control bytes).
  explicit BytePairEncoder(std::vector<std::string> token_bytes, int32_t unk_id = -1);

  // GPT-2 front end: merges[i] = (left bytes, right bytes) with priority i. A merge
  // whose sides or result are not in the vocabulary is an InputError naming source and i.
  void add_merges(const std::vector<std::pair<std::string, std::string>>& merges, const std::string& source);
  // tiktoken front end: every token of two or more bytes may be formed from any split
  // into two tokens, with priority = its own rank (its id).
  void add_rank_merges();
  // When set, a piece that is itself a token is emitted whole without merging (tiktoken
  // and Hugging Face's ignore_merges do this).
  void set_whole_piece_lookup(bool on) { whole_piece_lookup_ = on; }
  bool whole_piece_lookup() const { return whole_piece_lookup_; }

  // One pre-tokenized piece of raw bytes to ids. Thread-safe; results are cached.
  std::vector<int32_t> encode(const std::string& piece) const;

  // -1 when the bytes are not a token.
  int32_t find(const std::string& bytes) const;
  const std::vector<std::string>& token_bytes() const { return token_bytes_; }

 private:
  std::vector<int32_t> merge_all(const std::string& piece) const;
  static uint64_t pair_key(int32_t left, int32_t right) {
    return (static_cast<uint64_t>(static_cast<uint32_t>(left)) << 32) | static_cast<uint32_t>(right);
  }

  std::vector<std::string> token_bytes_;
  std::unordered_map<std::string, int32_t> ids_;
  int32_t byte_ids_[256];  // -1: dropped
  std::unordered_map<uint64_t, Merge> merges_;
  bool whole_piece_lookup_ = false;

  // Pre-tokens repeat a lot in natural text ("the", " and"), so their ids are cached.
  mutable std::mutex cache_mutex_;
  mutable std::unordered_map<std::string, std::vector<int32_t>> cache_;
};

}  // namespace xcomp
