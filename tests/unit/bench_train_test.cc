// `xcomp bench train` as a user runs it: one row of numbers for xcomp on the stories260K
// fixture, and a clear error for a shape it does not know.
#include <gtest/gtest.h>

#include <cmath>
#include <cstdlib>
#include <sstream>

#include "tests/test_support.h"

namespace xcomp {
namespace {

TEST(BenchTrain, PrintsAStepTimeAndFlopsForStories260k) {
  // The bench finds the fixture as users do, through XCOMP_FIXTURES.
  ::setenv("XCOMP_FIXTURES", test::fixtures_dir().c_str(), 1);
  test::CommandResult r = test::run_xcomp(
      "bench train --shape stories260k --batch 2 --text-len 8 --num-tokens 2 --lora-r 2 --steps 2 --warmup 0 "
      "--threads 1");
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_NE(r.out.find("model FLOPs per step"), std::string::npos) << r.out;
  const size_t row = r.out.find("\nxcomp ");
  ASSERT_NE(row, std::string::npos) << r.out;
  std::istringstream fields(r.out.substr(row + 1));
  std::string impl;
  double step_s = 0, cpu_s = 0, tokens_per_s = 0;
  fields >> impl >> step_s >> cpu_s >> tokens_per_s;
  EXPECT_GT(step_s, 0.0);
  EXPECT_GT(tokens_per_s, 0.0);
  EXPECT_TRUE(std::isfinite(tokens_per_s));
}

TEST(BenchTrain, UnknownShapeIsAnInputErrorListingTheKnownOnes) {
  test::CommandResult r = test::run_xcomp("bench train --shape llama9");
  EXPECT_NE(r.exit_code, 0);
  EXPECT_NE(r.err.find("llama9"), std::string::npos) << r.err;
  EXPECT_NE(r.err.find("stories260k"), std::string::npos) << r.err;
}

TEST(BenchTrain, AttentionKernelsAreForTheCudaDeviceAndNamedOnes) {
  test::CommandResult cpu = test::run_xcomp("bench train --attention gemm_causal");
  EXPECT_NE(cpu.exit_code, 0);
  EXPECT_NE(cpu.err.find("--attention"), std::string::npos) << cpu.err;
  EXPECT_NE(cpu.err.find("--device cuda"), std::string::npos) << cpu.err;
  test::CommandResult unknown = test::run_xcomp("bench train --device cuda --attention cudnn");
  EXPECT_NE(unknown.exit_code, 0);
  EXPECT_NE(unknown.err.find("'cudnn'"), std::string::npos) << unknown.err;
  test::CommandResult backward = test::run_xcomp("bench train --attention-backward flash_bf16");
  EXPECT_NE(backward.exit_code, 0);
  EXPECT_NE(backward.err.find("--attention-backward"), std::string::npos) << backward.err;
  EXPECT_NE(backward.err.find("--device cuda"), std::string::npos) << backward.err;
}

TEST(BenchTrain, GemmPathIsForTheCudaDeviceAndNamedOnes) {
  test::CommandResult cpu = test::run_xcomp("bench train --gemm lt");
  EXPECT_NE(cpu.exit_code, 0);
  EXPECT_NE(cpu.err.find("--gemm"), std::string::npos) << cpu.err;
  EXPECT_NE(cpu.err.find("--device cuda"), std::string::npos) << cpu.err;
  test::CommandResult unknown = test::run_xcomp("bench train --device cuda --gemm cutlass");
  EXPECT_NE(unknown.exit_code, 0);
  EXPECT_NE(unknown.err.find("'cutlass'"), std::string::npos) << unknown.err;
}

// --profile names each matrix product by its shape, with its rate, and sums the products:
// stories260K's encoder runs 2 x (8 + 2) = 20 rows through its 64 x 64 q projection.
TEST(BenchTrain, ProfileTimesEachProductShapeWithItsRate) {
  ::setenv("XCOMP_FIXTURES", test::fixtures_dir().c_str(), 1);
  test::CommandResult r = test::run_xcomp(
      "bench train --shape stories260k --batch 2 --text-len 8 --num-tokens 2 --lora-r 2 --steps 1 --warmup 0 "
      "--threads 1 --profile");
  ASSERT_EQ(r.exit_code, 0) << r.err;
  const size_t row = r.err.find("\nlinear/F32 M=20 N=64 K=64 ");
  ASSERT_NE(row, std::string::npos) << r.err;
  std::istringstream fields(r.err.substr(row + 1));
  std::string op, m, n, k, share;
  double calls = 0, seconds = 0, tflops = 0;
  fields >> op >> m >> n >> k >> calls >> seconds >> share >> tflops;
  EXPECT_GE(calls, 1.0);  // q and v at least (both 64 wide); k is 32 wide
  EXPECT_GT(seconds, 0.0);
  EXPECT_GT(tflops, 0.0);
  EXPECT_TRUE(std::isfinite(tflops));
  EXPECT_NE(r.err.find("\nlinear_backward_input/F32 M="), std::string::npos) << r.err;
  EXPECT_NE(r.err.find("\nlinear_backward_weight/F32 M="), std::string::npos) << r.err;
  EXPECT_NE(r.err.find("\nmatrix products: "), std::string::npos) << r.err;
}

}  // namespace
}  // namespace xcomp
