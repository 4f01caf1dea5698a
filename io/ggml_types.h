// ggml's tensor element types as GGUF files number them: their block layout and, for
// the few that xcomp reads (F32, F16, BF16, Q8_0, Q4_0, Q4_1), their dequantisation,
// defined exactly as ggml's reference code defines it.
#pragma once

#include <cstdint>

namespace xcomp {

// The ids xcomp dequantises (ggml.h's enum ggml_type).
enum GgmlType : uint32_t {
  kGgmlF32 = 0,
  kGgmlF16 = 1,
  kGgmlQ4_0 = 2,
  kGgmlQ4_1 = 3,
  kGgmlQ8_0 = 8,
  kGgmlBF16 = 30,
};

struct GgmlTypeInfo {
  const char* name;    // "Q4_1", as ggml names it
  int64_t block_size;  // elements per block (1 for plain types)
  int64_t type_size;   // bytes per block
};

// Null for ids ggml never defined or has retired (Q4_2, Q4_3, ...).
const GgmlTypeInfo* ggml_type_info(uint32_t type);

// Whether ggml_dequantize_row handles this type.
bool ggml_can_dequantize(uint32_t type);

// Dequantises n elements (a multiple of the type's block size) starting at src, which
// holds n / block_size * type_size bytes, into dst. src needs no particular alignment.
// CHECKs that the type is supported and n fits the blocks: callers validate first.
void ggml_dequantize_row(uint32_t type, const uint8_t* src, float* dst, int64_t n);

}  // namespace xcomp
