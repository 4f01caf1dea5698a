#include "io/gguf_convert.h"

#include "io/gguf_llama.h"
#include "io/hf_model.h"
#include "io/tokenizer_gguf.h"

namespace xcomp {

void convert_gguf(const std::string& in_gguf, const std::string& out_dir) {
  const GgufModel model = read_gguf_llama(in_gguf);
  write_hf_model_dir(out_dir, model.config, model.tensors);
  write_tokenizer_from_gguf(model.tokenizer, out_dir);
}

}  // namespace xcomp
