#include "trainer/trained_compressor.h"

#include <glog/logging.h>

#include <filesystem>

#include "io/checkpoint.h"
#include "io/safetensors.h"
#include "io/sha256.h"
#include "model/input_error.h"

namespace xcomp {

namespace fs = std::filesystem;

namespace {

std::string read_first_line(const std::string& path) {
  FILE* f = std::fopen(path.c_str(), "rb");
  if (!f) throw_input_error(path, ": cannot be read");
  char buffer[4096];
  const size_t n = std::fread(buffer, 1, sizeof buffer - 1, f);
  std::fclose(f);
  std::string line(buffer, n);
  const size_t end = line.find_first_of("\r\n");
  if (end != std::string::npos) line.resize(end);
  while (!line.empty() && line.back() == ' ') line.pop_back();
  return line;
}

// A checkpoint directory's trainable file, once the digests its state.json records verify:
// a damaged checkpoint is an error naming the file, never a silently wrong evaluation.
std::string verified_trainable_file(const fs::path& checkpoint_dir) {
  try {
    read_checkpoint(checkpoint_dir.string());
  } catch (const InputError& e) {
    throw_input_error("checkpoint ", checkpoint_dir.string(), " does not verify: ", e.what(),
                      " (name an older checkpoint directory to use that one instead)");
  }
  return (checkpoint_dir / "trainable.safetensors").string();
}

bool is_checkpoint_dir(const fs::path& dir) { return fs::exists(dir / "state.json"); }

}  // namespace

std::string resolve_trainable_file(const std::string& checkpoint) {
  if (checkpoint.empty()) throw_input_error("no checkpoint given (--checkpoint PATH)");
  if (!fs::exists(checkpoint)) throw_input_error("checkpoint ", checkpoint, " does not exist");
  if (!fs::is_directory(checkpoint)) {
    // A file inside a checkpoint is verified with its checkpoint; a final
    // <run_dir>/trainable.safetensors has no digest to check.
    const fs::path parent = fs::path(checkpoint).parent_path();
    if (fs::path(checkpoint).filename() == "trainable.safetensors" && is_checkpoint_dir(parent))
      return verified_trainable_file(parent);
    return checkpoint;
  }
  const fs::path dir(checkpoint);
  if (is_checkpoint_dir(dir)) return verified_trainable_file(dir);
  const fs::path latest = dir / "checkpoints" / "latest";
  if (fs::exists(latest)) {
    const std::string name = read_first_line(latest.string());
    if (name.empty() || name.find('/') != std::string::npos)
      throw_input_error(latest.string(), ": expected the name of a step_XXXXXXXX directory, got '", name, "'");
    const fs::path file = dir / "checkpoints" / name / "trainable.safetensors";
    if (!fs::exists(file))
      throw_input_error(latest.string(), " names ", name, ", but ", file.string(), " does not exist");
    return verified_trainable_file(dir / "checkpoints" / name);
  }
  const fs::path file = dir / "trainable.safetensors";
  if (fs::exists(file)) return file.string();
  throw_input_error("checkpoint ", checkpoint, ": a directory without trainable.safetensors or checkpoints/latest");
}

std::string find_run_config(const std::string& trainable_file) {
  fs::path dir = fs::absolute(trainable_file).parent_path();
  for (int up = 0; up < 3 && !dir.empty(); ++up, dir = dir.parent_path()) {
    const fs::path config = dir / "config.yaml";
    if (fs::exists(config)) return config.string();
  }
  throw_input_error(trainable_file,
                    ": no config.yaml of its run beside it or up to two directories above it "
                    "(pass --config RUN_DIR/config.yaml)");
}

CompressorSettings compressor_settings_of(const ExperimentConfig& c) {
  CompressorSettings s;
  s.mode = c.compressor.mode;
  s.num_tokens = c.compressor.mode == CompressorMode::kNone ? 0 : c.compressor.num_tokens;  // none: ignored
  s.decoder_positions = c.compressor.decoder_positions;
  s.memory_scale = static_cast<float>(c.compressor.memory_scale);
  s.lora.r = c.lora.r;
  s.lora.alpha = c.lora.alpha;
  s.lora.dropout = c.lora.dropout;
  s.lora.targets.clear();
  for (const std::string& name : c.lora.targets) s.lora.targets.push_back(lora_target_from_name(name, "lora.targets"));
  return s;
}

void load_trainable_tensors(Compressor& compressor, const std::string& path, const std::string& context) {
  CHECK(!compressor.on_device()) << "trainable tensors load into host tensors, before Compressor::place_on";
  const SafetensorsFile file = SafetensorsFile::open(path);
  const auto saved_mode = file.metadata().find("mode");
  const char* mode = name_of(compressor.settings().mode);
  if (saved_mode != file.metadata().end() && saved_mode->second != mode)
    throw_input_error(context, path, " was trained with compressor.mode ", saved_mode->second,
                      ", but this run's compressor.mode is ", mode, "; use a checkpoint of the same mode");
  for (const auto& p : compressor.parameters()) {
    if (!file.contains(p.name))
      throw_input_error(context, path, " has no tensor ", p.name, " (was it written for another compressor mode or LoRA?)");
    const Tensor saved = file.tensor(p.name).to_f32();
    if (saved.shape() != p.value->shape())
      throw_input_error(context, path, ": tensor ", p.name, " has shape ", shape_str(saved.shape()),
                        ", the run's config makes ", shape_str(p.value->shape()));
    std::copy(saved.data<float>(), saved.data<float>() + saved.numel(), p.value->data<float>());
  }
}

TrainedRun find_trained_run(const TrainedCompressorOptions& options) {
  TrainedRun run;
  run.trainable_path = resolve_trainable_file(options.checkpoint);
  const std::string config_path = options.config.empty() ? find_run_config(run.trainable_path) : options.config;
  run.config = load_experiment_config(config_path, {});
  return run;
}

std::unique_ptr<TrainedCompressor> load_trained_compressor(const TrainedCompressorOptions& options, Ops& ops) {
  return load_trained_compressor(options, find_trained_run(options), ops);
}

std::unique_ptr<TrainedCompressor> load_trained_compressor(const TrainedCompressorOptions& options,
                                                           const TrainedRun& run, Ops& ops) {
  auto t = std::make_unique<TrainedCompressor>();
  t->trainable_path = run.trainable_path;
  t->config = run.config;
  t->trainable_sha256 = sha256_file_hex(t->trainable_path);
  const std::string model_path = options.model.empty() ? t->config.model.path : options.model;
  const std::string tokenizer_path = options.tokenizer.empty() ? t->config.model.tokenizer : options.tokenizer;
  t->loaded = load_model(model_path, tokenizer_path);
  if (!t->loaded.tokenizer) throw_input_error(model_path, " carries no tokenizer: pass --tokenizer PATH");
  t->model = std::make_unique<LlamaModel>(t->loaded.config, load_weights(t->loaded), ops);
  t->compressor = std::make_unique<Compressor>(t->loaded.config, compressor_settings_of(t->config), 0);
  load_trainable_tensors(*t->compressor, t->trainable_path);
  t->tokens = objective_tokens(*t->loaded.tokenizer, t->loaded.config.bos_token_id, t->loaded.config.eos_token_id, 0);
  return t;
}

}  // namespace xcomp
