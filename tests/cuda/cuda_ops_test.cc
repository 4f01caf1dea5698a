// The CUDA backend against the CPU backend, op by op, forward and backward, on random
// inputs with the shapes of stories260K (hidden 64, 8 heads, 4 kv heads, head_dim 8,
// vocab 512) and of bigger models (hidden 2048, head_dim 64/128, GQA 4:1, hundreds of
// tokens, vocabularies of 32000 and 128256). Needs a GPU (ctest label "cuda"): without
// one every test fails at once, saying so.
//
// Tolerances (relative max error, tests/cuda/tensor_compare.h): fp32 ops 1e-5; 1e-4 for
// long sums taken in a different order on each side, where each side's own rounding
// (about eps * sqrt(terms)) comes within a few times 1e-5: products with inner dimensions
// of 1024+, attention's backward (dk/dv sum over every query and head of a group) and
// attention over thousands of keys; bf16-weight products 1e-2 against the CPU on the same
// bf16-rounded weights, whose error is then the rounding of the activations to bf16 (2^-9
// relative per element, averaging out over the sum).
#include <gtest/gtest.h>

#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <algorithm>
#include <cstring>
#include <memory>
#include <ostream>
#include <random>
#include <string>
#include <vector>

#include "model/cpu/cpu_ops.h"
#include "model/cuda/cuda_ops.h"
#include "model/cuda/rmsnorm.h"
#include "model/half.h"
#include "tests/attention_cases.h"
#include "tests/cuda/tensor_compare.h"
#include "tests/host_tensors.h"

namespace xcomp {
namespace {

using test::bf16_rounded;
using test::random_tensor;
using test::to_bf16;
using test::AttentionCase;
using test::attention_key_valid;
using test::relative_max_error;

constexpr double kF32Tolerance = 1e-5;
constexpr double kLongSumTolerance = 1e-4;
constexpr double kBf16Tolerance = 1e-2;

Tensor random_ints(Shape shape, uint32_t seed, int32_t lo, int32_t hi) {
  std::mt19937 gen(seed);
  std::uniform_int_distribution<int32_t> dist(lo, hi);
  Tensor t = Tensor::empty(std::move(shape), DType::I32);
  for (int64_t i = 0; i < t.numel(); ++i) t.data<int32_t>()[i] = dist(gen);
  return t;
}

// HF's inverse frequencies for a head dimension, base 10000.
Tensor inverse_frequencies(int64_t head_dim) {
  Tensor t = Tensor::empty({head_dim / 2});
  for (int64_t i = 0; i < head_dim / 2; ++i)
    t.data<float>()[i] = static_cast<float>(1.0 / std::pow(10000.0, 2.0 * i / head_dim));
  return t;
}

class CudaOpsTest : public ::testing::Test {
 protected:
  void SetUp() override {
    ASSERT_GT(cuda_device_count(), 0)
        << "no CUDA device: the cuda_tests run only on a GPU machine (tools/gpu_check.sh)";
    gpu_ = make_cuda_ops(0);
  }

  Tensor up(const Tensor& host) { return gpu_->upload(host); }
  Tensor down(const Tensor& device) { return gpu_->download(device); }

  // Fails unless the device tensor matches the host reference within `tolerance`, and
  // records the error in the test's JSON/XML report.
  void expect_close(const std::string& what, const Tensor& got_device, const Tensor& want, double tolerance) {
    expect_error_within(what, relative_max_error(down(got_device), want), tolerance);
  }

  void expect_error_within(const std::string& what, double error, double tolerance) {
    char text[32];
    std::snprintf(text, sizeof text, "%.3g", error);
    RecordProperty(what, text);
    EXPECT_LE(error, tolerance) << what << ": relative max error " << error << " (tolerance " << tolerance << ")";
  }

  // expect_close for BF16 tensors (either side may be BF16; compared as their values).
  void expect_values_close(const std::string& what, const Tensor& got_device, const Tensor& want, double tolerance) {
    expect_error_within(what, relative_max_error(down(got_device).to_f32(), want.to_f32()), tolerance);
  }

  void expect_identical(const std::string& what, const Tensor& got_device, const Tensor& want) {
    const Tensor got = down(got_device);
    ASSERT_EQ(got.nbytes(), want.nbytes()) << what;
    EXPECT_EQ(std::memcmp(got.raw(), want.raw(), want.nbytes()), 0) << what << ": not bit-identical";
  }

