// xcomp tokenize: text to token ids and back, one line at a time, for checking a
// tokenizer by hand or from scripts (protocol in trainer/tokenize_lines.h). Special
// tokens are parsed from text only with --allow-special, so plain text such as
// "<|eot_id|>" in a document stays text.
#include <iostream>

#include "trainer/command_line.h"
#include "trainer/commands.h"
#include "trainer/tokenize_lines.h"

namespace xcomp {

int run_tokenize_command(const std::vector<std::string>& args) {
  CommandLine cl("tokenize", "--tokenizer PATH [--decode] [--allow-special] < lines",
                 {{"tokenizer", "PATH", "tokenizer file or model directory (.model, .bin, tokenizer.json, tiktoken)"},
                  {"decode", "", "read JSON arrays of ids, write each text as a JSON string"},
                  {"allow-special", "", "when encoding, special-token text such as <|eot_id|> becomes its id"}});
  if (!cl.parse(args)) return 0;
  cl.expect_positional(0, 0);
  std::unique_ptr<Tokenizer> tokenizer = load_tokenizer(cl.require("tokenizer"));
  TokenizeLinesOptions options;
  options.decode = cl.has("decode");
  options.allow_special = cl.has("allow-special");
  std::ios::sync_with_stdio(false);
  tokenize_lines(*tokenizer, std::cin, std::cout, options, "standard input");
  return 0;
}

}  // namespace xcomp
