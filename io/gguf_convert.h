// GGUF -> Hugging Face directory: what `xcomp convert` runs for a .gguf input.
#pragma once

#include <string>

namespace xcomp {

// Reads a LLaMA GGUF (dequantising to F32) and writes out_dir/config.json,
// out_dir/model.safetensors and the tokenizer file(s), so the directory loads like any
// Hugging Face model. Throws InputError on a bad input file.
void convert_gguf(const std::string& in_gguf, const std::string& out_dir);

}  // namespace xcomp
