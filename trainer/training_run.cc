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
#include <optional>

#include "comm/process_group.h"
#include "io/checkpoint.h"
#include "io/data_loader.h"
#include "io/model_loader.h"
#include "io/safetensors.h"
#include "model/compressor.h"
#include "model/input_error.h"
#include "trainer/adamw.h"
#include "trainer/backend.h"
#include "trainer/checkpointing.h"
#include "trainer/cpu_threads.h"
#include "trainer/data_parallel.h"
#include "trainer/grad_clip.h"
#include "trainer/metrics_log.h"
#include "trainer/objective.h"
#include "trainer/schedule.h"
#include "trainer/stop_signals.h"
#include "trainer/training_communicator.h"
#include "trainer/trained_compressor.h"

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

// Loss sums of one step or one evaluation, unweighted (per target token).
// Validation also counts teacher-forced hits (training steps leave them 0).
struct LossTotals {
  double sum = 0, end_sum = 0;
  int64_t targets = 0, end_targets = 0, correct = 0, end_correct = 0;
  void add(const CompressorLoss& l, double token_weight) {
    sum += l.sum / token_weight;
    end_sum += l.end_sum / token_weight;
    targets += l.targets;
    end_targets += l.end_targets;
    correct += l.correct;
    end_correct += l.end_correct;
  }
  double mean() const { return targets ? sum / targets : 0.0; }
  double text_mean() const { return targets > end_targets ? (sum - end_sum) / (targets - end_targets) : 0.0; }
  double end_mean() const { return end_targets ? end_sum / end_targets : 0.0; }
  double accuracy() const { return targets ? static_cast<double>(correct) / targets : 0.0; }
  double text_accuracy() const {
    return targets > end_targets ? static_cast<double>(correct - end_correct) / (targets - end_targets) : 0.0;
  }
};

int64_t batch_tokens(const CompressorBatch& b) {
  int64_t n = 0;
  for (int64_t v : b.text_lengths) n += v;
  for (int64_t v : b.decoder_lengths) n += v;
  return n;
}

class TrainingRun {
 public:
  TrainingRun(const ExperimentConfig& config, Communicator& comm);
  TrainingResult run();

 private:
  // What the step trains on. `without_context`: the QA prompt alone whatever the mode
  // (the no-prefix baseline; in mode none the context is otherwise in the prompt).
  CompressorBatch build(const MicroBatch& mb, bool without_context = false) const {
    CompressorBatch b;
    if (config_.objective == Objective::kRegeneration)
      b = regeneration_batch(mb, tokens_);
    else if (config_.compressor.mode == CompressorMode::kNone && !without_context)
      b = full_context_qa_batch(mb, tokens_);
    else
      b = qa_batch(mb, tokens_);
    // LoRA dropout masks keyed by the sample (shard, index) and the step, not by where
    // the sample sits: the same masks at any world size.
    for (const SampleRef& s : mb.samples)
      b.sample_keys.push_back((static_cast<uint64_t>(s.shard) << 40) ^ static_cast<uint64_t>(s.index));
    return b;
  }
  DataLoaderOptions loader_options(const std::vector<std::string>& shards, int64_t accumulation) const;
  LossTotals validate();
  LossTotals validate_without_prefix();
  void save_trainable(const std::string& path);
  // Rank 0 restores resume_from_ into the compressor and the optimizer; then every rank
  // gets rank 0's trainable state, optimizer state and position. Returns the position.
  CheckpointState restore(AdamW& optimizer);
  // At a step boundary: rank 0 writes the checkpoint while the others wait.
  void checkpoint(const AdamW& optimizer, int64_t step, const SamplerState& sampler, int64_t skipped);
  std::vector<Tensor> trainable_tensors();
  void report(int64_t step, const LossTotals& loss, double grad_norm, double lr, int64_t tokens, double seconds,
              double val_loss, const LossTotals* val);

