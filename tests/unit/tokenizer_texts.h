// Fixture texts the tokenizer tests run over, cut the way
// tests/reference/make_tokenizer_reference.py cuts them.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

namespace xcomp::test {

// TinyStories sample split on <|endoftext|>, whitespace-stripped, empty ones dropped
// (all of them, the cut-off last story included).
std::vector<std::string> tinystories_stories();
// The "abstract" field of each arXiv fixture record, by line.
std::vector<std::string> arxiv_abstracts();
// The "context" field of each SQuAD (MRQA) line after the header; read through
// `gzip -dc`. Empty when gzip is unavailable.
std::vector<std::string> squad_contexts();

// One expected encoding from a tests/reference/data/*_tokenizer_reference.json file.
struct TokenizerReferenceCase {
  std::string label;
  std::string text;
  bool parse_special;
  std::vector<int32_t> ids;
};
// The cases of tests/reference/data/<file_name>, fixture texts looked up by source and
// index (EXPECTs each to have the length the reference script saw).
std::vector<TokenizerReferenceCase> tokenizer_reference_cases(const std::string& file_name);

}  // namespace xcomp::test
