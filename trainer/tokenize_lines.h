// The line protocol of `xcomp tokenize`: text lines in, one JSON array of ids out per
// line; or, decoding, JSON arrays of ids in, one JSON string out per line.
#pragma once

#include <iosfwd>
#include <string>

#include "io/tokenizer.h"

namespace xcomp {

struct TokenizeLinesOptions {
  bool decode = false;         // ids -> text instead of text -> ids
  bool allow_special = false;  // encoding: special-token text becomes its id
  bool flush_each_line = true; // so a script can drive the command through a pipe
};

// Processes every line of `in` (the '\n' is not part of the text; the last line may lack
// it). A malformed line is an InputError naming `source` and the line number
// ("standard input line 3: ..."); the lines before it have been written.
void tokenize_lines(const Tokenizer& tokenizer, std::istream& in, std::ostream& out, const TokenizeLinesOptions& options,
                    const std::string& source);

}  // namespace xcomp
