// xcomp answer and xcomp regenerate: decoding from a compressed prompt file (.xkv) with
// the base model it was made for, laid out as in training (model/compressed_decoding.h).
// A prompt made with another model -- or, when --checkpoint is given, another
// checkpoint -- is refused.
#include <algorithm>
#include <iostream>

#include "io/compressed_prompt_file.h"
#include "io/model_identity.h"
#include "io/model_loader.h"
#include "io/sha256.h"
#include "model/compressed_decoding.h"
#include "model/cpu/cpu_ops.h"
#include "model/input_error.h"
#include "trainer/command_line.h"
#include "trainer/commands.h"
#include "trainer/objective.h"
#include "trainer/trained_compressor.h"

namespace xcomp {

namespace {

std::vector<OptionSpec> decode_options(std::vector<OptionSpec> extra) {
  std::vector<OptionSpec> o = {
      {"model", "PATH", "the base model the prompt was compressed for"},
      {"tokenizer", "PATH", "its tokenizer, overriding the model's own"},
      {"prompt", "FILE", "the compressed prompt (.xkv, from xcomp compress)"},
      {"checkpoint", "PATH", "optional: refuse the prompt unless this checkpoint compressed it"},
      {"max-new-tokens", "N", "tokens to generate at most (default 128)"}};
  o.insert(o.end(), extra.begin(), extra.end());
  return o;
}

struct PromptDecoding {
  CpuOps ops;
  LoadedModel loaded;
  std::unique_ptr<LlamaModel> model;
  CompressedPromptFile file;
  GenerationOptions options;
};

std::unique_ptr<PromptDecoding> open_prompt(const CommandLine& cl) {
  auto d = std::make_unique<PromptDecoding>();
  const std::string prompt_path = cl.require("prompt");
  d->file = read_compressed_prompt(prompt_path);
  if (cl.has("checkpoint")) {
    const std::string sha = sha256_file_hex(resolve_trainable_file(cl.get("checkpoint")));
    if (sha != d->file.checkpoint_sha256)
      throw_input_error(prompt_path, " was compressed by another checkpoint (sha256 ",
                        d->file.checkpoint_sha256.substr(0, 16), "...) than ", cl.get("checkpoint"), " (",
                        sha.substr(0, 16), "...)");
  }
  d->loaded = load_model(cl.require("model"), cl.get("tokenizer"));
  if (!d->loaded.tokenizer) throw_input_error(cl.get("model"), " carries no tokenizer: pass --tokenizer PATH");
  check_prompt_model(d->file, prompt_path, model_identity_sha256(d->loaded), d->loaded.config.source);
  d->model = std::make_unique<LlamaModel>(d->loaded.config, load_weights(d->loaded), d->ops);
  d->options.max_new_tokens = cl.get_int("max-new-tokens", 128, 1, 1 << 20);
  const LlamaConfig& c = d->loaded.config;
  if (c.eos_token_id >= 0) d->options.stop_ids.push_back(c.eos_token_id);
  for (int32_t id : c.extra_eos_token_ids) d->options.stop_ids.push_back(id);
  if (d->loaded.tokenizer->eot_id() >= 0) d->options.stop_ids.push_back(d->loaded.tokenizer->eot_id());
  return d;
}

void print(const Tokenizer& tokenizer, const std::vector<int32_t>& produced, const std::vector<int32_t>& stop_ids) {
  std::vector<int32_t> ids = produced;
  if (!ids.empty() && std::find(stop_ids.begin(), stop_ids.end(), ids.back()) != stop_ids.end()) ids.pop_back();
  std::cout << tokenizer.decode(ids, /*skip_special=*/true) << "\n";
}

}  // namespace

int run_answer_command(const std::vector<std::string>& args) {
  CommandLine cl("answer", "--model PATH --prompt FILE.xkv --question TEXT [options]",
                 decode_options({{"question", "TEXT", "the question to answer from the compressed prompt"}}));
  if (!cl.parse(args)) return 0;
  cl.expect_positional(0, 0);
  const std::string question = cl.require("question");
  const std::unique_ptr<PromptDecoding> d = open_prompt(cl);
  const Tokenizer& tokenizer = *d->loaded.tokenizer;
  // "Question: {q} Answer: " from the same pieces as QA training (trainer/objective.h).
  const ObjectiveTokens t =
      objective_tokens(tokenizer, d->loaded.config.bos_token_id, d->loaded.config.eos_token_id, 0);
  const std::vector<int32_t> decoder = qa_prompt(t, tokenizer.encode(question));
  const DecoderPrompt dp{&d->file.prompt, 0, d->file.decoder_positions, nullptr};
  print(tokenizer, generate_from_compressed(*d->model, dp, decoder, d->options), d->options.stop_ids);
  return 0;
}

int run_regenerate_command(const std::vector<std::string>& args) {
  CommandLine cl("regenerate", "--model PATH --prompt FILE.xkv [options]", decode_options({}));
  if (!cl.parse(args)) return 0;
  cl.expect_positional(0, 0);
  const std::unique_ptr<PromptDecoding> d = open_prompt(cl);
  if (d->loaded.config.bos_token_id < 0)
    throw_input_error(cl.get("model"), " has no BOS token to start regeneration from");
  const bool embedding = d->file.prompt.mode == CompressorMode::kEmbedding;
  const DecoderPrompt dp{&d->file.prompt, 0, d->file.decoder_positions, embedding ? &d->file.ae_token : nullptr};
  print(*d->loaded.tokenizer, generate_from_compressed(*d->model, dp, {d->loaded.config.bos_token_id}, d->options),
        d->options.stop_ids);
  return 0;
}

}  // namespace xcomp
