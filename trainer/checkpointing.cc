#include "trainer/checkpointing.h"

#include <glog/logging.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <sstream>

#include <nlohmann/json.hpp>

#include "io/atomic_file.h"
#include "model/input_error.h"

namespace xcomp {

namespace fs = std::filesystem;

namespace {

// The configuration a checkpoint was trained with, from its resolved YAML.
ExperimentConfig saved_config(const Checkpoint& checkpoint) {
  // The config loader reads files; the saved text goes through a private temporary one.
  std::string path = (fs::temp_directory_path() / "xcomp-resume-config-XXXXXX").string();
  const int fd = ::mkstemp(path.data());
  if (fd < 0) throw_input_error(path, ": cannot create a temporary file");
  ::close(fd);
  struct Remove {
    std::string path;
    ~Remove() { ::unlink(path.c_str()); }
  } remove{path};
  std::ofstream(path, std::ios::binary) << checkpoint.state.config_yaml;
  try {
    return load_experiment_config(path, {});
  } catch (const InputError& e) {
    throw_input_error("resume: the configuration saved in ", checkpoint.path, "/state.json does not load: ", e.what());
  }
}

}  // namespace

std::string checkpoints_dir_of(const ExperimentConfig& config) { return config.run_dir + "/checkpoints"; }

std::optional<Checkpoint> checkpoint_to_resume(const ExperimentConfig& config) {
  if (config.resume.empty()) return std::nullopt;
  if (config.resume == "auto") return newest_good_checkpoint(checkpoints_dir_of(config));
  const std::string& path = config.resume;
  if (fs::exists(path + "/state.json")) return read_checkpoint(path);
  const std::string dir = fs::is_directory(path + "/checkpoints") ? path + "/checkpoints" : path;
  if (!fs::is_directory(dir)) throw_input_error("resume: '", path, "' is not a checkpoint or run directory");
  std::optional<Checkpoint> found = newest_good_checkpoint(dir);
  if (!found) throw_input_error("resume: '", path, "' holds no intact checkpoint");
  return found;
}

void check_resumable(const ExperimentConfig& config, int world_size, const Checkpoint& checkpoint) {
  const ExperimentConfig saved = saved_config(checkpoint);
  for (const std::string& key : resume_incompatible_keys(saved, config))
    throw_input_error("resume: ", key, " is ", config_value_text(config, key), " here but ",
                      config_value_text(saved, key), " in the checkpoint ", checkpoint.path,
                      "; resuming needs the same value (or start a new run_dir)");
  const int64_t global_batch = config.data.micro_batch * config.train.accumulation * world_size;
  if (checkpoint.state.sampler.global_batch != 0 && global_batch != checkpoint.state.sampler.global_batch)
    throw_input_error("resume: the global batch data.micro_batch x train.accumulation x ranks is ",
                      config.data.micro_batch, " x ", config.train.accumulation, " x ", world_size, " = ", global_batch,
                      " here but ", checkpoint.state.sampler.global_batch, " in the checkpoint ", checkpoint.path,
                      " (", saved.data.micro_batch, " x ", saved.train.accumulation, " x ", checkpoint.state.world_size,
                      "); keep the global batch to resume on another world size");
}

void trim_metrics_after(const std::string& path, int64_t step) {
  std::ifstream in(path);
  if (!in) return;
  std::string kept, line;
  bool dropped = false;
  while (std::getline(in, line)) {
    const nlohmann::json record = nlohmann::json::parse(line, nullptr, /*allow_exceptions=*/false);
    // A line cut by a crash is not JSON: it goes too.
    if (record.is_discarded() || (record.contains("step") && record["step"].is_number_integer() &&
                                  record["step"].get<int64_t>() > step)) {
      dropped = true;
      continue;
    }
    kept += line + "\n";
  }
  if (dropped) write_file_atomically(path, kept);
}

}  // namespace xcomp
