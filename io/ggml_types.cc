#include "io/ggml_types.h"

#include <glog/logging.h>

#include <cstring>

#include "model/half.h"

namespace xcomp {
namespace {

// Indexed by type id; block sizes and byte sizes as ggml-common.h's block structs lay
// them out. Ids 4 and 5 (Q4_2, Q4_3) were removed from ggml; files never hold them.
constexpr GgmlTypeInfo kTypes[] = {
    {"F32", 1, 4},          {"F16", 1, 2},         {"Q4_0", 32, 18},     {"Q4_1", 32, 20},
    {nullptr, 0, 0},        {nullptr, 0, 0},       {"Q5_0", 32, 22},     {"Q5_1", 32, 24},
    {"Q8_0", 32, 34},       {"Q8_1", 32, 36},      {"Q2_K", 256, 84},    {"Q3_K", 256, 110},
    {"Q4_K", 256, 144},     {"Q5_K", 256, 176},    {"Q6_K", 256, 210},   {"Q8_K", 256, 292},
    {"IQ2_XXS", 256, 66},   {"IQ2_XS", 256, 74},   {"IQ3_XXS", 256, 98}, {"IQ1_S", 256, 50},
    {"IQ4_NL", 32, 18},     {"IQ3_S", 256, 110},   {"IQ2_S", 256, 82},   {"IQ4_XS", 256, 136},
    {"I8", 1, 1},           {"I16", 1, 2},         {"I32", 1, 4},        {"I64", 1, 8},
    {"F64", 1, 8},          {"IQ1_M", 256, 56},    {"BF16", 1, 2},       {"Q4_0_4_4", 32, 18},
    {"Q4_0_4_8", 32, 18},   {"Q4_0_8_8", 32, 18},  {"TQ1_0", 256, 54},   {"TQ2_0", 256, 66},
};
constexpr uint32_t kTypeCount = sizeof(kTypes) / sizeof(kTypes[0]);

uint16_t load_u16(const uint8_t* p) {
  uint16_t v;
  std::memcpy(&v, p, sizeof v);  // little-endian host assumed, as GGUF files are
  return v;
}

void dequantize_f32(const uint8_t* src, float* dst, int64_t n) {
  std::memcpy(dst, src, static_cast<size_t>(n) * sizeof(float));
}

void dequantize_f16(const uint8_t* src, float* dst, int64_t n) {
  for (int64_t i = 0; i < n; ++i) dst[i] = f16_to_f32(load_u16(src + 2 * i));
}

void dequantize_bf16(const uint8_t* src, float* dst, int64_t n) {
  for (int64_t i = 0; i < n; ++i) dst[i] = bf16_to_f32(load_u16(src + 2 * i));
}

// block_q8_0: f16 d, int8 qs[32]; x = q * d.
void dequantize_q8_0(const uint8_t* src, float* dst, int64_t n) {
  for (int64_t b = 0; b < n / 32; ++b, src += 34, dst += 32) {
    const float d = f16_to_f32(load_u16(src));
    for (int j = 0; j < 32; ++j) dst[j] = static_cast<float>(static_cast<int8_t>(src[2 + j])) * d;
  }
}

// block_q4_0: f16 d, 16 bytes; the low nibbles are elements 0..15 and the high nibbles
// elements 16..31 (not interleaved); x = (q - 8) * d.
void dequantize_q4_0(const uint8_t* src, float* dst, int64_t n) {
  for (int64_t b = 0; b < n / 32; ++b, src += 18, dst += 32) {
    const float d = f16_to_f32(load_u16(src));
    const uint8_t* qs = src + 2;
    for (int j = 0; j < 16; ++j) {
      dst[j] = static_cast<float>((qs[j] & 0x0F) - 8) * d;
      dst[j + 16] = static_cast<float>((qs[j] >> 4) - 8) * d;
    }
  }
}

// block_q4_1: f16 d, f16 m, 16 bytes in Q4_0's nibble order; x = q * d + m. Written as
// two roundings (no fused multiply-add) like ggml's reference, so results match bitwise.
void dequantize_q4_1(const uint8_t* src, float* dst, int64_t n) {
  for (int64_t b = 0; b < n / 32; ++b, src += 20, dst += 32) {
    const float d = f16_to_f32(load_u16(src));
    const float m = f16_to_f32(load_u16(src + 2));
    const uint8_t* qs = src + 4;
    for (int j = 0; j < 16; ++j) {
      const float lo = static_cast<float>(qs[j] & 0x0F) * d;
      const float hi = static_cast<float>(qs[j] >> 4) * d;
      dst[j] = lo + m;
      dst[j + 16] = hi + m;
    }
  }
}

}  // namespace

const GgmlTypeInfo* ggml_type_info(uint32_t type) {
  if (type >= kTypeCount || kTypes[type].name == nullptr) return nullptr;
  return &kTypes[type];
}

bool ggml_can_dequantize(uint32_t type) {
  switch (type) {
    case kGgmlF32:
    case kGgmlF16:
    case kGgmlBF16:
    case kGgmlQ8_0:
    case kGgmlQ4_0:
    case kGgmlQ4_1:
      return true;
    default:
      return false;
  }
}

void ggml_dequantize_row(uint32_t type, const uint8_t* src, float* dst, int64_t n) {
  const GgmlTypeInfo* info = ggml_type_info(type);
  CHECK(info != nullptr && ggml_can_dequantize(type)) << "ggml type " << type << " cannot be dequantised";
  CHECK_GE(n, 0);
  CHECK_EQ(n % info->block_size, 0) << info->name << ": " << n << " elements do not fill whole blocks";
  switch (type) {
    case kGgmlF32: return dequantize_f32(src, dst, n);
    case kGgmlF16: return dequantize_f16(src, dst, n);
    case kGgmlBF16: return dequantize_bf16(src, dst, n);
    case kGgmlQ8_0: return dequantize_q8_0(src, dst, n);
    case kGgmlQ4_0: return dequantize_q4_0(src, dst, n);
    case kGgmlQ4_1: return dequantize_q4_1(src, dst, n);
  }
}

}  // namespace xcomp
