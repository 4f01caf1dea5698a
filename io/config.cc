// Loading the experiment configuration: the YAML file, then the command-line overrides,
// then the checks that involve more than one key. Every error names where the value
// came from: `file:line:column` for the file, the override's text for an override.
#include "io/config.h"

#include <yaml-cpp/yaml.h>

#include <fstream>
#include <map>
#include <set>
#include <sstream>

#include "io/closest_name.h"
#include "io/config_schema.h"
#include "io/config_values.h"
#include "io/mapped_file.h"
#include "model/input_error.h"

namespace xcomp {

namespace {

// Where a value came from, for error messages.
struct Origin {
  std::string file;      // the YAML file (always set: messages about missing keys name it)
  std::string override;  // the override text when the value came from the command line

  std::string at(const YAML::Mark& mark) const {
    if (!override.empty()) return "override '" + override + "'";
    if (mark.is_null()) return file;
    return file + ":" + std::to_string(mark.line + 1) + ":" + std::to_string(mark.column + 1);
  }
};

std::string last_component(const std::string& dotted) {
  const size_t dot = dotted.rfind('.');
  return dot == std::string::npos ? dotted : dotted.substr(dot + 1);
}

// The known name nearest to an unknown dotted key: a typo of the whole name
// ("trian.steps" -> train.steps), or the right name in the wrong section ("lr" or
// "data.steps" -> train.lr, train.steps).
std::string suggest_key(const std::string& unknown) {
  std::vector<std::string> candidates = config_sections();
  for (const ConfigKey& key : config_schema()) candidates.push_back(key.name);
  std::string best;
  size_t best_distance = 0;
  for (const std::string& candidate : candidates) {
    const size_t whole = edit_distance(unknown, candidate);
    const size_t leaf = edit_distance(last_component(unknown), last_component(candidate));
    size_t d = std::string::npos;
    if (plausible_typo(unknown, whole)) d = whole;
    if (plausible_typo(last_component(unknown), leaf)) d = std::min(d, leaf);
    if (d != std::string::npos && (best.empty() || d < best_distance)) {
      best = candidate;
      best_distance = d;
    }
  }
  return best;
}

// "unknown key 'train.setps'; did you mean 'train.steps'?" or, with nothing close, the
// keys that the section does have.
std::string unknown_key_message(const std::string& key) {
  std::string message = "unknown key '" + key + "'";
  const std::string suggestion = suggest_key(key);
  if (!suggestion.empty()) return message + "; did you mean '" + suggestion + "'?";
  const std::string section = config_section_of(key);
  std::string known;
  for (const ConfigKey& k : config_schema())
    if (config_section_of(k.name) == section) known += (known.empty() ? "" : ", ") + last_component(k.name);
  if (section.empty())
    for (const std::string& s : config_sections()) known += ", " + s;
  return message + " (known " + (section.empty() ? "top-level keys" : "keys under " + section) + ": " + known + ")";
}

bool is_section(const std::string& name) {
  for (const std::string& s : config_sections())
    if (s == name) return true;
  return false;
}

// YAML text -> node; a syntax error becomes an InputError at its line. A second
// document ("---") would be silently ignored by YAML::Load, so it is an error.
YAML::Node parse_yaml(const std::string& text, const Origin& origin) {
  std::vector<YAML::Node> documents;
  try {
    documents = YAML::LoadAll(text);
  } catch (const YAML::ParserException& e) {
    throw_input_error(origin.at(e.mark), ": YAML syntax error: ", e.msg);
  }
  if (documents.size() > 1)
    throw_input_error(origin.at(documents[1].Mark()), ": a second YAML document; a configuration is one document");
  return documents.empty() ? YAML::Node() : documents[0];
}

class ConfigLoader {
 public:
  explicit ConfigLoader(std::string file) { origin_.file = std::move(file); }

  void apply_file() {
    const YAML::Node root = parse_yaml(read_file_bytes(origin_.file), origin_);
    if (!root.IsDefined() || root.IsNull()) return;  // an empty file: every key from defaults/overrides
    if (!root.IsMap()) throw_input_error(origin_.at(root.Mark()), ": expected a mapping of keys at the top level");
    apply_mapping(root, "", origin_);
  }

  void apply_override(const std::string& text) {
    Origin origin = origin_;
    origin.override = text;
    const size_t equals = text.find('=');
    if (equals == std::string::npos || equals == 0)
      throw_input_error("override '", text, "': expected key=value (for example train.steps=100)");
    const std::string key = text.substr(0, equals);
    const YAML::Node value = parse_yaml(text.substr(equals + 1), origin);
    if (is_section(key)) {
      if (!value.IsMap())
        throw_input_error(origin.at({}), ": ", key, ": expected a mapping of ", key, ".* keys ({a: 1, b: 2}), got ",
                          describe_yaml_value(value));
      apply_mapping(value, key, origin);
      return;
    }
    apply_key(key, value, origin, YAML::Mark());
  }

