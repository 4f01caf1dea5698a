// One interface over every tokenizer xcomp reads: SentencePiece .model files, llama2.c
// tokenizer .bin files, and byte-level BPE (GGUF "gpt2" vocabularies and Hugging Face
// tokenizer.json files; LLaMA-3's tiktoken ranks reuse the same BPE core).
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
  // The text of one token, as stored in the vocabulary (for inspection and tests).
  virtual std::string token_text(int32_t id) const = 0;
  // A short description: kind and source file.
  virtual std::string name() const = 0;
};

// Opens a tokenizer by file: *.model (SentencePiece), *.bin (llama2.c), tokenizer.json
// (byte-level BPE). A directory means the tokenizer file inside it, tried in that order.
// Throws InputError naming the path for a missing or malformed file.
std::unique_ptr<Tokenizer> load_tokenizer(const std::string& path);

}  // namespace xcomp
