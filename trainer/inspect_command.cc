// xcomp inspect: what a model file holds (weights stay in their memory maps; GGUF
// tensors are listed with their stored types, not dequantised), or what a compressed
// prompt (.xkv) holds (trainer/inspect_compressed_prompt.h).
#include <iostream>
#include <map>

#include "io/ggml_types.h"
#include "io/gguf.h"
#include "io/model_loader.h"
#include "model/input_error.h"
#include "trainer/command_line.h"
#include "trainer/commands.h"
#include "trainer/inspect_compressed_prompt.h"

namespace xcomp {

namespace {
void print_config(const LlamaConfig& c, std::ostream& out) {
  out << "config (" << c.source << ")\n"
      << "  hidden_size " << c.hidden_size << "\n  intermediate_size " << c.intermediate_size
      << "\n  num_hidden_layers " << c.num_hidden_layers << "\n  num_attention_heads " << c.num_attention_heads
      << "\n  num_key_value_heads " << c.num_key_value_heads << "\n  head_dim " << c.head_dim << "\n  vocab_size "
      << c.vocab_size << "\n  max_position_embeddings " << c.max_position_embeddings << "\n  rms_norm_eps "
      << c.rms_norm_eps << "\n  rope_theta " << c.rope_theta << "\n  rope_scaling "
      << (c.rope_scaling.type.empty() ? "none" : c.rope_scaling.type) << "\n  tie_word_embeddings "
      << (c.tie_word_embeddings ? "true" : "false") << "\n  bos_token_id " << c.bos_token_id << "\n  eos_token_id "
      << c.eos_token_id;
  for (int32_t id : c.extra_eos_token_ids) out << " (also stops at " << id << ")";
  out << "\n";
}

int64_t parameter_count(const LlamaConfig& config) {
  int64_t n = 0;
  for (const auto& [name, shape] : llama_tensor_shapes(config)) n += shape_numel(shape);
  return n;
}
}  // namespace

int run_inspect_command(const std::vector<std::string>& args) {
  CommandLine cl("inspect", "MODEL (Hugging Face directory, .gguf or llama2.c .bin) | PROMPT.xkv [--model PATH]",
                 {{"model", "PATH",
                   "for a .xkv: the base model whose token embeddings to compare with (default: the model the "
                   "prompt names, when that path exists)"}});
  if (!cl.parse(args)) return 0;
  cl.expect_positional(1, 1);
  const std::string& path = cl.positional()[0];
  if (path.size() > 4 && path.compare(path.size() - 4, 4, ".xkv") == 0) {
    print_compressed_prompt(path, cl.get("model"), std::cout);
    return 0;
  }
  if (cl.has("model")) throw_input_error("inspect: --model is for a compressed prompt (.xkv), not for ", path);
  LoadedModel model = load_model(path, "", ModelWeights::kSkipWhenCostly);
  std::ostream& out = std::cout;
  out << "format " << model.format << "\n";
  print_config(model.config, out);
  out << "parameters " << parameter_count(model.config) << "\n";
  if (model.tokenizer) out << "tokenizer " << model.tokenizer->name() << " (" << model.tokenizer->vocab_size() << " tokens)\n";
  out << "tensors\n";
  if (model.format == "gguf") {
    GgufFile file = GgufFile::open(path);
    for (const GgufTensorInfo& t : file.tensors()) {
      const GgmlTypeInfo* type = ggml_type_info(t.type);
      out << "  " << t.name << " " << (type ? type->name : "type " + std::to_string(t.type)) << " "
          << shape_str(t.shape()) << "\n";
    }
  } else {
    for (const auto& [name, tensor] : model.tensors)
      out << "  " << name << " " << dtype_name(tensor.dtype()) << " " << shape_str(tensor.shape()) << "\n";
  }
  return 0;
}

}  // namespace xcomp
