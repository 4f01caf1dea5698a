// xcomp compress: a text into a compressed prompt file (.xkv, io/compressed_prompt_file.h)
// with a trained checkpoint, to be answered from later (xcomp answer / regenerate).
#include <glog/logging.h>

#include <iostream>
#include <iterator>

#include "io/compressed_prompt_file.h"
#include "io/mapped_file.h"
#include "io/model_identity.h"
#include "model/cpu/cpu_ops.h"
#include "model/input_error.h"
#include "trainer/command_line.h"
#include "trainer/commands.h"
#include "trainer/trained_compressor.h"

namespace xcomp {

int run_compress_command(const std::vector<std::string>& args) {
  CommandLine cl("compress", "--checkpoint PATH --text FILE|- --out FILE.xkv [options]",
                 {{"checkpoint", "PATH", "trainable.safetensors, a checkpoint directory, or a run directory"},
                  {"config", "FILE", "the run's config.yaml (default: found beside the checkpoint)"},
                  {"model", "PATH", "the base model (default: the run's model.path)"},
                  {"tokenizer", "PATH", "its tokenizer (default: the run's model.tokenizer)"},
                  {"text", "FILE", "the text to compress; - reads standard input"},
                  {"out", "FILE", "the compressed prompt to write (.xkv)"}});
  if (!cl.parse(args)) return 0;
  cl.expect_positional(0, 0);
  const std::string text_path = cl.require("text"), out = cl.require("out");
  CpuOps ops;
  TrainedCompressorOptions to;
  to.checkpoint = cl.require("checkpoint");
  to.config = cl.get("config");
  to.model = cl.get("model");
  to.tokenizer = cl.get("tokenizer");
  const std::unique_ptr<TrainedCompressor> trained = load_trained_compressor(to, ops);
  if (trained->compressor->settings().mode == CompressorMode::kNone)
    throw_input_error("--checkpoint ", trained->trainable_path,
                      ": its run has compressor.mode none, which compresses nothing (the context stays in the "
                      "prompt); evaluate it with xcomp eval --task qa");

  const std::string text =
      text_path == "-" ? std::string(std::istreambuf_iterator<char>(std::cin), {}) : read_file_bytes(text_path);
  std::vector<int32_t> ids = trained->loaded.tokenizer->encode(text);
  if (ids.empty()) throw_input_error("--text ", text_path, ": the text is empty");
  const int64_t max_len = trained->config.compressor.max_text_len;
  if (static_cast<int64_t>(ids.size()) > max_len) {
    LOG(WARNING) << "the text has " << ids.size() << " tokens; the compressor was trained on at most " << max_len
                 << " (compressor.max_text_len), so only its first " << max_len << " are compressed";
    ids.resize(max_len);
  }
  Tensor tokens = Tensor::empty({1, static_cast<int64_t>(ids.size())}, DType::I32);
  std::copy(ids.begin(), ids.end(), tokens.data<int32_t>());

  CompressedPromptFile file;
  file.prompt = compress(*trained->model, *trained->compressor, tokens, {static_cast<int64_t>(ids.size())});
  file.decoder_positions = trained->compressor->settings().decoder_positions;
  if (file.prompt.mode == CompressorMode::kEmbedding) {
    file.ae_token = trained->compressor->ae_token();
    file.memory_scale = trained->compressor->settings().memory_scale;
  }
  file.source_bytes = static_cast<int64_t>(text.size());
  file.model_sha256 = model_identity_sha256(trained->loaded);
  file.model_source = trained->loaded.config.source;
  file.checkpoint_sha256 = trained->trainable_sha256;
  write_compressed_prompt(out, file);
  LOG(INFO) << "compressed " << ids.size() << " tokens into " << trained->compressor->settings().num_tokens << " ("
            << name_of(file.prompt.mode) << " mode): " << out;
  return 0;
}

}  // namespace xcomp
