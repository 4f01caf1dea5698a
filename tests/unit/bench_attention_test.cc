// `xcomp bench attention` as a user runs it on a machine without a GPU: the CPU backend's
// row for each of the step's two attention calls, and clear errors for CUDA-only options.
#include <gtest/gtest.h>

#include <cstdlib>
#include <sstream>
#include <string>

#include "tests/test_support.h"

namespace xcomp {
namespace {

TEST(BenchAttention, TimesTheEncoderAndDecoderCallsOnTheCpu) {
  ::setenv("XCOMP_FIXTURES", test::fixtures_dir().c_str(), 1);
  test::CommandResult r =
      test::run_xcomp("bench attention --shape stories260k --batch 2 --text-len 20 --num-tokens 4 --repeats 1 "
                      "--warmup 0 --threads 1");
  ASSERT_EQ(r.exit_code, 0) << r.err;
  for (const char* call : {"encoder", "decoder"}) {
    const size_t row = r.out.find(std::string("\n") + call + " ");
    ASSERT_NE(row, std::string::npos) << call << "\n" << r.out;
    std::istringstream fields(r.out.substr(row + 1));
    std::string name, kernels;
    long t = 0, prefix = -1;
    double forward_ms = 0, backward_ms = 0;
    fields >> name >> kernels >> t >> prefix >> forward_ms >> backward_ms;
    EXPECT_EQ(kernels, "cpu");
    // The encoder reads text + N tokens; the decoder text + 1 after the N-entry prefix.
    EXPECT_EQ(t, std::string(call) == "encoder" ? 24 : 21);
    EXPECT_EQ(prefix, std::string(call) == "encoder" ? 0 : 4);
    EXPECT_GT(forward_ms, 0.0);
    EXPECT_GT(backward_ms, 0.0);
  }
}

TEST(BenchAttention, KernelChoicesAreForTheCudaDeviceAndNamedOnes) {
  test::CommandResult cpu = test::run_xcomp("bench attention --kernels flash");
  EXPECT_NE(cpu.exit_code, 0);
  EXPECT_NE(cpu.err.find("--device cuda"), std::string::npos) << cpu.err;
  test::CommandResult unknown = test::run_xcomp("bench attention --device cuda --kernels gemm,cudnn");
  EXPECT_NE(unknown.exit_code, 0);
  EXPECT_NE(unknown.err.find("'cudnn'"), std::string::npos) << unknown.err;
}

}  // namespace
}  // namespace xcomp
