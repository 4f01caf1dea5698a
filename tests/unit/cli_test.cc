// The xcomp command line as a user meets it: exit codes, one-line errors that name the
// culprit, and standard output that carries only data.
#include <gtest/gtest.h>

#include "tests/test_support.h"

namespace xcomp {
namespace {

using test::run_xcomp;

std::string converted_stories260k() {
  static const std::string dir = [] {
    std::string d = test::temp_dir("cli") + "/stories260K";
    test::CommandResult r = run_xcomp("convert llama2c '" + test::fixture("stories260K/stories260K.bin") + "' '" + d +
                                      "' --tokenizer '" + test::fixture("stories260K/tok512.bin") + "'");
    EXPECT_EQ(r.exit_code, 0) << r.err;
    return d;
  }();
  return dir;
}

TEST(Cli, NoArgumentsPrintsUsageAndFails) {
  test::CommandResult r = run_xcomp("");
  EXPECT_EQ(r.exit_code, 2);
  EXPECT_NE(r.err.find("usage: xcomp"), std::string::npos);
}

TEST(Cli, UnknownCommandFails) {
  test::CommandResult r = run_xcomp("frobnicate");
  EXPECT_EQ(r.exit_code, 2);
  EXPECT_NE(r.err.find("unknown command 'frobnicate'"), std::string::npos);
}

TEST(Cli, UnknownOptionIsNamed) {
  test::CommandResult r = run_xcomp("generate --model x --max-new-tokenz 3");
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_NE(r.err.find("unknown option --max-new-tokenz"), std::string::npos) << r.err;
}

TEST(Cli, OutOfRangeValueIsNamed) {
  test::CommandResult r = run_xcomp("generate --model '" + converted_stories260k() + "' --top-p 1.5");
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_NE(r.err.find("--top-p must be a number in [0, 1]"), std::string::npos) << r.err;
}

TEST(Cli, MissingModelIsNamed) {
  test::CommandResult r = run_xcomp("generate --model /nonexistent/model --prompt hi");
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_NE(r.err.find("/nonexistent/model"), std::string::npos) << r.err;
}

TEST(Cli, UnknownConvertFormatIsNamed) {
  test::CommandResult r = run_xcomp("convert onnx a b");
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_NE(r.err.find("unknown source format 'onnx'"), std::string::npos) << r.err;
}

TEST(Cli, GenerateWritesOnlyTextToStandardOutput) {
  test::CommandResult r = run_xcomp("generate --model '" + converted_stories260k() +
                                    "' --prompt 'Once upon a time' --max-new-tokens 20");
  ASSERT_EQ(r.exit_code, 0) << r.err;
  // The prompt is not echoed; the continuation is; glog lines stay on standard error.
  EXPECT_EQ(r.out.find("Once upon a time"), std::string::npos) << r.out;
  EXPECT_EQ(r.out.find("generate_command.cc"), std::string::npos) << r.out;
  EXPECT_NE(r.err.find("generated 20 tokens"), std::string::npos) << r.err;
}

TEST(Cli, SamplingIsReproducibleForASeed) {
  const std::string args = "generate --model '" + converted_stories260k() + "' --temperature 1 --top-p 0.9 --max-new-tokens 30";
  test::CommandResult a = run_xcomp(args + " --seed 7"), b = run_xcomp(args + " --seed 7"), c = run_xcomp(args + " --seed 8");
  ASSERT_EQ(a.exit_code, 0) << a.err;
  EXPECT_EQ(a.out, b.out);
  EXPECT_NE(a.out, c.out);
}

TEST(Cli, InspectShowsConfigParametersAndTensors) {
  test::CommandResult r = run_xcomp("inspect '" + converted_stories260k() + "'");
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_NE(r.out.find("format huggingface"), std::string::npos);
  EXPECT_NE(r.out.find("num_hidden_layers 5"), std::string::npos);
  EXPECT_NE(r.out.find("num_key_value_heads 4"), std::string::npos);
  // Tied embedding 512*64 + final norm 64 + 5 layers * (norms 2*64, q 64*64, k and v
  // 32*64 each, o 64*64, gate/up/down 172*64 each) = 260,032: the "260K".
  EXPECT_NE(r.out.find("parameters 260032\n"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("model.layers.4.mlp.down_proj.weight F32 [64, 172]"), std::string::npos) << r.out;
}

}  // namespace
}  // namespace xcomp

namespace xcomp {
namespace {

TEST(Cli, SystemErrorsAreOneLineNotAnAbort) {
  test::CommandResult r = test::run_xcomp("train --config '" + test::source_dir() +
                                          "/configs/stories260k-regen-kv.yaml' run_dir=/proc/xcomp-cannot-be-here/run");
  EXPECT_EQ(r.exit_code, 1) << r.err;
  EXPECT_NE(r.err.find("xcomp train: error:"), std::string::npos) << r.err;
  EXPECT_NE(r.err.find("/proc/xcomp-cannot-be-here"), std::string::npos) << r.err;
}

}  // namespace
}  // namespace xcomp
