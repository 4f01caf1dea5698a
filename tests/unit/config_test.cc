// The experiment configuration: the shipped configs, defaults, overrides, environment
// variables, every kind of bad input (each error naming key, file and line), the
// resolved-config round trip and the resume compatibility check.
#include "io/config.h"

#include <gtest/gtest.h>

#include <cstdlib>
#include <filesystem>
#include <initializer_list>

#include "model/input_error.h"
#include "tests/test_support.h"

namespace xcomp {
namespace {

const char* kMinimal =
    "run_dir: runs/x\n"
    "model:\n"
    "  path: models/m.bin\n"
    "data:\n"
    "  train: [shards/train-*.h5]\n";

std::string write_yaml(const std::string& text) {
  static int counter = 0;
  const std::string path = test::temp_dir("config") + "/c" + std::to_string(counter++) + ".yaml";
  test::write_file(path, text);
  return path;
}

ExperimentConfig load_text(const std::string& text, const std::vector<std::string>& overrides = {}) {
  return load_experiment_config(write_yaml(text), overrides);
}

// Loads and expects an InputError whose message contains every one of `parts`; "@FILE"
// stands for the path of the YAML file written.
void expect_error(const std::string& text, const std::vector<std::string>& overrides,
                  std::initializer_list<std::string> parts) {
  const std::string path = write_yaml(text);
  try {
    load_experiment_config(path, overrides);
    ADD_FAILURE() << "expected an InputError for:\n" << text;
  } catch (const InputError& e) {
    const std::string message = e.what();
    for (std::string part : parts) {
      if (part.rfind("@FILE", 0) == 0) part = path + part.substr(5);
      EXPECT_NE(message.find(part), std::string::npos) << "'" << part << "' not in: " << message;
    }
  }
}

void expect_file_error(const std::string& text, std::initializer_list<std::string> parts) {
  expect_error(text, {}, parts);
}

// Sets an environment variable for one test.
class ScopedEnv {
 public:
  ScopedEnv(const char* name, const char* value) : name_(name) {
    const char* old = std::getenv(name);
    had_ = old != nullptr;
    if (had_) old_ = old;
    if (value) setenv(name, value, 1); else unsetenv(name);
  }
  ~ScopedEnv() {
    if (had_) setenv(name_.c_str(), old_.c_str(), 1); else unsetenv(name_.c_str());
  }

