// Scored-piece tokenizers in the SentencePiece BPE style, encoded the way llama2.c's
// run.c does: llama2.c tokenizer.bin files and GGUF "llama" vocabularies (pieces with
// scores and types). Merging picks the adjacent pair whose joined piece scores highest,
// which reproduces SentencePiece's BPE on these vocabularies.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <unordered_map>
#include <vector>

#include "io/added_tokens.h"
#include "io/tokenizer.h"

namespace xcomp {

struct ScoredPiece {
  enum class Kind { kNormal, kUnknown, kControl, kByte, kUnused };
  std::string text;  // spaces as ' ' (not SentencePiece's U+2581)
  float score = 0;
  Kind kind = Kind::kNormal;
};

class Llama2cTokenizer : public Tokenizer {
 public:
  // sha256: of the defining file (see Tokenizer::sha256).
  Llama2cTokenizer(std::vector<ScoredPiece> pieces, int32_t bos_id, int32_t eos_id, std::string name,
                   std::string sha256);

  // With parse_special, control pieces (such as "<s>") found in the text become their
  // ids, and the text after each one gets its own dummy-prefix space (as llama.cpp
  // does). Without it, such text is tokenized as characters, like SentencePiece.
  std::vector<int32_t> encode(const std::string& text, bool parse_special = false) const override;
  // Byte pieces "<0xAB>" become bytes; the dummy-prefix space is removed from the
  // first piece of the text and from the first piece after a control token, so
  // decode(encode(x)) == x.
  std::string decode(const std::vector<int32_t>& ids, bool skip_special = false) const override;
  int32_t vocab_size() const override { return static_cast<int32_t>(pieces_.size()); }
  int32_t bos_id() const override { return bos_id_; }
  int32_t eos_id() const override { return eos_id_; }
  std::string token_text(int32_t id) const override;
  std::string name() const override { return name_; }
  std::string sha256() const override { return sha256_; }

  const std::vector<ScoredPiece>& pieces() const { return pieces_; }

 private:
  void encode_text(const std::string& text, bool dummy_prefix, std::vector<int32_t>& ids) const;
  void append_bytes(const std::string& bytes, std::vector<int32_t>& ids) const;
  void merge(std::vector<int32_t>& ids) const;
  void build_pair_merges();
  int32_t find_pair(int32_t left, int32_t right) const;
  int32_t find(const std::string& text) const;
  void check_id(int32_t id) const;

  std::vector<ScoredPiece> pieces_;
  std::unordered_map<std::string, int32_t> ids_;  // normal pieces only: what encoding may produce
  int32_t byte_ids_[256];                          // -1 where there is no byte piece
  int32_t unk_id_ = -1;
  // (left id, right id) -> the normal piece spelling left's text + right's text: what
  // run.c finds by joining the two texts, precomputed so merging does no string work.
  std::unordered_map<uint64_t, int32_t> pair_merges_;
  int32_t bos_id_, eos_id_;
  AddedTokenSplitter control_splitter_;
  std::string name_;
  std::string sha256_;
};

// Reads llama2.c's tokenizer.bin: int32 max_token_length, then per token float32
// score, int32 length, bytes, up to the end of the file. bos 1, eos 2 (llama2.c's).
std::unique_ptr<Tokenizer> load_llama2c_tokenizer(const std::string& path);
// The same format, for writing (max_token_length is computed).
std::string llama2c_tokenizer_bytes(const std::vector<ScoredPiece>& pieces);

}  // namespace xcomp
