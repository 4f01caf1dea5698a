#include "trainer/inspect_compressed_prompt.h"

#include <glog/logging.h>

#include <algorithm>
#include <cmath>
#include <filesystem>
#include <iomanip>
#include <sstream>
#include <vector>

#include "io/compressed_prompt_file.h"
#include "io/model_loader.h"
#include "model/input_error.h"

namespace xcomp {

namespace {

// Lengths of every row of every tensor, together.
VectorLengths lengths_of(const std::vector<const Tensor*>& tensors) {
  std::vector<double> lengths;
  for (const Tensor* t : tensors) {
    CHECK(t->dtype() == DType::F32 && t->on_host() && t->ndim() >= 1) << "vector_lengths takes host F32 tensors";
    const int64_t width = t->dim(-1);
    const int64_t rows = width == 0 ? 0 : t->numel() / width;
    const float* data = t->data<float>();
    for (int64_t r = 0; r < rows; ++r) {
      double sum = 0;
      for (int64_t i = 0; i < width; ++i) sum += static_cast<double>(data[r * width + i]) * data[r * width + i];
      lengths.push_back(std::sqrt(sum));
    }
  }
  VectorLengths out;
  out.count = static_cast<int64_t>(lengths.size());
  if (lengths.empty()) return out;
  std::sort(lengths.begin(), lengths.end());
  out.min = lengths.front();
  out.max = lengths.back();
  const size_t mid = lengths.size() / 2;
  out.median = lengths.size() % 2 ? lengths[mid] : (lengths[mid - 1] + lengths[mid]) / 2;
  return out;
}

void print_lengths(std::ostream& out, const std::string& label, const std::string& shape, const VectorLengths& l) {
  std::ostringstream line;  // its own formatting state, so `out`'s is left as it was
  line << "  " << std::left << std::setw(24) << label << std::right << shape << "  " << std::fixed
       << std::setprecision(3);
  if (l.count == 1)
    line << l.min;
  else
    line << "min " << l.min << "  median " << l.median << "  max " << l.max;
  out << line.str() << "\n";
}

std::string dims(const Tensor& t) {
  std::string s;
  for (int i = 0; i < t.ndim(); ++i) s += (i ? " x " : "") + std::to_string(t.dim(i));
  return s;
}

// 6, 24, 5.333: four significant digits.
std::string ratio_text(double ratio) {
  std::ostringstream text;
  text << std::setprecision(4) << ratio;
  return text.str();
}

}  // namespace

VectorLengths vector_lengths(const Tensor& rows) { return lengths_of({&rows}); }

void print_compressed_prompt(const std::string& path, const std::string& model_path, std::ostream& out) {
  const CompressedPromptFile file = read_compressed_prompt(path);
  const CompressedPrompt& p = file.prompt;
  const bool kv = p.mode == CompressorMode::kKeyValue;
  const int64_t n = kv ? p.keys.at(0).dim(1) : p.embeddings.dim(1);
  const int64_t text = p.text_lengths.at(0);
  int64_t numbers = 0;
  for (const Tensor& t : p.keys) numbers += t.numel();
  for (const Tensor& t : p.values) numbers += t.numel();
  if (!kv) numbers += p.embeddings.numel() + file.ae_token.numel();

  out << "compressed prompt " << path << "\n"
      << "  mode " << (kv ? "kv" : "embedding") << ", " << n << " token(s) for " << text << " text tokens ("
      << ratio_text(static_cast<double>(text) / n) << "x)";
  if (kv) out << ", decoder positions " << (file.decoder_positions == DecoderPositions::kReference ? "reference" : "after_prefix");
  if (!kv && file.memory_scale != 1.0f)
    out << ", slots scaled by " << file.memory_scale << " (compressor.memory_scale: the lengths below include it)";
  out << "\n  " << numbers << " numbers (" << numbers * 4 << " bytes as F32), from " << file.source_bytes
      << " bytes of text\n"
      << "  model " << file.model_source << " (identity sha256 " << file.model_sha256 << ")\n"
      << "  checkpoint sha256 " << file.checkpoint_sha256 << "\n"
      << "vector lengths (Euclidean norm of each token's vector)\n";
  if (kv) {
    if (!model_path.empty())
      throw_input_error("--model: ", path, " is a K/V prompt, whose vectors live in each layer's heads, not in the "
                        "token-embedding space --model is read for");
    std::vector<const Tensor*> keys, values;
    for (const Tensor& t : p.keys) keys.push_back(&t);
    for (const Tensor& t : p.values) values.push_back(&t);
    // [1, N, kv_heads, head_dim] a layer: one vector per token and head.
    const std::string shape = std::to_string(p.keys.size()) + " layers x " + std::to_string(n) + " x " +
                              std::to_string(p.keys[0].dim(2)) + " heads x " + std::to_string(p.keys[0].dim(3));
    print_lengths(out, "keys (after RoPE)", shape, lengths_of(keys));
    print_lengths(out, "values", shape, lengths_of(values));
    return;
  }
  const Tensor slots = p.embeddings.reshape({n, p.embeddings.dim(2)});
  print_lengths(out, "embeddings", dims(slots), vector_lengths(slots));
  print_lengths(out, "ae_token", dims(file.ae_token), vector_lengths(file.ae_token));
  std::string model = model_path;
  if (model.empty() && std::filesystem::exists(file.model_source)) model = file.model_source;
  if (model.empty()) {
    out << "  (the model's token embeddings: " << file.model_source << " is not here; pass --model PATH)\n";
    return;
  }
  const Tensor tokens = load_token_embeddings(model);
  if (tokens.dim(1) != slots.dim(1))
    throw_input_error(model, ": token embeddings are ", tokens.dim(1), " wide, but ", path, "'s vectors are ",
                      slots.dim(1), " (is it the prompt's model? it names ", file.model_source, ")");
  print_lengths(out, "model token embeddings", dims(tokens), vector_lengths(tokens));
}

}  // namespace xcomp
