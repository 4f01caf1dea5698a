// The GGUF reader against gguf-py: tests/reference/make_gguf_reference.py writes a toy
// LLaMA GGUF and the values gguf-py's dequantize gives for it, plus reference values of
// the real SmolLM2-135M-Instruct Q4_1 file. Malformed files are made here by corrupting
// the toy file's bytes: each must give an InputError naming the file, never a crash.
#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include <cmath>
#include <cstring>
#include <filesystem>
#include <functional>
#include <map>
#include <random>
#include <set>
#include <tuple>

#include "io/ggml_types.h"
#include "io/gguf.h"
#include "io/gguf_convert.h"
#include "io/gguf_llama.h"
#include "io/hf_model.h"
#include "io/safetensors.h"
#include "model/half.h"
#include "model/input_error.h"
#include "model/llama_weights.h"
#include "tests/test_support.h"

namespace xcomp {
namespace {

std::string toy_path() { return test::source_dir() + "/tests/reference/data/toy_llama.gguf"; }
std::string toy_expected_path() { return test::source_dir() + "/tests/reference/data/toy_llama.expected.safetensors"; }
std::string smollm2_path() { return test::models_dir() + "/SmolLM2-135M-Instruct.Q4_1.gguf"; }

const std::string& toy_bytes() {
  static const std::string bytes = test::read_file(toy_path());
  return bytes;
}

// Bitwise equality of two F32 tensors, reporting the first difference.
void expect_bitwise_equal(const Tensor& got, const Tensor& want, const std::string& what) {
  ASSERT_EQ(got.shape(), want.shape()) << what;
  ASSERT_EQ(got.dtype(), DType::F32) << what;
  ASSERT_EQ(want.dtype(), DType::F32) << what;
  const float* g = got.data<float>();
  const float* w = want.data<float>();
  for (int64_t i = 0; i < got.numel(); ++i) {
    if (std::memcmp(&g[i], &w[i], sizeof(float)) != 0) {
      ADD_FAILURE() << what << ": element " << i << " is " << g[i] << ", expected " << w[i];
      return;
    }
  }
}

// --- byte surgery on the toy file ------------------------------------------------------

uint32_t get_u32(const std::string& b, size_t pos) {
  uint32_t v;
  std::memcpy(&v, b.data() + pos, sizeof v);
  return v;
}
void put_u32(std::string& b, size_t pos, uint32_t v) { std::memcpy(&b[pos], &v, sizeof v); }
uint64_t get_u64(const std::string& b, size_t pos) {
  uint64_t v;
  std::memcpy(&v, b.data() + pos, sizeof v);
  return v;
}
void put_u64(std::string& b, size_t pos, uint64_t v) { std::memcpy(&b[pos], &v, sizeof v); }

// The position just after the GGUF string `s` (its u64 length, then its bytes): where a
// key's value type or a tensor info's n_dims starts.
size_t after_string(const std::string& b, const std::string& s) {
  for (size_t pos = b.find(s); pos != std::string::npos; pos = b.find(s, pos + 1)) {
    if (pos >= 8 && get_u64(b, pos - 8) == s.size()) return pos + s.size();
  }
  throw std::runtime_error("string not found in the toy file: " + s);
}

struct TensorInfoPos {
  size_t n_dims;  // position of n_dims
  size_t ne0;
  size_t type;
  size_t offset;
};

TensorInfoPos tensor_info_pos(const std::string& b, const std::string& name) {
  TensorInfoPos p;
  p.n_dims = after_string(b, name);
  const uint32_t n_dims = get_u32(b, p.n_dims);
  p.ne0 = p.n_dims + 4;
  p.type = p.ne0 + 8 * n_dims;
  p.offset = p.type + 4;
  return p;
}

std::string write_temp(const std::string& bytes, const std::string& name) {
  static const std::string dir = test::temp_dir("gguf");
  const std::string path = dir + "/" + name + ".gguf";
  test::write_file(path, bytes);
  return path;
}

// The InputError message read_gguf_llama gives for the file, or "" when it reads fine.
// Anything else (another exception, a CHECK, a sanitizer report) fails the test.
std::string input_error_of(const std::string& path) {
  try {
    read_gguf_llama(path);
  } catch (const InputError& e) {
    return e.what();
  }
  return "";
}

// --- a minimal GGUF writer for files the toy cannot become by patching ---------------

class GgufBuilder {
 public:
  void add_string(const std::string& key, const std::string& value) {
    key_header(key, GgufValueType::STRING);
    append_string(kv_, value);
  }
  void add_raw(const std::string& key, GgufValueType type, const std::string& payload) {
    key_header(key, type);
    kv_ += payload;
  }
  void add_f32_tensor(const std::string& name, const std::vector<float>& values) {
    append_string(infos_, name);
    append(infos_, uint32_t{1});
    append(infos_, uint64_t{values.size()});
    append(infos_, uint32_t{kGgmlF32});
    append(infos_, uint64_t{data_.size()});
    data_.append(reinterpret_cast<const char*>(values.data()), values.size() * sizeof(float));
    while (data_.size() % 32 != 0) data_.push_back('\0');
    ++tensors_;
  }
  std::string bytes() const {
    std::string out = "GGUF";
    append(out, uint32_t{3});
    append(out, tensors_);
    append(out, keys_);
    out += kv_ + infos_;
    while (out.size() % 32 != 0) out.push_back('\0');
    return out + data_;
  }
  template <class T>
  static void append(std::string& out, T v) {
    out.append(reinterpret_cast<const char*>(&v), sizeof v);
  }
  static void append_string(std::string& out, const std::string& s) {
    append(out, uint64_t{s.size()});
    out += s;
  }