  CpuOps cpu_;
  std::unique_ptr<Ops> gpu_;
};

// ---- memory -------------------------------------------------------------------------

TEST_F(CudaOpsTest, UploadDownloadRoundTripsEveryDtype) {
  for (DType dtype : {DType::F32, DType::F16, DType::BF16, DType::I32}) {
    Tensor host = Tensor::empty({3, 17, 5}, dtype);
    for (size_t i = 0; i < host.nbytes(); ++i) static_cast<uint8_t*>(host.raw())[i] = static_cast<uint8_t>(i * 7 + 3);
    Tensor device = up(host);
    EXPECT_EQ(device.device(), Device::kCuda);
    EXPECT_EQ(device.dtype(), dtype);
    expect_identical(std::string("round trip ") + dtype_name(dtype), device, host);
    Tensor into = Tensor::zeros({3, 17, 5}, dtype);
    gpu_->download_into(device, into);
    EXPECT_EQ(std::memcmp(into.raw(), host.raw(), host.nbytes()), 0) << dtype_name(dtype);
  }
  Tensor zeros = gpu_->zeros({1000, 3});
  expect_identical("zeros", zeros, Tensor::zeros({1000, 3}));
  Tensor empty = gpu_->empty({0, 4});
  EXPECT_EQ(down(empty).numel(), 0);
}

TEST_F(CudaOpsTest, UploadWeightKeepsMatricesInBf16AndVectorsInF32) {
  const Tensor matrix = random_tensor({33, 70}, 1, 3.0f);
  const Tensor device_matrix = gpu_->upload_weight(matrix);
  ASSERT_EQ(device_matrix.dtype(), DType::BF16);
  const Tensor stored = down(device_matrix);
  for (int64_t i = 0; i < matrix.numel(); ++i)
    ASSERT_EQ(stored.data<uint16_t>()[i], f32_to_bf16(matrix.data<float>()[i])) << i;
  const Tensor vector = random_tensor({70}, 2);
  const Tensor device_vector = gpu_->upload_weight(vector);
  ASSERT_EQ(device_vector.dtype(), DType::F32);
  expect_identical("norm weight", device_vector, vector);
}

TEST_F(CudaOpsTest, ManyTemporariesReuseTheAllocatorsBlocks) {
  // A step's worth of allocate/free cycles must neither fail nor corrupt live tensors.
  const Tensor keep_host = random_tensor({256, 64}, 3);
  Tensor keep = up(keep_host);
  for (int i = 0; i < 2000; ++i) {
    Tensor t = gpu_->empty({static_cast<int64_t>(1 + i % 97), 64});
    gpu_->zero(t);
  }
  expect_identical("live tensor after churn", keep, keep_host);
}

TEST_F(CudaOpsTest, OpsRejectHostTensorsNamingTheOp) {
  GTEST_FLAG_SET(death_test_style, "threadsafe");  // the parent holds a CUDA context
  Tensor y = gpu_->zeros({4});
  const Tensor x = Tensor::zeros({4});
  EXPECT_DEATH(gpu_->add_inplace(y, x), "add_inplace: argument 2 .* host tensor");
}

// ---- lookups and products ----------------------------------------------------------

TEST_F(CudaOpsTest, EmbeddingMatchesCpuForF32AndBf16Tables) {
  struct Case { int64_t vocab, hidden, n; };
  for (const Case c : {Case{512, 64, 37}, Case{4096, 2048, 300}}) {
    const Tensor table = random_tensor({c.vocab, c.hidden}, 4);
    const Tensor ids = random_ints({c.n}, 5, 0, static_cast<int32_t>(c.vocab - 1));
    Tensor want = Tensor::empty({c.n, c.hidden});
    cpu_.embedding(table, ids, want);
    Tensor out = gpu_->empty({c.n, c.hidden});
    gpu_->embedding(up(table), up(ids), out);
    expect_identical("embedding f32 " + std::to_string(c.hidden), out, want);
    cpu_.embedding(bf16_rounded(table), ids, want);
    gpu_->embedding(gpu_->upload_weight(table), up(ids), out);
    expect_identical("embedding bf16 " + std::to_string(c.hidden), out, want);
  }
}

struct LinearCase { int64_t m, k, n; };
const LinearCase kLinearCases[] = {{10, 64, 64}, {10, 64, 512}, {300, 2048, 512}, {300, 512, 2048}, {300, 2048, 16},
                                   {300, 16, 2048}};

// fp32 products: 1e-5, or 1e-4 for inner dimensions of 1024 and more, where each side's
// rounding error alone (about eps * sqrt(K) relative, in a different summation order on
// each side) comes within a factor of a few of 1e-5.
double f32_product_tolerance(int64_t inner) { return inner >= 1024 ? kLongSumTolerance : kF32Tolerance; }

std::string linear_name(const char* what, const LinearCase& c) {
  return std::string(what) + "_" + std::to_string(c.m) + "x" + std::to_string(c.k) + "x" + std::to_string(c.n);
}

// Products with fp32 weights (LoRA's): true fp32 where the frozen weights are fp32 too,
// TF32 beside bf16 frozen weights (the training setting), within the bf16 bound.
struct F32WeightBackend {
  std::unique_ptr<Ops> ops;
  const char* label;
  bool tf32;
};

std::vector<F32WeightBackend> f32_weight_backends() {
  std::vector<F32WeightBackend> out;
  out.push_back({make_cuda_ops(0, CudaWeightStorage::kF32), "f32", false});
  out.push_back({make_cuda_ops(0, CudaWeightStorage::kBf16), "tf32", true});
  return out;
}

TEST_F(CudaOpsTest, LinearWithF32WeightsMatchesCpu) {
  for (const F32WeightBackend& b : f32_weight_backends()) {
    for (const LinearCase& c : kLinearCases) {
      const Tensor x = random_tensor({c.m, c.k}, 6), w = random_tensor({c.n, c.k}, 7, 0.1f);
      Tensor want = Tensor::empty({c.m, c.n});
      cpu_.linear(x, w, want);
      Tensor y = b.ops->empty({c.m, c.n});
      b.ops->linear(b.ops->upload(x), b.ops->upload(w), y);
      expect_error_within(linear_name((std::string("linear_") + b.label).c_str(), c), relative_max_error(b.ops->download(y), want),
                          b.tf32 ? kBf16Tolerance : f32_product_tolerance(c.k));
    }
  }
}

TEST_F(CudaOpsTest, LinearWithBf16WeightsMatchesCpuOnRoundedWeights) {
  for (const LinearCase& c : kLinearCases) {
    const Tensor x = random_tensor({c.m, c.k}, 8), w = random_tensor({c.n, c.k}, 9, 0.1f);
    const Tensor w_rounded = bf16_rounded(w);
    Tensor want = Tensor::empty({c.m, c.n});
    cpu_.linear(x, w_rounded, want);
    const Tensor w_device = gpu_->upload_weight(w);
    ASSERT_EQ(w_device.dtype(), DType::BF16);
    Tensor y = gpu_->empty({c.m, c.n});
    gpu_->linear(up(x), w_device, y);
    expect_close(linear_name("linear_bf16", c), y, want, kBf16Tolerance);
    // With x rounded too, only the order of the fp32 accumulation differs.
    cpu_.linear(bf16_rounded(x), w_rounded, want);
    expect_close(linear_name("linear_bf16_rounded_x", c), y, want, kLongSumTolerance);
  }
}

// An fp32 input beside a bf16 weight is rounded to bf16 for the product in packs of eight
// elements where it is aligned, one at a time past the last pack or at any other offset:
// every element rounded as the CPU rounds it, whatever the size and the view.
TEST_F(CudaOpsTest, Bf16ProductsRoundFp32InputsOfAnySizeAndOffset) {
  const int64_t m = 7, k = 13, n = 5;  // 91 input elements: 11 packs and 3 past them
  const Tensor x = random_tensor({m, k}, 47), w = random_tensor({n, k}, 48, 0.1f);
  Tensor want = Tensor::empty({m, n});
  cpu_.linear(bf16_rounded(x), bf16_rounded(w), want);
  const Tensor w_device = gpu_->upload_weight(w);
  Tensor y = gpu_->empty({m, n});
  gpu_->linear(up(x), w_device, y);
  expect_close("linear_bf16_7x13x5", y, want, kLongSumTolerance);
  Tensor storage = gpu_->empty({m * k + 1});
  Tensor x_at = storage.slice0(1, m * k + 1);  // 4 bytes into its storage
  gpu_->upload_into(x.reshape({m * k}), x_at);
  Tensor y_at = gpu_->empty({m, n});
  gpu_->linear(x_at.reshape({m, k}), w_device, y_at);
  expect_close("linear_bf16_7x13x5_offset_view", y_at, want, kLongSumTolerance);
}

// linear_add: the product added into y by cuBLAS (beta = 1), for bf16 weights (with fp32
// and bf16 inputs) and fp32 ones, against the CPU's.
TEST_F(CudaOpsTest, LinearAddMatchesCpu) {
  for (const LinearCase& c : kLinearCases) {
    const Tensor x = random_tensor({c.m, c.k}, 40), w = random_tensor({c.n, c.k}, 41, 0.1f);
    const Tensor initial = random_tensor({c.m, c.n}, 42);
    for (const F32WeightBackend& b : f32_weight_backends()) {
      Tensor want = initial.clone();
      cpu_.linear_add(x, w, want);
      Tensor y = b.ops->upload(initial);
      b.ops->linear_add(b.ops->upload(x), b.ops->upload(w), y);
      expect_error_within(linear_name((std::string("linear_add_") + b.label).c_str(), c),
                          relative_max_error(b.ops->download(y), want),
                          b.tf32 ? kBf16Tolerance : f32_product_tolerance(c.k));
    }
    for (const bool bf16_input : {false, true}) {
      const Tensor input = bf16_input ? to_bf16(x) : x;
      Tensor want = initial.clone();
      cpu_.linear_add(bf16_input ? input : bf16_rounded(x), bf16_rounded(w), want);
      Tensor y = up(initial);
      gpu_->linear_add(up(input), gpu_->upload_weight(w), y);
      expect_close(linear_name(bf16_input ? "linear_add_bf16_input" : "linear_add_bf16", c), y, want,
                   kLongSumTolerance);
    }
  }
}

// linear_residual: y = residual + x w^T into a tensor of its own, the residual left as it
// was. bf16 weights on the default path (cuBLASLt only for these, with D apart from C),
// on the lt path (its own cuBLASLt), TF32 (fp32 weights beside bf16 ones: LoRA's path),
// and true fp32 (a copy, then cublasGemmEx), against the CPU's.
TEST_F(CudaOpsTest, LinearResidualMatchesCpuAndLeavesTheResidual) {
  CudaKernelChoices lt;
  lt.gemm = "lt";
  struct Backend {
    std::unique_ptr<Ops> ops;
    const char* label;
    bool upload_as_weight;  // bf16 storage
    double tolerance;
  };
  std::vector<Backend> backends;
  backends.push_back({make_cuda_ops(0), "bf16", true, kLongSumTolerance});
  backends.push_back({make_cuda_ops(0, CudaWeightStorage::kBf16, lt), "bf16_lt", true, kLongSumTolerance});
  backends.push_back({make_cuda_ops(0), "tf32", false, kBf16Tolerance});
  backends.push_back({make_cuda_ops(0, CudaWeightStorage::kF32), "f32", false, -1});
  for (const LinearCase& c : kLinearCases) {
    const Tensor x = random_tensor({c.m, c.k}, 43), w = random_tensor({c.n, c.k}, 44, 0.1f);
    const Tensor residual = random_tensor({c.m, c.n}, 45);
    for (Backend& b : backends) {
      const std::string label = linear_name((std::string("linear_residual_") + b.label).c_str(), c);
      Tensor want = residual.clone();
      cpu_.linear_add(b.upload_as_weight ? bf16_rounded(x) : x, b.upload_as_weight ? bf16_rounded(w) : w, want);
      const Tensor residual_d = b.ops->upload(residual);
      Tensor y = b.ops->upload(random_tensor({c.m, c.n}, 46));  // garbage: every entry must be written
      b.ops->linear_residual(b.ops->upload(x), b.upload_as_weight ? b.ops->upload_weight(w) : b.ops->upload(w),
                             residual_d, y);
      expect_error_within(label, relative_max_error(b.ops->download(y), want),
                          b.tolerance >= 0 ? b.tolerance : f32_product_tolerance(c.k));
      const Tensor kept = b.ops->download(residual_d);
      for (int64_t i = 0; i < residual.numel(); ++i)
        ASSERT_EQ(kept.data<float>()[i], residual.data<float>()[i]) << label << ": the residual changed at " << i;
    }
  }
}

// Activations in bf16 beside bf16 weights (Ops::product_dtype): a BF16 input goes to
// cuBLAS as it is, a BF16 output is the fp32 result rounded. Against the CPU on the same
// bf16 values: fp32 outputs differ by the accumulation order only; bf16 outputs by that
// and, where it crosses a rounding boundary, one bf16 step (2^-8 relative at most).
TEST_F(CudaOpsTest, LinearWithBf16ActivationsMatchesCpu) {
  ASSERT_EQ(gpu_->product_dtype(), DType::BF16);
  for (const LinearCase& c : kLinearCases) {
    const Tensor x = to_bf16(random_tensor({c.m, c.k}, 30)), w = random_tensor({c.n, c.k}, 31, 0.1f);
    const Tensor w_device = gpu_->upload_weight(w);
    Tensor want = Tensor::empty({c.m, c.n}), want16 = Tensor::empty({c.m, c.n}, DType::BF16);
    cpu_.linear(x, bf16_rounded(w), want);
    cpu_.linear(x, bf16_rounded(w), want16);
    Tensor y = gpu_->empty({c.m, c.n}), y16 = gpu_->empty({c.m, c.n}, DType::BF16);
    gpu_->linear(up(x), w_device, y);
    expect_close(linear_name("linear_bf16_input", c), y, want, kLongSumTolerance);
    gpu_->linear(up(x), w_device, y16);
    ASSERT_EQ(y16.dtype(), DType::BF16);
    expect_values_close(linear_name("linear_bf16_input_output", c), y16, want16, kBf16Tolerance);

    const Tensor dy = to_bf16(random_tensor({c.m, c.n}, 32)), initial = to_bf16(random_tensor({c.m, c.k}, 33));
    for (bool accumulate : {false, true}) {
      Tensor want_dx = initial.clone();
      cpu_.linear_backward_input(dy, bf16_rounded(w), want_dx, accumulate);
      Tensor dx = up(initial);
      gpu_->linear_backward_input(up(dy), w_device, dx, accumulate);
      expect_values_close(linear_name(accumulate ? "dx_bf16_activations_accumulate" : "dx_bf16_activations", c), dx,
                          want_dx, kBf16Tolerance);
    }
  }
}

TEST_F(CudaOpsTest, LinearBackwardInputMatchesCpuAndAccumulates) {
  for (const LinearCase& c : kLinearCases) {
    const Tensor dy = random_tensor({c.m, c.n}, 10), w = random_tensor({c.n, c.k}, 11, 0.1f);
    const Tensor initial = random_tensor({c.m, c.k}, 12);
    for (bool accumulate : {false, true}) {
      for (const F32WeightBackend& b : f32_weight_backends()) {
        Tensor want = initial.clone();
        cpu_.linear_backward_input(dy, w, want, accumulate);
        Tensor dx = b.ops->upload(initial);
        b.ops->linear_backward_input(b.ops->upload(dy), b.ops->upload(w), dx, accumulate);
        expect_error_within(linear_name((std::string("dx_") + b.label + (accumulate ? "_accumulate" : "")).c_str(), c),
                            relative_max_error(b.ops->download(dx), want),
                            b.tf32 ? kBf16Tolerance : f32_product_tolerance(c.n));
      }

      Tensor want = initial.clone();
      cpu_.linear_backward_input(dy, bf16_rounded(w), want, accumulate);
      Tensor dx = up(initial);
      gpu_->linear_backward_input(up(dy), gpu_->upload_weight(w), dx, accumulate);
      expect_close(linear_name(accumulate ? "dx_bf16_accumulate" : "dx_bf16", c), dx, want, kBf16Tolerance);
    }
  }
}

TEST_F(CudaOpsTest, LinearBackwardWeightMatchesCpuAndAccumulates) {
  for (const F32WeightBackend& b : f32_weight_backends()) {
    for (const LinearCase& c : kLinearCases) {
      const Tensor dy = random_tensor({c.m, c.n}, 13), x = random_tensor({c.m, c.k}, 14);
      const Tensor initial = random_tensor({c.n, c.k}, 15);
      for (bool accumulate : {false, true}) {
        Tensor want = initial.clone();
        cpu_.linear_backward_weight(dy, x, want, accumulate);
        Tensor dw = b.ops->upload(initial);
        b.ops->linear_backward_weight(b.ops->upload(dy), b.ops->upload(x), dw, accumulate);
        expect_error_within(linear_name((std::string("dw_") + b.label + (accumulate ? "_accumulate" : "")).c_str(), c),
                            relative_max_error(b.ops->download(dw), want),
                            b.tf32 ? kBf16Tolerance : f32_product_tolerance(c.m));
      }
    }
  }
}

// ---- row-wise and elementwise --------------------------------------------------------

// Widths for each form of the kernels (rmsnorm_rows.h): rows held in registers at 1, 2,
// 4, 8, 16 and 32 floats a thread (64 to 8192: stories260K's, SmolLM2's, LLaMA's), and
// the looped form past that.
TEST_F(CudaOpsTest, RmsnormAndBackwardMatchCpu) {
  for (const Shape& shape : {Shape{37, 64}, Shape{4, 288}, Shape{5, 576}, Shape{2, 150, 2048}, Shape{8, 4096},
                             Shape{3, 8192}, Shape{3, 8200}}) {
    const int64_t width = shape.back();
    const Tensor x = random_tensor(shape, 16, 2.0f), w = random_tensor({width}, 17);
    const Tensor dy = random_tensor(shape, 18), initial = random_tensor(shape, 19);
    Tensor want = Tensor::empty(shape);
    cpu_.rmsnorm(x, w, 1e-5f, want);
    Tensor y = gpu_->empty(shape);
    gpu_->rmsnorm(up(x), up(w), 1e-5f, y);
    expect_close("rmsnorm_" + std::to_string(width), y, want, kF32Tolerance);
    for (bool accumulate : {false, true}) {
      Tensor want_dx = initial.clone();
      cpu_.rmsnorm_backward(dy, x, w, 1e-5f, want_dx, accumulate);
      Tensor dx = up(initial);
      gpu_->rmsnorm_backward(up(dy), up(x), up(w), 1e-5f, dx, accumulate);
      expect_close("rmsnorm_backward_" + std::to_string(width) + (accumulate ? "_accumulate" : ""), dx, want_dx,
                   kF32Tolerance);
    }
  }
}

// rmsnorm(x_mid) for the gate and up products, written in bf16: the CPU's fp32 result
// rounded, give or take one bf16 step where the two fp32 results straddle a boundary.
TEST_F(CudaOpsTest, RmsnormWithBf16OutputMatchesCpu) {
  for (const Shape& shape : {Shape{37, 64}, Shape{4, 288}, Shape{5, 576}, Shape{2, 150, 2048}, Shape{8, 4096},
                             Shape{3, 8192}, Shape{3, 8200}}) {
    const int64_t width = shape.back();
    const Tensor x = random_tensor(shape, 34, 2.0f), w = random_tensor({width}, 35);
    Tensor want = Tensor::empty(shape, DType::BF16);
    cpu_.rmsnorm(x, w, 1e-5f, want);
    Tensor y = gpu_->empty(shape, DType::BF16);
    gpu_->rmsnorm(up(x), up(w), 1e-5f, y);
    expect_values_close("rmsnorm_bf16_" + std::to_string(width), y, want, kBf16Tolerance);
  }
}

// rmsnorm into an fp32 and a bf16 output in one pass (the attention norm beside LoRA
// adapters): each to the bit what rmsnorm alone writes, rows long enough for the
// register form and past it (16384 floats).
TEST_F(CudaOpsTest, RmsnormIntoTwoIsRmsnormTwice) {
  for (const Shape& shape : {Shape{37, 64}, Shape{2, 150, 2048}, Shape{3, 16384}}) {
    const int64_t width = shape.back();
    const Tensor x = up(random_tensor(shape, 36, 2.0f)), w = up(random_tensor({width}, 37));
    Tensor want = gpu_->empty(shape), want16 = gpu_->empty(shape, DType::BF16);
    gpu_->rmsnorm(x, w, 1e-5f, want);
    gpu_->rmsnorm(x, w, 1e-5f, want16);
    Tensor y = gpu_->empty(shape), y16 = gpu_->empty(shape, DType::BF16);
    gpu_->rmsnorm_into_two(x, w, 1e-5f, y, y16);
    const Tensor a = gpu_->download(y), b = gpu_->download(want), a16 = gpu_->download(y16),
                 b16 = gpu_->download(want16);
    EXPECT_EQ(std::memcmp(a.raw(), b.raw(), a.nbytes()), 0) << "rmsnorm_into_two f32, width " << width;
    EXPECT_EQ(std::memcmp(a16.raw(), b16.raw(), a16.nbytes()), 0) << "rmsnorm_into_two bf16, width " << width;
  }
}

TEST_F(CudaOpsTest, RopeAndBackwardMatchCpu) {
  // Head sizes past the kernel's 256 threads a row, and head counts its block does not divide.
  for (const Shape& shape : {Shape{2, 9, 8, 8}, Shape{2, 300, 32, 64}, Shape{1, 100, 16, 128}, Shape{1, 7, 3, 1024},
                             Shape{3, 5, 1, 2}, Shape{1, 5, 6, 128}, Shape{2, 9, 12, 64}}) {
    const int64_t b = shape[0], t = shape[1], d = shape[3];
    const Tensor x = random_tensor(shape, 20);
    const Tensor positions = random_ints({b, t}, 21, 0, 4000);
    const Tensor inv_freq = inverse_frequencies(d);
    Tensor want = x.clone();
    cpu_.rope(want, positions, inv_freq);
    Tensor y = up(x);
    gpu_->rope(y, up(positions), up(inv_freq));
    expect_close("rope_" + std::to_string(d), y, want, kF32Tolerance);
    Tensor want_back = x.clone();
    cpu_.rope_backward(want_back, positions, inv_freq);
    Tensor back = up(x);
    gpu_->rope_backward(back, up(positions), up(inv_freq));
    expect_close("rope_backward_" + std::to_string(d), back, want_back, kF32Tolerance);
  }
}

TEST_F(CudaOpsTest, SwigluAndBackwardMatchCpu) {
  // 1003: the kernels' packs of eight and the elements past the last pack.
  for (int64_t n : {int64_t{1000}, int64_t{1003}, int64_t{300} * 5632}) {
    const Tensor gate = random_tensor({n}, 22, 6.0f), upv = random_tensor({n}, 23, 2.0f), dout = random_tensor({n}, 24);
    Tensor want = Tensor::empty({n});
    cpu_.swiglu(gate, upv, want);
    Tensor out = gpu_->empty({n});
    gpu_->swiglu(up(gate), up(upv), out);
    expect_close("swiglu_" + std::to_string(n), out, want, kF32Tolerance);
    Tensor want_dgate = Tensor::empty({n}), want_dup = Tensor::empty({n});
    cpu_.swiglu_backward(dout, gate, upv, want_dgate, want_dup);
    Tensor dgate = gpu_->empty({n}), dup = gpu_->empty({n});
    gpu_->swiglu_backward(up(dout), up(gate), up(upv), dgate, dup);
    expect_close("swiglu_dgate_" + std::to_string(n), dgate, want_dgate, kF32Tolerance);
    expect_close("swiglu_dup_" + std::to_string(n), dup, want_dup, kF32Tolerance);
    // The outputs may alias the inputs (the model reuses the gate and up buffers).
    Tensor gate_in_place = up(gate), up_in_place = up(upv);
    gpu_->swiglu_backward(up(dout), gate_in_place, up_in_place, gate_in_place, up_in_place);
    expect_close("swiglu_dgate_aliased", gate_in_place, want_dgate, kF32Tolerance);
    expect_close("swiglu_dup_aliased", up_in_place, want_dup, kF32Tolerance);
    // Views one element into their storage, too misaligned for the packed kernels.
    Tensor gate_view = gpu_->empty({n + 1}), up_view = gpu_->empty({n + 1}), out_view = gpu_->empty({n + 1});
    Tensor gate_at = gate_view.slice0(1, n + 1), up_at = up_view.slice0(1, n + 1), out_at = out_view.slice0(1, n + 1);
    gpu_->upload_into(gate, gate_at);
    gpu_->upload_into(upv, up_at);
    gpu_->swiglu(gate_at, up_at, out_at);
    expect_close("swiglu_offset_view", out_at, want, kF32Tolerance);
    Tensor dout_view = gpu_->empty({n + 1}), dgate_view = gpu_->empty({n + 1}), dup_view = gpu_->empty({n + 1});
    Tensor dout_at = dout_view.slice0(1, n + 1), dgate_at = dgate_view.slice0(1, n + 1),
           dup_at = dup_view.slice0(1, n + 1);
    gpu_->upload_into(dout, dout_at);
    gpu_->swiglu_backward(dout_at, gate_at, up_at, dgate_at, dup_at);
    expect_close("swiglu_dgate_offset_view", dgate_at, want_dgate, kF32Tolerance);
    expect_close("swiglu_dup_offset_view", dup_at, want_dup, kF32Tolerance);
  }
}

// SwiGLU on the MLP's bf16 intermediates (Ops::product_dtype), every mix the op allows,
// against the CPU on the same values: the same fp32 arithmetic, rounded on the way out.
TEST_F(CudaOpsTest, SwigluAndBackwardOnBf16MatchCpu) {
  const int64_t n = int64_t{300} * 5632 + 5;  // five elements past the last pack of eight
  const Tensor gate = to_bf16(random_tensor({n}, 36, 6.0f)), upv = to_bf16(random_tensor({n}, 37, 2.0f));
  const Tensor dout32 = random_tensor({n}, 38), dout16 = to_bf16(dout32);
  for (const DType in : {DType::F32, DType::BF16}) {
    for (const DType out : {DType::F32, DType::BF16}) {
      const std::string name = std::string("_") + dtype_name(in) + "_" + dtype_name(out);
      const Tensor g = in == DType::BF16 ? gate : gate.to_f32(), u = in == DType::BF16 ? upv : upv.to_f32();
      Tensor want = Tensor::empty({n}, out);
      cpu_.swiglu(g, u, want);
      Tensor got = gpu_->empty({n}, out);
      gpu_->swiglu(up(g), up(u), got);
      expect_values_close("swiglu" + name, got, want, out == DType::BF16 ? kBf16Tolerance : kF32Tolerance);
      for (const Tensor* dout : {&dout32, &dout16}) {
        const std::string grad_name = name + "_dout_" + dtype_name(dout->dtype());
        Tensor want_dgate = Tensor::empty({n}, out), want_dup = Tensor::empty({n}, out);
        cpu_.swiglu_backward(*dout, g, u, want_dgate, want_dup);
        Tensor dgate = gpu_->empty({n}, out), dup = gpu_->empty({n}, out);
        gpu_->swiglu_backward(up(*dout), up(g), up(u), dgate, dup);
        const double tolerance = out == DType::BF16 ? kBf16Tolerance : kF32Tolerance;
        expect_values_close("swiglu_dgate" + grad_name, dgate, want_dgate, tolerance);
        expect_values_close("swiglu_dup" + grad_name, dup, want_dup, tolerance);
      }
    }
  }
  // All bf16, the gradients written over gate and up, as the op allows.
  Tensor want_dgate = Tensor::empty({n}, DType::BF16), want_dup = Tensor::empty({n}, DType::BF16);
  cpu_.swiglu_backward(dout16, gate, upv, want_dgate, want_dup);
  Tensor gate_in_place = up(gate), up_in_place = up(upv);
  gpu_->swiglu_backward(up(dout16), gate_in_place, up_in_place, gate_in_place, up_in_place);
  expect_values_close("swiglu_dgate_bf16_aliased", gate_in_place, want_dgate, kBf16Tolerance);
  expect_values_close("swiglu_dup_bf16_aliased", up_in_place, want_dup, kBf16Tolerance);
}

TEST_F(CudaOpsTest, AddsAndZeroMatchCpu) {
  const Tensor y0 = random_tensor({300, 2048}, 25), x = random_tensor({300, 2048}, 26);
  Tensor want = y0.clone();
  cpu_.add_inplace(want, x);
  Tensor y = up(y0);
  gpu_->add_inplace(y, up(x));
  expect_identical("add_inplace", y, want);
  want = y0.clone();
  cpu_.add_scaled(want, x, -0.37f);
  y = up(y0);
  gpu_->add_scaled(y, up(x), -0.37f);
  expect_close("add_scaled", y, want, kF32Tolerance);
  gpu_->zero(y);
  expect_identical("zero", y, Tensor::zeros({300, 2048}));
}

TEST_F(CudaOpsTest, WriteAndReadRowsMatchCpuForEveryDtype) {
  for (DType dtype : {DType::F32, DType::BF16, DType::I32}) {
    Tensor dst_host = Tensor::empty({2, 20, 4, 8}, dtype), src_host = Tensor::empty({2, 5, 4, 8}, dtype);
    for (size_t i = 0; i < dst_host.nbytes(); ++i) static_cast<uint8_t*>(dst_host.raw())[i] = static_cast<uint8_t>(i);
    for (size_t i = 0; i < src_host.nbytes(); ++i) static_cast<uint8_t*>(src_host.raw())[i] = static_cast<uint8_t>(200 - i);
    Tensor dst = up(dst_host);
    gpu_->write_rows(up(src_host), dst, 7);
    Tensor want = dst_host.clone();
    cpu_.write_rows(src_host, want, 7);
    expect_identical(std::string("write_rows ") + dtype_name(dtype), dst, want);
    Tensor read = gpu_->empty({2, 6, 4, 8}, dtype);
    gpu_->read_rows(dst, 13, read);
    Tensor want_read = Tensor::empty({2, 6, 4, 8}, dtype);
    cpu_.read_rows(want, 13, want_read);
    expect_identical(std::string("read_rows ") + dtype_name(dtype), read, want_read);
  }
}

TEST_F(CudaOpsTest, DropoutMaskIsBitIdenticalToCpu) {
  const Tensor x = random_tensor({300, 2048}, 27);
  for (float p : {0.0f, 0.1f, 0.5f}) {
    for (uint64_t stream : {uint64_t{0}, uint64_t{12345}}) {
      Tensor want = Tensor::empty({300, 2048});
      cpu_.dropout(x, p, 42, stream, 0, want);
      Tensor out = gpu_->empty({300, 2048});
      gpu_->dropout(up(x), p, 42, stream, 0, out);
      expect_identical("dropout p=" + std::to_string(p) + " stream " + std::to_string(stream), out, want);
    }
  }
  Tensor want = Tensor::empty({300, 2048});
  cpu_.dropout(x, 0.1f, 7, 3, 0, want);
  Tensor in_place = up(x);
  gpu_->dropout(in_place, 0.1f, 7, 3, 0, in_place);
  expect_identical("dropout in place", in_place, want);
  // A later part of a mask (the rows an encoder layer's last rows keep): those rows of
  // the whole mask's output.
  Tensor part = gpu_->empty({100, 2048});
  gpu_->dropout(up(x.slice0(200, 300)), 0.1f, 7, 3, 200 * 2048, part);
  expect_identical("dropout from element 200 * 2048", part, want.slice0(200, 300));
}

// ---- attention -----------------------------------------------------------------------

// A backend whose attention kernels are the ones named (the variables are read once, at
// construction, so each choice gets its own object).
std::unique_ptr<Ops> attention_backend(const char* forward, const char* backward,
                                       CudaWeightStorage storage = CudaWeightStorage::kBf16) {
  EXPECT_EQ(setenv("XCOMP_CUDA_ATTENTION", forward, 1), 0);
  EXPECT_EQ(setenv("XCOMP_CUDA_ATTENTION_BACKWARD", backward, 1), 0);
  std::unique_ptr<Ops> ops = make_cuda_ops(0, storage);
  EXPECT_EQ(unsetenv("XCOMP_CUDA_ATTENTION"), 0);
  EXPECT_EQ(unsetenv("XCOMP_CUDA_ATTENTION_BACKWARD"), 0);
  return ops;
}

class CudaAttentionTest : public CudaOpsTest, public ::testing::WithParamInterface<AttentionCase> {
 protected:
  // Forward and backward of `gpu` against the CPU: `out_tolerance` for the output,
  // `grad_tolerance` for dq, dk, dv and for dk's increments alone (dk and dv accumulate,
  // dq is overwritten: it starts as garbage).
  void check_forward_and_backward(Ops& gpu, const std::string& label, double out_tolerance, double grad_tolerance) {
    const AttentionCase c = GetParam();
    const Shape q_shape{c.batch, c.t, c.heads, c.d}, kv_shape{c.batch, c.capacity, c.kv_heads, c.d};
    const Tensor q = random_tensor(q_shape, 30, 2.0f), k = random_tensor(kv_shape, 31, 2.0f);
    const Tensor v = random_tensor(kv_shape, 32), valid = attention_key_valid(c);
    Tensor want = Tensor::empty(q_shape);
    cpu_.attention(q, k, v, c.length, valid, want);
    const Tensor q_d = gpu.upload(q), k_d = gpu.upload(k), v_d = gpu.upload(v), valid_d = gpu.upload(valid);
    Tensor out = gpu.upload(random_tensor(q_shape, 33));  // garbage: every entry must be written
    gpu.attention(q_d, k_d, v_d, c.length, valid_d, out);
    expect_error_within(label + "_out", relative_max_error(gpu.download(out), want), out_tolerance);
    if (c.batch > 1) {  // row 1's query 0 sees no key: zeros, exactly
      const Tensor got = gpu.download(out);
      for (int64_t i = 0; i < c.heads * c.d; ++i)
        ASSERT_EQ(got.data<float>()[c.t * c.heads * c.d + i], 0.0f) << label << ": query with no visible key";
    }

    const Tensor dout = random_tensor(q_shape, 34);
    const Tensor dk0 = random_tensor(kv_shape, 35), dv0 = random_tensor(kv_shape, 36);
    Tensor want_dq = random_tensor(q_shape, 37), want_dk = dk0.clone(), want_dv = dv0.clone();
    cpu_.attention_backward(dout, q, k, v, c.length, valid, want_dq, want_dk, want_dv);
    Tensor dq = gpu.upload(random_tensor(q_shape, 38)), dk = gpu.upload(dk0), dv = gpu.upload(dv0);
    gpu.attention_backward(gpu.upload(dout), q_d, k_d, v_d, c.length, valid_d, dq, dk, dv);
    expect_error_within(label + "_dq", relative_max_error(gpu.download(dq), want_dq), grad_tolerance);
    expect_error_within(label + "_dk", relative_max_error(gpu.download(dk), want_dk), grad_tolerance);
    expect_error_within(label + "_dv", relative_max_error(gpu.download(dv), want_dv), grad_tolerance);
    if (c.batch > 1) {  // and a zero gradient, exactly
      const Tensor got = gpu.download(dq);
      for (int64_t i = 0; i < c.heads * c.d; ++i)
        ASSERT_EQ(got.data<float>()[c.t * c.heads * c.d + i], 0.0f) << label << ": dq of a query with no visible key";
    }
    // The accumulation itself: the increments alone, against the CPU's (cancellation
    // against dk0 costs precision, hence at least 1e-3).
    Tensor dk_increment = gpu.download(dk), want_increment = want_dk.clone();
    for (int64_t i = 0; i < dk0.numel(); ++i) {
      dk_increment.data<float>()[i] -= dk0.data<float>()[i];
      want_increment.data<float>()[i] -= dk0.data<float>()[i];
    }
    expect_error_within(label + "_dk_increment", relative_max_error(dk_increment, want_increment),
                        std::max(1e-3, grad_tolerance));
  }
};

// The tiled kernels, fp32 on CUDA cores. The CPU normalises by a sequential fp32 sum over
// the keys, whose rounding error (~eps * sqrt(length)) nears 1e-5 for thousands of keys;
// every query and head of a group adds into a dk/dv entry (long sums).
TEST_P(CudaAttentionTest, TiledMatchesCpu) {
  const AttentionCase c = GetParam();
  std::unique_ptr<Ops> gpu = attention_backend("tiled", "tiled");
  check_forward_and_backward(*gpu, std::string(c.name) + "_tiled", c.length > 1024 ? kLongSumTolerance : kF32Tolerance,
                             kLongSumTolerance);
}

// The default, batched cuBLAS products, with fp32 weights: true fp32 products, the tiled
// kernels' bounds.
TEST_P(CudaAttentionTest, GemmWithF32WeightsMatchesCpu) {
  const AttentionCase c = GetParam();
  std::unique_ptr<Ops> gpu = attention_backend("gemm", "gemm", CudaWeightStorage::kF32);
  check_forward_and_backward(*gpu, std::string(c.name) + "_gemm_f32", c.length > 1024 ? kLongSumTolerance : kF32Tolerance,
                             kLongSumTolerance);
}

// The default with bf16 weights, the training setting: TF32 products (q, k, v, P and the
// gradients rounded to a 10-bit mantissa, 2^-11 relative), within the bf16 bound.
TEST_P(CudaAttentionTest, GemmWithBf16WeightsMatchesCpuToTf32) {
  const AttentionCase c = GetParam();
  std::unique_ptr<Ops> gpu = attention_backend("", "");  // the default
  check_forward_and_backward(*gpu, std::string(c.name) + "_gemm_tf32", kBf16Tolerance, kBf16Tolerance);
}

// The products over causal query blocks (XCOMP_CUDA_ATTENTION=gemm_causal): each block of
// 128 queries multiplies only the keys its queries can see. The same numbers as the
// plain products up to summation order: the same bounds. The *_blocks shapes have
// several blocks and a partial last one.
TEST_P(CudaAttentionTest, GemmCausalWithF32WeightsMatchesCpu) {
  const AttentionCase c = GetParam();
  std::unique_ptr<Ops> gpu = attention_backend("gemm_causal", "gemm_causal", CudaWeightStorage::kF32);
  check_forward_and_backward(*gpu, std::string(c.name) + "_gemm_causal_f32",
                             c.length > 1024 ? kLongSumTolerance : kF32Tolerance, kLongSumTolerance);
}

// Blocks of 32 queries (XCOMP_CUDA_CAUSAL_BLOCK): many blocks on every shape with more
// than 32 queries, a partial last one on most.
TEST_P(CudaAttentionTest, GemmCausalWithSmallBlocksMatchesCpu) {
  const AttentionCase c = GetParam();
  EXPECT_EQ(setenv("XCOMP_CUDA_CAUSAL_BLOCK", "32", 1), 0);
  std::unique_ptr<Ops> gpu = attention_backend("gemm_causal", "gemm_causal", CudaWeightStorage::kF32);
  EXPECT_EQ(unsetenv("XCOMP_CUDA_CAUSAL_BLOCK"), 0);
  check_forward_and_backward(*gpu, std::string(c.name) + "_gemm_causal32_f32",
                             c.length > 1024 ? kLongSumTolerance : kF32Tolerance, kLongSumTolerance);
}

TEST_P(CudaAttentionTest, GemmCausalWithBf16WeightsMatchesCpuToTf32) {
  const AttentionCase c = GetParam();
  std::unique_ptr<Ops> gpu = attention_backend("gemm_causal", "gemm_causal");
  check_forward_and_backward(*gpu, std::string(c.name) + "_gemm_causal_tf32", kBf16Tolerance, kBf16Tolerance);
}

// gemm_causal's products on bf16 copies of q, k, v and dout, with P and dS rounded to
// bf16 by the row kernels: the flash_bf16 kernels' rounding points (each operand 2^-9
// relative, two products deep), so their bound. The row kernels' bf16 stores are checked
// to the bit in the unit suite's emulation (tests/unit/score_rows_emulated_test.cc).
TEST_P(CudaAttentionTest, GemmCausalBf16MatchesCpuToBf16) {
  const AttentionCase c = GetParam();
  std::unique_ptr<Ops> gpu = attention_backend("gemm_causal_bf16", "gemm_causal_bf16");
  check_forward_and_backward(*gpu, std::string(c.name) + "_gemm_causal_bf16", 2 * kBf16Tolerance,
                             2 * kBf16Tolerance);
}

// Blocks of 32 queries: several blocks whose products take their keys rounded up to 8,
// and the key and value gradients' single product over all of them.
TEST_P(CudaAttentionTest, GemmCausalBf16WithSmallBlocksMatchesCpuToBf16) {
  const AttentionCase c = GetParam();
  EXPECT_EQ(setenv("XCOMP_CUDA_CAUSAL_BLOCK", "32", 1), 0);
  std::unique_ptr<Ops> gpu = attention_backend("gemm_causal_bf16", "gemm_causal_bf16");
  EXPECT_EQ(unsetenv("XCOMP_CUDA_CAUSAL_BLOCK"), 0);
  check_forward_and_backward(*gpu, std::string(c.name) + "_gemm_causal32_bf16", 2 * kBf16Tolerance,
                             2 * kBf16Tolerance);
}

// With fp32 weights attention stays true fp32: gemm_causal_bf16 runs gemm_causal's fp32
// products, to the fp32 bounds (a bf16 operand would miss them by far).
TEST_P(CudaAttentionTest, GemmCausalBf16WithF32WeightsRunsTheFp32Products) {
  const AttentionCase c = GetParam();
  std::unique_ptr<Ops> gpu = attention_backend("gemm_causal_bf16", "gemm_causal_bf16", CudaWeightStorage::kF32);
  check_forward_and_backward(*gpu, std::string(c.name) + "_gemm_causal_bf16_f32",
                             c.length > 1024 ? kLongSumTolerance : kF32Tolerance, kLongSumTolerance);
}

// The flash kernels on tensor cores (XCOMP_CUDA_ATTENTION=flash): TF32 products, as the
// default's with bf16 weights, so the same bound. (The unit suite runs the same kernel code
// in a CPU emulation of the thread blocks: tests/unit/flash_attention_emulated_test.cc.)
TEST_P(CudaAttentionTest, FlashMatchesCpuToTf32) {
  const AttentionCase c = GetParam();
  std::unique_ptr<Ops> gpu = attention_backend("flash", "flash");
  check_forward_and_backward(*gpu, std::string(c.name) + "_flash_tf32", kBf16Tolerance, kBf16Tolerance);
}

// The flash kernels with bf16 operands (XCOMP_CUDA_ATTENTION=flash_bf16): q, k, v, dout,
// the probabilities and the score gradients each rounded to bf16 (2^-9 relative), two
// products deep. The CPU emulation of the same code measured up to 6.9e-3 on its shapes
// (tests/unit/flash_attention_emulated_test.cc); twice the bf16 products' bound leaves
// room for the GPU's summation order and still fails any wrong term.
TEST_P(CudaAttentionTest, FlashBf16MatchesCpuToBf16) {
  const AttentionCase c = GetParam();
  std::unique_ptr<Ops> gpu = attention_backend("flash_bf16", "flash_bf16");
  check_forward_and_backward(*gpu, std::string(c.name) + "_flash_bf16", 2 * kBf16Tolerance, 2 * kBf16Tolerance);
}

// With fp32 weights attention stays true fp32: flash gives way to the batched products.
TEST_P(CudaAttentionTest, FlashWithF32WeightsRunsTheFp32Products) {
  const AttentionCase c = GetParam();
  std::unique_ptr<Ops> gpu = attention_backend("flash", "flash", CudaWeightStorage::kF32);
  check_forward_and_backward(*gpu, std::string(c.name) + "_flash_f32", c.length > 1024 ? kLongSumTolerance : kF32Tolerance,
                             kLongSumTolerance);
}

// Both backwards against the CPU, each on its own backend object (the variable is read
// once, at construction), so one GPU run says which of them is right.
class CudaAttentionBackwardTest : public CudaAttentionTest {
 protected:
  void check_backward(const char* choice, CudaWeightStorage storage = CudaWeightStorage::kBf16) {
    const AttentionCase c = GetParam();
    std::unique_ptr<Ops> gpu = attention_backend("tiled", choice, storage);
    const Shape q_shape{c.batch, c.t, c.heads, c.d}, kv_shape{c.batch, c.capacity, c.kv_heads, c.d};
    const Tensor q = random_tensor(q_shape, 60, 2.0f), k = random_tensor(kv_shape, 61, 2.0f);
    const Tensor v = random_tensor(kv_shape, 62), valid = attention_key_valid(c);
    const Tensor dout = random_tensor(q_shape, 63);
    const Tensor dk0 = random_tensor(kv_shape, 64), dv0 = random_tensor(kv_shape, 65);
    Tensor want_dq = random_tensor(q_shape, 66), want_dk = dk0.clone(), want_dv = dv0.clone();
    cpu_.attention_backward(dout, q, k, v, c.length, valid, want_dq, want_dk, want_dv);
    // dq starts as garbage (every entry must be written); dk and dv accumulate.
    Tensor dq = gpu->upload(random_tensor(q_shape, 67)), dk = gpu->upload(dk0), dv = gpu->upload(dv0);
    gpu->attention_backward(gpu->upload(dout), gpu->upload(q), gpu->upload(k), gpu->upload(v), c.length,
                            gpu->upload(valid), dq, dk, dv);
    const std::string label = std::string(c.name) + "_" + choice;
    expect_error_within(label + "_dq", relative_max_error(gpu->download(dq), want_dq), kLongSumTolerance);
    expect_error_within(label + "_dk", relative_max_error(gpu->download(dk), want_dk), kLongSumTolerance);
    expect_error_within(label + "_dv", relative_max_error(gpu->download(dv), want_dv), kLongSumTolerance);
    if (c.batch > 1) {  // row 1's query 0 sees no key: a zero gradient, exactly
      const Tensor got = gpu->download(dq);
      for (int64_t i = 0; i < c.heads * c.d; ++i)
        ASSERT_EQ(got.data<float>()[c.t * c.heads * c.d + i], 0.0f) << label << ": dq of a query with no visible key";
    }
  }
};

TEST_P(CudaAttentionBackwardTest, TiledBackwardMatchesCpu) { check_backward("tiled"); }

TEST_P(CudaAttentionBackwardTest, ReferenceBackwardMatchesCpu) { check_backward("reference"); }

TEST_P(CudaAttentionBackwardTest, GemmBackwardWithF32WeightsMatchesCpu) { check_backward("gemm", CudaWeightStorage::kF32); }

TEST_P(CudaAttentionBackwardTest, GemmCausalBackwardWithF32WeightsMatchesCpu) {
  check_backward("gemm_causal", CudaWeightStorage::kF32);
}

// The simple forward (one block per query) is the tiled one's fallback: it must hold too.
TEST_P(CudaAttentionTest, SimpleForwardMatchesCpu) {
  const AttentionCase c = GetParam();
  std::unique_ptr<Ops> simple = attention_backend("simple", "tiled");
  const Shape q_shape{c.batch, c.t, c.heads, c.d}, kv_shape{c.batch, c.capacity, c.kv_heads, c.d};
  const Tensor q = random_tensor(q_shape, 50, 2.0f), k = random_tensor(kv_shape, 51, 2.0f);
  const Tensor v = random_tensor(kv_shape, 52), valid = attention_key_valid(c);
  Tensor want = Tensor::empty(q_shape);
  cpu_.attention(q, k, v, c.length, valid, want);
  // Its own uploads: each backend object runs on its own stream.
  Tensor out = simple->upload(random_tensor(q_shape, 53));
  simple->attention(simple->upload(q), simple->upload(k), simple->upload(v), c.length, simple->upload(valid), out);
  expect_error_within(std::string(c.name) + "_simple_out", relative_max_error(simple->download(out), want),
                      c.length > 1024 ? kLongSumTolerance : kF32Tolerance);
}

INSTANTIATE_TEST_SUITE_P(
    Shapes, CudaAttentionTest,
    ::testing::Values(AttentionCase{"stories260k", 2, 6, 8, 4, 8, 16, 12},
                      AttentionCase{"stories260k_no_prefix", 2, 7, 8, 4, 8, 7, 7},
                      AttentionCase{"bench_d64", 2, 100, 16, 4, 64, 512, 496},
                      AttentionCase{"bench_d128", 1, 64, 8, 2, 128, 520, 480},
                      AttentionCase{"long_prefix_d64", 2, 4, 4, 1, 64, 7000, 6900},
                      // several causal query blocks (kCausalQueryBlock = 128), the last partial
                      AttentionCase{"encoder_blocks_d128", 2, 300, 8, 2, 128, 310, 300},
                      AttentionCase{"decoder_blocks_d64", 2, 260, 8, 4, 64, 280, 276},
                      // an encoder layer's last rows: 16 queries after 480 of the store's entries
                      AttentionCase{"encoder_last_rows_d128", 2, 16, 8, 2, 128, 496, 496}),
    [](const ::testing::TestParamInfo<AttentionCase>& info) { return std::string(info.param.name); });
// head_dims that are not a multiple of 4: cuBLAS's batched products would get per-head
// pointers off 16-byte alignment, which cuBLAS cannot see and faults on, so the tiled
// kernels take these calls (gemm_attention_applies) and still give the CPU's attention.
class CudaAttentionOddHeadDimTest : public CudaAttentionTest {};

TEST_P(CudaAttentionOddHeadDimTest, RequestedAsGemmCausalBf16ItMatchesCpu) {
  const AttentionCase c = GetParam();
  std::unique_ptr<Ops> gpu = attention_backend("gemm_causal_bf16", "gemm_causal_bf16");
  check_forward_and_backward(*gpu, std::string(c.name) + "_gemm_causal_bf16", 2 * kBf16Tolerance,
                             2 * kBf16Tolerance);
}

TEST_P(CudaAttentionOddHeadDimTest, RequestedAsGemmCausalItMatchesCpu) {
  const AttentionCase c = GetParam();
  std::unique_ptr<Ops> gpu = attention_backend("gemm_causal", "gemm_causal");
  check_forward_and_backward(*gpu, std::string(c.name) + "_gemm_causal_tf32", kBf16Tolerance, kBf16Tolerance);
}

INSTANTIATE_TEST_SUITE_P(
    Shapes, CudaAttentionOddHeadDimTest,
    // d12: aligned for fp32 operands (48-byte heads), not for bf16 ones (24).
    ::testing::Values(AttentionCase{"d6", 2, 9, 4, 2, 6, 14, 12}, AttentionCase{"d10_group4", 2, 20, 8, 2, 10, 23, 23},
                      AttentionCase{"d12", 2, 17, 4, 2, 12, 20, 19}),
    [](const ::testing::TestParamInfo<AttentionCase>& info) { return std::string(info.param.name); });

INSTANTIATE_TEST_SUITE_P(
    Shapes, CudaAttentionBackwardTest,
    ::testing::Values(AttentionCase{"stories260k", 2, 6, 8, 4, 8, 16, 12},
                      AttentionCase{"stories260k_no_prefix", 2, 7, 8, 4, 8, 7, 7},
                      AttentionCase{"bench_d64", 2, 100, 16, 4, 64, 512, 496},
                      AttentionCase{"bench_d128", 1, 64, 8, 2, 128, 520, 480},
                      AttentionCase{"long_prefix_d64", 2, 4, 4, 1, 64, 7000, 6900},
                      // the training shape's tiling: a 16-entry prefix, T not a multiple of 32
                      AttentionCase{"decoder_d128", 2, 97, 8, 2, 128, 120, 113},
                      AttentionCase{"encoder_blocks_d128", 2, 300, 8, 2, 128, 310, 300},
                      AttentionCase{"decoder_blocks_d64", 2, 260, 8, 4, 64, 280, 276},
                      // an encoder layer's last rows: 16 queries after 480 of the store's entries
                      AttentionCase{"encoder_last_rows_d128", 2, 16, 8, 2, 128, 496, 496}),
    [](const ::testing::TestParamInfo<AttentionCase>& info) { return std::string(info.param.name); });

// ---- loss ----------------------------------------------------------------------------

TEST_F(CudaOpsTest, CrossEntropyMatchesCpuWithWeightsAndMissingTargets) {
  struct Case { int64_t m, vocab; };
  for (const Case c : {Case{6, 512}, Case{16, 32000}, Case{3, 128256}}) {
    const Tensor logits = random_tensor({c.m, c.vocab}, 40, 8.0f);
    Tensor targets = random_ints({c.m}, 41, 0, static_cast<int32_t>(c.vocab - 1));
    Tensor weights = random_tensor({c.m}, 42, 0.5f);
    for (int64_t i = 0; i < c.m; ++i) weights.data<float>()[i] += 1.0f;  // in [0.5, 1.5]
    targets.data<int32_t>()[0] = -1;  // no target
    weights.data<float>()[c.m - 1] = 0.0f;  // a zero-weight row
    Tensor want_losses = Tensor::empty({c.m}), want_dlogits = Tensor::empty({c.m, c.vocab});
    cpu_.cross_entropy(logits, targets, weights, want_losses, want_dlogits);
    Tensor losses = gpu_->empty({c.m}), dlogits = up(random_tensor({c.m, c.vocab}, 43));
    gpu_->cross_entropy(up(logits), up(targets), up(weights), losses, dlogits);
    const std::string v = std::to_string(c.vocab);
    expect_close("cross_entropy_losses_" + v, losses, want_losses, kF32Tolerance);
    expect_close("cross_entropy_dlogits_" + v, dlogits, want_dlogits, kF32Tolerance);
    const Tensor got_losses = down(losses), got_dlogits = down(dlogits);
    EXPECT_EQ(got_losses.data<float>()[0], 0.0f) << "row without a target";
    EXPECT_EQ(got_losses.data<float>()[c.m - 1], 0.0f) << "zero-weight row";
    for (int64_t i = 0; i < c.vocab; ++i) {
      ASSERT_EQ(got_dlogits.data<float>()[i], 0.0f) << "gradient of the row without a target, " << i;
      ASSERT_EQ(got_dlogits.data<float>()[(c.m - 1) * c.vocab + i], 0.0f) << "gradient of the zero-weight row, " << i;
    }
    // In bf16 (for the LM head's bf16 backward product): the fp32 gradients rounded, bit
    // for bit, and so the CPU's within bf16's precision.
    Tensor losses16 = gpu_->empty({c.m}), dlogits16 = gpu_->empty({c.m, c.vocab}, DType::BF16);
    gpu_->cross_entropy(up(logits), up(targets), up(weights), losses16, dlogits16);
    expect_identical("cross_entropy_losses_beside_bf16_" + v, losses16, got_losses);
    const Tensor got16 = down(dlogits16);
    for (int64_t i = 0; i < got_dlogits.numel(); ++i)
      ASSERT_EQ(got16.data<uint16_t>()[i], f32_to_bf16(got_dlogits.data<float>()[i]))
          << "bf16 dlogits, vocabulary " << v << ", element " << i;
    expect_values_close("cross_entropy_dlogits_bf16_" + v, dlogits16, want_dlogits, kBf16Tolerance);
  }
}

}  // namespace
}  // namespace xcomp
