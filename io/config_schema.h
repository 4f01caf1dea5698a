// The schema of ExperimentConfig (io/config.h): every key once, with its type, range or
// allowed values, documentation, and how it is read from and written to YAML. The
// loader, the resolved-config writer and the resume check all walk this one table, so a
// new key is added in exactly one place (plus its member in config.h).
#pragma once

#include <functional>
#include <string>
#include <vector>

#include "io/config.h"

namespace YAML {
class Node;
class Emitter;
}  // namespace YAML

namespace xcomp {

struct ConfigKey {
  std::string name;      // dotted: "train.lr"; top-level keys have no dot
  std::string expected;  // a valid value, for messages: "a number > 0", "one of kv, embedding"
  std::string help;      // one line, written as a comment into the resolved config
  bool required = false;       // must be set, in the file or by an override
  bool breaks_resume = false;  // see resume_incompatible_keys
  // Set for keys that some configurations do not use (compressor.num_tokens with mode
  // none): true where this one does not, and then a change of it does not break resumption.
  std::function<bool(const ExperimentConfig& config)> unused;
  // Set for keys naming a file: the path, which resume_incompatible_keys compares as a
  // file (two spellings of one path are the same model).
  std::function<std::string(const ExperimentConfig& config)> path;
  // Stores a YAML value into the config. Returns "" or, when the value is not
  // acceptable, a whole phrase saying why ("expected a number > 0, got -1").
  std::function<std::string(const YAML::Node& value, ExperimentConfig& config)> read;
  // Emits the value: a scalar, or a flow sequence for lists.
  std::function<void(YAML::Emitter& out, const ExperimentConfig& config)> write;
};

// Every key, grouped by section, in the order the resolved config lists them.
const std::vector<ConfigKey>& config_schema();

// The key named `name`, or nullptr.
const ConfigKey* find_config_key(const std::string& name);

// The section of a dotted key ("train" for "train.lr"; "" for a top-level key), and the
// sections there are ("model", "compressor", ...).
std::string config_section_of(const std::string& key);
const std::vector<std::string>& config_sections();

// The YAML spellings of an enum's values, in declaration order (io/config_enums.cc).
template <class E>
struct EnumSpelling {
  E value;
  const char* name;
};
template <class E>
const std::vector<EnumSpelling<E>>& enum_spellings();

// The LoRA target names in canonical order.
const std::vector<std::string>& lora_target_names();

}  // namespace xcomp
