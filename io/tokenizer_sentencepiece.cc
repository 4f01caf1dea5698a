// A Tokenizer over libsentencepiece. Encoding is SentencePiece's own (dummy prefix,
// byte fallback, the model's normalization rule) with one change: the model's
// remove_extra_whitespaces (on by default; tok512.model has it) is turned off, so runs of
// spaces and leading/trailing spaces survive and decode(encode(x)) == x, as with
// llama2.c's run.c and Hugging Face's converted (fast) LLaMA tokenizers; a compressor
// that regenerates text must see all of it. Control pieces such as "<s>" are never parsed
// from text, even with parse_special: SentencePiece has no such mode, and the text
// "<s>" is tokenized as its characters. Decoding follows the same rule as the llama2.c
// tokenizer so both give the same text for the same ids: control pieces print as their
// text (unless skip_special) and the dummy-prefix space is dropped at the start and
// after each control piece.
#include "io/mapped_file.h"
#include "io/tokenizer_sentencepiece.h"

#include <sentencepiece_processor.h>

#include <fstream>
#include <sstream>

#include "io/sha256.h"
#include "model/input_error.h"

namespace xcomp {
namespace {

class SentencePieceTokenizer : public Tokenizer {
 public:
  explicit SentencePieceTokenizer(const std::string& path) : path_(path) {
    const std::string bytes = read_file_bytes(path);
    sha256_ = sha256_hex(bytes);  // of the file as given, before the patch below
    // Protobuf merges a repeated occurrence of a message field into the first, so this
    // appended field 3 (normalizer_spec) sets only its field 4, remove_extra_whitespaces,
    // to false.
    std::string proto = bytes + std::string("\x1a\x02\x20\x00", 4);
    auto status = processor_.LoadFromSerializedProto(proto);
    if (!status.ok()) throw_input_error(path, ": not a readable SentencePiece model: ", status.ToString());
  }

  std::vector<int32_t> encode(const std::string& text, bool /*parse_special*/) const override {
    std::vector<int> ids;
    auto status = processor_.Encode(text, &ids);
    if (!status.ok()) throw_input_error(path_, ": cannot encode text: ", status.ToString());
    return {ids.begin(), ids.end()};
  }

  std::string decode(const std::vector<int32_t>& ids, bool skip_special) const override {
    std::string text;
    std::vector<int> run;  // ordinary pieces since the last control piece
    auto flush = [&] {
      if (run.empty()) return;
      std::string piece_text;
      auto status = processor_.Decode(run, &piece_text);
      if (!status.ok()) throw_input_error(path_, ": cannot decode: ", status.ToString());
      text += piece_text;
      run.clear();
    };
    for (int32_t id : ids) {
      check_id(id);
      if (processor_.IsControl(id)) {
        flush();
        if (!skip_special) text += processor_.IdToPiece(id);
      } else {
        run.push_back(id);
      }
    }
    flush();
    return text;
  }

  int32_t vocab_size() const override { return processor_.GetPieceSize(); }
  int32_t bos_id() const override { return processor_.bos_id(); }
  int32_t eos_id() const override { return processor_.eos_id(); }
  std::string token_text(int32_t id) const override {
    check_id(id);
    return processor_.IdToPiece(id);
  }
  std::string name() const override { return "SentencePiece " + path_; }
  std::string sha256() const override { return sha256_; }

 private:
  void check_id(int32_t id) const {
    if (id < 0 || id >= vocab_size()) {
      throw_input_error(path_, ": token id ", id, " is outside the vocabulary of ", vocab_size());
    }
  }

  std::string path_;
  std::string sha256_;
  sentencepiece::SentencePieceProcessor processor_;
};

}  // namespace

std::unique_ptr<Tokenizer> load_sentencepiece_tokenizer(const std::string& path) {
  return std::make_unique<SentencePieceTokenizer>(path);
}

}  // namespace xcomp
