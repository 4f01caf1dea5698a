#include "trainer/bench_shapes.h"

#include <glog/logging.h>

#include <cmath>

#include "io/model_loader.h"
#include "model/half.h"
#include "model/input_error.h"
#include "model/random.h"

namespace xcomp {

namespace {

struct RandomShape {
  const char* name;
  int64_t hidden, layers, heads, kv_heads, intermediate, vocab;
  bool tied;
  double rope_theta;
};

// Keep in step with SHAPES in tools/bench/torch_reference.py.
constexpr RandomShape kRandomShapes[] = {
    {"dim512", 512, 8, 8, 8, 1408, 32000, false, 10000.0},
    {"llama3.2-1b", 2048, 16, 32, 8, 8192, 128256, true, 500000.0},
    {"llama3-8b", 4096, 32, 32, 8, 14336, 128256, false, 500000.0},
};

const RandomShape* random_shape(const std::string& name) {
  for (const RandomShape& s : kRandomShapes)
    if (name == s.name) return &s;
  return nullptr;
}

std::string stories260k_path(const std::string& fixtures_dir) { return fixtures_dir + "/stories260K/stories260K.bin"; }
std::string stories260k_tokenizer(const std::string& fixtures_dir) { return fixtures_dir + "/stories260K/tok512.model"; }

LlamaConfig random_config(const RandomShape& s) {
  LlamaConfig c;
  c.hidden_size = s.hidden;
  c.intermediate_size = s.intermediate;
  c.num_hidden_layers = s.layers;
  c.num_attention_heads = s.heads;
  c.num_key_value_heads = s.kv_heads;
  c.head_dim = s.hidden / s.heads;
  c.vocab_size = s.vocab;
  c.max_position_embeddings = 8192;
  c.rope_theta = s.rope_theta;
  c.tie_word_embeddings = s.tied;
  c.source = std::string("random ") + s.name;
  validate_llama_config(c);
  return c;
}

// ~N(0, std^2) from one 64-bit hash per element: the sum of four 16-bit uniforms
// (Irwin-Hall, variance 4/12), rescaled. Cheap enough for the 8B shape's 8e9 values, and
// bounded (|x| < 3.5 std), so always finite.
float random_normalish(uint64_t seed, uint64_t stream, uint64_t index, float std) {
  const uint64_t bits = counter_random_u64(seed, RandomPurpose::kInit, stream, index);
  const double sum = static_cast<double>((bits & 0xffff) + ((bits >> 16) & 0xffff) + ((bits >> 32) & 0xffff) +
                                         (bits >> 48)) /
                     65536.0;
  return static_cast<float>((sum - 2.0) * std::sqrt(3.0) * std);
}

Tensor random_matrix(Shape shape, DType dtype, uint64_t seed, uint64_t stream) {
  CHECK(dtype == DType::F32 || dtype == DType::BF16);
  Tensor t = Tensor::empty(std::move(shape), dtype);
  const int64_t n = t.numel();
  constexpr float kStd = 0.02f;
  if (dtype == DType::F32) {
    float* p = t.data<float>();
#pragma omp parallel for schedule(static)
    for (int64_t i = 0; i < n; ++i) p[i] = random_normalish(seed, stream, static_cast<uint64_t>(i), kStd);
  } else {
    uint16_t* p = t.data<uint16_t>();
#pragma omp parallel for schedule(static)
    for (int64_t i = 0; i < n; ++i) p[i] = f32_to_bf16(random_normalish(seed, stream, static_cast<uint64_t>(i), kStd));
  }
  return t;
}

Tensor ones(int64_t n) {
  Tensor t = Tensor::empty({n});
  for (int64_t i = 0; i < n; ++i) t.data<float>()[i] = 1.0f;
  return t;
}

LlamaWeights random_weights(const LlamaConfig& c, DType dtype, uint64_t seed) {
  uint64_t stream = 0;
  auto matrix = [&](int64_t rows, int64_t cols) { return random_matrix({rows, cols}, dtype, seed, stream++); };
  LlamaWeights w;
  w.embed = matrix(c.vocab_size, c.hidden_size);
  w.final_norm = ones(c.hidden_size);
  w.lm_head = c.tie_word_embeddings ? w.embed : matrix(c.vocab_size, c.hidden_size);
  for (int64_t l = 0; l < c.num_hidden_layers; ++l) {
    LlamaLayerWeights layer;
    layer.attn_norm = ones(c.hidden_size);
    layer.wq = matrix(c.q_dim(), c.hidden_size);
    layer.wk = matrix(c.kv_dim(), c.hidden_size);
    layer.wv = matrix(c.kv_dim(), c.hidden_size);
    layer.wo = matrix(c.hidden_size, c.q_dim());
    layer.mlp_norm = ones(c.hidden_size);
    layer.w_gate = matrix(c.intermediate_size, c.hidden_size);
    layer.w_up = matrix(c.intermediate_size, c.hidden_size);
    layer.w_down = matrix(c.hidden_size, c.intermediate_size);
    w.layers.push_back(std::move(layer));
  }
  return w;
}

}  // namespace

const std::vector<BenchShape>& bench_shapes() {
  static const std::vector<BenchShape> shapes = {
      {"stories260k", 96, 16, true},
      {"dim512", 96, 16, false},
      {"llama3.2-1b", 480, 64, false},
      {"llama3-8b", 480, 64, false},
  };
  return shapes;
}

const BenchShape& find_bench_shape(const std::string& name) {
  std::string known;
  for (const BenchShape& s : bench_shapes()) {
    if (s.name == name) return s;
    known += (known.empty() ? "" : ", ") + s.name;
  }
  throw_input_error("--shape: unknown shape '", name, "' (known: ", known, ")");
}

LlamaConfig bench_config(const BenchShape& shape, const std::string& fixtures_dir) {
  if (shape.from_fixture)
    return load_model(stories260k_path(fixtures_dir), stories260k_tokenizer(fixtures_dir)).config;
  const RandomShape* s = random_shape(shape.name);
  CHECK(s != nullptr) << shape.name;
  return random_config(*s);
}

BenchModel make_bench_model(const BenchShape& shape, DType matrix_dtype, uint64_t seed,
                            const std::string& fixtures_dir) {
  BenchModel m;
  if (shape.from_fixture) {
    LoadedModel loaded = load_model(stories260k_path(fixtures_dir), stories260k_tokenizer(fixtures_dir));
    m.config = loaded.config;
    m.weights = load_weights(loaded);
    return m;
  }
  const RandomShape* s = random_shape(shape.name);
  CHECK(s != nullptr) << shape.name;
  m.config = random_config(*s);
  m.weights = random_weights(m.config, matrix_dtype, seed);
  return m;
}

}  // namespace xcomp
