#include "io/checkpoint.h"

#include <fcntl.h>
#include <glog/logging.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <sstream>

#include <nlohmann/json.hpp>

#include "io/atomic_file.h"
#include "io/safetensors.h"
#include "io/sha256.h"
#include "model/input_error.h"

namespace xcomp {

namespace fs = std::filesystem;

namespace {

constexpr const char* kTrainableFile = "trainable.safetensors";
constexpr const char* kOptimizerFile = "optimizer.safetensors";
constexpr const char* kStateFile = "state.json";
constexpr const char* kLatestFile = "latest";
constexpr const char* kSelfDigestKey = "state_sha256";

// A checkpoint directory's step, or -1 for any other name (a .tmp directory, `latest`).
int64_t step_of_dir_name(const std::string& name) {
  if (name.size() != 13 || name.compare(0, 5, "step_") != 0) return -1;
  int64_t step = 0;
  for (size_t i = 5; i < name.size(); ++i) {
    if (name[i] < '0' || name[i] > '9') return -1;
    step = step * 10 + (name[i] - '0');
  }
  return step;
}

// A renamed directory entry survives a crash only once its parent directory is synced.
void fsync_directory(const std::string& dir) {
  const int fd = ::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (fd < 0) throw_input_error(dir, ": cannot open the directory to sync it: ", std::strerror(errno));
  const int rc = ::fsync(fd);
  const int saved_errno = errno;
  ::close(fd);
  if (rc != 0) throw_input_error(dir, ": fsync failed: ", std::strerror(saved_errno));
}

std::string read_whole_file(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) throw_input_error(path, ": cannot read");
  std::ostringstream bytes;
  bytes << in.rdbuf();
  return bytes.str();
}

// state.json's own digest covers its JSON without the digest key, as dumped by nlohmann
// (keys sorted, so the same object always gives the same bytes).
std::string self_digest(nlohmann::json json) {
  json.erase(kSelfDigestKey);
  return sha256_hex(json.dump());
}

nlohmann::json state_to_json(const CheckpointState& s) {
  return {{"format", "xcomp-checkpoint"},
          {"format_version", kCheckpointFormatVersion},
          {"step", s.step},
          {"samples_seen", s.samples_seen},
          {"sampler", sampler_state_to_json(s.sampler)},
          {"rng", {{"seed", s.seed}, {"shuffle_seed", s.shuffle_seed}}},
          {"world_size", s.world_size},
          {"skipped_steps", s.skipped_steps},
          {"config", s.config_yaml}};
}

int64_t required_integer(const nlohmann::json& json, const char* key, const std::string& source) {
  const auto it = json.find(key);
  if (it == json.end() || !it->is_number_integer())
    throw_input_error(source, ": '", key, "' is missing or not an integer");
  return it->get<int64_t>();
}

CheckpointState state_from_json(const nlohmann::json& json, const std::string& source) {
  CheckpointState s;
  s.step = required_integer(json, "step", source);
  s.samples_seen = required_integer(json, "samples_seen", source);
  if (!json.contains("sampler")) throw_input_error(source, ": 'sampler' is missing");
  s.sampler = sampler_state_from_json(json.at("sampler"), source);
  if (!json.contains("rng") || !json.at("rng").is_object()) throw_input_error(source, ": 'rng' is missing");
  s.seed = required_integer(json.at("rng"), "seed", source);
  s.shuffle_seed = required_integer(json.at("rng"), "shuffle_seed", source);
  s.world_size = required_integer(json, "world_size", source);
  s.skipped_steps = required_integer(json, "skipped_steps", source);
  if (!json.contains("config") || !json.at("config").is_string())
    throw_input_error(source, ": 'config' is missing or not a string");
  s.config_yaml = json.at("config").get<std::string>();
  return s;
}

std::map<std::string, Tensor> all_tensors(const SafetensorsFile& file) {
  std::map<std::string, Tensor> out;
  for (const std::string& name : file.names()) out.emplace(name, file.tensor(name));
  return out;
}

// Every step_XXXXXXXX directory under `dir`, by step.
std::vector<std::pair<int64_t, std::string>> checkpoint_dirs(const std::string& dir) {
  std::vector<std::pair<int64_t, std::string>> found;
  std::error_code ec;
  for (const fs::directory_entry& entry : fs::directory_iterator(dir, ec)) {
    const int64_t step = step_of_dir_name(entry.path().filename().string());
    if (step >= 0 && entry.is_directory()) found.emplace_back(step, entry.path().string());
  }
  std::sort(found.begin(), found.end());
  return found;
}

// Removes a directory so that an interruption never leaves a half-deleted one that looks
// like a checkpoint: it is renamed to a ".tmp" name first (which readers ignore and the
// next prune removes), then deleted.
void remove_checkpoint_dir(const std::string& path) {
  std::error_code ec;
  std::string doomed = path;
  if (doomed.size() < 4 || doomed.compare(doomed.size() - 4, 4, ".tmp") != 0) {
    doomed = path + ".removing.tmp";
    fs::remove_all(doomed, ec);
    if (::rename(path.c_str(), doomed.c_str()) != 0) {
      LOG(WARNING) << "cannot remove the old checkpoint " << path << ": " << std::strerror(errno);
      return;
    }
  }
  fs::remove_all(doomed, ec);
  if (ec) LOG(WARNING) << "cannot remove " << doomed << ": " << ec.message();
}

// After a new checkpoint of `step`: the newest `keep` up to it stay; older ones, later
// ones (an abandoned timeline) and temporary directories of crashed writes go.
void prune(const std::string& checkpoints_dir, int64_t step, int64_t keep) {
  std::vector<std::string> doomed;
  std::vector<std::string> kept;
  const auto dirs = checkpoint_dirs(checkpoints_dir);
  for (auto it = dirs.rbegin(); it != dirs.rend(); ++it) {
    if (it->first > step || static_cast<int64_t>(kept.size()) >= keep)
      doomed.push_back(it->second);
    else
      kept.push_back(it->second);
  }
  std::error_code ec;
  for (const fs::directory_entry& entry : fs::directory_iterator(checkpoints_dir, ec)) {
    const std::string name = entry.path().filename().string();
    if (name.size() > 4 && name.compare(name.size() - 4, 4, ".tmp") == 0) doomed.push_back(entry.path().string());
  }
  for (const std::string& path : doomed) remove_checkpoint_dir(path);
}

}  // namespace

