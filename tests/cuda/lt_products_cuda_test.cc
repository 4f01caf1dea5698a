// The CUDA backend's matrix products through cuBLASLt (XCOMP_CUDA_GEMM=lt and lt_tuned,
// model/cuda/lt_matmul.h) against the CPU backend and against the cublasGemmEx path, for
// every product the step makes with bf16 frozen weights: forward with fp32 or bf16
// inputs, into fp32 or bf16 outputs, added into the output (linear_add), the input
// gradient (plain and accumulated), and LoRA's TF32 products and weight gradients;
// on contiguous tensors and on views at odd offsets, whose pointers are only 2- or
// 4-byte aligned (the heuristic is told, or cublasGemmEx takes the call). Needs a GPU
// (ctest label "cuda").
//
// Bounds as tests/cuda/cuda_ops_test.cc: against the CPU on the same bf16 values, fp32
// outputs differ by the accumulation order (1e-4), bf16 outputs and TF32 products by a
// rounding step (1e-2); against cublasGemmEx on the same inputs, fp32 outputs of bf16
// products by the order only (1e-4).
#include <gtest/gtest.h>

#include <cstdio>
#include <cstdlib>
#include <memory>
#include <random>
#include <string>

#include "model/cpu/cpu_ops.h"
#include "model/cuda/cuda_ops.h"
#include "model/half.h"
#include "tests/cuda/tensor_compare.h"
#include "tests/host_tensors.h"

namespace xcomp {
namespace {

using test::bf16_rounded;
using test::random_tensor;
using test::to_bf16;
using test::relative_max_error;

constexpr double kLongSumTolerance = 1e-4;
constexpr double kRoundingStepTolerance = 1e-2;

std::unique_ptr<Ops> backend_with_gemm(const char* path) {
  EXPECT_EQ(setenv("XCOMP_CUDA_GEMM", path, 1), 0);
  std::unique_ptr<Ops> ops = make_cuda_ops(0, CudaWeightStorage::kBf16);
  EXPECT_EQ(unsetenv("XCOMP_CUDA_GEMM"), 0);
  return ops;
}

struct ProductCase {
  int64_t m, k, n;
  int64_t offset;  // rows of the inputs and outputs skipped: views at odd addresses when k, n are odd
};
const ProductCase kCases[] = {{10, 64, 64, 0},     {300, 2048, 512, 0}, {300, 512, 2048, 0}, {300, 2048, 16, 0},
                              {300, 16, 2048, 0},  {520, 4096, 1024, 0}, {37, 67, 45, 1},    {64, 129, 33, 3}};

std::string case_name(const char* what, const ProductCase& c) {
  return std::string(what) + "_" + std::to_string(c.m) + "x" + std::to_string(c.k) + "x" + std::to_string(c.n) +
         (c.offset > 0 ? "_at_row_" + std::to_string(c.offset) : "");
}

class CublasLtProducts : public ::testing::TestWithParam<const char*> {
 protected:
  void SetUp() override {
    ASSERT_GT(cuda_device_count(), 0)
        << "no CUDA device: the cuda_tests run only on a GPU machine (tools/gpu_check.sh)";
    lt_ = backend_with_gemm(GetParam());
    gemm_ex_ = backend_with_gemm("cublas");
  }

  void expect_error_within(const std::string& what, double error, double tolerance) {
    char text[32];
    std::snprintf(text, sizeof text, "%.3g", error);
    RecordProperty(what, text);
    EXPECT_LE(error, tolerance) << what << ": relative max error " << error << " (tolerance " << tolerance << ")";
  }

  // Rows [offset, offset + rows) of a device copy of `padded` (offset + rows rows).
  static Tensor device_rows(Ops& ops, const Tensor& padded, int64_t offset) {
    Tensor all = ops.upload(padded);
    return all.slice0(offset, all.dim(0));
  }
  static Tensor host_rows(const Tensor& padded, int64_t offset) { return padded.slice0(offset, padded.dim(0)).clone(); }