 private:
  std::string name_, old_;
  bool had_ = false;
};

std::string shipped(const std::string& name) { return test::source_dir() + "/configs/" + name; }

TEST(ExperimentConfig, ShippedKvConfigLoadsAndPointsAtTheFixtures) {
  ScopedEnv fixtures("XCOMP_FIXTURES", test::fixtures_dir().c_str());
  const ExperimentConfig c = load_experiment_config(shipped("stories260k-regen-kv.yaml"), {});
  EXPECT_EQ(c.run_dir, "runs/stories260k-regen-kv");
  EXPECT_EQ(c.model.path, test::fixtures_dir() + "/stories260K/stories260K.bin");
  EXPECT_TRUE(std::filesystem::exists(c.model.path)) << c.model.path;
  EXPECT_TRUE(std::filesystem::exists(c.model.tokenizer)) << c.model.tokenizer;
  EXPECT_EQ(c.compressor.mode, CompressorMode::kKeyValue);
  EXPECT_EQ(c.compressor.num_tokens, 16);
  EXPECT_EQ(c.compressor.max_text_len, 96);
  EXPECT_EQ(c.compressor.decoder_positions, DecoderPositions::kReference);
  EXPECT_EQ(c.lora.r, 16);
  EXPECT_DOUBLE_EQ(c.lora.alpha, 32.0);
  EXPECT_EQ(c.lora.targets, (std::vector<std::string>{"q_proj", "v_proj"}));
  EXPECT_EQ(c.objective, Objective::kRegeneration);
  EXPECT_EQ(c.data.micro_batch, 16);
  EXPECT_EQ(c.train.steps, 1500);
  EXPECT_DOUBLE_EQ(c.train.lr, 3e-3);
  EXPECT_EQ(c.backend, Backend::kCpu);
  EXPECT_EQ(c.cuda_weights, CudaWeights::kBf16);
}

TEST(ExperimentConfig, CudaWeightsTakeBf16OrF32) {
  EXPECT_EQ(load_text(kMinimal, {"backend=cuda", "cuda_weights=f32"}).cuda_weights, CudaWeights::kF32);
  EXPECT_EQ(load_text(std::string(kMinimal) + "cuda_weights: bf16\n").cuda_weights, CudaWeights::kBf16);
  expect_error(std::string(kMinimal) + "cuda_weights: fp16\n", {}, {"@FILE", "cuda_weights", "bf16, f32"});
}

// The CUDA backend's kernels and allocator (`cuda:`): each default leaves the choice to
// its XCOMP_CUDA_* variable; bad values name the key, the file and what it takes.
TEST(ExperimentConfig, CudaKernelChoicesDefaultToTheEnvironmentAndNameTheirKeys) {
  const ExperimentConfig defaults = load_text(kMinimal);
  EXPECT_EQ(defaults.cuda.attention, CudaAttentionChoice::kDefault);
  EXPECT_EQ(defaults.cuda.attention_backward, CudaAttentionChoice::kDefault);
  EXPECT_EQ(defaults.cuda.causal_block, 0);
  EXPECT_EQ(defaults.cuda.gemm, CudaGemmChoice::kDefault);
  EXPECT_EQ(defaults.cuda.arena, "");

  const ExperimentConfig c = load_text(std::string(kMinimal) +
                                       "backend: cuda\n"
                                       "cuda:\n"
                                       "  attention: flash\n"
                                       "  attention_backward: flash_bf16\n"
                                       "  causal_block: 256\n"
                                       "  gemm: lt_tuned\n"
                                       "  arena: auto\n");
  EXPECT_EQ(c.cuda.attention, CudaAttentionChoice::kFlash);
  EXPECT_EQ(c.cuda.attention_backward, CudaAttentionChoice::kFlashBf16);
  EXPECT_EQ(c.cuda.causal_block, 256);
  EXPECT_EQ(c.cuda.gemm, CudaGemmChoice::kLtTuned);
  EXPECT_EQ(c.cuda.arena, "auto");
  EXPECT_EQ(load_text(kMinimal, {"cuda.arena=70.5"}).cuda.arena, "70.5");
  EXPECT_EQ(load_text(kMinimal, {"cuda.arena=none"}).cuda.arena, "none");
  EXPECT_EQ(load_text(kMinimal, {"cuda={gemm: lt, attention: gemm}"}).cuda.gemm, CudaGemmChoice::kLt);

  expect_error(std::string(kMinimal) + "cuda:\n  attention: flsh\n", {},
               {"@FILE", "cuda.attention", "gemm_causal", "did you mean 'flash'"});
  expect_error(kMinimal, {"cuda.attention_backward=simple"}, {"cuda.attention_backward", "flash_bf16"});
  expect_error(kMinimal, {"cuda.gemm=cublasLt"}, {"cuda.gemm", "lt_tuned"});
  expect_error(kMinimal, {"cuda.causal_block=-1"}, {"cuda.causal_block", "[0, ", "-1"});
  for (const char* arena : {"lots", "0", "-2", "[70]"})
    expect_error(kMinimal, {std::string("cuda.arena=") + arena}, {"cuda.arena", "auto", "GiB"});
  expect_error(std::string(kMinimal) + "cuda:\n  arena_gb: 70\n", {}, {"@FILE", "cuda.arena_gb"});
}

TEST(ExperimentConfig, ActivationsAreKeptOrRecomputed) {
  EXPECT_EQ(load_text(kMinimal).train.activations, ActivationMemory::kKeep);
  EXPECT_EQ(load_text(kMinimal, {"train.activations=recompute"}).train.activations, ActivationMemory::kRecompute);
  expect_error(kMinimal, {"train.activations=checkpoint"}, {"train.activations", "keep, recompute"});
  EXPECT_EQ(value_named<ActivationMemory>("recompute", "--activations"), ActivationMemory::kRecompute);
}

// Command-line flags that take a config key's values (eval --device, --cuda-weights).
TEST(ExperimentConfig, FlagValuesAreTheConfigsSpellings) {
  EXPECT_EQ(value_named<Backend>("cuda", "--device"), Backend::kCuda);
  EXPECT_EQ(value_named<Backend>("cpu", "--device"), Backend::kCpu);
  EXPECT_EQ(value_named<CudaWeights>("f32", "--cuda-weights"), CudaWeights::kF32);
  EXPECT_EQ(value_named<CompressorMode>("embedding", "--mode"), CompressorMode::kEmbedding);
  EXPECT_EQ(test::input_error([] { value_named<Backend>("cdua", "--device"); }),
            "--device: expected one of cpu, cuda, got 'cdua'; did you mean 'cuda'?");
  EXPECT_EQ(test::input_error([] { value_named<CudaWeights>("fp16", "--cuda-weights"); }),
            "--cuda-weights: expected one of bf16, f32, got 'fp16'");
}

TEST(ExperimentConfig, ShippedEmbeddingConfigIsTheKvConfigsTwin) {
  const ExperimentConfig kv = load_experiment_config(shipped("stories260k-regen-kv.yaml"), {});
  const ExperimentConfig emb = load_experiment_config(shipped("stories260k-regen-embedding.yaml"), {});
  EXPECT_EQ(emb.compressor.mode, CompressorMode::kEmbedding);
  EXPECT_EQ(emb.run_dir, "runs/stories260k-regen-embedding");
  // Apart from those two keys, the same experiment.
  ExperimentConfig aligned = emb;
  aligned.compressor.mode = kv.compressor.mode;
  aligned.run_dir = kv.run_dir;
  EXPECT_EQ(resolved_config_yaml(aligned), resolved_config_yaml(kv));
}

TEST(ExperimentConfig, EnvironmentDefaultsApplyWhenUnset) {
  ScopedEnv fixtures("XCOMP_FIXTURES", nullptr);
  ScopedEnv data("XCOMP_DATA", nullptr);
  const ExperimentConfig c = load_experiment_config(shipped("stories260k-regen-kv.yaml"), {});
  EXPECT_EQ(c.model.path, "../shared/fixtures/stories260K/stories260K.bin");
  EXPECT_EQ(c.data.train, (std::vector<std::string>{"data/tinystories/train-*.h5"}));
  EXPECT_EQ(c.data.validation, (std::vector<std::string>{"data/tinystories/test-*.h5"}));
}

TEST(ExperimentConfig, MinimalConfigGetsTheDefaults) {
  const ExperimentConfig c = load_text(kMinimal);
  const ExperimentConfig defaults;
  EXPECT_EQ(c.run_dir, "runs/x");
  EXPECT_EQ(c.model.path, "models/m.bin");
  EXPECT_EQ(c.data.train, (std::vector<std::string>{"shards/train-*.h5"}));
  EXPECT_EQ(c.train.steps, defaults.train.steps);
  EXPECT_EQ(c.train.schedule, LrScheduleKind::kConstantWithWarmup);
  EXPECT_EQ(c.lora.targets, defaults.lora.targets);
  EXPECT_EQ(c.log.progress, ProgressMode::kAuto);
  EXPECT_EQ(c.resume, "");
}

TEST(ExperimentConfig, OverridesReplaceFileValuesInOrder) {
  const ExperimentConfig c =
      load_text(kMinimal, {"run_dir=/tmp/elsewhere", "train.steps=20", "lora.r=8", "train.steps=30",
                           "lora.targets=[v_proj, k_proj, q_proj]", "train.lr=1e-3", "compressor.mode=embedding",
                           "resume=", "data.validation=[a.h5, 'b c.h5']", "objective=qa"});
  EXPECT_EQ(c.run_dir, "/tmp/elsewhere");
  EXPECT_EQ(c.train.steps, 30);
  EXPECT_EQ(c.lora.r, 8);
  // Targets are kept in canonical order whatever order they are listed in.
  EXPECT_EQ(c.lora.targets, (std::vector<std::string>{"q_proj", "k_proj", "v_proj"}));
  EXPECT_DOUBLE_EQ(c.train.lr, 1e-3);
  EXPECT_EQ(c.compressor.mode, CompressorMode::kEmbedding);
  EXPECT_EQ(c.resume, "");
  EXPECT_EQ(c.data.validation, (std::vector<std::string>{"a.h5", "b c.h5"}));
  EXPECT_EQ(c.objective, Objective::kQa);
}

TEST(ExperimentConfig, AnOverrideCanSetASectionOrTheRequiredKeys) {
  const ExperimentConfig c = load_text("model: {path: m.bin}\ndata: {train: [t.h5]}\n",
                                       {"run_dir=runs/y", "lora={r: 4, alpha: 8.5}"});
  EXPECT_EQ(c.run_dir, "runs/y");
  EXPECT_EQ(c.lora.r, 4);
  EXPECT_DOUBLE_EQ(c.lora.alpha, 8.5);
}

TEST(ExperimentConfig, IntegersMayBeWrittenAsExactFloats) {
  const ExperimentConfig c = load_text(kMinimal, {"train.steps=1e4", "seed=7.0"});
  EXPECT_EQ(c.train.steps, 10000);
  EXPECT_EQ(c.seed, 7);
}

TEST(ExperimentConfig, EnvironmentVariablesExpandInStrings) {
  ScopedEnv runs("XCOMP_TEST_RUNS", "/scratch/runs");
  ScopedEnv empty("XCOMP_TEST_EMPTY", "");
  ScopedEnv unset("XCOMP_TEST_UNSET", nullptr);
  const ExperimentConfig c = load_text(
      "run_dir: ${XCOMP_TEST_RUNS}/a\n"
      "resume: ${XCOMP_TEST_UNSET:-auto}\n"
      "model: {path: '${XCOMP_TEST_EMPTY:-fallback}/m.bin', tokenizer: 'cost$$5 and $HOME'}\n"
      "data: {train: ['${XCOMP_TEST_RUNS}/t-*.h5', plain.h5]}\n");
  EXPECT_EQ(c.run_dir, "/scratch/runs/a");
  EXPECT_EQ(c.resume, "auto");
  EXPECT_EQ(c.model.path, "fallback/m.bin");  // ":-" treats empty like unset, as the shell does
  EXPECT_EQ(c.model.tokenizer, "cost$5 and $HOME");
  EXPECT_EQ(c.data.train, (std::vector<std::string>{"/scratch/runs/t-*.h5", "plain.h5"}));
}

// --- bad input: each error names the key, the file and the line -----------------------

TEST(ExperimentConfigErrors, UnknownTopLevelKeySuggestsTheSection) {
  expect_file_error(std::string(kMinimal) + "trian:\n  steps: 5\n",
                    {"@FILE:6:1", "unknown key 'trian'", "did you mean 'train'?"});
}

TEST(ExperimentConfigErrors, MisspeltNestedKeySuggestsTheKey) {
  expect_file_error(std::string(kMinimal) + "train:\n  lr: 0.1\n  setps: 5\n",
                    {"@FILE:8:3", "unknown key 'train.setps'", "did you mean 'train.steps'?"});
}

TEST(ExperimentConfigErrors, KeyInTheWrongSectionSuggestsWhereItBelongs) {
  expect_file_error(std::string(kMinimal) + "lr: 0.1\n", {"@FILE:6:1", "unknown key 'lr'", "'train.lr'"});
  expect_file_error(std::string(kMinimal) + "lora:\n  num_tokens: 4\n", {"@FILE:7:3", "'compressor.num_tokens'"});
}

TEST(ExperimentConfigErrors, UnknownKeyWithNothingCloseListsTheSectionsKeys) {
  expect_file_error(std::string(kMinimal) + "eval:\n  frobnicate: 1\n",
                    {"@FILE:7:3", "unknown key 'eval.frobnicate'", "known keys under eval: every, batches"});
}

TEST(ExperimentConfigErrors, StringWhereAnIntegerBelongs) {
  expect_file_error(std::string(kMinimal) + "train:\n  steps: many\n",
                    {"@FILE:7:3", "train.steps", "expected an integer >= 1, got 'many'"});
  expect_file_error(std::string(kMinimal) + "train:\n  steps: 1.5\n", {"@FILE:7:3", "train.steps", "got '1.5'"});
}

TEST(ExperimentConfigErrors, ListWhereAScalarBelongs) {
  expect_file_error(std::string(kMinimal) + "lora:\n  r: [8, 16]\n", {"@FILE:7:3", "lora.r", "got a list"});
  expect_file_error("run_dir: [a, b]\nmodel: {path: m}\ndata: {train: [t]}\n",
                    {"@FILE:1:1", "run_dir", "expected a non-empty string, got a list"});
}

TEST(ExperimentConfigErrors, ScalarOrMappingWhereAListBelongs) {
  expect_file_error("run_dir: r\nmodel: {path: m}\ndata:\n  train: shards/t.h5\n",
                    {"@FILE:4:3", "data.train", "expected a non-empty list of strings", "got 'shards/t.h5'"});
  expect_file_error("run_dir: r\nmodel: {path: m}\ndata:\n  train: []\n", {"@FILE:4:3", "data.train", "got a list"});
  expect_file_error("run_dir: r\nmodel: {path: m}\ndata:\n  train:\n    - a.h5\n    -\n", {"@FILE:4:3", "a list item is empty"});
  expect_file_error(std::string(kMinimal) + "train: 5\n", {"@FILE:6:1", "train: expected a mapping", "got '5'"});
}

TEST(ExperimentConfigErrors, OutOfRangeValues) {
  expect_file_error(std::string(kMinimal) + "lora:\n  dropout: 1.5\n",
                    {"@FILE:7:3", "lora.dropout", "expected a number in [0, 1), got '1.5'"});
  expect_file_error(std::string(kMinimal) + "train:\n  lr: -1\n",
                    {"@FILE:7:3", "train.lr", "expected a number > 0, got '-1'"});
  expect_file_error(std::string(kMinimal) + "train:\n  lr: .nan\n", {"@FILE:7:3", "train.lr"});
  expect_file_error(std::string(kMinimal) + "compressor:\n  num_tokens: 0\n",
                    {"@FILE:7:3", "compressor.num_tokens", "expected an integer >= 1, got '0'"});
}

TEST(ExperimentConfigErrors, ValueNotOneOfTheChoices) {
  expect_file_error(std::string(kMinimal) + "compressor:\n  mode: kvv\n",
                    {"@FILE:7:3", "compressor.mode", "expected one of kv, embedding, none, got 'kvv'",
                     "did you mean 'kv'?"});
  expect_file_error(std::string(kMinimal) + "lora:\n  targets: [q_proj, x_proj]\n",
                    {"@FILE:7:3", "lora.targets", "got 'x_proj'", "did you mean 'q_proj'?"});
  expect_file_error(std::string(kMinimal) + "lora:\n  targets: [q_proj, q_proj]\n",
                    {"@FILE:7:3", "lora.targets", "listed twice"});
  expect_file_error(std::string(kMinimal) + "lora:\n  targets: []\n", {"@FILE:7:3", "lora.targets", "non-empty"});
}

TEST(ExperimentConfigErrors, MissingRequiredKeys) {
  expect_file_error("model: {path: m}\ndata: {train: [t]}\n", {"@FILE: run_dir: required but not set", "run_dir="});
  expect_file_error("run_dir: r\ndata: {train: [t]}\n", {"@FILE: model.path: required but not set"});
  expect_file_error("run_dir: ''\nmodel: {path: m}\ndata: {train: [t]}\n", {"@FILE:1:1", "run_dir", "must not be empty"});
  expect_file_error("", {"run_dir: required but not set"});
}

TEST(ExperimentConfigErrors, MalformedYamlGivesTheParsersMessageAndLine) {
  expect_file_error(std::string(kMinimal) + "train:\n  steps: [1, 2\n", {"@FILE:8:", "YAML syntax error"});
  expect_file_error("run_dir: r\n  model: x\n", {"@FILE:2:", "YAML syntax error"});
  expect_file_error("- a\n- b\n", {"@FILE:1:1", "expected a mapping of keys at the top level"});
  expect_file_error(std::string(kMinimal) + "---\nrun_dir: other\n", {"@FILE:7:1", "a second YAML document"});
}

TEST(ExperimentConfigErrors, BadOverrides) {
  expect_error(kMinimal, {"train.steps"}, {"override 'train.steps'", "expected key=value"});
  expect_error(kMinimal, {"=5"}, {"override '=5'", "expected key=value"});
  expect_error(kMinimal, {"train.stpes=5"}, {"override 'train.stpes=5'", "did you mean 'train.steps'?"});
  expect_error(kMinimal, {"train.steps=0"}, {"override 'train.steps=0'", "train.steps", "expected an integer >= 1"});
  expect_error(kMinimal, {"lora.targets=[q_proj"}, {"override 'lora.targets=[q_proj'", "YAML syntax error"});
  expect_error(kMinimal, {"lora=8"}, {"override 'lora=8'", "expected a mapping of lora.* keys"});
}

TEST(ExperimentConfigErrors, MissingEnvironmentVariable) {
  ScopedEnv unset("XCOMP_TEST_NOT_SET", nullptr);
  expect_file_error("run_dir: r\ndata: {train: [t]}\nmodel:\n  path: ${XCOMP_TEST_NOT_SET}/m.bin\n",
                    {"@FILE:4:3", "model.path", "XCOMP_TEST_NOT_SET is not set"});
  expect_file_error("run_dir: r\nmodel: {path: m}\ndata:\n  train:\n    - ok.h5\n    - ${XCOMP_TEST_NOT_SET}/t.h5\n",
                    {"@FILE:4:3", "data.train", "XCOMP_TEST_NOT_SET is not set"});
  expect_file_error("run_dir: ${XCOMP_TEST_NOT_SET\nmodel: {path: m}\ndata: {train: [t]}\n",
                    {"@FILE:1:1", "run_dir", "unterminated"});
  expect_error(kMinimal, {"run_dir=${XCOMP_TEST_NOT_SET}"}, {"override 'run_dir=${XCOMP_TEST_NOT_SET}'", "run_dir"});
}

TEST(ExperimentConfigErrors, DuplicateKeys) {
  expect_file_error(std::string(kMinimal) + "train:\n  steps: 5\n  lr: 0.1\n  steps: 6\n",
                    {"@FILE:9:3", "train.steps: given twice (first at line 7)"});
  expect_file_error(std::string(kMinimal) + "run_dir: again\n", {"@FILE:6:1", "run_dir: given twice (first at line 1)"});
}

TEST(ExperimentConfigErrors, InconsistentKeys) {
  expect_file_error(std::string(kMinimal) + "train:\n  steps: 10\n  warmup_steps: 20\n",
                    {"@FILE:8:3", "train.warmup_steps is 20, more than train.steps (10)"});
  expect_error(std::string(kMinimal) + "train:\n  warmup_steps: 20\n", {"train.steps=10"},
               {"@FILE:7:3", "train.warmup_steps"});
  expect_file_error(std::string(kMinimal) + "eval:\n  every: 100\n",
                    {"@FILE:7:3", "eval.every", "data.validation lists no shards"});
  expect_file_error(std::string(kMinimal) + "train:\n  steps: 10\n  stop_after: 11\n",
                    {"@FILE:8:3", "train.stop_after"});
}

// Mode none (no compression) shows the decoder the text: regenerating it would be
// copying, so it takes objective qa only; the error points at the mode's line.
TEST(ExperimentConfigErrors, ModeNoneNeedsTheQaObjective) {
  expect_file_error(std::string(kMinimal) + "compressor:\n  num_tokens: 8\n  mode: none\n",
                    {"@FILE:8:3", "compressor.mode is none", "only makes sense with objective: qa",
                     "objective is regeneration", "use mode kv or embedding"});
  expect_error(std::string(kMinimal) + "objective: qa\ncompressor:\n  mode: none\n", {"objective=regeneration"},
               {"@FILE:8:3", "compressor.mode is none"});
  expect_error(kMinimal, {"compressor.mode=none"}, {"override 'compressor.mode=none'", "compressor.mode is none"});
  const ExperimentConfig qa = load_text(std::string(kMinimal) + "objective: qa\ncompressor:\n  mode: none\n");
  EXPECT_EQ(qa.compressor.mode, CompressorMode::kNone);
  EXPECT_EQ(config_value_text(qa, "compressor.mode"), "none");
}

// compressor.memory_scale scales embedding mode's memory slots; no other mode has any.
TEST(ExperimentConfigErrors, MemoryScaleIsForEmbeddingModeOnly) {
  expect_file_error(std::string(kMinimal) + "compressor:\n  memory_scale: 0.5\n",
                    {"@FILE:7:3", "compressor.memory_scale is 0.5", "only embedding mode has memory slots",
                     "compressor.mode is kv"});
  const ExperimentConfig scaled =
      load_text(std::string(kMinimal) + "compressor:\n  mode: embedding\n  memory_scale: 0.0625\n");
  EXPECT_EQ(scaled.compressor.memory_scale, 0.0625);
  EXPECT_EQ(load_text(kMinimal).compressor.memory_scale, 1.0);
  expect_error(kMinimal, {"compressor.mode=embedding", "compressor.memory_scale=0"},
               {"compressor.memory_scale"});
}

TEST(ExperimentConfigErrors, MissingFile) {
  try {
    load_experiment_config("/nonexistent/x.yaml", {});
    FAIL();
  } catch (const InputError& e) {
    EXPECT_NE(std::string(e.what()).find("/nonexistent/x.yaml: cannot open"), std::string::npos) << e.what();
  }
}

// --- the resolved configuration -------------------------------------------------------

TEST(ResolvedConfig, ListsEveryKeyAndReadsBackIntoTheSameConfig) {
  ExperimentConfig c = load_experiment_config(shipped("stories260k-regen-kv.yaml"),
                                              {"train.lr=0.1", "lora.dropout=0.05", "train.adam_eps=1e-7",
                                               "lora.targets=[down_proj, q_proj, o_proj]", "train.schedule=cosine",
                                               "train.min_lr_ratio=0.1", "log.progress=never",
                                               "cuda.attention_backward=flash_bf16", "cuda.arena=70.5"});
  // Strings a naive writer would break: YAML syntax, words YAML reads as null or bool,
  // leading spaces, and a literal $ that must not be expanded again.
  c.run_dir = "runs/a: b # not a comment";
  c.resume = "null";
  c.model.tokenizer = " yes";
  c.train.init_from = "price$5/${HOME}";
  c.data.validation = {"'quoted'.h5", "true", "x\"y", "donn\u00e9es/\u00fc.h5", "tab\there"};
  const std::string yaml = resolved_config_yaml(c);
  const std::string path = test::temp_dir("resolved") + "/config.yaml";
  save_resolved_config(c, path);
  EXPECT_EQ(test::read_file(path), yaml);
  const ExperimentConfig back = load_experiment_config(path, {});
  EXPECT_EQ(resolved_config_yaml(back), yaml);
  EXPECT_EQ(back.run_dir, c.run_dir);
  EXPECT_EQ(back.resume, "null");
  EXPECT_EQ(back.model.tokenizer, " yes");
  EXPECT_EQ(back.train.init_from, "price$5/${HOME}");
  EXPECT_EQ(back.data.validation, c.data.validation);
  EXPECT_EQ(back.train.lr, 0.1);  // exactly: numbers are written with enough digits
  EXPECT_EQ(back.lora.dropout, 0.05);
  EXPECT_EQ(back.train.adam_eps, 1e-7);
  EXPECT_EQ(back.lora.targets, (std::vector<std::string>{"q_proj", "o_proj", "down_proj"}));
  EXPECT_EQ(back.train.schedule, LrScheduleKind::kCosine);
  EXPECT_EQ(back.log.progress, ProgressMode::kNever);
  EXPECT_EQ(back.cuda.attention_backward, CudaAttentionChoice::kFlashBf16);
  EXPECT_EQ(back.cuda.arena, "70.5");
  // Deterministic, and every key is there (defaults included).
  EXPECT_EQ(resolved_config_yaml(c), yaml);
  for (const char* key : {"run_dir:", "resume:", "seed:", "backend:", "threads:", "objective:", "tokenizer:",
                          "decoder_positions:", "dropout:", "shuffle_seed:", "min_lr_ratio:", "adam_beta2:",
                          "nonfinite:", "stop_after:", "init_from:", "activations:", "batches:", "keep:",
                          "progress:", "cuda:", "attention_backward:", "causal_block:", "gemm:", "arena:"})
    EXPECT_NE(yaml.find(key), std::string::npos) << key << " missing from\n" << yaml;
}

TEST(ResolvedConfig, ValueTextIsYaml) {
  const ExperimentConfig c = load_text(kMinimal);
  EXPECT_EQ(config_value_text(c, "lora.r"), "16");
  EXPECT_EQ(config_value_text(c, "lora.targets"), "[q_proj, v_proj]");
  EXPECT_EQ(config_value_text(c, "train.lr"), "0.0001");
  EXPECT_EQ(config_value_text(c, "compressor.mode"), "kv");
  EXPECT_EQ(config_value_text(c, "run_dir"), "\"runs/x\"");
}

TEST(ResumeCompatibility, OnlyKeysThatChangeTheTrainedThingsBreakResumption) {
  const std::string dir = test::temp_dir("resume");
  std::filesystem::create_directories(dir + "/models");
  const ExperimentConfig saved = load_text(kMinimal, {"model.path=" + dir + "/models/m.bin"});
  EXPECT_TRUE(resume_incompatible_keys(saved, saved).empty());

  // Schedule, length of training, data and logging may change on resume.
  const ExperimentConfig harmless =
      load_text(kMinimal, {"model.path=" + dir + "/models/../models/m.bin", "train.steps=5000", "train.lr=1e-3",
                           "run_dir=elsewhere", "data.micro_batch=2", "compressor.max_text_len=64", "log.every=1",
                           "lora.targets=[v_proj, q_proj]"});
  EXPECT_TRUE(resume_incompatible_keys(saved, harmless).empty());

  const ExperimentConfig changed =
      load_text(kMinimal, {"model.path=" + dir + "/models/other.bin", "model.tokenizer=tok.model",
                           "compressor.mode=embedding", "compressor.num_tokens=4", "compressor.memory_scale=0.5",
                           "lora.r=8", "lora.targets=[q_proj, k_proj, v_proj]", "objective=qa"});
  EXPECT_EQ(resume_incompatible_keys(saved, changed),
            (std::vector<std::string>{"objective", "model.path", "model.tokenizer", "compressor.mode",
                                      "compressor.num_tokens", "compressor.memory_scale", "lora.r", "lora.targets"}));

  // Mode none ignores num_tokens, so changing it does not matter there; the mode does.
  const ExperimentConfig none = load_text(kMinimal, {"objective=qa", "compressor.mode=none"});
  const ExperimentConfig none_n4 =
      load_text(kMinimal, {"objective=qa", "compressor.mode=none", "compressor.num_tokens=4"});
  EXPECT_TRUE(resume_incompatible_keys(none, none_n4).empty());
  const ExperimentConfig kv_n4 = load_text(kMinimal, {"objective=qa", "compressor.num_tokens=4"});
  EXPECT_EQ(resume_incompatible_keys(none, kv_n4),
            (std::vector<std::string>{"compressor.mode", "compressor.num_tokens"}));
}

}  // namespace
}  // namespace xcomp

namespace xcomp {
namespace {

TEST(ExperimentConfig, EveryShippedConfigLoads) {
  int loaded = 0;
  for (const auto& entry : std::filesystem::directory_iterator(test::source_dir() + "/configs")) {
    if (entry.path().extension() != ".yaml") continue;
    EXPECT_NO_THROW(load_experiment_config(entry.path().string(), {})) << entry.path();
    ++loaded;
  }
  EXPECT_GE(loaded, 6);
}

}  // namespace
}  // namespace xcomp
