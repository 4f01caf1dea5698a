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

struct MatchData {
  explicit MatchData(const pcre2_code* code) : data(pcre2_match_data_create_from_pattern(code, nullptr)) {
    CHECK(data != nullptr) << "pcre2_match_data_create_from_pattern: out of memory";
  }
  ~MatchData() { pcre2_match_data_free(data); }
  pcre2_match_data* data;
};

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
  steps_.push_back({std::move(regex), behavior, invert});
}

void PreTokenizer::add_prefix_space() { steps_.push_back({nullptr, SplitBehavior::kIsolated, false}); }

std::vector<std::string> PreTokenizer::split(const std::string& text, const std::string& what) const {
  if (text.empty()) return {};
  std::vector<std::string> pieces{text};
  for (const Step& step : steps_) {
    std::vector<std::string> next;
    next.reserve(pieces.size());
    for (const std::string& piece : pieces) apply(step, piece, what, next);
    pieces = std::move(next);
  }
  return pieces;
}

namespace {

// Every regex match in `piece`, with the unmatched spans between them.
std::vector<Segment> find_matches(const pcre2_code* code, const std::string& piece, const std::string& what) {
  MatchData md(code);
  std::vector<Segment> segments;
  size_t offset = 0, covered = 0;
  // The first call checks the whole subject is UTF-8; later calls skip that check,
  // which would otherwise make the loop quadratic.
  uint32_t options = 0;
  auto subject = reinterpret_cast<PCRE2_SPTR>(piece.data());
  while (offset < piece.size()) {
    int rc = pcre2_match(code, subject, piece.size(), offset, options, md.data, nullptr);
    if (rc == PCRE2_ERROR_NOMATCH) break;
    if (is_utf_error(rc)) {
      throw_input_error(what, ": text is not valid UTF-8 near byte ", pcre2_get_startchar(md.data), ": ",
                        pcre2_message(rc));
    }
    if (rc < 0) throw_input_error(what, ": pre-tokenizer regex failed: ", pcre2_message(rc));
    options = PCRE2_NO_UTF_CHECK;
    const PCRE2_SIZE* ov = pcre2_get_ovector_pointer(md.data);
    size_t begin = ov[0], end = ov[1];
    CHECK(begin >= offset && end >= begin && end <= piece.size()) << "PCRE2 match outside the subject";
    if (end == begin) {  // an empty match cuts nothing; step over one character
      offset = begin + utf8_length(static_cast<unsigned char>(piece[begin]));
      continue;
    }
    if (begin > covered) segments.push_back({covered, begin, false});
    segments.push_back({begin, end, true});
    covered = offset = end;
  }
  if (covered < piece.size()) segments.push_back({covered, piece.size(), false});
  return segments;
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

void PreTokenizer::apply(const Step& step, const std::string& piece, const std::string& what,
                         std::vector<std::string>& out) {
  if (!step.regex) {
    out.push_back(!piece.empty() && piece[0] == ' ' ? piece : " " + piece);
    return;
  }
  std::vector<Segment> segments = find_matches(step.regex->code, piece, what);
  if (step.invert) {
    for (Segment& s : segments) s.is_match = !s.is_match;
  }
  for (const Segment& s : apply_behavior(std::move(segments), step.behavior)) {
    if (s.end > s.begin) out.push_back(piece.substr(s.begin, s.end - s.begin));
  }
}

}  // namespace xcomp