std::string checkpoint_dir_name(int64_t step) {
  CHECK_GE(step, 0);
  char name[32];
  std::snprintf(name, sizeof name, "step_%08lld", static_cast<long long>(step));
  return name;
}

std::string write_checkpoint(const std::string& checkpoints_dir, const CheckpointState& state,
                             const CheckpointTensors& tensors, int64_t keep) {
  CHECK_GE(keep, 1);
  std::error_code ec;
  fs::create_directories(checkpoints_dir, ec);
  if (ec) throw_input_error(checkpoints_dir, ": cannot create: ", ec.message());
  const std::string final_dir = checkpoints_dir + "/" + checkpoint_dir_name(state.step);
  const std::string tmp_dir = final_dir + ".tmp";
  fs::remove_all(tmp_dir, ec);
  fs::create_directory(tmp_dir, ec);
  if (ec) throw_input_error(tmp_dir, ": cannot create: ", ec.message());

  write_safetensors(tmp_dir + "/" + kTrainableFile, tensors.trainable,
                    {{"format", "xcomp-trainable"}, {"mode", tensors.mode}});
  write_safetensors(tmp_dir + "/" + kOptimizerFile, tensors.optimizer, {{"format", "xcomp-optimizer"}});
  nlohmann::json json = state_to_json(state);
  for (const char* file : {kTrainableFile, kOptimizerFile})
    json["files"][file] = sha256_file_hex(tmp_dir + "/" + file);
  json[kSelfDigestKey] = self_digest(json);
  write_file_atomically(tmp_dir + "/" + kStateFile, json.dump(2) + "\n");
  fsync_directory(tmp_dir);

  // A directory of this step may exist from a timeline abandoned by a resume from an
  // older checkpoint; `latest` never names it at this point.
  if (fs::exists(final_dir)) remove_checkpoint_dir(final_dir);
  if (::rename(tmp_dir.c_str(), final_dir.c_str()) != 0)
    throw_input_error(final_dir, ": cannot rename ", tmp_dir, " into place: ", std::strerror(errno));
  fsync_directory(checkpoints_dir);
  write_file_atomically(checkpoints_dir + "/" + kLatestFile, checkpoint_dir_name(state.step) + "\n");
  prune(checkpoints_dir, state.step, keep);
  return final_dir;
}