  void check_required() const {
    for (const ConfigKey& key : config_schema())
      if (key.required && !set_at_.count(key.name))
        throw_input_error(origin_.file, ": ", key.name, ": required but not set (", key.help, "); add it to the file or ",
                          "pass ", key.name, "=...");
  }

  // The rules that involve more than one key; each error names the key set last.
  void check_consistency() const {
    const TrainConfig& t = config_.train;
    if (t.warmup_steps > t.steps)
      fail("train.warmup_steps", "is " + std::to_string(t.warmup_steps) + ", more than train.steps (" +
                                     std::to_string(t.steps) + ")");
    if (t.stop_after > t.steps)
      fail("train.stop_after", "is " + std::to_string(t.stop_after) + ", past train.steps (" + std::to_string(t.steps) +
                                   "); use 0 for no early stop");
    // Mode none shows the decoder the text itself: regenerating it would be copying.
    if (config_.compressor.mode == CompressorMode::kNone && config_.objective != Objective::kQa)
      fail("compressor.mode",
           std::string("is none (no compression: the text is in the decoder's prompt), which only makes sense with "
                       "objective: qa, but objective is ") +
               name_of(config_.objective) + "; use mode kv or embedding for " + name_of(config_.objective));
    if (config_.compressor.memory_scale != 1.0 && config_.compressor.mode != CompressorMode::kEmbedding)
      fail("compressor.memory_scale", "is " + format_config_number(config_.compressor.memory_scale) +
                                          ", but only embedding mode has memory slots to scale (compressor.mode is " +
                                          name_of(config_.compressor.mode) + "); leave it at 1");
    if (config_.eval.every > 0 && config_.data.validation.empty())
      fail("eval.every", "is " + std::to_string(config_.eval.every) +
                             " but data.validation lists no shards; set data.validation or eval.every: 0");
  }

  ExperimentConfig result() const { return config_; }

 private:
  void apply_mapping(const YAML::Node& map, const std::string& prefix, const Origin& origin) {
    std::map<std::string, YAML::Mark> seen;
    for (const auto& entry : map) {
      const YAML::Node& key_node = entry.first;
      if (!key_node.IsScalar())
        throw_input_error(origin.at(key_node.Mark()), ": a key must be a plain name, got ", describe_yaml_value(key_node));
      const std::string key = prefix.empty() ? key_node.Scalar() : prefix + "." + key_node.Scalar();
      // yaml-cpp keeps both entries of a repeated key; catch it, since which one wins
      // would otherwise be an accident of the parser.
      const auto [previous, inserted] = seen.emplace(key, key_node.Mark());
      if (!inserted)
        throw_input_error(origin.at(key_node.Mark()), ": ", key, ": given twice (first at line ",
                          previous->second.line + 1, ")");
      if (prefix.empty() && is_section(key)) {
        if (!entry.second.IsMap() && !entry.second.IsNull())
          throw_input_error(origin.at(key_node.Mark()), ": ", key, ": expected a mapping of ", key, ".* keys, got ",
                            describe_yaml_value(entry.second));
        if (entry.second.IsMap()) apply_mapping(entry.second, key, origin);
        continue;
      }
      apply_key(key, entry.second, origin, key_node.Mark());
    }
  }

  void apply_key(const std::string& name, const YAML::Node& value, const Origin& origin, const YAML::Mark& mark) {
    const ConfigKey* key = find_config_key(name);
    if (key == nullptr) throw_input_error(origin.at(mark), ": ", unknown_key_message(name));
    const std::string problem = key->read(value, config_);
    if (!problem.empty()) throw_input_error(origin.at(mark), ": ", name, ": ", problem);
    set_at_[name] = origin.at(mark);
  }

  [[noreturn]] void fail(const std::string& key, const std::string& problem) const {
    const auto where = set_at_.find(key);
    throw_input_error(where != set_at_.end() ? where->second : origin_.file, ": ", key, " ", problem);
  }

  Origin origin_;
  ExperimentConfig config_;
  std::map<std::string, std::string> set_at_;  // key -> where its value was last set
};

}  // namespace

ExperimentConfig load_experiment_config(const std::string& yaml_path, const std::vector<std::string>& overrides) {
  ConfigLoader loader(yaml_path);
  loader.apply_file();
  for (const std::string& text : overrides) loader.apply_override(text);
  loader.check_required();
  loader.check_consistency();
  return loader.result();
}

}  // namespace xcomp
