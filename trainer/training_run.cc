#include "trainer/training_run.h"

#include <cblas.h>
#include <glob.h>
#include <glog/logging.h>
#include <omp.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <iostream>
#include <memory>

#include "io/data_loader.h"
#include "io/model_loader.h"
#include "io/safetensors.h"
#include "model/compressor.h"
#include "model/cpu/cpu_ops.h"
#include "model/input_error.h"
#include "trainer/adamw.h"
#include "trainer/grad_clip.h"
#include "trainer/metrics_log.h"
#include "trainer/objective.h"
#include "trainer/schedule.h"

namespace xcomp {

namespace {

using Clock = std::chrono::steady_clock;

// Shard paths from a list of paths and glob patterns, each pattern's matches sorted; a
// pattern that matches nothing is an error naming the key.
std::vector<std::string> expand_shard_patterns(const std::vector<std::string>& patterns, const std::string& key) {
  std::vector<std::string> paths;
  for (const std::string& pattern : patterns) {
    glob_t g{};
    const int rc = ::glob(pattern.c_str(), 0, nullptr, &g);
    if (rc == GLOB_NOMATCH || (rc == 0 && g.gl_pathc == 0)) {
      ::globfree(&g);
      throw_input_error(key, ": '", pattern, "' matches no file (prepare the shards with xcomp prepare)");
    }
    if (rc != 0) {
      ::globfree(&g);
      throw_input_error(key, ": cannot expand '", pattern, "'");
    }
    for (size_t i = 0; i < g.gl_pathc; ++i) paths.emplace_back(g.gl_pathv[i]);
    ::globfree(&g);
  }
  return paths;
}

CompressorSettings compressor_settings(const ExperimentConfig& c) {
  CompressorSettings s;
  s.mode = c.compressor.mode;
  s.num_tokens = c.compressor.num_tokens;
  s.decoder_positions = c.compressor.decoder_positions;
  s.lora.r = c.lora.r;
  s.lora.alpha = c.lora.alpha;
  s.lora.dropout = c.lora.dropout;
  s.lora.targets.clear();
  for (const std::string& name : c.lora.targets) s.lora.targets.push_back(lora_target_from_name(name, "lora.targets"));
  return s;
}

void set_threads(int64_t threads) {
  const int n = threads > 0 ? static_cast<int>(threads) : static_cast<int>(std::max(1L, sysconf(_SC_NPROCESSORS_ONLN)));
  omp_set_num_threads(n);
  openblas_set_num_threads(n);
}

// Loss sums of one step or one evaluation, unweighted (per target token).
struct LossTotals {
  double sum = 0, end_sum = 0;
  int64_t targets = 0, end_targets = 0;
  void add(const CompressorLoss& l, double token_weight) {
    sum += l.sum / token_weight;
    end_sum += l.end_sum / token_weight;
    targets += l.targets;
    end_targets += l.end_targets;
  }
  double mean() const { return targets ? sum / targets : 0.0; }
  double text_mean() const { return targets > end_targets ? (sum - end_sum) / (targets - end_targets) : 0.0; }
  double end_mean() const { return end_targets ? end_sum / end_targets : 0.0; }
};

int64_t batch_tokens(const CompressorBatch& b) {
  int64_t n = 0;
  for (int64_t v : b.text_lengths) n += v;
  for (int64_t v : b.decoder_lengths) n += v;
  return n;
}

class TrainingRun {
 public:
  explicit TrainingRun(const ExperimentConfig& config);
  TrainingResult run();

 private:
  CompressorBatch build(const MicroBatch& mb) const {
    return config_.objective == Objective::kQa ? qa_batch(mb, tokens_) : regeneration_batch(mb, tokens_);
  }
  DataLoaderOptions loader_options(const std::vector<std::string>& shards, int64_t accumulation) const;
  LossTotals validate();
  LossTotals validate_without_prefix();
  void save_trainable(const std::string& path);
  void report(int64_t step, const LossTotals& loss, double grad_norm, double lr, int64_t tokens, double seconds,
              double val_loss, const LossTotals* val);

