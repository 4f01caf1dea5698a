// Which trainable.safetensors a checkpoint argument names, that a damaged checkpoint is
// refused by name, and where its run's config is.
#include "trainer/trained_compressor.h"

#include <gtest/gtest.h>

#include <filesystem>

#include "io/checkpoint.h"
#include "tests/test_support.h"

namespace xcomp {
namespace {

namespace fs = std::filesystem;

// A real checkpoint of `step` under run/checkpoints (state.json with the files' digests).
void write_step(const std::string& run, int64_t step) {
  CheckpointState state;
  state.step = step;
  CheckpointTensors tensors;
  tensors.mode = "kv";
  tensors.trainable = {{"compression_tokens", Tensor::zeros({2, 3})}};
  tensors.optimizer = {{"compression_tokens.exp_avg", Tensor::zeros({2, 3})}};
  write_checkpoint(run + "/checkpoints", state, tensors, /*keep=*/5);
}

TEST(TrainedCompressor, CheckpointArgumentsResolveToATrainableFile) {
  const std::string run = test::temp_dir("resolve") + "/run";
  fs::create_directories(run);
  test::write_file(run + "/config.yaml", "run_dir: x\n");
  test::write_file(run + "/trainable.safetensors", "final");

  // A run directory without checkpoints: its final trainable state.
  EXPECT_EQ(resolve_trainable_file(run), run + "/trainable.safetensors");
  // With checkpoints: the one checkpoints/latest names (the newest written).
  write_step(run, 2);
  write_step(run, 4);
  EXPECT_EQ(resolve_trainable_file(run), run + "/checkpoints/step_00000004/trainable.safetensors");
  // A checkpoint directory, and a file as it is.
  EXPECT_EQ(resolve_trainable_file(run + "/checkpoints/step_00000002"),
            run + "/checkpoints/step_00000002/trainable.safetensors");
  EXPECT_EQ(resolve_trainable_file(run + "/checkpoints/step_00000002/trainable.safetensors"),
            run + "/checkpoints/step_00000002/trainable.safetensors");
  EXPECT_EQ(resolve_trainable_file(run + "/trainable.safetensors"), run + "/trainable.safetensors");
  // The run's config is found from any of them.
  EXPECT_EQ(fs::canonical(find_run_config(run + "/checkpoints/step_00000002/trainable.safetensors")),
            fs::canonical(run + "/config.yaml"));
  EXPECT_EQ(fs::canonical(find_run_config(run + "/trainable.safetensors")), fs::canonical(run + "/config.yaml"));
}

// A checkpoint whose trainable tensors changed after it was written is refused by name,
// however it is named; the older, intact one still resolves.
TEST(TrainedCompressor, DamagedCheckpointsAreRefusedByName) {
  const std::string run = test::temp_dir("resolve-damaged") + "/run";
  write_step(run, 2);
  write_step(run, 4);
  const std::string damaged = run + "/checkpoints/step_00000004/trainable.safetensors";
  std::string bytes = test::read_file(damaged);
  bytes.back() ^= 0x01;
  test::write_file(damaged, bytes);
  for (const std::string& named : {run, run + "/checkpoints/step_00000004", damaged}) {
    const std::string error = test::input_error([&] { resolve_trainable_file(named); });
    EXPECT_NE(error.find(damaged + ": damaged"), std::string::npos) << named << ": " << error;
    EXPECT_NE(error.find("name an older checkpoint directory"), std::string::npos) << error;
  }
  EXPECT_EQ(resolve_trainable_file(run + "/checkpoints/step_00000002"),
            run + "/checkpoints/step_00000002/trainable.safetensors");
}

TEST(TrainedCompressor, MissingCheckpointsAreNamed) {
  const std::string dir = test::temp_dir("resolve-missing");
  EXPECT_NE(test::input_error([&] { resolve_trainable_file(dir + "/nowhere"); }).find(dir + "/nowhere does not exist"),
            std::string::npos);
  EXPECT_NE(test::input_error([&] { resolve_trainable_file(dir); }).find("without trainable.safetensors"),
            std::string::npos);
  fs::create_directories(dir + "/checkpoints");
  test::write_file(dir + "/checkpoints/latest", "step_00000009\n");
  EXPECT_NE(test::input_error([&] { resolve_trainable_file(dir); }).find("names step_00000009, but"), std::string::npos);
  test::write_file(dir + "/lonely.safetensors", "x");
  EXPECT_NE(test::input_error([&] { find_run_config(dir + "/lonely.safetensors"); }).find("no config.yaml"),
            std::string::npos);
}

}  // namespace
}  // namespace xcomp
