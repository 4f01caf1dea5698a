// xcomp export-peft: a trained checkpoint as a PEFT LoRA adapter directory, so Python
// users can load what xcomp trained:
//   adapter_config.json          PEFT's LoraConfig (r, lora_alpha, lora_dropout,
//                                target_modules, base_model_name_or_path, ...)
//   adapter_model.safetensors    the LoRA tensors under PEFT's names
//                                (base_model.model.model.layers.{i}.self_attn.q_proj.lora_A.weight)
//   compression_tokens.safetensors  compression_tokens [N, hidden] (and ae_token [1, hidden]
//                                in embedding mode): PEFT has no place for them; not
//                                written in mode none, which has none
//   xcomp_compressor.json        mode, N, decoder positions, max_text_len: how to use them
// The adapter is the encoder's; the decoder is the base model without it. In mode none
// (no compression) the adapter is the decoder's, an ordinary PEFT fine-tune.
#include <glog/logging.h>

#include <filesystem>
#include <nlohmann/json.hpp>

#include "io/atomic_file.h"
#include "io/safetensors.h"
#include "model/input_error.h"
#include "trainer/command_line.h"
#include "trainer/commands.h"
#include "trainer/trained_compressor.h"

namespace xcomp {

int run_export_peft_command(const std::vector<std::string>& args) {
  CommandLine cl("export-peft", "--checkpoint PATH --out DIR [--base-model NAME]",
                 {{"checkpoint", "PATH", "trainable.safetensors, a checkpoint directory, or a run directory"},
                  {"config", "FILE", "the run's config.yaml (default: found beside the checkpoint)"},
                  {"out", "DIR", "the adapter directory to write"},
                  {"base-model", "NAME", "base_model_name_or_path (default: the run's model.path)"}});
  if (!cl.parse(args)) return 0;
  cl.expect_positional(0, 0);
  const std::string trainable = resolve_trainable_file(cl.require("checkpoint"));
  const ExperimentConfig config =
      load_experiment_config(cl.has("config") ? cl.get("config") : find_run_config(trainable), {});
  const std::string out = cl.require("out");

  // The shapes come from the checkpoint itself (hidden size, layer count), so no model
  // weights are needed: a compressor over a config with those shapes.
  const SafetensorsFile file = SafetensorsFile::open(trainable);
  const bool none_mode = config.compressor.mode == CompressorMode::kNone;
  if (!none_mode && !file.contains("compression_tokens"))
    throw_input_error(trainable, " has no tensor compression_tokens");
  std::vector<std::pair<std::string, Tensor>> adapter, tokens;
  for (const std::string& name : file.names()) {
    const Tensor t = file.tensor(name).to_f32();
    if (name == "compression_tokens" || name == "ae_token")
      tokens.emplace_back(name, t);
    else if (name.rfind("base_model.model.", 0) == 0)
      adapter.emplace_back(name, t);
    else
      throw_input_error(trainable, ": unexpected tensor ", name);
  }
  if (adapter.empty()) throw_input_error(trainable, " holds no LoRA tensors");
  if (none_mode && !tokens.empty())
    throw_input_error(trainable, ": compression tokens in a checkpoint whose run has compressor.mode none");
  if (!none_mode) {
    const Shape& token_shape = file.shape("compression_tokens");
    if (token_shape.size() != 2 || token_shape[0] != config.compressor.num_tokens)
      throw_input_error(trainable, ": compression_tokens has shape ", shape_str(token_shape),
                        " but the run's config says N = ", config.compressor.num_tokens);
  }

  std::filesystem::create_directories(out);
  const nlohmann::json adapter_config = {{"peft_type", "LORA"},
                                         {"task_type", "CAUSAL_LM"},
                                         {"base_model_name_or_path", cl.get("base-model", config.model.path)},
                                         {"r", config.lora.r},
                                         {"lora_alpha", config.lora.alpha},
                                         {"lora_dropout", config.lora.dropout},
                                         {"target_modules", config.lora.targets},
                                         {"bias", "none"},
                                         {"fan_in_fan_out", false},
                                         {"inference_mode", true},
                                         {"init_lora_weights", true},
                                         {"use_rslora", false},
                                         {"use_dora", false},
                                         {"modules_to_save", nullptr},
                                         {"layers_to_transform", nullptr},
                                         {"revision", nullptr}};
  write_file_atomically(out + "/adapter_config.json", adapter_config.dump(2) + "\n");
  write_safetensors(out + "/adapter_model.safetensors", adapter, {{"format", "pt"}});
  if (!none_mode) write_safetensors(out + "/compression_tokens.safetensors", tokens, {{"format", "pt"}});
  nlohmann::json compressor = {{"mode", name_of(config.compressor.mode)},
                               {"num_tokens", none_mode ? 0 : config.compressor.num_tokens},
                               {"max_text_len", config.compressor.max_text_len},
                               {"decoder_positions", name_of(config.compressor.decoder_positions)},
                               {"source_checkpoint", trainable}};
  // Embedding mode's slots are multiplied by it before the decoder (1 = the method).
  if (config.compressor.mode == CompressorMode::kEmbedding)
    compressor["memory_scale"] = config.compressor.memory_scale;
  write_file_atomically(out + "/xcomp_compressor.json", compressor.dump(2) + "\n");
  LOG(INFO) << "wrote " << adapter.size() << " LoRA tensors" << (none_mode ? "" : " and the compression tokens")
            << " to " << out;
  return 0;
}

}  // namespace xcomp
