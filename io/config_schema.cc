// The key table. Each entry says what the key means (its help text doubles as the
// documentation in the resolved config) and what values it takes; defaults are the
// member initialisers in io/config.h.
#include "io/config_schema.h"

#include <yaml-cpp/yaml.h>

#include <algorithm>
#include <glog/logging.h>
#include <limits>
#include <set>

#include "io/closest_name.h"
#include "io/config_values.h"
#include "io/env_expand.h"

namespace xcomp {

namespace {

// A captureless accessor naming one member of ExperimentConfig, so a key's reader and
// writer both reach the same field. (The writer casts away const to reuse it; it only
// reads.)
#define XCOMP_CONFIG_FIELD(member) +[](ExperimentConfig& c) -> decltype((c.member)) { return c.member; }

template <class T>
using Field = T& (*)(ExperimentConfig&);

template <class T>
T& field_of(Field<T> field, const ExperimentConfig& config) {
  return field(const_cast<ExperimentConfig&>(config));
}

constexpr int64_t kNoMax = std::numeric_limits<int64_t>::max();

std::string got(const std::string& expected, const YAML::Node& value) {
  return "expected " + expected + ", got " + describe_yaml_value(value);
}

ConfigKey integer_key(std::string name, Field<int64_t> field, int64_t min, int64_t max, std::string help) {
  ConfigKey key;
  key.name = std::move(name);
  key.expected = max == kNoMax ? "an integer >= " + std::to_string(min)
                               : "an integer in [" + std::to_string(min) + ", " + std::to_string(max) + "]";
  key.help = std::move(help);
  key.read = [field, min, max, expected = key.expected](const YAML::Node& value, ExperimentConfig& config) {
    const auto text = yaml_scalar_text(value);
    const auto parsed = text ? parse_config_integer(*text) : std::nullopt;
    if (!parsed || *parsed < min || *parsed > max) return got(expected, value);
    field(config) = *parsed;
    return std::string();
  };
  key.write = [field](YAML::Emitter& out, const ExperimentConfig& config) {
    out << std::to_string(field_of(field, config));
  };
  return key;
}

ConfigKey number_key(std::string name, Field<double> field, NumberRange range, std::string help) {
  ConfigKey key;
  key.name = std::move(name);
  key.expected = "a number " + range.describe();
  key.help = std::move(help);
  key.read = [field, range, expected = key.expected](const YAML::Node& value, ExperimentConfig& config) {
    const auto text = yaml_scalar_text(value);
    const auto parsed = text ? parse_config_number(*text) : std::nullopt;
    if (!parsed || !range.contains(*parsed)) return got(expected, value);
    field(config) = *parsed;
    return std::string();
  };
  // "32.0", not "32": the resolved config shows that the key takes any number.
  key.write = [field](YAML::Emitter& out, const ExperimentConfig& config) {
    const std::string text = format_config_number(field_of(field, config));
    out << (text.find_first_of(".e") == std::string::npos ? text + ".0" : text);
  };
  return key;
}

// A scalar string with ${VAR} expansion; an empty value (or none: `key:`) is "".
std::string read_string(const YAML::Node& value, bool required, std::string& into) {
  if (value.IsNull()) {
    into.clear();
  } else if (const auto text = yaml_scalar_text(value)) {
    EnvExpansion expanded = expand_env_vars(*text);
    if (!expanded.error.empty()) return expanded.error;
    into = expanded.value;
  } else {
    return got(required ? "a non-empty string" : "a string", value);
  }
  if (required && into.empty()) return "must not be empty";
  return "";
}

ConfigKey string_key(std::string name, Field<std::string> field, std::string help) {
  ConfigKey key;
  key.name = std::move(name);
  key.expected = "a string";
  key.help = std::move(help);
  key.read = [field](const YAML::Node& value, ExperimentConfig& config) {
    return read_string(value, false, field(config));
  };
  // Quoted, and with $ doubled, so that reading it back gives the same string.
  key.write = [field](YAML::Emitter& out, const ExperimentConfig& config) {
    out << YAML::DoubleQuoted << escape_env_vars(field_of(field, config));
  };
  return key;
}

ConfigKey required_string_key(std::string name, Field<std::string> field, std::string help) {
  ConfigKey key = string_key(std::move(name), field, std::move(help));
  key.required = true;
  key.expected = "a non-empty string";
  key.read = [field](const YAML::Node& value, ExperimentConfig& config) {
    return read_string(value, true, field(config));
  };
  return key;
}

ConfigKey string_list_key(std::string name, Field<std::vector<std::string>> field, bool required, std::string help) {
  ConfigKey key;
  key.name = std::move(name);
  key.required = required;
  key.expected = required ? "a non-empty list of strings" : "a list of strings";
  key.help = std::move(help);
  key.read = [field, required, expected = key.expected](const YAML::Node& value, ExperimentConfig& config) {
    if (!value.IsSequence()) return got(expected + " ([a, b] or one '- item' a line)", value);
    std::vector<std::string> items;
    for (const YAML::Node& item : value) {
      items.emplace_back();
      const std::string problem = read_string(item, true, items.back());
      if (!problem.empty())
        return item.IsNull() ? "a list item is empty" : "list item " + describe_yaml_value(item) + ": " + problem;
    }
    if (required && items.empty()) return got(expected, value);
    field(config) = std::move(items);
    return std::string();
  };
  key.write = [field](YAML::Emitter& out, const ExperimentConfig& config) {
    out << YAML::Flow << YAML::BeginSeq;
    for (const std::string& item : field_of(field, config)) out << YAML::DoubleQuoted << escape_env_vars(item);
    out << YAML::EndSeq;
  };
  return key;
}

std::string joined(const std::vector<std::string>& names) {
  std::string out;
  for (const std::string& n : names) out += (out.empty() ? "" : ", ") + n;
  return out;
}

// "expected one of kv, embedding, none, got 'kvv'; did you mean 'kv'?"
std::string not_one_of(const std::vector<std::string>& allowed, const YAML::Node& value) {
  std::string message = got("one of " + joined(allowed), value);
  if (value.IsScalar()) {
    const std::string suggestion = closest_name(value.Scalar(), allowed);
    if (!suggestion.empty()) message += "; did you mean '" + suggestion + "'?";
  }
  return message;
}

template <class E>
ConfigKey choice_key(std::string name, Field<E> field, std::string help) {
  std::vector<std::string> allowed;
  for (const auto& s : enum_spellings<E>()) allowed.push_back(s.name);
  ConfigKey key;
  key.name = std::move(name);
  key.expected = "one of " + joined(allowed);
  key.help = std::move(help);
  key.read = [field, allowed](const YAML::Node& value, ExperimentConfig& config) {
    for (const auto& s : enum_spellings<E>()) {
      if (value.IsScalar() && value.Scalar() == s.name) {
        field(config) = s.value;
        return std::string();
      }
    }
    return not_one_of(allowed, value);
  };
  key.write = [field](YAML::Emitter& out, const ExperimentConfig& config) { out << name_of(field_of(field, config)); };
  return key;
}

// A non-empty subset of lora_target_names(), stored in their canonical order.
ConfigKey lora_targets_key() {
  ConfigKey key;
  key.name = "lora.targets";
  key.expected = "a non-empty list of " + joined(lora_target_names());
  key.help = "projections that get LoRA adapters";
  key.breaks_resume = true;
  key.read = [expected = key.expected](const YAML::Node& value, ExperimentConfig& config) {
    if (!value.IsSequence() || value.size() == 0) return got(expected, value);
    std::set<std::string> chosen;
    for (const YAML::Node& item : value) {
      const auto& names = lora_target_names();
      if (!item.IsScalar() || std::find(names.begin(), names.end(), item.Scalar()) == names.end())
        return "list item " + not_one_of(names, item);
      if (!chosen.insert(item.Scalar()).second) return "'" + item.Scalar() + "' is listed twice";
    }
    config.lora.targets.clear();
    for (const std::string& name : lora_target_names())
      if (chosen.count(name)) config.lora.targets.push_back(name);
    return std::string();
  };
  key.write = [](YAML::Emitter& out, const ExperimentConfig& config) {
    out << YAML::Flow << YAML::BeginSeq;
    for (const std::string& target : config.lora.targets) out << target;
    out << YAML::EndSeq;
  };
  return key;
}

ConfigKey breaking_resume(ConfigKey key) {
  key.breaks_resume = true;
  return key;
}

// Compression-token keys mean nothing when nothing is compressed.
ConfigKey unused_with_mode_none(ConfigKey key) {
  key.unused = [](const ExperimentConfig& config) { return config.compressor.mode == CompressorMode::kNone; };
  return key;
}

ConfigKey path_breaking_resume(ConfigKey key, Field<std::string> field) {
  key.breaks_resume = true;
  key.path = [field](const ExperimentConfig& config) { return field_of(field, config); };
  return key;
}

// cuda.arena: "" (the environment's XCOMP_CUDA_ARENA, else none), "none", "auto" or a size
// in GiB, more than 0 and at most 1e6 (what the backend reads, model/cuda/cuda_backend.h).
ConfigKey cuda_arena_key() {
  ConfigKey key;
  key.name = "cuda.arena";
  key.expected = "\"\" (XCOMP_CUDA_ARENA, else none), none, auto or a size in GiB such as 70";
  key.help = "backend cuda: a memory arena reserved at start-up (running out is an error naming it), or none: the "
             "caching allocator";
  key.read = [expected = key.expected](const YAML::Node& value, ExperimentConfig& config) {
    const auto text = yaml_scalar_text(value);
    if (!text) return got(expected, value);
    if (!text->empty() && *text != "none" && *text != "auto") {
      const auto gib = parse_config_number(*text);
      if (!gib || !(*gib > 0) || *gib > 1e6) return got(expected, value);
    }
    config.cuda.arena = *text;
    return std::string();
  };
  key.write = [](YAML::Emitter& out, const ExperimentConfig& config) { out << YAML::DoubleQuoted << config.cuda.arena; };
  return key;
}

const NumberRange kPositive{0.0, std::numeric_limits<double>::infinity(), true, false};
const NumberRange kNonNegative{0.0, std::numeric_limits<double>::infinity(), false, false};
const NumberRange kUnitClosed{0.0, 1.0, false, false};
const NumberRange kUnitHalfOpen{0.0, 1.0, false, true};

std::vector<ConfigKey> make_schema() {
  return {
      required_string_key("run_dir", XCOMP_CONFIG_FIELD(run_dir),
                          "checkpoints, metrics and this resolved config go here"),
      string_key("resume", XCOMP_CONFIG_FIELD(resume),
                 "\"\" = start fresh, auto = newest good checkpoint in run_dir if any, or a checkpoint path"),
      integer_key("seed", XCOMP_CONFIG_FIELD(seed), 0, kNoMax, "initialisation and dropout randomness"),
      choice_key<Backend>("backend", XCOMP_CONFIG_FIELD(backend), "where the model runs"),
      choice_key<CudaWeights>("cuda_weights", XCOMP_CONFIG_FIELD(cuda_weights),
                              "backend cuda: bf16 (tensor cores, half the memory) or f32 (the CPU backend's numbers)"),
      choice_key<CudaAttentionChoice>("cuda.attention", XCOMP_CONFIG_FIELD(cuda.attention),
                                      "backend cuda: the attention forward's kernels; default = XCOMP_CUDA_ATTENTION, "
                                      "else gemm_causal"),
      choice_key<CudaAttentionChoice>("cuda.attention_backward", XCOMP_CONFIG_FIELD(cuda.attention_backward),
                                      "backend cuda: the attention backward's kernels; default = "
                                      "XCOMP_CUDA_ATTENTION_BACKWARD, else gemm_causal"),
      integer_key("cuda.causal_block", XCOMP_CONFIG_FIELD(cuda.causal_block), 0, int64_t{1} << 30,
                  "backend cuda: gemm_causal's queries per block; 0 = XCOMP_CUDA_CAUSAL_BLOCK, else 128"),
      choice_key<CudaGemmChoice>("cuda.gemm", XCOMP_CONFIG_FIELD(cuda.gemm),
                                 "backend cuda: the bf16 and TF32 products through cublas (cublasGemmEx), lt "
                                 "(cuBLASLt's heuristic) or lt_tuned (the fastest of its candidates, not "
                                 "reproducible to the bit); default = XCOMP_CUDA_GEMM, else cublas"),
      cuda_arena_key(),
      integer_key("threads", XCOMP_CONFIG_FIELD(threads), 0, 4096, "CPU threads; 0 = the cores divided by the ranks on this node"),
      breaking_resume(choice_key<Objective>("objective", XCOMP_CONFIG_FIELD(objective),
                                            "regeneration (pretraining) or qa (fine-tuning)")),

      path_breaking_resume(required_string_key("model.path", XCOMP_CONFIG_FIELD(model.path),
                                               "Hugging Face directory, .gguf or llama2.c .bin"),
                           XCOMP_CONFIG_FIELD(model.path)),
      path_breaking_resume(string_key("model.tokenizer", XCOMP_CONFIG_FIELD(model.tokenizer),
                                      "\"\" = the model's own; needed for llama2.c .bin models"),
                           XCOMP_CONFIG_FIELD(model.tokenizer)),

      breaking_resume(choice_key<CompressorMode>(
          "compressor.mode", XCOMP_CONFIG_FIELD(compressor.mode),
          "kv (500xCompressor), embedding (ICAE), or none (QA upper bound: full context in the prompt, LoRA on the "
          "decoder)")),
      unused_with_mode_none(breaking_resume(integer_key("compressor.num_tokens",
                                                        XCOMP_CONFIG_FIELD(compressor.num_tokens), 1, kNoMax,
                                                        "N compression tokens; ignored with mode none"))),
      integer_key("compressor.max_text_len", XCOMP_CONFIG_FIELD(compressor.max_text_len), 1, kNoMax,
                  "text tokens the encoder reads (mode none: the prompt); longer texts are cut"),
      choice_key<DecoderPositions>("compressor.decoder_positions",
                                   XCOMP_CONFIG_FIELD(compressor.decoder_positions),
                                   "decoder RoPE positions start at N (reference) or at L+N (after_prefix)"),
      breaking_resume(number_key("compressor.memory_scale", XCOMP_CONFIG_FIELD(compressor.memory_scale), kPositive,
                                 "embedding mode: memory slots are multiplied by this before the decoder; 1 = "
                                 "ICAE (an experiment otherwise)")),

      breaking_resume(integer_key("lora.r", XCOMP_CONFIG_FIELD(lora.r), 1, kNoMax, "LoRA rank")),
      number_key("lora.alpha", XCOMP_CONFIG_FIELD(lora.alpha), kPositive, "LoRA updates are scaled by alpha / r"),
      number_key("lora.dropout", XCOMP_CONFIG_FIELD(lora.dropout), kUnitHalfOpen, "dropout on the LoRA input"),
      lora_targets_key(),

      string_list_key("data.train", XCOMP_CONFIG_FIELD(data.train), true, "training shards: paths or globs"),
      string_list_key("data.validation", XCOMP_CONFIG_FIELD(data.validation), false,
                      "validation shards: paths or globs"),
      integer_key("data.micro_batch", XCOMP_CONFIG_FIELD(data.micro_batch), 1, kNoMax,
                  "samples per rank per forward/backward"),
      integer_key("data.shuffle_seed", XCOMP_CONFIG_FIELD(data.shuffle_seed), 0, kNoMax,
                  "seeds the order of samples in each epoch"),

      integer_key("train.steps", XCOMP_CONFIG_FIELD(train.steps), 1, kNoMax, "optimizer steps"),
      integer_key("train.accumulation", XCOMP_CONFIG_FIELD(train.accumulation), 1, kNoMax,
                  "micro batches per optimizer step"),
      number_key("train.lr", XCOMP_CONFIG_FIELD(train.lr), kPositive, "peak learning rate"),
      choice_key<LrScheduleKind>("train.schedule", XCOMP_CONFIG_FIELD(train.schedule),
                                 "learning-rate schedule after warmup"),
      integer_key("train.warmup_steps", XCOMP_CONFIG_FIELD(train.warmup_steps), 0, kNoMax,
                  "linear warmup from 0 over this many steps"),
      number_key("train.min_lr_ratio", XCOMP_CONFIG_FIELD(train.min_lr_ratio), kUnitClosed,
                 "cosine/linear end at min_lr_ratio * lr"),
      number_key("train.weight_decay", XCOMP_CONFIG_FIELD(train.weight_decay), kNonNegative,
                 "decoupled weight decay (AdamW)"),
      number_key("train.adam_beta1", XCOMP_CONFIG_FIELD(train.adam_beta1), kUnitHalfOpen, "AdamW beta1"),
      number_key("train.adam_beta2", XCOMP_CONFIG_FIELD(train.adam_beta2), kUnitHalfOpen, "AdamW beta2"),
      number_key("train.adam_eps", XCOMP_CONFIG_FIELD(train.adam_eps), kPositive, "AdamW epsilon"),
      number_key("train.grad_clip", XCOMP_CONFIG_FIELD(train.grad_clip), kNonNegative,
                 "max global gradient norm; 0 = off"),
      choice_key<NonfiniteAction>("train.nonfinite", XCOMP_CONFIG_FIELD(train.nonfinite),
                                  "on a non-finite loss or gradient: stop, or skip the update"),
      integer_key("train.stop_after", XCOMP_CONFIG_FIELD(train.stop_after), 0, kNoMax,
                  "stop this invocation at this global step, as if interrupted; 0 = off"),
      string_key("train.init_from", XCOMP_CONFIG_FIELD(train.init_from),
                 "a checkpoint whose trainable weights start a fresh run; \"\" = none"),
      choice_key<ActivationMemory>("train.activations", XCOMP_CONFIG_FIELD(train.activations),
                                   "keep (every layer's activations for backward) or recompute (only each layer's "
                                   "input; its forward runs again in backward: less memory, one more forward pass)"),

      integer_key("eval.every", XCOMP_CONFIG_FIELD(eval.every), 0, kNoMax, "evaluate every this many steps; 0 = off"),
      integer_key("eval.batches", XCOMP_CONFIG_FIELD(eval.batches), 1, kNoMax, "validation micro batches per evaluation"),

      integer_key("checkpoint.every", XCOMP_CONFIG_FIELD(checkpoint.every), 0, kNoMax,
                  "checkpoint every this many steps; 0 = only at the end"),
      integer_key("checkpoint.keep", XCOMP_CONFIG_FIELD(checkpoint.keep), 1, kNoMax, "keep the newest this many"),

      integer_key("log.every", XCOMP_CONFIG_FIELD(log.every), 1, kNoMax, "a metrics line every this many steps"),
      choice_key<ProgressMode>("log.progress", XCOMP_CONFIG_FIELD(log.progress),
                               "progress line: auto (when stderr is a terminal), always, never"),
  };
}

#undef XCOMP_CONFIG_FIELD

}  // namespace

const std::vector<ConfigKey>& config_schema() {
  static const std::vector<ConfigKey> schema = make_schema();
  return schema;
}

const ConfigKey* find_config_key(const std::string& name) {
  for (const ConfigKey& key : config_schema())
    if (key.name == name) return &key;
  return nullptr;
}

std::string config_section_of(const std::string& key) {
  const size_t dot = key.find('.');
  return dot == std::string::npos ? "" : key.substr(0, dot);
}

const std::vector<std::string>& config_sections() {
  static const std::vector<std::string> sections = [] {
    std::vector<std::string> out;
    for (const ConfigKey& key : config_schema()) {
      const std::string section = config_section_of(key.name);
      if (section.empty()) continue;
      // Keys of one section must be contiguous: the resolved config writes them as one map.
      if (!out.empty() && out.back() == section) continue;
      CHECK(std::find(out.begin(), out.end(), section) == out.end()) << "section " << section << " is split";
      out.push_back(section);
    }
    return out;
  }();
  return sections;
}

}  // namespace xcomp
