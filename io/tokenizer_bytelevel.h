// Byte-level BPE tokenizers (GPT-2 style: SmolLM2, LLaMA-3): added tokens are cut out
// first, the rest is pre-tokenized by regex and each piece's bytes are merged by the
// shared BPE core. Built from a Hugging Face tokenizer.json (tokenizer_json.cc), from a
// GGUF "gpt2" vocabulary (tokenizer_gguf.cc, via the same JSON) or, later, from
// tiktoken ranks.
#pragma once

#include <memory>
#include <nlohmann/json_fwd.hpp>
#include <string>
#include <vector>

#include "io/added_tokens.h"
#include "io/bpe.h"
#include "io/pretokenizer.h"
#include "io/tokenizer.h"

namespace xcomp {

class ByteLevelTokenizer : public Tokenizer {
 public:
  struct Parts {
    std::shared_ptr<const BytePairEncoder> bpe;
    std::vector<std::string> token_texts;  // id -> text as the vocabulary stores it
    PreTokenizer pre;
    std::vector<AddedToken> added;
    int32_t bos_id = -1;
    int32_t eos_id = -1;
    std::string name;    // kind and source file
    std::string sha256;  // of the defining file (see Tokenizer::sha256)
  };
  explicit ByteLevelTokenizer(Parts parts);

  std::vector<int32_t> encode(const std::string& text, bool parse_special = false) const override;
  std::string decode(const std::vector<int32_t>& ids, bool skip_special = false) const override;
  int32_t vocab_size() const override { return static_cast<int32_t>(token_texts_.size()); }
  int32_t bos_id() const override { return bos_id_; }
  int32_t eos_id() const override { return eos_id_; }
  int32_t eot_id() const override { return eot_id_; }
  std::string token_text(int32_t id) const override;
  std::string name() const override { return name_; }
  std::string sha256() const override { return sha256_; }

 private:
  void check_id(int32_t id) const;

  std::shared_ptr<const BytePairEncoder> bpe_;
  std::vector<std::string> token_texts_;
  PreTokenizer pre_;
  AddedTokenSplitter splitter_;
  std::vector<signed char> added_kind_;  // per id: 0 vocabulary, 1 added, 2 added special
  bool has_plain_added_ = false;         // any added token that is not special
  std::vector<std::string> added_content_;
  int32_t bos_id_, eos_id_;
  int32_t eot_id_ = -1;  // the added token <|eot_id|> or <|im_end|>
  std::string name_;
  std::string sha256_;
};

// A parsed Hugging Face tokenizer.json; source names it in errors (the file, or the
// GGUF it was made from); sha256 is that of the file's bytes. Unsupported models,
// normalizers or pre-tokenizers are an InputError naming source and the key.
std::unique_ptr<Tokenizer> tokenizer_from_json(const nlohmann::json& json, const std::string& source,
                                               int32_t bos_id, int32_t eos_id, const std::string& sha256);

// A Hugging Face tokenizer.json (BPE model with byte-level pre-tokenization). bos/eos
// come from a tokenizer_config.json beside it when there is one.
std::unique_ptr<Tokenizer> load_tokenizer_json(const std::string& path);

}  // namespace xcomp
