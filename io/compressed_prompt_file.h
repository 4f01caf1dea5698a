// Compressed prompts as files (".xkv"): compress a text once, answer from it many times.
// A safetensors file (io/safetensors.h) holding one compressed prompt:
//   K/V mode:       layers.{i}.keys, layers.{i}.values   F32 [N, kv_heads, head_dim]
//                   (keys after the encoder's RoPE);
//   embedding mode: embeddings F32 [N, hidden], and ae_token F32 [1, hidden] (the
//                   trained token that starts regeneration);
// and metadata: format "xcomp-compressed-prompt", format_version "1", mode,
// num_tokens, decoder_positions, text_tokens (the compressed text's length; K/V mode's
// after_prefix positions depend on it), source_bytes, model_sha256
// (io/model_identity.h), model_source, checkpoint_sha256 (of the trainable.safetensors
// that compressed it); in embedding mode memory_scale, the factor the stored slots
// already carry (compressor.memory_scale; absent in older files: 1).
#pragma once

#include <cstdint>
#include <string>

#include "model/compressor.h"

namespace xcomp {

inline constexpr const char* kCompressedPromptFormat = "xcomp-compressed-prompt";

struct CompressedPromptFile {
  CompressedPrompt prompt;  // batch 1
  DecoderPositions decoder_positions = DecoderPositions::kReference;
  Tensor ae_token;  // embedding mode
  float memory_scale = 1.0f;  // embedding mode: informational, the slots are stored scaled
  int64_t source_bytes = 0;
  std::string model_sha256, model_source, checkpoint_sha256;
};

void write_compressed_prompt(const std::string& path, const CompressedPromptFile& file);

// InputError naming the file for anything that is not a well-formed compressed prompt.
CompressedPromptFile read_compressed_prompt(const std::string& path);

// InputError when `file` was made with another model: it names both identities.
void check_prompt_model(const CompressedPromptFile& file, const std::string& path, const std::string& model_sha256,
                        const std::string& model_source);

}  // namespace xcomp
