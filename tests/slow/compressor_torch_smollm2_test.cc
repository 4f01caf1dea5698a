// The compressor step (model/compressor.cc) on SmolLM2-135M-Instruct (its Q4_1 GGUF,
// dequantised on load) against PyTorch + transformers + PEFT LoRA built the way the
// 500xCompressor paper's code builds it:
// tests/reference/data/compressor_reference_smollm2_135m.safetensors, written by
// tests/reference/make_compressor_reference.py (2 samples, N = 4, LoRA r = 1 on q and v
// of all 30 layers). Loss and the gradient of every trainable tensor, both modes, both
// objectives. Skipped when the GGUF is missing (launch/setup.sh fetches it).
#include <gtest/gtest.h>

#include <filesystem>

#include "io/model_loader.h"
#include "model/cpu/cpu_ops.h"
#include "tests/compressor_torch_reference.h"
#include "tests/test_support.h"

namespace xcomp {
namespace {

// Against the float64 value of the computation (the fixture), relative per tensor, or
// twice PyTorch's own float32 error where that is larger (compressor_torch_reference.h).
//
// K/V mode: 1e-4. Measured worst 2.6e-4 (kv_regeneration, layer 0's q_proj lora_A, where
// PyTorch's own float32 run is 5.3e-4 off) and 3.8e-5 (kv_qa); PyTorch float32 reaches
// 6.5e-4. xcomp once looked 10x less accurate than PyTorch here (8.6e-4 against 7e-5):
// that was the fixture. HF 4.42's LlamaForCausalLM returns logits.float(), so its
// "float64" run took the 49,152-way cross-entropy in float32, 1.6e-5 off in d loss /
// d logits; PyTorch's float32 run shares that error and xcomp's cross-entropy (sums in
// double) does not. The script now applies the head itself in float64.
constexpr double kKeyValueTolerance = 1e-4;
// Embedding mode: 2e-3. SmolLM2's massive activations (up to ~3e4 in a few hidden
// dimensions of some rows) make these gradients ill-conditioned: PyTorch float32 is up to
// 7.8e-3 off. xcomp's error is ~1.5x PyTorch's on the typical tensor and 1.45e-3 at worst
// (embedding_qa, layer 28's q_proj lora_A, PyTorch 4.0e-4). Measured cause: rounding in
// the forward matrix products, where oneDNN's sgemm errs ~1.5x more (rms) than the
// OpenBLAS PyTorch uses here. Accumulated in double (an experiment) the worst is 3.3e-4;
// cut into 128-wide k slices (OpenBLAS-level rounding) 4.5e-4, but that costs 16-27% on
// the LM head's product, so the products stay as they are. Which tensor is worst, and by
// how much, hangs on the rounding at a few massive rows, hence the margin.
constexpr double kEmbeddingTolerance = 2e-3;

std::string smollm2_path() { return test::models_dir() + "/SmolLM2-135M-Instruct.Q4_1.gguf"; }

class CompressorTorchSmolLM2 : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    if (!std::filesystem::exists(smollm2_path())) return;
    loaded_ = new LoadedModel(load_model(smollm2_path()));
    model_ = new LlamaModel(loaded_->config, load_weights(*loaded_), *ops_);
    reference_ = new SafetensorsFile(SafetensorsFile::open(
        test::source_dir() + "/tests/reference/data/compressor_reference_smollm2_135m.safetensors"));
  }
  static void TearDownTestSuite() {
    delete reference_;
    delete model_;
    delete loaded_;
    reference_ = nullptr;
    model_ = nullptr;
    loaded_ = nullptr;
  }
  void SetUp() override {
    if (model_ == nullptr) GTEST_SKIP() << smollm2_path() << " is missing: run launch/setup.sh";
  }

  static inline CpuOps* ops_ = new CpuOps();
  static inline LoadedModel* loaded_ = nullptr;
  static inline LlamaModel* model_ = nullptr;
  static inline SafetensorsFile* reference_ = nullptr;
};

TEST_F(CompressorTorchSmolLM2, KvRegenerationMatchesPyTorch) {
  test::compare_with_torch(*model_, *reference_, "kv_regeneration", kKeyValueTolerance);
}

TEST_F(CompressorTorchSmolLM2, KvQaMatchesPyTorch) {
  test::compare_with_torch(*model_, *reference_, "kv_qa", kKeyValueTolerance);
}

TEST_F(CompressorTorchSmolLM2, EmbeddingRegenerationMatchesPyTorch) {
  test::compare_with_torch(*model_, *reference_, "embedding_regeneration", kEmbeddingTolerance);
}

TEST_F(CompressorTorchSmolLM2, EmbeddingQaMatchesPyTorch) {
  test::compare_with_torch(*model_, *reference_, "embedding_qa", kEmbeddingTolerance);
}

TEST_F(CompressorTorchSmolLM2, FixtureBatchesAreTheObjectiveBatches) {
  for (bool regeneration : {true, false}) {
    SCOPED_TRACE(regeneration ? "regeneration" : "qa");
    const CompressorBatch want = test::torch_batch(*reference_, regeneration);
    const CompressorBatch got = test::objective_batch_from_pieces(*reference_, regeneration);
    EXPECT_EQ(test::ids_of(got.decoder_tokens), test::ids_of(want.decoder_tokens));
    EXPECT_EQ(got.decoder_lengths, want.decoder_lengths);
    EXPECT_EQ(test::ids_of(got.targets), test::ids_of(want.targets));
  }
}

TEST_F(CompressorTorchSmolLM2, QaTemplatePiecesMatchTheTokenizer) {
  ASSERT_NE(loaded_->tokenizer, nullptr);
  EXPECT_EQ(loaded_->tokenizer->encode("Question: "), test::ids_of(reference_->tensor("qa.question_prefix")));
  EXPECT_EQ(loaded_->tokenizer->encode(" Answer: "), test::ids_of(reference_->tensor("qa.answer_prefix")));
}

}  // namespace
}  // namespace xcomp
