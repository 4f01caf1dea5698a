// Pre-tokenization for byte-level BPE: the text is cut into pieces (words, digit runs,
// whitespace runs) by PCRE2 regular expressions before BPE runs inside each piece. The
// steps mirror Hugging Face's pre_tokenizers (Split, Digits, ByteLevel), applied in
// order, each to every piece the previous step produced.
#pragma once

#include <functional>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

namespace xcomp {

// What happens to a regex match, as in Hugging Face's SplitDelimiterBehavior.
enum class SplitBehavior { kIsolated, kRemoved, kMergedWithPrevious, kMergedWithNext, kContiguous };

// GPT-2's pre-tokenizer regex (Hugging Face's ByteLevel with use_regex).
extern const char* const kGpt2Pattern;
// LLaMA-3's (the Split step of its tokenizer.json; llama.cpp's "llama-bpe").
extern const char* const kLlama3Pattern;

class PreTokenizer {
 public:
  // Adds a regex split step. The pattern is compiled with PCRE2_UTF | PCRE2_UCP; a
  // pattern that does not compile is an InputError naming `where` (file and key).
  void add_split(const std::string& pattern, SplitBehavior behavior, bool invert, const std::string& where);
  // Hugging Face ByteLevel's add_prefix_space: a piece not starting with ' ' gets one.
  void add_prefix_space();

  // Calls fn with each piece of valid UTF-8 text, in order; text that is not UTF-8 is an
  // InputError naming `what` (the tokenizer) and the byte offset. A piece is valid only
  // during the call. Thread-safe. This is the encoder's hot path: pieces are views into
  // the text (no copies) and regexes run JIT-compiled where PCRE2 supports it.
  using PieceFn = std::function<void(std::string_view)>;
  void for_each_piece(std::string_view text, const std::string& what, const PieceFn& fn) const;
  // The same pieces, copied (for tests and inspection).
  std::vector<std::string> split(const std::string& text, const std::string& what) const;

  bool empty() const { return steps_.empty(); }

 private:
  struct Regex;
  struct MatchData;
  struct Step {
    std::shared_ptr<const Regex> regex;  // null: the prefix-space step
    SplitBehavior behavior = SplitBehavior::kIsolated;
    bool invert = false;
  };
  // Applies steps_[k..] to piece; match_data[k] is step k's scratch space.
  void apply(size_t k, std::string_view piece, bool utf_checked, std::vector<MatchData>& match_data,
             const std::string& what, const PieceFn& fn) const;

  std::vector<Step> steps_;
};

}  // namespace xcomp
