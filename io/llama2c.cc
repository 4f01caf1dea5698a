#include "io/llama2c.h"

#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <memory>

#include "io/atomic_file.h"
#include "io/hf_model.h"
#include "io/mapped_file.h"
#include "model/input_error.h"
#include "model/llama_weights.h"

namespace xcomp {

namespace {
constexpr size_t kHeaderInts = 7;
constexpr size_t kHeaderBytes = kHeaderInts * sizeof(int32_t);

int32_t read_le32(const uint8_t* p) {
  uint32_t v = uint32_t{p[0]} | uint32_t{p[1]} << 8 | uint32_t{p[2]} << 16 | uint32_t{p[3]} << 24;
  int32_t out;
  std::memcpy(&out, &v, sizeof out);
  return out;
}

struct Header {
  int64_t dim, hidden_dim, n_layers, n_heads, n_kv_heads, vocab_size, seq_len;
  bool shared_classifier;
  int64_t head_size() const { return dim / n_heads; }
  int64_t kv_dim() const { return head_size() * n_kv_heads; }
};

Header read_header(const MappedFile& file) {
  const std::string& path = file.path();
  if (file.size() < kHeaderBytes) {
    throw_input_error(path, ": ", file.size(), " bytes is too short for a llama2.c checkpoint header (", kHeaderBytes,
                      " bytes)");
  }
  int64_t v[kHeaderInts];
  for (size_t i = 0; i < kHeaderInts; ++i) v[i] = read_le32(file.data() + 4 * i);
  Header h{v[0], v[1], v[2], v[3], v[4], std::llabs(v[5]), v[6], v[5] > 0};
  const char* names[] = {"dim", "hidden_dim", "n_layers", "n_heads", "n_kv_heads", "vocab_size", "seq_len"};
  for (size_t i = 0; i < kHeaderInts; ++i) {
    if (v[i] == 0 || (v[i] < 0 && i != 5)) {
      throw_input_error(path, ": llama2.c header field ", names[i], " is ", v[i], ", expected a positive number");
    }
  }
  if (h.dim % h.n_heads != 0) {
    throw_input_error(path, ": llama2.c header: dim ", h.dim, " is not a multiple of n_heads ", h.n_heads);
  }
  if (h.n_heads % h.n_kv_heads != 0) {
    throw_input_error(path, ": llama2.c header: n_heads ", h.n_heads, " is not a multiple of n_kv_heads ", h.n_kv_heads);
  }
  if (h.head_size() % 2 != 0) {
    throw_input_error(path, ": llama2.c header: head size ", h.head_size(), " (dim / n_heads) must be even for RoPE");
  }
  return h;
}

// Adds up products of header fields without overflowing: a corrupt header may claim sizes
// no file could hold.
class FloatCount {
 public:
  explicit FloatCount(const std::string& path) : path_(path) {}
  void add(std::initializer_list<int64_t> dims) {
    uint64_t product = 1;
    for (int64_t d : dims) {
      if (__builtin_mul_overflow(product, static_cast<uint64_t>(d), &product)) overflow();
    }
    if (__builtin_add_overflow(total_, product, &total_)) overflow();
  }
  uint64_t bytes() const {
    uint64_t b;
    if (__builtin_mul_overflow(total_, uint64_t{4}, &b) || __builtin_add_overflow(b, kHeaderBytes, &b)) overflow();
    return b;
  }

 private:
  [[noreturn]] void overflow() const { throw_input_error(path_, ": llama2.c header implies an impossibly large file"); }
  std::string path_;
  uint64_t total_ = 0;
};

uint64_t expected_file_size(const std::string& path, const Header& h) {
  FloatCount n(path);
  const int64_t L = h.n_layers;
  n.add({h.vocab_size, h.dim});                              // token_embedding
  n.add({L, h.dim});                                         // rms_att
  n.add({L, h.dim, h.dim});                                  // wq
  n.add({L, h.kv_dim(), h.dim});                             // wk
  n.add({L, h.kv_dim(), h.dim});                             // wv
  n.add({L, h.dim, h.dim});                                  // wo
  n.add({L, h.dim});                                         // rms_ffn
  n.add({L, h.hidden_dim, h.dim});                           // w1
  n.add({L, h.dim, h.hidden_dim});                           // w2
  n.add({L, h.hidden_dim, h.dim});                           // w3
  n.add({h.dim});                                            // rms_final
  n.add({2, h.seq_len, h.head_size() / 2});                  // freq_cis real and imag
  if (!h.shared_classifier) n.add({h.vocab_size, h.dim});    // wcls
  return n.bytes();
}

// Hands out consecutive fp32 arrays of the mapping as views.
class ArrayCursor {
 public:
  explicit ArrayCursor(std::shared_ptr<MappedFile> file) : file_(std::move(file)), offset_(kHeaderBytes) {}
  Tensor take(Shape shape) {
    const uint8_t* p = file_->data() + offset_;
    offset_ += static_cast<size_t>(shape_numel(shape)) * sizeof(float);
    return Tensor::view_of(file_, p, std::move(shape), DType::F32);
  }
  void skip(int64_t floats) { offset_ += static_cast<size_t>(floats) * sizeof(float); }