Checkpoint read_checkpoint(const std::string& dir) {
  Checkpoint c;
  c.path = dir;
  const std::string state_path = dir + "/" + kStateFile;
  if (!fs::exists(state_path)) throw_input_error(state_path, ": missing (not a complete checkpoint)");
  nlohmann::json json;
  try {
    json = nlohmann::json::parse(read_whole_file(state_path));
  } catch (const nlohmann::json::exception& e) {
    throw_input_error(state_path, ": damaged (not JSON: ", e.what(), ")");
  }
  if (!json.is_object() || !json.contains(kSelfDigestKey) || !json.at(kSelfDigestKey).is_string())
    throw_input_error(state_path, ": damaged (no '", kSelfDigestKey, "')");
  if (json.at(kSelfDigestKey).get<std::string>() != self_digest(json))
    throw_input_error(state_path, ": damaged (its sha256 does not match its contents)");
  const int64_t version = required_integer(json, "format_version", state_path);
  if (version > kCheckpointFormatVersion)
    throw_input_error(state_path, ": format_version ", version, " is newer than this xcomp reads (",
                      kCheckpointFormatVersion, ")");
  if (!json.contains("files") || !json.at("files").is_object()) throw_input_error(state_path, ": 'files' is missing");
  for (const char* file : {kTrainableFile, kOptimizerFile}) {
    const std::string path = dir + "/" + file;
    const auto expected = json.at("files").find(file);
    if (expected == json.at("files").end() || !expected->is_string())
      throw_input_error(state_path, ": no sha256 for ", file);
    if (!fs::exists(path)) throw_input_error(path, ": missing");
    if (sha256_file_hex(path) != expected->get<std::string>())
      throw_input_error(path, ": damaged (sha256 differs from the one in ", state_path, ")");
  }
  c.state = state_from_json(json, state_path);
  const SafetensorsFile trainable = SafetensorsFile::open(dir + "/" + kTrainableFile);
  c.trainable = all_tensors(trainable);
  c.trainable_metadata = trainable.metadata();
  c.optimizer = all_tensors(SafetensorsFile::open(dir + "/" + kOptimizerFile));
  return c;
}

std::optional<Checkpoint> newest_good_checkpoint(const std::string& checkpoints_dir) {
  std::vector<std::string> candidates;
  std::ifstream latest(checkpoints_dir + "/" + kLatestFile);
  std::string named;
  if (latest && std::getline(latest, named) && step_of_dir_name(named) >= 0 &&
      fs::is_directory(checkpoints_dir + "/" + named))
    candidates.push_back(checkpoints_dir + "/" + named);
  const auto dirs = checkpoint_dirs(checkpoints_dir);
  for (auto it = dirs.rbegin(); it != dirs.rend(); ++it)
    if (candidates.empty() || it->second != candidates.front()) candidates.push_back(it->second);
  for (const std::string& dir : candidates) {
    try {
      return read_checkpoint(dir);
    } catch (const InputError& e) {
      LOG(WARNING) << "checkpoint " << dir << " is damaged and skipped: " << e.what();
    }
  }
  return std::nullopt;
}

}  // namespace xcomp
