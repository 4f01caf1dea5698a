// The byte-pair-encoding core shared by every byte-level tokenizer: GPT-2-style
// vocabularies with an explicit merge list (Hugging Face tokenizer.json, GGUF "gpt2")
// and tiktoken rank files (LLaMA-3), where the priority of a merge is the rank of the
// token it produces. Both reduce to one table: (left id, right id) -> (rank, merged id).
// Tokens are raw byte strings here; any text mapping (GPT-2's byte-to-unicode) is the
// front end's business.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
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

  // One pre-tokenized piece of raw bytes to ids, appended to out. Thread-safe: encoding
  // only reads the tables (there is no shared cache to lock).
  void encode(std::string_view piece, std::vector<int32_t>& out) const;
  std::vector<int32_t> encode(std::string_view piece) const;

  // -1 when the bytes are not a token.
  int32_t find(std::string_view bytes) const;
  const std::vector<std::string>& token_bytes() const { return token_bytes_; }

 private:
  // Whole pieces are looked up by their bytes once per pre-token: open-addressing tables
  // whose slots hold a token's first 8 bytes, so most lookups touch one cache line. The
  // full table (megabytes for LLaMA-3) misses the CPU caches; a small one holding only the
  // lowest ids, which BPE vocabularies give to their most frequent tokens, mostly does not.
  struct IdSlot {
    uint64_t head;    // the first 8 bytes, zero-padded
    uint32_t length;  // 0 when free
    int32_t id;
  };
  struct IdTable {
    std::vector<IdSlot> slots;  // size a power of two, at most half full
    int shift = 64;
  };
  void build_id_table(IdTable& table, size_t token_count);
  int32_t find_in(const IdTable& table, std::string_view bytes, uint64_t hash, uint64_t head) const;

  // Merges are looked up several times per byte of text, so they live in an open-addressing
  // table (one multiply and usually one probe) rather than std::unordered_map.
  struct MergeSlot {
    uint64_t key;  // kEmpty when free
    Merge merge;
  };
  static constexpr uint64_t kEmpty = ~uint64_t{0};
  static uint64_t pair_key(int32_t left, int32_t right) {
    return (static_cast<uint64_t>(static_cast<uint32_t>(left)) << 32) | static_cast<uint32_t>(right);
  }
  // Keeps an existing entry unless replace says the new one wins.
  template <class Replace>
  void insert_merge(int32_t left, int32_t right, Merge merge, Replace replace);
  void grow_merges();
  const Merge* find_merge(int32_t left, int32_t right) const;

  void merge_short(std::string_view piece, std::vector<int32_t>& out) const;
  void merge_long(std::string_view piece, std::vector<int32_t>& out) const;

  std::vector<std::string> token_bytes_;
  IdTable ids_;      // every token
  IdTable hot_ids_;  // the lowest ids only
  int32_t byte_ids_[256];                              // -1: dropped
  std::vector<MergeSlot> merge_slots_;                 // size a power of two, at most half full
  size_t merge_count_ = 0;
  int merge_shift_ = 64;
  bool whole_piece_lookup_ = false;
};

}  // namespace xcomp
