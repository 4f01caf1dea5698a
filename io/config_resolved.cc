// The resolved configuration: every key with its value, written where a run can find it
// again (the run directory, each checkpoint), and the comparison a resume makes between
// the configuration a checkpoint was trained with and the current one.
#include <yaml-cpp/yaml.h>

#include <filesystem>
#include <glog/logging.h>

#include "io/atomic_file.h"
#include "io/config.h"
#include "io/config_schema.h"

namespace xcomp {

namespace {

std::string leaf_name(const std::string& key) { return key.substr(key.find('.') + 1); }

// Two spellings of one file ("../shared/x" and "/work/shared/x") are the same model.
bool same_path(const std::string& a, const std::string& b) {
  if (a == b) return true;
  if (a.empty() || b.empty()) return false;
  std::error_code ec_a, ec_b;
  const auto canonical_a = std::filesystem::weakly_canonical(a, ec_a);
  const auto canonical_b = std::filesystem::weakly_canonical(b, ec_b);
  return !ec_a && !ec_b && canonical_a == canonical_b;
}

}  // namespace

std::string resolved_config_yaml(const ExperimentConfig& config) {
  YAML::Emitter out;
  out << YAML::Comment("xcomp experiment configuration, resolved: every key with its value") << YAML::Newline;
  out << YAML::BeginMap;
  std::string open_section;
  for (const ConfigKey& key : config_schema()) {
    const std::string section = config_section_of(key.name);
    if (section != open_section) {
      if (!open_section.empty()) out << YAML::EndMap;
      if (!section.empty()) out << YAML::Key << section << YAML::Value << YAML::BeginMap;
      open_section = section;
    }
    out << YAML::Key << (section.empty() ? key.name : leaf_name(key.name)) << YAML::Value;
    key.write(out, config);
    out << YAML::Comment(key.help);
  }
  if (!open_section.empty()) out << YAML::EndMap;
  out << YAML::EndMap;
  CHECK(out.good()) << "emitting the resolved config: " << out.GetLastError();
  return std::string(out.c_str()) + "\n";
}

void save_resolved_config(const ExperimentConfig& config, const std::string& path) {
  write_file_atomically(path, resolved_config_yaml(config));
}

std::string config_value_text(const ExperimentConfig& config, const std::string& key_name) {
  const ConfigKey* key = find_config_key(key_name);
  CHECK(key != nullptr) << "no configuration key " << key_name;
  YAML::Emitter out;
  key->write(out, config);
  return out.c_str();
}

std::vector<std::string> resume_incompatible_keys(const ExperimentConfig& saved, const ExperimentConfig& now) {
  std::vector<std::string> changed;
  for (const ConfigKey& key : config_schema()) {
    if (!key.breaks_resume) continue;
    if (key.unused && key.unused(saved) && key.unused(now)) continue;
    const std::string before = config_value_text(saved, key.name), after = config_value_text(now, key.name);
    if (before == after) continue;
    if (key.path && same_path(key.path(saved), key.path(now))) continue;
    changed.push_back(key.name);
  }
  return changed;
}

}  // namespace xcomp