  const ExperimentConfig& config_;
  CpuOps ops_;
  LoadedModel loaded_;
  std::unique_ptr<LlamaModel> model_;
  std::unique_ptr<Compressor> compressor_;
  ObjectiveTokens tokens_;
  ShardExpectations expect_;
  std::vector<std::string> train_shards_, validation_shards_;
  std::unique_ptr<MetricsLog> metrics_;
  bool progress_line_ = false;
  Clock::time_point started_;
};

// Keys the schema knows but this trainer cannot honour yet are refused, not ignored.
void refuse_unsupported(const ExperimentConfig& config) {
  if (config.backend != Backend::kCpu)
    throw_input_error("backend: only 'cpu' is available in this build (the CUDA backend arrives with its issue)");
  if (!config.resume.empty() && config.resume != "auto")
    throw_input_error("resume: resuming from a checkpoint ('", config.resume,
                      "') is not available yet (checkpoints arrive with the distributed-training issue)");
  if (config.train.stop_after != 0)
    throw_input_error("train.stop_after: stopping with a checkpoint is not available yet (it arrives with "
                      "checkpoints and resumption)");
}

// Copies the trainable tensors saved by an earlier run (trainable.safetensors, or a
// directory holding one) into the compressor: QA fine-tuning from a regeneration run.
void load_initial_trainable(Compressor& compressor, const std::string& from) {
  const std::string path = std::filesystem::is_directory(from) ? from + "/trainable.safetensors" : from;
  const SafetensorsFile file = SafetensorsFile::open(path);
  for (const auto& p : compressor.parameters()) {
    if (!file.contains(p.name)) throw_input_error("train.init_from: ", path, " has no tensor ", p.name);
    const Tensor saved = file.tensor(p.name).to_f32();
    if (saved.shape() != p.value->shape())
      throw_input_error("train.init_from: ", path, ": tensor ", p.name, " has shape ", shape_str(saved.shape()),
                        ", this run's is ", shape_str(p.value->shape()));
    std::copy(saved.data<float>(), saved.data<float>() + saved.numel(), p.value->data<float>());
  }
}

TrainingRun::TrainingRun(const ExperimentConfig& config) : config_(config) {
  refuse_unsupported(config);
  set_threads(config.threads);
  std::filesystem::create_directories(config.run_dir);
  save_resolved_config(config, config.run_dir + "/config.yaml");
  std::cerr << resolved_config_yaml(config);

  loaded_ = load_model(config.model.path, config.model.tokenizer);
  if (!loaded_.tokenizer) throw_input_error("model.tokenizer: ", config.model.path, " carries no tokenizer; set model.tokenizer");
  model_ = std::make_unique<LlamaModel>(loaded_.config, load_weights(loaded_), ops_);
  compressor_ = std::make_unique<Compressor>(loaded_.config, compressor_settings(config),
                                             static_cast<uint64_t>(config.seed));
  if (!config.train.init_from.empty()) load_initial_trainable(*compressor_, config.train.init_from);
  const int64_t trainable = compressor_->parameter_count(), base = model_->parameter_count();
  LOG(INFO) << "trainable parameters " << trainable << " (" << 100.0 * trainable / base << "% of the base model's "
            << base << ")";
  const int32_t pad = 0;  // padding is masked everywhere; any valid id will do
  tokens_ = objective_tokens(*loaded_.tokenizer, loaded_.config.bos_token_id, loaded_.config.eos_token_id, pad);
  expect_.tokenizer_sha256 = loaded_.tokenizer->sha256();
  expect_.vocab_size = loaded_.config.vocab_size;
  train_shards_ = expand_shard_patterns(config.data.train, "data.train");
  if (config.eval.every > 0) validation_shards_ = expand_shard_patterns(config.data.validation, "data.validation");
  metrics_ = std::make_unique<MetricsLog>(config.run_dir + "/metrics.jsonl");
  LOG(INFO) << "periodic checkpoints are not written yet (they arrive with the distributed-training issue); "
               "the trainable state is saved at the end as trainable.safetensors";
  const bool terminal = ::isatty(STDERR_FILENO);
  progress_line_ = config.log.progress == ProgressMode::kAlways || (config.log.progress == ProgressMode::kAuto && terminal);
}

DataLoaderOptions TrainingRun::loader_options(const std::vector<std::string>& shards, int64_t accumulation) const {
  DataLoaderOptions o;
  o.shards = shards;
  o.kind = config_.objective == Objective::kQa ? SampleKind::kQa : SampleKind::kCorpus;
  o.expect = expect_;
  o.seed = static_cast<uint64_t>(config_.data.shuffle_seed);
  o.micro_batch = config_.data.micro_batch;
  o.accumulation = accumulation;
  o.max_text_len = config_.compressor.max_text_len;
  o.pad_id = tokens_.pad;
  return o;
}

// The same validation batches every time: a fresh loader from the start of its order.
LossTotals TrainingRun::validate() {
  DataLoaderOptions o = loader_options(validation_shards_, 1);
  o.prefetch = 0;
  DataLoader loader(o);
  LossTotals totals;
  StepOptions options;
  options.backward = false;
  options.end_id = tokens_.eos;
  options.ae_token = config_.objective == Objective::kRegeneration;
  for (int64_t i = 0; i < config_.eval.batches; ++i) totals.add(compressor_step(*model_, *compressor_, build(loader.next()), options), 1.0);
  return totals;
}

// The same validation batches scored by the decoder alone: the bar a compressed prompt
// has to clear.
LossTotals TrainingRun::validate_without_prefix() {
  DataLoaderOptions o = loader_options(validation_shards_, 1);
  o.prefetch = 0;
  DataLoader loader(o);
  LossTotals totals;
  for (int64_t i = 0; i < config_.eval.batches; ++i)
    totals.add(decoder_only_loss(*model_, build(loader.next()), tokens_.eos), 1.0);
  return totals;
}

void TrainingRun::save_trainable(const std::string& path) {
  std::vector<std::pair<std::string, Tensor>> named;
  for (const auto& p : compressor_->parameters()) named.emplace_back(p.name, *p.value);
  write_safetensors(path, named, {{"format", "xcomp-trainable"}, {"mode", name_of(config_.compressor.mode)}});
}

void TrainingRun::report(int64_t step, const LossTotals& loss, double grad_norm, double lr, int64_t tokens,
                         double seconds, double val_loss, const LossTotals* val) {
  nlohmann::json record = {{"step", step},
                           {"loss", loss.mean()},
                           {"text_loss", loss.text_mean()},
                           {"end_loss", loss.end_mean()},
                           {"lr", lr},
                           {"grad_norm", grad_norm},
                           {"tokens", tokens},
                           {"tokens_per_s", tokens / std::max(seconds, 1e-9)},
                           {"step_s", seconds}};
  if (val) {
    record["val_loss"] = val_loss;
    record["val_text_loss"] = val->text_mean();
    record["val_end_loss"] = val->end_mean();
  }
  metrics_->write(record);
  const int64_t steps = config_.train.steps;
  const double elapsed = std::chrono::duration<double>(Clock::now() - started_).count();
  const double eta = elapsed / step * (steps - step);
  char line[256];
  std::snprintf(line, sizeof line, "step %lld/%lld loss %.4f (text %.4f) lr %.3g grad %.3g %.0f tok/s ETA %02d:%02d:%02d",
                static_cast<long long>(step), static_cast<long long>(steps), loss.mean(), loss.text_mean(), lr,
                grad_norm, tokens / std::max(seconds, 1e-9), static_cast<int>(eta / 3600),
                static_cast<int>(eta / 60) % 60, static_cast<int>(eta) % 60);
  if (progress_line_) {
    std::cerr << "\r" << line << (val ? "" : "\033[K") << std::flush;
    if (val) std::cerr << " val " << val_loss << "\n";
  } else if (step % config_.log.every == 0 || val || step == steps) {
    LOG(INFO) << line << (val ? " val_loss " + std::to_string(val_loss) : "");
  }
}

TrainingResult TrainingRun::run() {
  DataLoader loader(loader_options(train_shards_, config_.train.accumulation));
  AdamWOptions adam;
  adam.beta1 = config_.train.adam_beta1;
  adam.beta2 = config_.train.adam_beta2;
  adam.eps = config_.train.adam_eps;
  adam.weight_decay = config_.train.weight_decay;
  AdamW optimizer(adam);
  std::vector<Tensor> grads;
  for (const auto& p : compressor_->parameters()) {
    optimizer.add_parameter(p.name, *p.value);
    grads.push_back(*p.grad);
  }
  const LrSchedule schedule = lr_schedule_from_config(config_.train);

  TrainingResult result;
  if (config_.eval.every > 0) {
    const LossTotals baseline = validate_without_prefix();
    metrics_->write({{"step", 0},
                     {"val_noprefix_loss", baseline.mean()},
                     {"val_noprefix_text_loss", baseline.text_mean()},
                     {"val_noprefix_end_loss", baseline.end_mean()}});
    LOG(INFO) << "validation without a prefix (the baseline): loss " << baseline.mean() << ", text tokens "
              << baseline.text_mean() << ", end of text " << baseline.end_mean();
  }
  started_ = Clock::now();
  for (int64_t step = 0; step < config_.train.steps; ++step) {
    const auto t0 = Clock::now();
    std::vector<CompressorBatch> micro;
    int64_t targets = 0, tokens = 0;
    for (int64_t i = 0; i < config_.train.accumulation; ++i) {
      micro.push_back(build(loader.next()));
      targets += count_targets(micro.back());
      tokens += batch_tokens(micro.back());
    }
    compressor_->zero_grad(ops_);
    StepOptions options;
    options.token_weight = static_cast<float>(1.0 / std::max<int64_t>(targets, 1));
    options.end_id = tokens_.eos;
    options.ae_token = config_.objective == Objective::kRegeneration;
    options.dropout_seed = static_cast<uint64_t>(config_.seed);
    LossTotals loss;
    for (size_t i = 0; i < micro.size(); ++i) {
      options.dropout_stream = static_cast<uint64_t>(step * config_.train.accumulation + i);
      loss.add(compressor_step(*model_, *compressor_, micro[i], options), options.token_weight);
    }
    const GradClipResult clip = clip_grad_norm(grads, config_.train.grad_clip);
    const double lr = learning_rate(schedule, step);
    if (!std::isfinite(loss.mean()) || !clip.finite) {
      if (config_.train.nonfinite == NonfiniteAction::kSkip) {
        LOG(WARNING) << "step " << step + 1 << ": non-finite loss " << loss.mean() << " or gradient norm " << clip.norm
                     << "; skipped (train.nonfinite: skip)";
        ++result.skipped_steps;
        continue;
      }
      const std::string saved = config_.run_dir + "/trainable.last_good.safetensors";
      save_trainable(saved);
      throw_input_error("step ", step + 1, ": the loss (", loss.mean(), ") or the gradient norm (", clip.norm,
                        ") is not finite; the last good trainable state is in ", saved,
                        " (set train.nonfinite: skip to skip such steps)");
    }
    optimizer.step(grads, lr);
    const double seconds = std::chrono::duration<double>(Clock::now() - t0).count();
    const bool evaluate = config_.eval.every > 0 && ((step + 1) % config_.eval.every == 0 || step + 1 == config_.train.steps);
    LossTotals val;
    if (evaluate) {
      val = validate();
      result.last_val_loss = val.mean();
    }
    report(step + 1, loss, clip.norm, lr, tokens, seconds, val.mean(), evaluate ? &val : nullptr);
    result.steps_done = step + 1;
    result.last_loss = loss.mean();
  }
  if (progress_line_) std::cerr << "\n";
  save_trainable(config_.run_dir + "/trainable.safetensors");
  LOG(INFO) << "wrote " << config_.run_dir << "/trainable.safetensors";
  return result;
}

}  // namespace

TrainingResult run_training(const ExperimentConfig& config) { return TrainingRun(config).run(); }

}  // namespace xcomp
