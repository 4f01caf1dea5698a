// The flash attention kernels inside a whole compressor step, on the CPU: the step on
// stories260K (encoder with LoRA, compressed prefix, decoder, loss, backward; a padded
// batch of three) with the CPU backend's attention replaced by the emulated kernels
// (tests/emulated_flash_attention.h) against the plain CPU backend. With exact fragment
// products the difference is summation order only, so this checks how the model calls
// attention (the prefix, the store's capacity beyond length, padding, GQA at head_dim 8)
// as the CUDA check (tests/cuda/compressor_cuda_test.cc) will on a GPU. A slow test: the
// emulation's thousands of thread barriers take some 25 s for the two steps.
#include <gtest/gtest.h>

#include <cmath>
#include <string>

#include "io/model_loader.h"
#include "model/compressor.h"
#include "model/cpu/cpu_ops.h"
#include "model/llama.h"
#include "tests/cuda/tensor_compare.h"
#include "tests/emulated_flash_attention.h"
#include "tests/random_batch.h"
#include "tests/test_support.h"

namespace xcomp {
namespace {

void check_step(CompressorMode mode, ActivationMemory activations) {
  const LoadedModel loaded =
      load_model(test::fixture("stories260K/stories260K.bin"), test::fixture("stories260K/tok512.model"));
  const LlamaWeights weights = load_weights(loaded);
  CpuOps cpu;
  test::FlashEmulatingCpuOps flash;
  const LlamaModel cpu_model(loaded.config, weights, cpu), flash_model(loaded.config, weights, flash);
  const test::StepOnTwoModels r = test::step_on_two_models(cpu_model, flash_model, mode, activations);
  const CompressorLoss &want = r.first_loss, &got = r.second_loss;
  EXPECT_EQ(got.targets, want.targets);
  EXPECT_LT(std::fabs(got.sum - want.sum) / std::fabs(want.sum), 1e-6) << got.sum << " vs " << want.sum;
  const auto a = r.first->parameters(), b = r.second->parameters();
  ASSERT_EQ(a.size(), b.size());
  double worst = 0;
  for (size_t i = 0; i < a.size(); ++i) {
    const double err = test::relative_max_error(*b[i].grad, *a[i].grad);
    worst = std::max(worst, err);
    EXPECT_LT(err, 1e-4) << a[i].name;
  }
  std::printf("  worst gradient difference %.2e\n", worst);
}

TEST(FlashAttentionInStep, KeyValueModeMatchesTheCpuBackend) {
  check_step(CompressorMode::kKeyValue, ActivationMemory::kKeep);
}

TEST(FlashAttentionInStep, EmbeddingModeRecomputedMatchesTheCpuBackend) {
  check_step(CompressorMode::kEmbedding, ActivationMemory::kRecompute);
}

}  // namespace
}  // namespace xcomp
