// A model's identity for files made with it (compressed prompts): SHA-256 over every
// weight tensor's name, dtype, shape and bytes, in name order, and the tokenizer's
// SHA-256. Two paths to the same weights (a llama2.c .bin and its converted Hugging Face
// directory) give the same identity; any changed weight gives another.
#pragma once

#include <string>

#include "io/model_loader.h"

namespace xcomp {

std::string model_identity_sha256(const LoadedModel& model);

}  // namespace xcomp
