// The trainer's side of checkpoints: which checkpoint `resume` picks, the refusals that
// name what changed, and metrics.jsonl trimmed back to the step a resume continues from.
#include "trainer/checkpointing.h"

#include <gtest/gtest.h>

#include "io/config.h"
#include "model/input_error.h"
#include "tests/test_support.h"

namespace xcomp {
namespace {

ExperimentConfig config_in(const std::string& dir, const std::vector<std::string>& overrides) {
  const std::string yaml = dir + "/experiment.yaml";
  test::write_file(yaml, "run_dir: " + dir + "/run\nmodel:\n  path: m.bin\ndata:\n  train: [t.h5]\n  micro_batch: 4\n");
  return load_experiment_config(yaml, overrides);
}

// A checkpoint of `config` at `step`, written the way the trainer writes one.
void checkpoint_of(const ExperimentConfig& config, int64_t step, int64_t world_size) {
  CheckpointState state;
  state.step = step;
  state.world_size = world_size;
  const int64_t global_batch = config.data.micro_batch * config.train.accumulation * world_size;
  state.sampler = {0, step, global_batch, 100};
  state.samples_seen = step * global_batch;
  state.config_yaml = resolved_config_yaml(config);
  CheckpointTensors tensors;
  tensors.mode = "kv";
  tensors.trainable = {{"compression_tokens", Tensor::zeros({2, 2})}};
  tensors.optimizer = {{"step", Tensor::zeros({1}, DType::I32)}};
  write_checkpoint(checkpoints_dir_of(config), state, tensors, 3);
}

TEST(Checkpointing, ResumePicksNothingTheNewestOrTheNamedCheckpoint) {
  const std::string dir = test::temp_dir("checkpointing");
  const ExperimentConfig config = config_in(dir, {"resume=auto"});
  EXPECT_FALSE(checkpoint_to_resume(config).has_value());  // auto with none yet: a fresh start
  checkpoint_of(config, 5, 1);
  checkpoint_of(config, 9, 1);
  EXPECT_EQ(checkpoint_to_resume(config)->state.step, 9);
  EXPECT_FALSE(checkpoint_to_resume(config_in(dir, {"resume="})).has_value());
  EXPECT_EQ(checkpoint_to_resume(config_in(dir, {"resume=" + dir + "/run/checkpoints/step_00000005"}))->state.step, 5);
  EXPECT_EQ(checkpoint_to_resume(config_in(dir, {"resume=" + dir + "/run"}))->state.step, 9);
  const std::string message =
      test::input_error([&] { checkpoint_to_resume(config_in(dir, {"resume=" + dir + "/nowhere"})); });
  EXPECT_NE(message.find("resume: '" + dir + "/nowhere' is not a checkpoint or run directory"), std::string::npos)
      << message;
}

TEST(Checkpointing, ResumeRefusalsNameTheKeyOrTheGlobalBatch) {
  const std::string dir = test::temp_dir("checkpointing-refuse");
  const ExperimentConfig saved = config_in(dir, {"resume=auto"});
  checkpoint_of(saved, 3, 2);  // 2 ranks x micro 4
  const Checkpoint checkpoint = *checkpoint_to_resume(saved);
  EXPECT_NO_THROW(check_resumable(saved, 2, checkpoint));
  EXPECT_NO_THROW(check_resumable(config_in(dir, {"data.micro_batch=8", "train.steps=5000", "train.lr=1e-3"}), 1,
                                  checkpoint));
  std::string message = test::input_error([&] { check_resumable(config_in(dir, {"compressor.num_tokens=8"}), 2, checkpoint); });
  EXPECT_NE(message.find("resume: compressor.num_tokens is 8 here but 16 in the checkpoint"), std::string::npos)
      << message;
  message = test::input_error([&] { check_resumable(saved, 1, checkpoint); });
  EXPECT_NE(message.find("is 4 x 1 x 1 = 4 here but 8 in the checkpoint"), std::string::npos) << message;
}

TEST(Checkpointing, MetricsAfterTheResumedStepAreDropped) {
  const std::string path = test::temp_dir("checkpointing-metrics") + "/metrics.jsonl";
  test::write_file(path,
                   "{\"step\":0,\"val_noprefix_loss\":3.0}\n{\"step\":1,\"loss\":2.5}\n{\"step\":2,\"loss\":2.4}\n"
                   "{\"step\":3,\"loss\":2.3}\n{\"step\":4,\"lo");  // the last line cut by a crash
  trim_metrics_after(path, 2);
  EXPECT_EQ(test::read_file(path), "{\"step\":0,\"val_noprefix_loss\":3.0}\n{\"step\":1,\"loss\":2.5}\n{\"step\":2,\"loss\":2.4}\n");
  trim_metrics_after(path, -1);
  EXPECT_EQ(test::read_file(path), "");
}

}  // namespace
}  // namespace xcomp