  CpuOps cpu_;
  std::unique_ptr<Ops> lt_, gemm_ex_;
};

// Forward products with bf16 weights: fp32 and bf16 inputs, fp32 and bf16 outputs, and
// linear_add's beta = 1.
TEST_P(CublasLtProducts, ForwardProductsMatchTheCpuAndCublasGemmEx) {
  for (const ProductCase& c : kCases) {
    const Tensor x = random_tensor({c.offset + c.m, c.k}, 1), w = random_tensor({c.n, c.k}, 2, 0.1f);
    const Tensor initial = random_tensor({c.offset + c.m, c.n}, 3);
    const Tensor w_rounded = bf16_rounded(w), x_rounded = host_rows(bf16_rounded(x), c.offset);
    for (const bool bf16_input : {false, true}) {
      const Tensor input = bf16_input ? to_bf16(x) : x;
      Tensor want = Tensor::empty({c.m, c.n});
      cpu_.linear(x_rounded, w_rounded, want);
      Tensor results[2];
      Ops* backends[2] = {lt_.get(), gemm_ex_.get()};
      for (int i = 0; i < 2; ++i) {
        Ops& ops = *backends[i];
        Tensor y = device_rows(ops, initial, c.offset);
        ops.linear(device_rows(ops, input, c.offset), ops.upload_weight(w), y);
        results[i] = ops.download(y);
      }
      const char* label = bf16_input ? "linear_bf16_input" : "linear";
      expect_error_within(case_name(label, c), relative_max_error(results[0], want), kLongSumTolerance);
      expect_error_within(case_name((std::string(label) + "_vs_gemm_ex").c_str(), c),
                          relative_max_error(results[0], results[1]), kLongSumTolerance);

      // Into a bf16 output (rounded once, from the fp32 sum).
      Tensor want16 = Tensor::empty({c.m, c.n}, DType::BF16);
      cpu_.linear(x_rounded, w_rounded, want16);
      Tensor y16 = device_rows(*lt_, to_bf16(initial), c.offset);
      lt_->linear(device_rows(*lt_, input, c.offset), lt_->upload_weight(w), y16);
      expect_error_within(case_name((std::string(label) + "_bf16_output").c_str(), c),
                          relative_max_error(lt_->download(y16).to_f32(), want16.to_f32()), kRoundingStepTolerance);

      // Added into the output.
      Tensor want_sum = host_rows(initial, c.offset);
      cpu_.linear_add(x_rounded, w_rounded, want_sum);
      Tensor sum = device_rows(*lt_, initial, c.offset);
      lt_->linear_add(device_rows(*lt_, input, c.offset), lt_->upload_weight(w), sum);
      expect_error_within(case_name((std::string(label) + "_add").c_str(), c),
                          relative_max_error(lt_->download(sum), want_sum), kLongSumTolerance);
    }
  }
}

// The input gradient through a bf16 weight (fp32 and bf16 output gradients), written and
// accumulated.
TEST_P(CublasLtProducts, InputGradientsMatchTheCpuAndAccumulate) {
  for (const ProductCase& c : kCases) {
    const Tensor dy = random_tensor({c.offset + c.m, c.n}, 4), w = random_tensor({c.n, c.k}, 5, 0.1f);
    const Tensor initial = random_tensor({c.offset + c.m, c.k}, 6);
    const Tensor dy_rounded = host_rows(bf16_rounded(dy), c.offset);
    for (const bool accumulate : {false, true}) {
      Tensor want = host_rows(initial, c.offset);
      cpu_.linear_backward_input(dy_rounded, bf16_rounded(w), want, accumulate);
      for (const bool bf16_dy : {false, true}) {
        Tensor dx = device_rows(*lt_, initial, c.offset);
        lt_->linear_backward_input(device_rows(*lt_, bf16_dy ? to_bf16(dy) : dy, c.offset), lt_->upload_weight(w), dx,
                                   accumulate);
        expect_error_within(
            case_name((std::string("dx") + (bf16_dy ? "_bf16_dy" : "") + (accumulate ? "_accumulate" : "")).c_str(), c),
            relative_max_error(lt_->download(dx), want), kLongSumTolerance);
      }
    }
  }
}

// LoRA's products: fp32 weights beside bf16 frozen ones take TF32, forward and both
// gradients (the weight gradient accumulated as gradient accumulation does).
TEST_P(CublasLtProducts, Tf32ProductsMatchTheCpu) {
  for (const ProductCase& c : kCases) {
    const Tensor x = random_tensor({c.offset + c.m, c.k}, 7), w = random_tensor({c.n, c.k}, 8, 0.1f);
    const Tensor dy = random_tensor({c.offset + c.m, c.n}, 9), initial_dw = random_tensor({c.n, c.k}, 10);
    const Tensor x_rows = host_rows(x, c.offset), dy_rows = host_rows(dy, c.offset);
    Tensor want = Tensor::empty({c.m, c.n});
    cpu_.linear(x_rows, w, want);
    Tensor y = lt_->empty({c.m, c.n});
    lt_->linear(device_rows(*lt_, x, c.offset), lt_->upload(w), y);
    expect_error_within(case_name("lora_linear_tf32", c), relative_max_error(lt_->download(y), want),
                        kRoundingStepTolerance);
    for (const bool accumulate : {false, true}) {
      Tensor want_dw = initial_dw.clone();
      cpu_.linear_backward_weight(dy_rows, x_rows, want_dw, accumulate);
      Tensor dw = lt_->upload(initial_dw);
      lt_->linear_backward_weight(device_rows(*lt_, dy, c.offset), device_rows(*lt_, x, c.offset), dw, accumulate);
      expect_error_within(case_name(accumulate ? "lora_dw_tf32_accumulate" : "lora_dw_tf32", c),
                          relative_max_error(lt_->download(dw), want_dw), kRoundingStepTolerance);
    }
  }
}

TEST(CublasLtSetting, AnUnknownPathIsAnInputErrorNamingTheVariable) {
  ASSERT_EQ(setenv("XCOMP_CUDA_GEMM", "cublass", 1), 0);
  try {
    make_cuda_ops(0, CudaWeightStorage::kBf16);
    ADD_FAILURE() << "XCOMP_CUDA_GEMM=cublass was accepted";
  } catch (const std::exception& e) {
    EXPECT_NE(std::string(e.what()).find("XCOMP_CUDA_GEMM=cublass"), std::string::npos) << e.what();
  }
  ASSERT_EQ(unsetenv("XCOMP_CUDA_GEMM"), 0);
}

INSTANTIATE_TEST_SUITE_P(Paths, CublasLtProducts, ::testing::Values("lt", "lt_tuned"),
                         [](const auto& info) { return std::string(info.param); });

}  // namespace
}  // namespace xcomp
