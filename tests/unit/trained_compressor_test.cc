// Which trainable.safetensors a checkpoint argument names, and where its run's config is.
#include "trainer/trained_compressor.h"

#include <gtest/gtest.h>

#include <filesystem>

#include "tests/test_support.h"

namespace xcomp {
namespace {

namespace fs = std::filesystem;

TEST(TrainedCompressor, CheckpointArgumentsResolveToATrainableFile) {
  const std::string run = test::temp_dir("resolve") + "/run";
  fs::create_directories(run + "/checkpoints/step_00000002");
  fs::create_directories(run + "/checkpoints/step_00000004");
  test::write_file(run + "/config.yaml", "run_dir: x\n");
  test::write_file(run + "/trainable.safetensors", "final");
  test::write_file(run + "/checkpoints/step_00000002/trainable.safetensors", "2");
  test::write_file(run + "/checkpoints/step_00000004/trainable.safetensors", "4");

  // A run directory without checkpoints/latest: its final trainable state.
  EXPECT_EQ(resolve_trainable_file(run), run + "/trainable.safetensors");
  // With one: the checkpoint it names.
  test::write_file(run + "/checkpoints/latest", "step_00000004\n");
  EXPECT_EQ(resolve_trainable_file(run), run + "/checkpoints/step_00000004/trainable.safetensors");
  // A checkpoint directory, and a file as it is.
  EXPECT_EQ(resolve_trainable_file(run + "/checkpoints/step_00000002"),
            run + "/checkpoints/step_00000002/trainable.safetensors");
  EXPECT_EQ(resolve_trainable_file(run + "/trainable.safetensors"), run + "/trainable.safetensors");
  // The run's config is found from any of them.
  EXPECT_EQ(fs::canonical(find_run_config(run + "/checkpoints/step_00000002/trainable.safetensors")),
            fs::canonical(run + "/config.yaml"));
  EXPECT_EQ(fs::canonical(find_run_config(run + "/trainable.safetensors")), fs::canonical(run + "/config.yaml"));
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
