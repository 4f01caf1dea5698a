// xcomp inspect FILE.xkv: what a compressed prompt holds, and how long its vectors are.
// The lengths are what tell an embedding-mode prompt apart from the token embeddings the
// frozen decoder was trained on: its vectors leave the encoder's final RMSNorm, whose
// weights fix their length, so they can sit far outside the range of any input token.
#pragma once

#include <cstdint>
#include <ostream>
#include <string>

#include "model/tensor.h"

namespace xcomp {

// The Euclidean lengths of a tensor's rows (its last dimension), summarised.
struct VectorLengths {
  int64_t count = 0;
  double min = 0, median = 0, max = 0;
};
// F32 tensor, at least one dimension; rows of zero width have length 0.
VectorLengths vector_lengths(const Tensor& rows);

// Prints the prompt's metadata, its size and the lengths of its vectors. In embedding
// mode it also prints the base model's token-embedding lengths, from model_path or, when
// that is empty, from the model_source the prompt records if that path exists.
void print_compressed_prompt(const std::string& path, const std::string& model_path, std::ostream& out);

}  // namespace xcomp
