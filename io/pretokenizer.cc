#include "io/pretokenizer.h"

#define PCRE2_CODE_UNIT_WIDTH 8
#include <pcre2.h>

#include <glog/logging.h>

#include "model/input_error.h"

namespace xcomp {

const char* const kGpt2Pattern =
    R"('s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+)";
const char* const kLlama3Pattern =
    R"((?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+)";

namespace {

std::string pcre2_message(int code) {
  PCRE2_UCHAR buf[256];
  int n = pcre2_get_error_message(code, buf, sizeof buf);
  return n < 0 ? "PCRE2 error " + std::to_string(code) : std::string(reinterpret_cast<char*>(buf));
}

bool is_utf_error(int rc) { return rc <= PCRE2_ERROR_UTF8_ERR1 && rc >= PCRE2_ERROR_UTF8_ERR21; }

// A span of the piece, and whether the regex matched it.
struct Segment {
  size_t begin, end;
  bool is_match;
};

// Length of the UTF-8 sequence starting with byte c (1 for continuation bytes, so an
// empty match always moves forward).
size_t utf8_length(unsigned char c) {
  if (c >= 0xF0) return 4;
  if (c >= 0xE0) return 3;
  if (c >= 0xC0) return 2;
  return 1;
}

}  // namespace

struct PreTokenizer::Regex {
  pcre2_code* code = nullptr;
  ~Regex() { pcre2_code_free(code); }
};

// Per-call scratch space for one step's matches (pcre2_match_data is not shareable
// between threads, so each call makes its own).
struct PreTokenizer::MatchData {
  explicit MatchData(const pcre2_code* code)
      : data(code ? pcre2_match_data_create_from_pattern(code, nullptr) : nullptr, pcre2_match_data_free) {
    CHECK(code == nullptr || data != nullptr) << "pcre2_match_data_create_from_pattern: out of memory";
  }
  std::unique_ptr<pcre2_match_data, void (*)(pcre2_match_data*)> data;
};

void PreTokenizer::add_split(const std::string& pattern, SplitBehavior behavior, bool invert,
                             const std::string& where) {
  auto regex = std::make_shared<Regex>();
  int error = 0;
  PCRE2_SIZE offset = 0;
  regex->code = pcre2_compile(reinterpret_cast<PCRE2_SPTR>(pattern.data()), pattern.size(),
                              PCRE2_UTF | PCRE2_UCP, &error, &offset, nullptr);
  if (regex->code == nullptr) {
    throw_input_error(where, ": regex does not compile at offset ", offset, ": ", pcre2_message(error),
                      " (pattern ", pattern, ")");
  }
  // JIT makes matching several times faster; where the platform has no JIT, pcre2_match
  // interprets the pattern instead, with the same results.
  pcre2_jit_compile(regex->code, PCRE2_JIT_COMPLETE);
  steps_.push_back({std::move(regex), behavior, invert});
}

void PreTokenizer::add_prefix_space() { steps_.push_back({nullptr, SplitBehavior::kIsolated, false}); }

namespace {

// The next match of code in piece at or after offset, as [begin, end);
// false when there is none. A JIT stack overflow (a huge whitespace run against a
// lookahead) is retried with the interpreter, which uses the heap.
bool next_match(const pcre2_code* code, pcre2_match_data* md, std::string_view piece, size_t offset, uint32_t options,
                const std::string& what, size_t& begin, size_t& end) {
  auto subject = reinterpret_cast<PCRE2_SPTR>(piece.data());
  int rc = pcre2_match(code, subject, piece.size(), offset, options, md, nullptr);
  if (rc == PCRE2_ERROR_JIT_STACKLIMIT) rc = pcre2_match(code, subject, piece.size(), offset, options | PCRE2_NO_JIT, md, nullptr);
  if (rc == PCRE2_ERROR_NOMATCH) return false;
  if (is_utf_error(rc)) {
    throw_input_error(what, ": text is not valid UTF-8 near byte ", pcre2_get_startchar(md), ": ", pcre2_message(rc));
  }
  if (rc < 0) throw_input_error(what, ": pre-tokenizer regex failed: ", pcre2_message(rc));
  const PCRE2_SIZE* ov = pcre2_get_ovector_pointer(md);
  begin = ov[0];
  end = ov[1];
  CHECK(begin >= offset && end >= begin && end <= piece.size()) << "PCRE2 match outside the subject";
  return true;
}

// Calls on_gap / on_match for the text between matches and each non-empty match, in
// order. The first call checks the subject is UTF-8 (unless the caller already has);
// later calls skip that check, which would otherwise make the loop quadratic.
template <class OnGap, class OnMatch>
void scan_matches(const pcre2_code* code, pcre2_match_data* md, std::string_view piece, bool utf_checked,
                  const std::string& what, OnGap on_gap, OnMatch on_match) {
  size_t offset = 0, covered = 0, begin = 0, end = 0;
  uint32_t options = utf_checked ? PCRE2_NO_UTF_CHECK : 0;
  while (offset < piece.size()) {
    if (!next_match(code, md, piece, offset, options, what, begin, end)) break;
    options = PCRE2_NO_UTF_CHECK;
    if (end == begin) {  // an empty match cuts nothing; step over one character
      offset = begin + utf8_length(static_cast<unsigned char>(piece[begin]));
      continue;
    }
    if (begin > covered) on_gap(covered, begin);
    on_match(begin, end);
    covered = offset = end;
  }
  if (covered < piece.size()) on_gap(covered, piece.size());
}

// Hugging Face's rules for what becomes of matches and the text between them.
std::vector<Segment> apply_behavior(std::vector<Segment> segments, SplitBehavior behavior) {
  std::vector<Segment> out;
  bool previous_match = false;
  switch (behavior) {
    case SplitBehavior::kIsolated:
      return segments;
    case SplitBehavior::kRemoved:
      for (const Segment& s : segments)
        if (!s.is_match) out.push_back(s);
      return out;
    case SplitBehavior::kMergedWithPrevious:
      for (const Segment& s : segments) {
        if (s.is_match && !previous_match && !out.empty()) {
          out.back().end = s.end;
        } else {
          out.push_back(s);
        }
        previous_match = s.is_match;
      }
      return out;
    case SplitBehavior::kMergedWithNext:
      for (auto it = segments.rbegin(); it != segments.rend(); ++it) {
        if (it->is_match && !previous_match && !out.empty()) {
          out.back().begin = it->begin;
        } else {
          out.push_back(*it);
        }
        previous_match = it->is_match;
      }
      return {out.rbegin(), out.rend()};
    case SplitBehavior::kContiguous:
      for (const Segment& s : segments) {
        if (s.is_match == previous_match && !out.empty()) {
          out.back().end = s.end;
        } else {
          out.push_back(s);
        }
        previous_match = s.is_match;
      }
      return out;
  }
  return segments;
}

}  // namespace

void PreTokenizer::for_each_piece(std::string_view text, const std::string& what, const PieceFn& fn) const {
  if (text.empty()) return;
  std::vector<MatchData> match_data;
  match_data.reserve(steps_.size());
  for (const Step& step : steps_) match_data.emplace_back(step.regex ? step.regex->code : nullptr);
  apply(0, text, false, match_data, what, fn);
}

std::vector<std::string> PreTokenizer::split(const std::string& text, const std::string& what) const {
  std::vector<std::string> pieces;
  for_each_piece(text, what, [&](std::string_view piece) { pieces.emplace_back(piece); });
  return pieces;
}

void PreTokenizer::apply(size_t k, std::string_view piece, bool utf_checked, std::vector<MatchData>& match_data,
                         const std::string& what, const PieceFn& fn) const {
  if (k == steps_.size()) {
    fn(piece);
    return;
  }
  const Step& step = steps_[k];
  // Pieces of a piece split at match boundaries are whole characters: no re-check needed.
  auto next = [&](std::string_view sub) {
    if (!sub.empty()) apply(k + 1, sub, true, match_data, what, fn);
  };
  if (!step.regex) {
    if (piece[0] == ' ') {
      next(piece);
    } else {
      std::string prefixed = " " + std::string(piece);
      apply(k + 1, prefixed, utf_checked, match_data, what, fn);
    }
    return;
  }
  pcre2_match_data* md = match_data[k].data.get();
  if (step.behavior == SplitBehavior::kIsolated && !step.invert) {  // the common case, without a segment list
    auto emit = [&](size_t begin, size_t end) { next(piece.substr(begin, end - begin)); };
    scan_matches(step.regex->code, md, piece, utf_checked, what, emit, emit);
    return;
  }
  std::vector<Segment> segments;
  scan_matches(
      step.regex->code, md, piece, utf_checked, what,
      [&](size_t begin, size_t end) { segments.push_back({begin, end, step.invert}); },
      [&](size_t begin, size_t end) { segments.push_back({begin, end, !step.invert}); });
  for (const Segment& s : apply_behavior(std::move(segments), step.behavior)) {
    next(piece.substr(s.begin, s.end - s.begin));
  }
}

}  // namespace xcomp