 private:
  void key_header(const std::string& key, GgufValueType type) {
    append_string(kv_, key);
    append(kv_, static_cast<uint32_t>(type));
    ++keys_;
  }
  std::string kv_, infos_, data_;
  uint64_t keys_ = 0, tensors_ = 0;
};

// --- the toy file: format, metadata, dequantisation -----------------------------------

TEST(Gguf, ToyHeaderTensorsAndAlignment) {
  const GgufFile f = GgufFile::open(toy_path());
  EXPECT_EQ(f.version(), 3u);
  EXPECT_EQ(f.alignment(), 64u);  // general.alignment, not the default 32
  EXPECT_EQ(f.data_offset() % 64, 0u);
  ASSERT_EQ(f.tensors().size(), 21u);
  const GgufTensorInfo* embd = f.find_tensor("token_embd.weight");
  ASSERT_NE(embd, nullptr);
  EXPECT_EQ(embd->ne, (std::vector<int64_t>{32, 300}));  // GGUF order
  EXPECT_EQ(embd->shape(), (Shape{300, 32}));            // PyTorch order
  EXPECT_EQ(embd->type, kGgmlQ8_0);
  EXPECT_EQ(embd->nbytes, 300u * 34u);
  EXPECT_EQ(f.find_tensor("rope_freqs.weight"), nullptr);
}

TEST(Gguf, ToyMetadataOfEveryValueType) {
  const GgufFile f = GgufFile::open(toy_path());
  EXPECT_EQ(f.get_int("xcomp.test.u8"), 200);
  EXPECT_EQ(f.get_int("xcomp.test.i8"), -100);
  EXPECT_EQ(f.get_int("xcomp.test.u16"), 60000);
  EXPECT_EQ(f.get_int("xcomp.test.i16"), -30000);
  EXPECT_EQ(f.get_int("xcomp.test.u32"), 4000000000LL);
  EXPECT_EQ(f.get_int("xcomp.test.i32"), -2000000000LL);
  EXPECT_EQ(f.get_float("xcomp.test.f32"), 0.5);
  EXPECT_EQ(f.value("xcomp.test.u64").as_uint64(), (uint64_t{1} << 63) + 5);
  EXPECT_EQ(f.get_int("xcomp.test.i64"), -(int64_t{1} << 62));
  EXPECT_EQ(f.get_float("xcomp.test.f64"), 0.1);
  EXPECT_TRUE(f.get_bool("xcomp.test.bool"));
  EXPECT_EQ(f.get_string("xcomp.test.string"), "h\xc3\xa9llo");
  EXPECT_EQ(f.get_int_array("xcomp.test.int_array"), (std::vector<int64_t>{1, -2, 3}));
  EXPECT_EQ(f.get_float_array("xcomp.test.float_array"), (std::vector<double>{0.25, -1.5}));
  const std::vector<GgufValue> bools = f.value("xcomp.test.bool_array").elements();
  ASSERT_EQ(bools.size(), 2u);
  EXPECT_TRUE(bools[0].as_bool());
  EXPECT_FALSE(bools[1].as_bool());
  EXPECT_EQ(f.get_string_array("xcomp.test.string_array"), (std::vector<std::string>{"a", "bc"}));
  EXPECT_EQ(f.value("xcomp.test.byte_array").element_type(), GgufValueType::UINT8);
  EXPECT_EQ(f.get_int_array("xcomp.test.byte_array"), (std::vector<int64_t>{1, 2, 255}));

  const GgufValue& nested = f.value("xcomp.test.nested_array");
  ASSERT_EQ(nested.element_type(), GgufValueType::ARRAY);
  std::vector<std::vector<int64_t>> ints;
  for (const GgufValue& row : nested.elements()) {
    ints.emplace_back();
    for (const GgufValue& e : row.elements()) ints.back().push_back(e.as_int64());
  }
  EXPECT_EQ(ints, (std::vector<std::vector<int64_t>>{{1, 2}, {3}, {4, 5, 6}}));
  std::vector<std::vector<std::string>> strings;
  for (const GgufValue& row : f.value("xcomp.test.nested_string_array").elements()) {
    strings.emplace_back();
    for (const GgufValue& e : row.elements()) strings.back().push_back(e.as_string());
  }
  EXPECT_EQ(strings, (std::vector<std::vector<std::string>>{{"x"}, {"y", "z"}}));
}

TEST(Gguf, GettersNameFileAndKeyOnMissingOrMistypedKeys) {
  const GgufFile f = GgufFile::open(toy_path());
  EXPECT_EQ(f.get_int("no.such.key", 7), 7);
  EXPECT_EQ(f.get_string("no.such.key", "x"), "x");
  const auto message_of = [](const std::function<void()>& fn) -> std::string {
    try {
      fn();
    } catch (const InputError& e) {
      return e.what();
    }
    return "";
  };
  const std::string missing = message_of([&] { f.get_int("no.such.key"); });
  EXPECT_NE(missing.find(toy_path()), std::string::npos) << missing;
  EXPECT_NE(missing.find("'no.such.key'"), std::string::npos) << missing;
  const std::string wrong = message_of([&] { f.get_string("xcomp.test.u8"); });
  EXPECT_NE(wrong.find("'xcomp.test.u8'"), std::string::npos) << wrong;
  EXPECT_NE(wrong.find("expected a string, found uint8"), std::string::npos) << wrong;
  const std::string out_of_range = message_of([&] { f.get_int("xcomp.test.u64"); });
  EXPECT_NE(out_of_range.find("out of range"), std::string::npos) << out_of_range;
  const std::string array = message_of([&] { f.get_int_array("xcomp.test.string_array"); });
  EXPECT_NE(array.find("found array of string"), std::string::npos) << array;
  const std::string float_int = message_of([&] { f.get_float("xcomp.test.i32"); });
  EXPECT_NE(float_int.find("expected a float, found int32"), std::string::npos) << float_int;
}

// gguf-py dequantises with the same float32 operations as ggml (an f16 scale times a
// small integer, plus an f16 minimum for Q4_1, each rounded once), so the values must
// match bit for bit.
TEST(Gguf, ToyDequantisesExactlyAsGgufPy) {
  const GgufFile f = GgufFile::open(toy_path());
  const SafetensorsFile expected = SafetensorsFile::open(toy_expected_path());
  std::set<uint32_t> types;
  for (const GgufTensorInfo& info : f.tensors()) {
    types.insert(info.type);
    expect_bitwise_equal(f.dequantize(info), expected.tensor(info.name), info.name);
  }
  EXPECT_EQ(types, (std::set<uint32_t>{kGgmlF32, kGgmlF16, kGgmlBF16, kGgmlQ8_0, kGgmlQ4_0, kGgmlQ4_1}));
}

// One block of each format, decoded by hand from ggml's definitions.
TEST(Gguf, BlockFormatsByHand) {
  uint8_t q8[34];
  const uint16_t half = f32_to_f16(0.5f);
  std::memcpy(q8, &half, 2);
  for (int j = 0; j < 32; ++j) q8[2 + j] = static_cast<uint8_t>(static_cast<int8_t>(j - 16));
  float out[32];
  ggml_dequantize_row(kGgmlQ8_0, q8, out, 32);
  for (int j = 0; j < 32; ++j) EXPECT_EQ(out[j], 0.5f * static_cast<float>(j - 16)) << j;

  uint8_t q4[20];
  const uint16_t d = f32_to_f16(2.0f), m = f32_to_f16(-1.0f);
  std::memcpy(q4, &d, 2);
  std::memcpy(q4 + 2, &m, 2);
  for (int j = 0; j < 16; ++j) q4[4 + j] = static_cast<uint8_t>((15 - j) << 4 | j);
  ggml_dequantize_row(kGgmlQ4_1, q4, out, 32);
  for (int j = 0; j < 16; ++j) {
    EXPECT_EQ(out[j], 2.0f * j - 1.0f) << j;               // low nibbles: elements 0..15
    EXPECT_EQ(out[j + 16], 2.0f * (15 - j) - 1.0f) << j;   // high nibbles: elements 16..31
  }
  // Q4_0 is the same layout without m (the bytes after d), centred on 8.
  std::memmove(q4 + 2, q4 + 4, 16);
  ggml_dequantize_row(kGgmlQ4_0, q4, out, 32);
  for (int j = 0; j < 16; ++j) {
    EXPECT_EQ(out[j], 2.0f * (j - 8)) << j;
    EXPECT_EQ(out[j + 16], 2.0f * (15 - j - 8)) << j;
  }
}

TEST(Gguf, Version2IsRead) {
  std::string b = toy_bytes();
  put_u32(b, 4, 2);
  const GgufFile f = GgufFile::open(write_temp(b, "version2"));
  EXPECT_EQ(f.version(), 2u);
  EXPECT_EQ(f.tensors().size(), 21u);
}

// --- the toy file as a LLaMA model -----------------------------------------------------

TEST(GgufLlama, ToyConfigFromMetadata) {
  const GgufModel m = read_gguf_llama(toy_path());
  const LlamaConfig& c = m.config;
  EXPECT_EQ(c.source, toy_path());
  EXPECT_EQ(c.hidden_size, 32);
  EXPECT_EQ(c.intermediate_size, 64);
  EXPECT_EQ(c.num_hidden_layers, 2);
  EXPECT_EQ(c.num_attention_heads, 4);
  EXPECT_EQ(c.num_key_value_heads, 2);
  EXPECT_EQ(c.head_dim, 8);
  EXPECT_EQ(c.vocab_size, 300);
  EXPECT_EQ(c.max_position_embeddings, 256);
  EXPECT_EQ(c.rms_norm_eps, 1e-6);  // the decimal, recovered from float32
  EXPECT_EQ(c.rope_theta, 50000.0);
  EXPECT_TRUE(c.rope_scaling.type.empty());
  EXPECT_FALSE(c.tie_word_embeddings);  // output.weight is present
  EXPECT_EQ(c.bos_token_id, 1);
  EXPECT_EQ(c.eos_token_id, 0);
  // <|im_end|> (control) ends turns too; <|end|> is user-defined (type 4), so not.
  EXPECT_EQ(c.extra_eos_token_ids, (std::vector<int32_t>{2}));
}

TEST(GgufLlama, ToyTokenizerMetadata) {
  const GgufTokenizerData t = read_gguf_llama(toy_path()).tokenizer;
  EXPECT_EQ(t.source, toy_path());
  EXPECT_EQ(t.model, "gpt2");
  EXPECT_EQ(t.pre, "smollm");
  ASSERT_EQ(t.tokens.size(), 300u);
  EXPECT_EQ(t.tokens[0], "<|endoftext|>");
  EXPECT_EQ(t.tokens[2], "<|im_end|>");
  EXPECT_EQ(t.tokens[3], "!");  // first of GPT-2's byte symbols
  EXPECT_EQ(t.tokens[299], "<|end|>");
  ASSERT_EQ(t.token_types.size(), 300u);
  EXPECT_EQ(t.token_types[0], 3);
  EXPECT_EQ(t.token_types[100], 1);
  EXPECT_EQ(t.token_types[299], 4);
  EXPECT_TRUE(t.scores.empty());
  ASSERT_EQ(t.merges.size(), 40u);
  for (const std::string& merge : t.merges) EXPECT_NE(merge.find(' '), std::string::npos) << merge;
  EXPECT_EQ(t.bos_id, 1);
  EXPECT_EQ(t.eos_id, 0);
  EXPECT_EQ(t.unk_id, 0);
  EXPECT_EQ(t.pad_id, 2);
  EXPECT_FALSE(t.add_bos);
  EXPECT_NE(t.chat_template.find("<|im_start|>"), std::string::npos);
}

TEST(GgufLlama, ToyTensorsAreHuggingFaceNamedAndOrdered) {
  const GgufModel m = read_gguf_llama(toy_path());
  const auto shapes = llama_tensor_shapes(m.config);
  ASSERT_EQ(m.tensors.size(), shapes.size());
  for (size_t i = 0; i < shapes.size(); ++i) {
    EXPECT_EQ(m.tensors[i].first, shapes[i].first);
    EXPECT_EQ(m.tensors[i].second.shape(), shapes[i].second) << shapes[i].first;
    EXPECT_EQ(m.tensors[i].second.dtype(), DType::F32) << shapes[i].first;
  }
  EXPECT_EQ(gguf_to_hf_tensor_name("blk.12.ffn_down.weight"), "model.layers.12.mlp.down_proj.weight");
  EXPECT_EQ(gguf_to_hf_tensor_name("blk.0.attn_output.weight"), "model.layers.0.self_attn.o_proj.weight");
  EXPECT_EQ(gguf_to_hf_tensor_name("output.weight"), "lm_head.weight");
  EXPECT_EQ(gguf_to_hf_tensor_name("blk.x.attn_q.weight"), "");
  EXPECT_EQ(gguf_to_hf_tensor_name("blk.01.attn_q.weight"), "");
  EXPECT_EQ(gguf_to_hf_tensor_name("rope_freqs.weight"), "");
}

// Every tensor equals gguf-py's dequantised values; q and k equal the reference's
// rows put back into Hugging Face's order by the inverse of llama.cpp's permute.
TEST(GgufLlama, ToyTensorsMatchReferenceIncludingRopeRowOrder) {
  const GgufModel m = read_gguf_llama(toy_path());
  const GgufFile f = GgufFile::open(toy_path());
  const SafetensorsFile expected = SafetensorsFile::open(toy_expected_path());
  std::map<std::string, std::string> gguf_name_of;
  for (const GgufTensorInfo& info : f.tensors()) gguf_name_of[gguf_to_hf_tensor_name(info.name)] = info.name;
  for (const auto& [name, tensor] : m.tensors) {
    const bool rope = name.find("q_proj") != std::string::npos || name.find("k_proj") != std::string::npos;
    expect_bitwise_equal(tensor, expected.tensor(rope ? "hf." + name : gguf_name_of.at(name)), name);
  }
}

// The un-permutation spelt out on the raw GGUF rows: within each head of head_dim rows,
// Hugging Face row i < head_dim/2 is GGUF row 2i and row head_dim/2 + i is GGUF row 2i+1.
TEST(GgufLlama, QkRowsComeFromInterleavedPairs) {
  const GgufModel m = read_gguf_llama(toy_path());
  const SafetensorsFile expected = SafetensorsFile::open(toy_expected_path());
  std::map<std::string, Tensor> hf(m.tensors.begin(), m.tensors.end());
  const int64_t head_dim = m.config.head_dim, half = head_dim / 2;
  for (const auto& [gguf_name, hf_name, heads] :
       std::vector<std::tuple<std::string, std::string, int64_t>>{
           {"blk.0.attn_q.weight", "model.layers.0.self_attn.q_proj.weight", 4},
           {"blk.1.attn_k.weight", "model.layers.1.self_attn.k_proj.weight", 2}}) {
    const Tensor raw = expected.tensor(gguf_name);
    const Tensor& got = hf.at(hf_name);
    const int64_t cols = raw.dim(1);
    for (int64_t h = 0; h < heads; ++h) {
      for (int64_t i = 0; i < head_dim; ++i) {
        const int64_t src = h * head_dim + (i < half ? 2 * i : 2 * (i - half) + 1);
        const int64_t dst = h * head_dim + i;
        EXPECT_EQ(std::memcmp(got.data<float>() + dst * cols, raw.data<float>() + src * cols, cols * sizeof(float)), 0)
            << hf_name << " row " << dst;
      }
    }
  }
}

TEST(GgufConvert, ToyToHuggingFaceDirectory) {
  const std::string dir = test::temp_dir("gguf-convert") + "/toy";
  convert_gguf(toy_path(), dir);
  const HfModelDir out = read_hf_model_dir(dir);
  const GgufModel m = read_gguf_llama(toy_path());
  EXPECT_EQ(out.config.hidden_size, m.config.hidden_size);
  EXPECT_EQ(out.config.num_key_value_heads, m.config.num_key_value_heads);
  EXPECT_EQ(out.config.rms_norm_eps, m.config.rms_norm_eps);
  EXPECT_EQ(out.config.rope_theta, m.config.rope_theta);
  EXPECT_EQ(out.config.tie_word_embeddings, m.config.tie_word_embeddings);
  EXPECT_EQ(out.config.eos_token_id, m.config.eos_token_id);
  ASSERT_EQ(out.tensors.size(), m.tensors.size());
  for (const auto& [name, tensor] : m.tensors) {
    expect_bitwise_equal(out.tensors.at(name).to_f32(), tensor, name);
  }
}

// --- malformed files --------------------------------------------------------------------

struct Corruption {
  const char* name;
  std::function<void(std::string&)> apply;
  std::vector<std::string> message_parts;  // besides the path
};

std::vector<Corruption> corruptions() {
  const auto key_value = [](const std::string& b, const char* key) { return after_string(b, key) + 4; };
  return {
      {"bad_magic", [](std::string& b) { b[0] = 'X'; }, {"not a GGUF file"}},
      {"version_1", [](std::string& b) { put_u32(b, 4, 1); }, {"unsupported GGUF version 1"}},
      {"version_4", [](std::string& b) { put_u32(b, 4, 4); }, {"unsupported GGUF version 4"}},
      {"big_endian", [](std::string& b) { put_u32(b, 4, 0x03000000u); }, {"big-endian"}},
      {"truncated_header", [](std::string& b) { b.resize(12); }, {"truncated", "tensor count"}},
      {"truncated_metadata", [](std::string& b) { b.resize(300); }, {"truncated"}},
      {"absurd_tensor_count", [](std::string& b) { put_u64(b, 8, uint64_t{1} << 60); }, {"tensor count"}},
      {"absurd_metadata_count", [](std::string& b) { put_u64(b, 16, uint64_t{1} << 60); }, {"metadata count"}},
      {"string_length_past_end",
       [=](std::string& b) { put_u64(b, key_value(b, "general.architecture"), uint64_t{1} << 40); },
       {"'general.architecture'", "string length 1099511627776"}},
      {"absurd_array_count",
       [=](std::string& b) { put_u64(b, key_value(b, "tokenizer.ggml.tokens") + 4, uint64_t{1} << 62); },
       {"'tokenizer.ggml.tokens'", "array of 4611686018427387904 string elements"}},
      {"unknown_value_type", [](std::string& b) { put_u32(b, after_string(b, "xcomp.test.u32"), 13); },
       {"'xcomp.test.u32'", "unknown value type 13"}},
      {"duplicate_key", [](std::string& b) { b[after_string(b, "xcomp.test.i8") - 2] = 'u'; },
       {"'xcomp.test.u8' appears twice"}},
      {"alignment_not_power_of_two", [=](std::string& b) { put_u32(b, key_value(b, "general.alignment"), 48); },
       {"'general.alignment'", "power of two"}},
      {"n_dims_5", [](std::string& b) { put_u32(b, tensor_info_pos(b, "blk.0.attn_q.weight").n_dims, 5); },
       {"'blk.0.attn_q.weight'", "n_dims 5"}},
      {"absurd_dimension",
       [](std::string& b) { put_u64(b, tensor_info_pos(b, "blk.0.attn_q.weight").ne0, uint64_t{1} << 63); },
       {"'blk.0.attn_q.weight'", "impossibly large"}},
      {"zero_dimension", [](std::string& b) { put_u64(b, tensor_info_pos(b, "blk.0.attn_q.weight").ne0 + 8, 0); },
       {"'blk.0.attn_q.weight'", "dimension 1 is 0"}},
      {"row_not_whole_blocks", [](std::string& b) { put_u64(b, tensor_info_pos(b, "blk.0.attn_q.weight").ne0, 31); },
       {"'blk.0.attn_q.weight'", "block size 32"}},
      {"unknown_ggml_type", [](std::string& b) { put_u32(b, tensor_info_pos(b, "blk.0.attn_q.weight").type, 99); },
       {"'blk.0.attn_q.weight'", "unknown ggml type id 99"}},
      {"unsupported_ggml_type",  // IQ4_NL has Q4_0's block size, so only dequantisation can object
       [](std::string& b) { put_u32(b, tensor_info_pos(b, "blk.0.attn_q.weight").type, 20); },
       {"'blk.0.attn_q.weight'", "IQ4_NL"}},
      {"tensor_data_past_end", [](std::string& b) { b.resize(b.size() - 100); }, {"past the end of the file"}},
      {"offset_past_end",
       [](std::string& b) { put_u64(b, tensor_info_pos(b, "blk.0.attn_q.weight").offset, uint64_t{1} << 62); },
       {"'blk.0.attn_q.weight'", "past the end of the file"}},
      {"misaligned_offset",
       [](std::string& b) {
         const size_t at = tensor_info_pos(b, "blk.0.attn_q.weight").offset;
         put_u64(b, at, get_u64(b, at) + 32);
       },
       {"'blk.0.attn_q.weight'", "not a multiple of the alignment 64"}},
      {"overlapping_offset",
       [](std::string& b) {
         put_u64(b, tensor_info_pos(b, "blk.0.attn_k.weight").offset,
                 get_u64(b, tensor_info_pos(b, "blk.0.attn_q.weight").offset));
       },
       {"overlaps"}},
      {"duplicate_tensor", [](std::string& b) { b[after_string(b, "blk.1.attn_v.weight") - 15] = '0'; },
       {"'blk.0.attn_v.weight' appears twice"}},
      {"not_llama", [=](std::string& b) { b[key_value(b, "general.architecture") + 8 + 4] = 'b'; },
       {"general.architecture", "\"llamb\""}},
      {"missing_llama_key", [](std::string& b) { b[after_string(b, "llama.block_count") - 5] = 'C'; },
       {"missing metadata key 'llama.block_count'"}},
      {"wrong_key_type", [](std::string& b) { put_u32(b, after_string(b, "llama.embedding_length"), 6); },
       {"'llama.embedding_length'", "expected an integer, found float32"}},
      {"absurd_block_count", [=](std::string& b) { put_u32(b, key_value(b, "llama.block_count"), 1000000000); },
       {"'llama.block_count'"}},
      {"zero_heads", [=](std::string& b) { put_u32(b, key_value(b, "llama.attention.head_count"), 0); },
       {"'llama.attention.head_count'"}},
      {"bos_outside_vocabulary",
       [=](std::string& b) { put_u32(b, key_value(b, "tokenizer.ggml.bos_token_id"), 5000); },
       {"'tokenizer.ggml.bos_token_id'", "outside the vocabulary"}},
      {"shape_disagrees_with_config",
       [](std::string& b) { put_u64(b, tensor_info_pos(b, "blk.1.ffn_norm.weight").ne0, 16); },
       {"'blk.1.ffn_norm.weight'", "post_attention_layernorm", "shape [16]", "expected [32]"}},
      {"unexpected_tensor", [](std::string& b) { b[after_string(b, "blk.1.attn_norm.weight") - 10] = 'x'; },
       {"unexpected tensor 'blk.1.attn_nxrm.weight'"}},
      {"tensor_of_missing_layer", [](std::string& b) { b[after_string(b, "blk.1.attn_v.weight") - 15] = '7'; },
       {"missing tensor for model.layers.1.self_attn.v_proj.weight"}},
  };
}

TEST(GgufMalformed, EachCorruptionIsAnInputErrorNamingFileAndCulprit) {
  for (const Corruption& c : corruptions()) {
    SCOPED_TRACE(c.name);
    std::string bytes = toy_bytes();
    c.apply(bytes);
    ASSERT_NE(bytes, toy_bytes());
    const std::string path = write_temp(bytes, c.name);
    const std::string message = input_error_of(path);
    ASSERT_FALSE(message.empty()) << "read without error";
    ASSERT_EQ(message.rfind(path + ": ", 0), 0u) << message;
    const std::string rest = message.substr(path.size());  // the path holds the case's name
    for (const std::string& part : c.message_parts) EXPECT_NE(rest.find(part), std::string::npos) << message;
  }
}

TEST(GgufMalformed, RopeFreqsTensorIsRefusedClearly) {
  GgufBuilder g;
  g.add_string("general.architecture", "llama");
  g.add_f32_tensor("rope_freqs.weight", std::vector<float>(32, 1.0f));
  const std::string path = write_temp(g.bytes(), "rope_freqs");
  const std::string message = input_error_of(path);
  EXPECT_NE(message.find(path), std::string::npos) << message;
  EXPECT_NE(message.find("rope_freqs.weight"), std::string::npos) << message;
  EXPECT_NE(message.find("llama3"), std::string::npos) << message;
}

TEST(GgufMalformed, OtherArchitectureIsRefusedClearly) {
  GgufBuilder g;
  g.add_string("general.architecture", "qwen2");
  const std::string message = input_error_of(write_temp(g.bytes(), "qwen2"));
  EXPECT_NE(message.find("\"qwen2\""), std::string::npos) << message;
}

TEST(GgufMalformed, DeeplyNestedArraysAreRefusedNotRecursedInto) {
  std::string payload;
  for (int i = 0; i < 100000; ++i) {
    GgufBuilder::append(payload, static_cast<uint32_t>(GgufValueType::ARRAY));
    GgufBuilder::append(payload, uint64_t{1});
  }
  GgufBuilder g;
  g.add_raw("deep", GgufValueType::ARRAY, payload);  // each level: element type array, count 1
  const std::string message = input_error_of(write_temp(g.bytes(), "deep"));
  EXPECT_NE(message.find("'deep'"), std::string::npos) << message;
  EXPECT_NE(message.find("nested"), std::string::npos) << message;
}

TEST(GgufMalformed, EveryTruncationOfTheHeaderIsAnInputError) {
  const size_t header = GgufFile::open(toy_path()).data_offset();
  for (size_t length = 0; length < header; length += 7) {
    const std::string path = write_temp(toy_bytes().substr(0, length), "truncated");
    EXPECT_FALSE(input_error_of(path).empty()) << "length " << length;
  }
}

// Random byte flips in the header and tensor infos: reading may succeed (a changed
// token text is still a model) but must never crash or fail a CHECK.
TEST(GgufMalformed, RandomHeaderCorruptionNeverCrashes) {
  const size_t header = GgufFile::open(toy_path()).data_offset();
  std::mt19937 rng(12345);
  int errors = 0;
  for (int trial = 0; trial < 300; ++trial) {
    std::string b = toy_bytes();
    const int flips = 1 + static_cast<int>(rng() % 4);
    for (int i = 0; i < flips; ++i) b[rng() % header] = static_cast<char>(rng());
    errors += input_error_of(write_temp(b, "random")).empty() ? 0 : 1;
  }
  EXPECT_GT(errors, 0);
}

// --- SmolLM2-135M-Instruct (Q8_0 embeddings, Q4_1 matrices, F32 norms) ------------------

#define SKIP_WITHOUT_SMOLLM2()                                                                           \
  if (!std::filesystem::exists(smollm2_path()))                                                          \
  GTEST_SKIP() << smollm2_path() << " is absent; launch/setup.sh downloads it (or set XCOMP_MODELS)"

nlohmann::json smollm2_reference() {
  return nlohmann::json::parse(test::read_file(test::source_dir() + "/tests/reference/data/smollm2_reference.json"));
}

// First values exactly, sums to summation-order rounding (numpy sums pairwise).
void expect_matches_reference(const Tensor& t, const nlohmann::json& ref, const std::string& name) {
  ASSERT_EQ(t.shape(), ref["shape"].get<Shape>()) << name;
  const float* v = t.data<float>();
  const auto first = ref["first64"].get<std::vector<double>>();
  for (size_t i = 0; i < first.size(); ++i) EXPECT_EQ(v[i], static_cast<float>(first[i])) << name << " [" << i << "]";
  double sum = 0, sum_abs = 0;
  for (int64_t i = 0; i < t.numel(); ++i) {
    sum += v[i];
    sum_abs += std::fabs(v[i]);
  }
  EXPECT_NEAR(sum, ref["sum"].get<double>(), 1e-9 * sum_abs) << name;
}

TEST(GgufSmolLM2, DequantisedTensorsMatchGgufPy) {
  SKIP_WITHOUT_SMOLLM2();
  const GgufFile f = GgufFile::open(smollm2_path());
  EXPECT_EQ(f.alignment(), 32u);  // the default
  const nlohmann::json reference = smollm2_reference();  // named: items() would dangle on a temporary
  size_t checked = 0;
  for (const auto& item : reference["tensors"].items()) {
    ++checked;
    const std::string& name = item.key();
    const nlohmann::json& ref = item.value();
    const GgufTensorInfo* info = f.find_tensor(name);
    ASSERT_NE(info, nullptr) << name;
    EXPECT_EQ(ggml_type_info(info->type)->name, ref["type"].get<std::string>()) << name;
    expect_matches_reference(f.dequantize(*info), ref, name);
  }
  EXPECT_EQ(checked, 6u);
}

TEST(GgufSmolLM2, ReadsAsLlamaModel) {
  SKIP_WITHOUT_SMOLLM2();
  const GgufModel m = read_gguf_llama(smollm2_path());
  const LlamaConfig& c = m.config;
  EXPECT_EQ(c.hidden_size, 576);
  EXPECT_EQ(c.intermediate_size, 1536);
  EXPECT_EQ(c.num_hidden_layers, 30);
  EXPECT_EQ(c.num_attention_heads, 9);
  EXPECT_EQ(c.num_key_value_heads, 3);
  EXPECT_EQ(c.head_dim, 64);
  EXPECT_EQ(c.vocab_size, 49152);
  EXPECT_EQ(c.max_position_embeddings, 8192);
  EXPECT_EQ(c.rms_norm_eps, 1e-5);
  EXPECT_EQ(c.rope_theta, 100000.0);
  EXPECT_TRUE(c.tie_word_embeddings);
  EXPECT_EQ(c.bos_token_id, 1);
  EXPECT_EQ(c.eos_token_id, 2);                                  // <|im_end|> in this file
  EXPECT_EQ(c.extra_eos_token_ids, (std::vector<int32_t>{0}));  // <|endoftext|>
  EXPECT_EQ(m.tokenizer.model, "gpt2");
  EXPECT_EQ(m.tokenizer.pre, "smollm");
  EXPECT_EQ(m.tokenizer.tokens.size(), 49152u);
  EXPECT_EQ(m.tokenizer.merges.size(), 48900u);
  EXPECT_EQ(m.tensors.size(), 272u);

  std::map<std::string, Tensor> hf(m.tensors.begin(), m.tensors.end());
  const nlohmann::json ref = smollm2_reference()["tensors"];
  for (const auto& [gguf_name, hf_name] : std::vector<std::pair<std::string, std::string>>{
           {"blk.0.attn_q.weight", "model.layers.0.self_attn.q_proj.weight"},
           {"blk.0.attn_k.weight", "model.layers.0.self_attn.k_proj.weight"}}) {
    const Tensor& t = hf.at(hf_name);
    const auto row1 = ref[gguf_name]["hf_row1_first8"].get<std::vector<double>>();
    for (size_t i = 0; i < row1.size(); ++i) {
      EXPECT_EQ(t.data<float>()[t.dim(1) + i], static_cast<float>(row1[i])) << hf_name << " row 1 [" << i << "]";
    }
  }
  expect_matches_reference(hf.at("model.embed_tokens.weight"), ref["token_embd.weight"], "embed_tokens");
  expect_matches_reference(hf.at("model.layers.29.mlp.down_proj.weight"), ref["blk.29.ffn_down.weight"], "down_proj");
}

}  // namespace
}  // namespace xcomp
