// Fixture texts the tokenizer tests run over, cut the way
// tests/reference/make_tokenizer_reference.py cuts them.
#pragma once

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

}  // namespace xcomp::test
