// xcomp tokenize: the line protocol (trainer/tokenize_lines.h) in process, and the
// command's options through the binary; and xcomp bench's dispatch.
#include <gtest/gtest.h>

#include <sstream>

#include "io/tokenizer.h"
#include "model/input_error.h"
#include "tests/test_support.h"
#include "trainer/tokenize_lines.h"

namespace xcomp {
namespace {

const Tokenizer& llama3() {
  static const std::unique_ptr<Tokenizer> tok = load_tokenizer(test::fixture("llama3/tokenizer.model"));
  return *tok;
}

std::string run_lines(const std::string& input, TokenizeLinesOptions options) {
  std::istringstream in(input);
  std::ostringstream out;
  tokenize_lines(llama3(), in, out, options, "standard input");
  return out.str();
}

std::string error_of(const std::string& input, TokenizeLinesOptions options) {
  try {
    run_lines(input, options);
  } catch (const InputError& e) {
    return e.what();
  }
  ADD_FAILURE() << "no InputError";
  return "";
}

TEST(TokenizeLines, EncodesEachLine) {
  TokenizeLinesOptions plain;
  EXPECT_EQ(run_lines("Hello world!\n\n<|eot_id|>", plain), "[9906,1917,0]\n[]\n[27,91,68,354,851,91,29]\n");
  TokenizeLinesOptions special;
  special.allow_special = true;
  EXPECT_EQ(run_lines("<|eot_id|>Hello\n", special), "[128009,9906]\n");
}

TEST(TokenizeLines, DecodesToJsonStrings) {
  TokenizeLinesOptions decode;
  decode.decode = true;
  EXPECT_EQ(run_lines("[9906,1917,0]\n[]\n[128009, 198]\n", decode), "\"Hello world!\"\n\"\"\n\"<|eot_id|>\\n\"\n");
  // Half of a two-byte character cannot be JSON text: it prints as U+FFFD.
  int32_t lead_byte = -1;  // the token of the lone byte 0xC3, spelled "Ã" (U+00C3) in GPT-2's alphabet
  for (int32_t id = 0; id < 256 && lead_byte < 0; ++id)
    if (llama3().token_text(id) == "\xC3\x83") lead_byte = id;
  ASSERT_GE(lead_byte, 0);
  EXPECT_EQ(run_lines("[" + std::to_string(lead_byte) + "]\n", decode), "\"\xEF\xBF\xBD\"\n");
  EXPECT_EQ(run_lines("[128000]\n", decode), "\"<|begin_of_text|>\"\n");
}

TEST(TokenizeLines, BadLinesNameTheLineNumber) {
  TokenizeLinesOptions decode;
  decode.decode = true;
  std::string message = error_of("[1]\n[2]\nnot json\n", decode);
  EXPECT_NE(message.find("standard input line 3: expected a JSON array"), std::string::npos) << message;
  message = error_of("[1, -5]\n", decode);
  EXPECT_NE(message.find("standard input line 1:"), std::string::npos) << message;
  EXPECT_NE(message.find("token id -5"), std::string::npos) << message;
  message = error_of("[1.5]\n", decode);
  EXPECT_NE(message.find("standard input line 1: element 0 is 1.5, not a token id"), std::string::npos) << message;
  message = error_of("fine\nbad \xFF text\n", TokenizeLinesOptions{});
  EXPECT_NE(message.find("standard input line 2:"), std::string::npos) << message;
  EXPECT_NE(message.find("not valid UTF-8"), std::string::npos) << message;
}

TEST(TokenizeCommand, OptionsAndErrors) {
  std::string tok = "--tokenizer '" + test::fixture("llama3/tokenizer.model") + "'";
  test::CommandResult r = test::run_xcomp("tokenize " + tok);  // standard input is /dev/null
  EXPECT_EQ(r.exit_code, 0) << r.err;
  EXPECT_EQ(r.out, "");
  r = test::run_xcomp("tokenize --help");
  EXPECT_EQ(r.exit_code, 0);
  EXPECT_NE(r.out.find("--allow-special"), std::string::npos) << r.out;
  r = test::run_xcomp("tokenize");
  EXPECT_NE(r.exit_code, 0);
  EXPECT_NE(r.err.find("--tokenizer is required"), std::string::npos) << r.err;
  r = test::run_xcomp("tokenize --tokenizer /nonexistent/tok.model");
  EXPECT_NE(r.exit_code, 0);
  EXPECT_NE(r.err.find("/nonexistent/tok.model"), std::string::npos) << r.err;
}

TEST(BenchCommand, DispatchesByName) {
  test::CommandResult r = test::run_xcomp("bench --help");
  EXPECT_EQ(r.exit_code, 0);
  EXPECT_NE(r.out.find("tokenize"), std::string::npos) << r.out;
  r = test::run_xcomp("bench nosuch");
  EXPECT_NE(r.exit_code, 0);
  EXPECT_NE(r.err.find("unknown benchmark 'nosuch'"), std::string::npos) << r.err;
  r = test::run_xcomp("bench");
  EXPECT_NE(r.exit_code, 0);
}

TEST(BenchCommand, TokenizeRunsOnASmallText) {
  std::string dir = test::temp_dir("benchtok");
  test::write_file(dir + "/text.txt", "One small document.\nAnd another one, with 123 digits.\n");
  test::CommandResult r = test::run_xcomp("bench tokenize --seconds 0 --threads 2 --text '" + dir +
                                          "/text.txt' --tokenizer '" + test::fixture("stories260K/tok512.bin") + "'");
  EXPECT_EQ(r.exit_code, 0) << r.err;
  EXPECT_NE(r.out.find("2 documents"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("tok512.bin"), std::string::npos) << r.out;
}

}  // namespace
}  // namespace xcomp