 private:
  std::shared_ptr<MappedFile> file_;
  size_t offset_;
};

LlamaConfig config_from_header(const std::string& path, const Header& h) {
  LlamaConfig c;
  c.source = path;
  c.hidden_size = h.dim;
  c.intermediate_size = h.hidden_dim;
  c.num_hidden_layers = h.n_layers;
  c.num_attention_heads = h.n_heads;
  c.num_key_value_heads = h.n_kv_heads;
  c.head_dim = h.head_size();
  c.vocab_size = h.vocab_size;
  c.max_position_embeddings = h.seq_len;
  c.rms_norm_eps = 1e-5;
  c.rope_theta = 10000.0;
  c.tie_word_embeddings = h.shared_classifier;
  c.bos_token_id = 1;
  c.eos_token_id = 2;
  validate_llama_config(c);
  return c;
}

// Layer i of a [layers, ...] array, as its own [...] tensor.
Tensor layer(const Tensor& stacked, int64_t i) {
  Shape inner(stacked.shape().begin() + 1, stacked.shape().end());
  return stacked.slice0(i, i + 1).reshape(inner);
}
}  // namespace

Llama2cModel read_llama2c(const std::string& path) {
  std::shared_ptr<MappedFile> file = MappedFile::open(path);
  Header h = read_header(*file);
  uint64_t expected = expected_file_size(path, h);
  if (file->size() != expected) {
    throw_input_error(path, ": file is ", file->size(), " bytes, but its llama2.c header (dim ", h.dim, ", hidden_dim ",
                      h.hidden_dim, ", ", h.n_layers, " layers, ", h.n_heads, " heads, ", h.n_kv_heads,
                      " kv heads, vocab ", h.vocab_size, ", seq_len ", h.seq_len,
                      h.shared_classifier ? ", shared" : ", unshared", " classifier) implies ", expected, " bytes");
  }
  Llama2cModel model;
  model.config = config_from_header(path, h);
  const int64_t L = h.n_layers, dim = h.dim, ff = h.hidden_dim, kv = h.kv_dim();

  ArrayCursor cursor(file);
  Tensor embed = cursor.take({h.vocab_size, dim});
  Tensor rms_att = cursor.take({L, dim});
  Tensor wq = cursor.take({L, dim, dim});
  Tensor wk = cursor.take({L, kv, dim});
  Tensor wv = cursor.take({L, kv, dim});
  Tensor wo = cursor.take({L, dim, dim});
  Tensor rms_ffn = cursor.take({L, dim});
  Tensor w1 = cursor.take({L, ff, dim});
  Tensor w2 = cursor.take({L, dim, ff});
  Tensor w3 = cursor.take({L, ff, dim});
  Tensor rms_final = cursor.take({dim});
  cursor.skip(2 * h.seq_len * (h.head_size() / 2));  // precomputed RoPE tables; recomputed from theta

  auto& t = model.tensors;
  t["model.embed_tokens.weight"] = embed;
  for (int64_t i = 0; i < L; ++i) {
    const std::string p = "model.layers." + std::to_string(i) + ".";
    t[p + "input_layernorm.weight"] = layer(rms_att, i);
    t[p + "self_attn.q_proj.weight"] = permute_rope_interleaved_to_halves(layer(wq, i), h.n_heads);
    t[p + "self_attn.k_proj.weight"] = permute_rope_interleaved_to_halves(layer(wk, i), h.n_kv_heads);
    t[p + "self_attn.v_proj.weight"] = layer(wv, i);
    t[p + "self_attn.o_proj.weight"] = layer(wo, i);
    t[p + "post_attention_layernorm.weight"] = layer(rms_ffn, i);
    t[p + "mlp.gate_proj.weight"] = layer(w1, i);
    t[p + "mlp.down_proj.weight"] = layer(w2, i);
    t[p + "mlp.up_proj.weight"] = layer(w3, i);
  }
  t["model.norm.weight"] = rms_final;
  if (!h.shared_classifier) t["lm_head.weight"] = cursor.take({h.vocab_size, dim});
  return model;
}

namespace {
// Reads a protobuf varint at `pos`, or fails (returns false) past `end`.
bool read_varint(const uint8_t* data, size_t end, size_t& pos, uint64_t& value) {
  value = 0;
  for (int shift = 0; shift < 64 && pos < end; shift += 7) {
    uint8_t byte = data[pos++];
    value |= uint64_t{byte & 0x7fu} << shift;
    if (!(byte & 0x80)) return true;
  }
  return false;
}

// A SentencePiece ModelProto is a protobuf message whose field 1 holds the pieces; a
// walk over its top-level fields tells it from text (a tiktoken ranks file) or junk.
bool looks_like_sentencepiece(const MappedFile& file) {
  const uint8_t* d = file.data();
  const size_t end = file.size();
  size_t pos = 0;
  bool has_pieces = false;
  while (pos < end) {
    uint64_t tag, n;
    if (!read_varint(d, end, pos, tag)) return false;
    const uint64_t wire_type = tag & 7;
    if (wire_type == 0) {  // varint
      if (!read_varint(d, end, pos, n)) return false;
      continue;
    }
    if (wire_type == 1) {  // fixed 64-bit
      n = 8;
    } else if (wire_type == 5) {  // fixed 32-bit
      n = 4;
    } else if (wire_type != 2 || !read_varint(d, end, pos, n)) {  // 2: length-delimited
      return false;
    }
    if (end - pos < n) return false;
    pos += n;
    has_pieces = has_pieces || tag == ((1 << 3) | 2);
  }
  return has_pieces;
}

// llama2.c's tokenizer.bin: int32 max_token_length, then per token a float score, an
// int32 length and that many bytes. Returns an empty string when it fits `vocab_size`,
// else why not.
std::string llama2c_tokenizer_problem(const MappedFile& file, int64_t vocab_size) {
  const uint8_t* d = file.data();
  const size_t end = file.size();
  if (end < 4) return "too short for a max_token_length";
  int32_t max_len = read_le32(d);
  if (max_len <= 0) return "max_token_length is not positive";
  size_t pos = 4;
  int64_t count = 0;
  while (pos < end) {
    if (end - pos < 8) return "token " + std::to_string(count) + " is cut off";
    int32_t len = read_le32(d + pos + 4);
    pos += 8;
    if (len < 0 || len > max_len || end - pos < static_cast<size_t>(len)) {
      return "token " + std::to_string(count) + " has an invalid length " + std::to_string(len);
    }
    pos += static_cast<size_t>(len);
    ++count;
  }
  if (count != vocab_size) {
    return "holds " + std::to_string(count) + " tokens, the model's vocab_size is " + std::to_string(vocab_size);
  }
  return "";
}

bool ends_with(const std::string& s, const std::string& suffix) {
  return s.size() >= suffix.size() && s.compare(s.size() - suffix.size(), suffix.size(), suffix) == 0;
}

// Checks the tokenizer before anything is written, and returns its name in the output.
std::string tokenizer_output_name(const std::string& path, const MappedFile& file, int64_t vocab_size) {
  if (ends_with(path, ".model")) {
    if (!looks_like_sentencepiece(file)) {
      throw_input_error(path, ": not a SentencePiece model (a tiktoken ranks file or other text is not supported "
                              "for llama2.c conversion)");
    }
    return "tokenizer.model";
  }
  if (ends_with(path, ".bin")) {
    std::string problem = llama2c_tokenizer_problem(file, vocab_size);
    if (!problem.empty()) throw_input_error(path, ": not a llama2.c tokenizer for this model: ", problem);
    return "tokenizer.bin";
  }
  throw_input_error(path, ": unsupported tokenizer; expected a SentencePiece .model or a llama2.c tokenizer .bin");
}
}  // namespace

void convert_llama2c(const std::string& in_bin, const std::string& out_dir, const std::string& tokenizer_path) {
  Llama2cModel model = read_llama2c(in_bin);
  std::shared_ptr<MappedFile> tokenizer;
  std::string tokenizer_name;
  if (!tokenizer_path.empty()) {
    tokenizer = MappedFile::open(tokenizer_path);
    tokenizer_name = tokenizer_output_name(tokenizer_path, *tokenizer, model.config.vocab_size);
  }
  std::vector<std::pair<std::string, Tensor>> named;
  for (const auto& [name, shape] : llama_tensor_shapes(model.config)) named.emplace_back(name, model.tensors.at(name));
  write_hf_model_dir(out_dir, model.config, named);
  if (tokenizer) {
    AtomicFile out(out_dir + "/" + tokenizer_name);
    out.write(tokenizer->data(), tokenizer->size());
    out.commit();
  }
}

}  // namespace xcomp
