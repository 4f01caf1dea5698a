// Checks a loaded LLaMA model against a reference file written by
// tests/reference/make_model_reference.py (PyTorch + Hugging Face transformers): the
// "batch" case (right padding), the "prefix" case (attending to a K/V prefix with
// explicit positions) and the "greedy" case. The file's docstring defines each case.
#pragma once

#include <string>

#include "io/safetensors.h"
#include "model/llama.h"

namespace xcomp::test {

struct LogitsError {
  double all_positions;  // max |a - b| / max |b| over real positions and the kept columns
  double last_position;  // the same over the full vocabulary at each row's last real token
};

LogitsError check_batch_case(LlamaModel& model, const SafetensorsFile& reference);
LogitsError check_prefix_case(LlamaModel& model, const SafetensorsFile& reference);
// Greedy decoding from greedy.prompt must produce exactly greedy.tokens; returns the ids.
std::vector<int32_t> greedy_tokens(LlamaModel& model, const SafetensorsFile& reference);

}  // namespace xcomp::test
