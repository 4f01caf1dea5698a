// Model FLOPs of a compressor step (trainer/step_flops.h), against a count written out
// term by term for a small model, and the properties MFU relies on.
#include <gtest/gtest.h>

#include "trainer/step_flops.h"

namespace xcomp {
namespace {

LlamaConfig tiny() {
  LlamaConfig c;
  c.hidden_size = 4;
  c.intermediate_size = 8;
  c.num_hidden_layers = 2;
  c.num_attention_heads = 2;
  c.num_key_value_heads = 1;
  c.head_dim = 2;
  c.vocab_size = 10;
  return c;
}

CompressorSettings settings(CompressorMode mode) {
  CompressorSettings s;
  s.mode = mode;
  s.num_tokens = 2;
  s.lora.r = 1;
  return s;  // LoRA on q_proj and v_proj
}

TEST(StepFlops, KvModeCountedTermByTerm) {
  const StepShape shape{1, 3, 2, 4};  // B 1, L 3, N 2, decoder T 4
  const StepFlops f = compressor_step_flops(tiny(), settings(CompressorMode::kKeyValue), shape);
  // Per token and layer: q 4x4, k 4x2, v 4x2, o 4x4, MLP 3 x 4x8 = 144 weights; K+V alone
  // 16, the rest 128. Forward 2 + activation backward 2 FLOPs per weight. Encoder layer
  // 0: K and V of its 5 rows, the rest for the 2 compression tokens' rows alone; layer 1:
  // their K and V alone.
  EXPECT_DOUBLE_EQ(f.encoder_matmul, 4.0 * (5 * 16 + 2 * 128 + 2 * 16));
  EXPECT_DOUBLE_EQ(f.decoder_matmul, 4.0 * 4 * (2 * 144 + 4 * 10));  // 4 rows, 2 layers + LM head
  // LoRA r 1, 3 x 2 FLOPs per weight and row: q (4 in + 4 out) on layer 0's 2 rows, v
  // (4 + 2) on layer 0's 5 and layer 1's 2.
  EXPECT_DOUBLE_EQ(f.lora, 3 * 2.0 * (8 * 2 + 6 * (5 + 2)));
  // Attention: 12 FLOPs per (query, key, head, head_dim element); encoder layer 0 only,
  // its 2 last queries seeing 4 and 5 keys = 9 pairs; decoder 2 layers: 4 queries see 2 +
  // 1..4 = 18.
  EXPECT_DOUBLE_EQ(f.attention, 12.0 * 2 * 2 * (9 + 2 * 18));
  EXPECT_DOUBLE_EQ(f.total(), f.encoder_matmul + f.decoder_matmul + f.lora + f.attention);
}

// A one-layer K/V encoder: the compression tokens' K and V alone, no attention.
TEST(StepFlops, OneLayerKvEncoderIsTheTokensKeysAndValues) {
  LlamaConfig c = tiny();
  c.num_hidden_layers = 1;
  const StepFlops f = compressor_step_flops(c, settings(CompressorMode::kKeyValue), {1, 3, 2, 4});
  EXPECT_DOUBLE_EQ(f.encoder_matmul, 4.0 * 2 * 16);
  EXPECT_DOUBLE_EQ(f.lora, 3 * 2.0 * 6 * 2);  // v on the 2 rows
  EXPECT_DOUBLE_EQ(f.attention, 12.0 * 2 * 2 * 18);  // the decoder's
}

TEST(StepFlops, EmbeddingModeRunsTheLastLayerForTheMemoryRowsAndFeedsThemAsRows) {
  const StepShape shape{1, 3, 2, 4};
  const StepFlops kv = compressor_step_flops(tiny(), settings(CompressorMode::kKeyValue), shape);
  const StepFlops emb = compressor_step_flops(tiny(), settings(CompressorMode::kEmbedding), shape);
  // Layer 0 on all 5 rows; layer 1's K and V on them, the rest on the 2 memory rows.
  EXPECT_DOUBLE_EQ(emb.encoder_matmul, 4.0 * (5 * 144 + 5 * 16 + 2 * 128));
  EXPECT_DOUBLE_EQ(emb.decoder_matmul, 4.0 * (6 * 2 * 144 + 4 * 4 * 10));  // LM head only where targets are
  EXPECT_DOUBLE_EQ(emb.attention, 12.0 * 2 * 2 * (15 + 9 + 2 * 21));  // decoder: 6 queries see 1..6
  EXPECT_GT(emb.total(), kv.total());
}

// Mode none: the decoder alone, with the LoRA, over everything it reads (decoder T 7,
// the context among it); L and N play no part.
TEST(StepFlops, ModeNoneIsTheDecoderWithLoraOnly) {
  const StepFlops f = compressor_step_flops(tiny(), settings(CompressorMode::kNone), {1, 3, 2, 7});
  EXPECT_DOUBLE_EQ(f.encoder_matmul, 0.0);
  EXPECT_DOUBLE_EQ(f.decoder_matmul, 4.0 * 7 * (2 * 144 + 4 * 10));
  EXPECT_DOUBLE_EQ(f.lora, 3 * 2.0 * 7 * (8 + 6) * 2);  // q and v in both layers
  EXPECT_DOUBLE_EQ(f.attention, 12.0 * 2 * 2 * 2 * 28);  // 7 queries see 1..7 keys, 2 layers
  EXPECT_DOUBLE_EQ(compressor_step_flops(tiny(), settings(CompressorMode::kNone), {1, 50, 9, 7}).total(), f.total());
}

TEST(StepFlops, LinearInTheBatch) {
  const StepFlops one = compressor_step_flops(tiny(), settings(CompressorMode::kKeyValue), {1, 3, 2, 4});
  const StepFlops eight = compressor_step_flops(tiny(), settings(CompressorMode::kKeyValue), {8, 3, 2, 4});
  EXPECT_DOUBLE_EQ(eight.total(), 8 * one.total());
}

}  // namespace
}  // namespace xcomp
