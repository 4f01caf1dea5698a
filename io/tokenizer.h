// One interface over every tokenizer xcomp reads: SentencePiece .model files, llama2.c
// tokenizer .bin files, and byte-level BPE (GGUF "gpt2" vocabularies, Hugging Face
// tokenizer.json files and LLaMA-3's tiktoken ranks, on one BPE core). encode and
// decode are const and safe to call from several threads at once.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

namespace xcomp {

class Tokenizer {
 public:
  virtual ~Tokenizer() = default;

  // Text to ids, without BOS/EOS. With parse_special, the text of a special (control)
  // token such as "<|im_start|>" becomes that token, as Hugging Face tokenizers do by
  // default; without it, such text is tokenized as ordinary characters.
  virtual std::vector<int32_t> encode(const std::string& text, bool parse_special = false) const = 0;
  // Ids to text; special tokens print as their text, unless skip_special.
  virtual std::string decode(const std::vector<int32_t>& ids, bool skip_special = false) const = 0;

  virtual int32_t vocab_size() const = 0;
  virtual int32_t bos_id() const = 0;  // -1 when the vocabulary has none
  virtual int32_t eos_id() const = 0;
  // The token that ends a chat turn (LLaMA-3's <|eot_id|>, ChatML's <|im_end|>); -1 when none.
  virtual int32_t eot_id() const { return -1; }
  // The text of one token, as stored in the vocabulary (for inspection and tests).
  virtual std::string token_text(int32_t id) const = 0;
  // A short description: kind and source file.
  virtual std::string name() const = 0;
  // SHA-256 (lowercase hex) of the tokenizer's defining file: the .model, .bin,
  // tokenizer.json or tiktoken file it was loaded from; for one built from GGUF metadata,
  // of the file write_tokenizer_from_gguf writes, so a GGUF and its converted directory
  // agree. Data shards record it so the trainer can refuse a mismatched tokenizer.
  virtual std::string sha256() const = 0;
};

// Opens a tokenizer by file: tiktoken ranks (by content, whatever the name: LLaMA-3's
// tokenizer.model), *.model (SentencePiece), *.bin (llama2.c), tokenizer.json (byte-level
// BPE). A directory means the tokenizer file inside it: tokenizer.model, tokenizer.bin,
// tokenizer.json, in that order.
// Throws InputError naming the path for a missing or malformed file.
std::unique_ptr<Tokenizer> load_tokenizer(const std::string& path);

}  // namespace xcomp