  const ExperimentConfig& config_;
  DataParallel parallel_;
  std::optional<Checkpoint> resume_from_;  // rank 0 only
  int64_t first_step_ = 0;                 // 0, or the step a resume continues from
  std::unique_ptr<Ops> ops_;  // the backend the model computes on (config key `backend`)
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

TrainingRun::TrainingRun(const ExperimentConfig& config, Communicator& comm) : config_(config), parallel_(comm) {
  use_cpu_threads(cpu_threads_for(config.threads));
  if (parallel_.is_main()) {
    std::filesystem::create_directories(config.run_dir);
    save_resolved_config(config, config.run_dir + "/config.yaml");
    std::cerr << resolved_config_yaml(config);
    resume_from_ = checkpoint_to_resume(config);
    if (resume_from_) check_resumable(config, parallel_.world_size(), *resume_from_);
  }
  if (parallel_.world_size() > 1)
    LOG(INFO) << "data parallel over " << parallel_.world_size() << " ranks, global batch "
              << config.data.micro_batch * config.train.accumulation * parallel_.world_size();

  // One GPU per rank: the rank's place among its node's ranks picks it.
  ops_ = make_backend(config.backend, mpi_is_running() ? mpi_world_placement().local_rank : 0, config.cuda_weights,
                      config.cuda);
  if (!ops_->configuration().empty()) LOG(INFO) << "backend " << ops_->name() << ": " << ops_->configuration();
  loaded_ = load_model(config.model.path, config.model.tokenizer);
  if (!loaded_.tokenizer) throw_input_error("model.tokenizer: ", config.model.path, " carries no tokenizer; set model.tokenizer");
  model_ = std::make_unique<LlamaModel>(loaded_.config, load_weights(loaded_), *ops_);
  compressor_ = std::make_unique<Compressor>(loaded_.config, compressor_settings_of(config),
                                             static_cast<uint64_t>(config.seed));
  // QA fine-tuning starts from a regeneration run's trainables (a file, a checkpoint or a run).
  if (!config.train.init_from.empty()) {
    if (!std::filesystem::exists(config.train.init_from))
      throw_input_error("train.init_from: ", config.train.init_from, " does not exist");
    // The file's compressor mode must be this run's (load_trainable_tensors checks it).
    load_trainable_tensors(*compressor_, resolve_trainable_file(config.train.init_from), "train.init_from: ");
  }
  const int64_t trainable = compressor_->parameter_count(), base = model_->parameter_count();
  LOG(INFO) << "trainable parameters " << trainable << " (" << 100.0 * trainable / base << "% of the base model's "
            << base << ")";
  const int32_t pad = 0;  // padding is masked everywhere; any valid id will do
  tokens_ = objective_tokens(*loaded_.tokenizer, loaded_.config.bos_token_id, loaded_.config.eos_token_id, pad);
  expect_.tokenizer_sha256 = loaded_.tokenizer->sha256();
  expect_.vocab_size = loaded_.config.vocab_size;
  train_shards_ = expand_shard_patterns(config.data.train, "data.train");
  if (config.eval.every > 0) validation_shards_ = expand_shard_patterns(config.data.validation, "data.validation");
  if (parallel_.is_main()) {
    // Records past the step this run starts from belong to an attempt that died before
    // its next checkpoint (with resume=auto and none yet, every record does).
    if (resume_from_ || config.resume == "auto")
      trim_metrics_after(config.run_dir + "/metrics.jsonl", resume_from_ ? resume_from_->state.step : -1);
    metrics_ = std::make_unique<MetricsLog>(config.run_dir + "/metrics.jsonl");
  }
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

// The same validation batches scored by the decoder alone, without the context: the bar
// a compressed prompt has to clear (and what mode none's full context is worth).
LossTotals TrainingRun::validate_without_prefix() {
  DataLoaderOptions o = loader_options(validation_shards_, 1);
  o.prefetch = 0;
  DataLoader loader(o);
  LossTotals totals;
  for (int64_t i = 0; i < config_.eval.batches; ++i)
    totals.add(decoder_only_loss(*model_, build(loader.next(), /*without_context=*/true), tokens_.eos), 1.0);
  return totals;
}

void TrainingRun::save_trainable(const std::string& path) {
  write_safetensors(path, compressor_->host_values(), {{"format", "xcomp-trainable"}, {"mode", name_of(config_.compressor.mode)}});
}

std::vector<Tensor> TrainingRun::trainable_tensors() {
  std::vector<Tensor> tensors;
  for (auto& [name, value] : compressor_->host_values()) tensors.push_back(value);
  return tensors;
}

CheckpointState TrainingRun::restore(AdamW& optimizer) {
  CheckpointState state;
  std::vector<int64_t> position(6, 0);
  if (resume_from_) {
    const Checkpoint& c = *resume_from_;
    for (const auto& p : compressor_->parameters()) {
      const auto saved = c.trainable.find(p.name);
      if (saved == c.trainable.end()) throw_input_error(c.path, "/trainable.safetensors: no tensor ", p.name);
      if (saved->second.shape() != p.value->shape() || saved->second.dtype() != DType::F32)
        throw_input_error(c.path, "/trainable.safetensors: tensor ", p.name, " is ", shape_str(saved->second.shape()),
                          ", this run's is F32 ", shape_str(p.value->shape()));
      std::copy(saved->second.data<float>(), saved->second.data<float>() + saved->second.numel(),
                p.value->data<float>());
    }
    optimizer.load_state_tensors(c.optimizer, c.path + "/optimizer.safetensors");
    state = c.state;
    position = {state.step, state.sampler.epoch, state.sampler.next_batch, state.sampler.global_batch,
                state.sampler.total_samples, state.skipped_steps};
    LOG(INFO) << "resuming from " << c.path << " (step " << state.step << ", " << state.samples_seen
              << " samples seen, saved on " << state.world_size << " rank(s))";
    resume_from_.reset();  // the mapped files are no longer needed
  }
  parallel_.broadcast_from_main(trainable_tensors());
  parallel_.broadcast_integers_from_main(position);
  state.step = position[0];
  state.sampler = {position[1], position[2], position[3], position[4]};
  state.skipped_steps = position[5];
  if (state.step > 0 && parallel_.world_size() > 1) {
    std::vector<std::pair<std::string, Tensor>> named = optimizer.state_tensors();
    std::vector<Tensor> tensors;
    for (const auto& [name, tensor] : named) tensors.push_back(tensor);
    parallel_.broadcast_from_main(tensors);
    if (!parallel_.is_main()) optimizer.load_state_tensors({named.begin(), named.end()}, "rank 0's optimizer state");
  }
  return state;
}

void TrainingRun::checkpoint(const AdamW& optimizer, int64_t step, const SamplerState& sampler, int64_t skipped) {
  if (parallel_.sync_check_due(step, /*force=*/true)) parallel_.check_in_sync(step, trainable_tensors());
  if (parallel_.is_main()) {
    CheckpointState state;
    state.step = step;
    state.samples_seen = step * sampler.global_batch;
    state.sampler = sampler;
    state.seed = config_.seed;
    state.shuffle_seed = config_.data.shuffle_seed;
    state.world_size = parallel_.world_size();
    state.skipped_steps = skipped;
    state.config_yaml = resolved_config_yaml(config_);
    CheckpointTensors tensors;
    tensors.trainable = compressor_->host_values();
    tensors.mode = name_of(config_.compressor.mode);
    tensors.optimizer = optimizer.state_tensors();
    const std::string dir = write_checkpoint(checkpoints_dir_of(config_), state, tensors, config_.checkpoint.keep);
    LOG(INFO) << "wrote checkpoint " << dir;
  }
  parallel_.barrier();
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
    record["val_accuracy"] = val->accuracy();
    record["val_text_accuracy"] = val->text_accuracy();
  }
  metrics_->write(record);
  const int64_t steps = config_.train.steps;
  const double elapsed = std::chrono::duration<double>(Clock::now() - started_).count();
  const double eta = elapsed / std::max<int64_t>(step - first_step_, 1) * (steps - step);
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
  AdamWOptions adam;
  adam.beta1 = config_.train.adam_beta1;
  adam.beta2 = config_.train.adam_beta2;
  adam.eps = config_.train.adam_eps;
  adam.weight_decay = config_.train.weight_decay;
  AdamW optimizer(adam);
  for (const auto& p : compressor_->parameters()) optimizer.add_parameter(p.name, *p.value);
  const LrSchedule schedule = lr_schedule_from_config(config_.train);
  const CheckpointState resumed = restore(optimizer);
  first_step_ = resumed.step;
  // The trainables, their gradients and the moments stay where the model computes from
  // here on (on a GPU: no copies per step; on the CPU nothing moves).
  compressor_->place_on(*ops_);
  optimizer.place_on(*ops_, compressor_->values());
  std::vector<Tensor> grads = compressor_->gradients();
  DataLoaderOptions loader_opts = loader_options(train_shards_, config_.train.accumulation);
  loader_opts.world_size = parallel_.world_size();
  loader_opts.rank = parallel_.rank();
  loader_opts.start = resumed.sampler;
  DataLoader loader(loader_opts);
  const StopSignals signals;
  // train.stop_after ends this invocation early, as an interruption would.
  const int64_t last_step = config_.train.stop_after > 0 ? config_.train.stop_after : config_.train.steps;

  TrainingResult result;
  result.steps_done = first_step_;
  result.skipped_steps = resumed.skipped_steps;
  if (config_.eval.every > 0 && first_step_ == 0 && parallel_.is_main()) {
    const LossTotals baseline = validate_without_prefix();
    metrics_->write({{"step", 0},
                     {"val_noprefix_loss", baseline.mean()},
                     {"val_noprefix_text_loss", baseline.text_mean()},
                     {"val_noprefix_end_loss", baseline.end_mean()},
                     {"val_noprefix_accuracy", baseline.accuracy()},
                     {"val_noprefix_text_accuracy", baseline.text_accuracy()}});
    LOG(INFO) << "validation without a prefix (the baseline): loss " << baseline.mean() << ", text tokens "
              << baseline.text_mean() << ", end of text " << baseline.end_mean();
  }
  // At each step boundary: the drift check, checkpoints (every checkpoint.every steps, at
  // the last step, on a stop signal), and whether to stop. True: stop now.
  auto after_step = [&](int64_t done) {
    result.steps_done = done;
    if (parallel_.sync_check_due(done)) parallel_.check_in_sync(done, trainable_tensors());
    const bool stop = parallel_.any_rank(signals.requested());
    const bool periodic = config_.checkpoint.every > 0 && done % config_.checkpoint.every == 0;
    if (periodic || stop || done == last_step) checkpoint(optimizer, done, loader.state(), result.skipped_steps);
    if (stop && parallel_.is_main())
      LOG(INFO) << "stopping after step " << done << " on a signal" << (signals.requested() ? "" : " (to another rank)")
                << "; resume with resume=auto";
    else if (done == last_step && last_step < config_.train.steps && parallel_.is_main())
      LOG(INFO) << "stopping after step " << done << " (train.stop_after); resume with resume=auto";
    return stop;
  };
  started_ = Clock::now();
  for (int64_t step = first_step_; step < last_step; ++step) {
    const auto t0 = Clock::now();
    std::vector<CompressorBatch> micro;
    int64_t targets = 0, tokens = 0;
    for (int64_t i = 0; i < config_.train.accumulation; ++i) {
      micro.push_back(build(loader.next()));
      targets += count_targets(micro.back());
      tokens += batch_tokens(micro.back());
    }
    compressor_->zero_grad();
    // Every rank weighs its tokens by the target count of the whole global batch, so the
    // summed gradient is the mean over the global batch whatever the world size.
    std::vector<double> global_targets = {static_cast<double>(targets)};
    parallel_.sum(global_targets);
    StepOptions options;
    options.token_weight = static_cast<float>(1.0 / std::max<double>(global_targets[0], 1.0));
    options.end_id = tokens_.eos;
    options.ae_token = config_.objective == Objective::kRegeneration;
    options.dropout_seed = static_cast<uint64_t>(config_.seed);
    options.activations = config_.train.activations;
    LossTotals loss;
    // The step's masks: each sample draws its own from (its key, the step).
    options.dropout_stream = static_cast<uint64_t>(step);
    // The gradient sum: overlapped with the last micro-batch's backward on GPUs.
    for (size_t i = 0; i < micro.size(); ++i) {
      StepOptions o = options;
      if (i + 1 == micro.size()) o.lora_gradients_ready = parallel_.begin_gradient_sum(*ops_, *compressor_);
      loss.add(compressor_step(*model_, *compressor_, micro[i], o), options.token_weight);
    }
    parallel_.finish_gradient_sum();
    std::vector<double> totals = {loss.sum, loss.end_sum, static_cast<double>(loss.targets),
                                  static_cast<double>(loss.end_targets), static_cast<double>(tokens)};
    parallel_.sum(totals);
    loss.sum = totals[0];
    loss.end_sum = totals[1];
    loss.targets = static_cast<int64_t>(totals[2]);
    loss.end_targets = static_cast<int64_t>(totals[3]);
    tokens = static_cast<int64_t>(totals[4]);
    const GradClipResult clip = clip_grad_norm(*ops_, grads, config_.train.grad_clip);
    const double lr = learning_rate(schedule, step);
    if (!std::isfinite(loss.mean()) || !clip.finite) {
      if (config_.train.nonfinite == NonfiniteAction::kSkip) {
        LOG(WARNING) << "step " << step + 1 << ": non-finite loss " << loss.mean() << " or gradient norm " << clip.norm
                     << "; skipped (train.nonfinite: skip)";
        ++result.skipped_steps;
        if (after_step(step + 1)) break;
        continue;
      }
      const std::string saved = config_.run_dir + "/trainable.last_good.safetensors";
      if (parallel_.is_main()) save_trainable(saved);
      throw_input_error("step ", step + 1, ": the loss (", loss.mean(), ") or the gradient norm (", clip.norm,
                        ") is not finite; the last good trainable state is in ", saved,
                        " (set train.nonfinite: skip to skip such steps)");
    }
    optimizer.step(grads, lr);
    const double seconds = std::chrono::duration<double>(Clock::now() - t0).count();
    const bool evaluate = parallel_.is_main() && config_.eval.every > 0 &&
                          ((step + 1) % config_.eval.every == 0 || step + 1 == config_.train.steps);
    LossTotals val;
    if (evaluate) {
      val = validate();
      result.last_val_loss = val.mean();
    }
    if (parallel_.is_main()) report(step + 1, loss, clip.norm, lr, tokens, seconds, val.mean(), evaluate ? &val : nullptr);
    result.last_loss = loss.mean();
    if (after_step(step + 1)) break;
  }
  if (progress_line_ && parallel_.is_main()) std::cerr << "\n";
  if (result.steps_done == config_.train.steps && parallel_.is_main()) {
    save_trainable(config_.run_dir + "/trainable.safetensors");
    LOG(INFO) << "wrote " << config_.run_dir << "/trainable.safetensors";
  }
  return result;
}

}  // namespace

TrainingResult run_training(const ExperimentConfig& config, Communicator& comm) {
  return TrainingRun(config, comm).run();
}

TrainingResult run_training(const ExperimentConfig& config) {
  const std::unique_ptr<Communicator> world = training_communicator(config.backend);
  return run_training(config, *world);
}

}  // namespace xcomp
