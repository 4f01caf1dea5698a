// xcomp generate: text from a prompt, printed to standard output as it is produced.
#include <glog/logging.h>

#include <chrono>
#include <iostream>

#include "io/model_loader.h"
#include "model/cpu/cpu_ops.h"
#include "model/generation.h"
#include "model/input_error.h"
#include "trainer/chat_format.h"
#include "trainer/command_line.h"
#include "trainer/commands.h"
#include "trainer/text_stream.h"

namespace xcomp {

namespace {
std::vector<int32_t> prompt_ids(const LoadedModel& model, const CommandLine& cl) {
  const Tokenizer& tokenizer = *model.tokenizer;
  std::string text = cl.get("prompt");
  const bool chat = cl.has("chat");
  if (chat) text = format_chat_prompt(tokenizer, cl.get("system"), text);
  std::vector<int32_t> ids;
  const std::string bos = cl.get("bos", "auto");
  if (bos != "auto" && bos != "yes" && bos != "no") throw_input_error("--bos must be auto, yes or no, got '", bos, "'");
  const bool add_bos = bos == "yes" || (bos == "auto" && model.add_bos && !chat);
  if (add_bos) {
    if (model.config.bos_token_id < 0) throw_input_error("--bos yes: ", model.config.source, " has no BOS token");
    ids.push_back(model.config.bos_token_id);
  }
  std::vector<int32_t> body = tokenizer.encode(text, /*parse_special=*/chat);
  ids.insert(ids.end(), body.begin(), body.end());
  if (ids.empty()) throw_input_error("the prompt is empty and no BOS token was added (use --bos yes or --prompt TEXT)");
  return ids;
}
}  // namespace

int run_generate_command(const std::vector<std::string>& args) {
  CommandLine cl("generate", "--model PATH [--prompt TEXT] [options]",
                 {{"model", "PATH", "Hugging Face directory, .gguf file, or llama2.c .bin (with --tokenizer)"},
                  {"tokenizer", "PATH", "tokenizer file, overriding the model's own"},
                  {"prompt", "TEXT", "text to continue (default: empty, which starts from BOS)"},
                  {"chat", "", "wrap the prompt as a user turn in the model's chat format"},
                  {"system", "TEXT", "with --chat: a system message"},
                  {"bos", "auto|yes|no", "start with the BOS token (auto: as the tokenizer does)"},
                  {"max-new-tokens", "N", "tokens to generate at most (default 128)"},
                  {"temperature", "T", "0 for greedy decoding (default), else sampling temperature"},
                  {"top-p", "P", "nucleus sampling mass (default 1)"},
                  {"seed", "S", "sampling seed (default 0)"}});
  if (!cl.parse(args)) return 0;
  cl.expect_positional(0, 0);

  const auto start = std::chrono::steady_clock::now();
  LoadedModel loaded = load_model(cl.require("model"), cl.get("tokenizer"));
  if (!loaded.tokenizer) throw_input_error(cl.get("model"), " carries no tokenizer: pass --tokenizer PATH");
  const std::vector<int32_t> prompt = prompt_ids(loaded, cl);

  GenerationOptions options;
  options.max_new_tokens = cl.get_int("max-new-tokens", 128, 1, 1 << 20);
  options.sampling.temperature = static_cast<float>(cl.get_double("temperature", 0.0, 0.0, 100.0));
  options.sampling.top_p = static_cast<float>(cl.get_double("top-p", 1.0, 0.0, 1.0));
  options.sampling.seed = static_cast<uint64_t>(cl.get_int("seed", 0, 0, INT64_MAX));
  options.stop_ids.push_back(loaded.config.eos_token_id);
  for (int32_t id : loaded.config.extra_eos_token_ids) options.stop_ids.push_back(id);

  const int64_t capacity = std::min<int64_t>(loaded.config.max_position_embeddings,
                                             static_cast<int64_t>(prompt.size()) + options.max_new_tokens);
  if (static_cast<int64_t>(prompt.size()) >= capacity)
    throw_input_error("the prompt has ", prompt.size(), " tokens; the model allows at most ",
                      loaded.config.max_position_embeddings, " positions");
  CpuOps ops;
  LlamaModel model(loaded.config, load_weights(loaded), ops);
  KvCache cache(loaded.config, 1, capacity, ops);
  const auto loaded_at = std::chrono::steady_clock::now();

  TextStream stream(*loaded.tokenizer, std::cout);
  std::vector<int32_t> produced = generate(model, cache, prompt, options, [&](int32_t id) {
    stream.push(id);
    return true;
  });
  stream.finish();
  const auto done = std::chrono::steady_clock::now();
  const double load_s = std::chrono::duration<double>(loaded_at - start).count();
  const double gen_s = std::chrono::duration<double>(done - loaded_at).count();
  LOG(INFO) << "prompt " << prompt.size() << " tokens, generated " << produced.size() << " tokens in " << gen_s
            << " s (" << produced.size() / std::max(gen_s, 1e-9) << " tokens/s); loading took " << load_s << " s";
  return 0;
}

}  // namespace xcomp
