// Checkpoints: the DESIGN.md layout, a bit-exact round trip, keep-last-K, and damage
// (a flipped byte anywhere, a crashed write, a dangling `latest`) detected by name with
// the newest good checkpoint used instead.
#include "io/checkpoint.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <cstring>
#include <filesystem>

#include "model/input_error.h"
#include "tests/test_support.h"

namespace xcomp {
namespace {

namespace fs = std::filesystem;

Tensor filled(Shape shape, float first) {
  Tensor t = Tensor::zeros(std::move(shape));
  for (int64_t i = 0; i < t.numel(); ++i) t.data<float>()[i] = first + 0.37f * static_cast<float>(i);
  return t;
}

CheckpointState state_at(int64_t step) {
  CheckpointState s;
  s.step = step;
  s.samples_seen = step * 8;
  s.sampler = {1, step % 5, 8, 43};
  s.seed = 7;
  s.shuffle_seed = 11;
  s.world_size = 2;
  s.skipped_steps = 1;
  s.config_yaml = "run_dir: \"runs/x\"\nseed: 7\n";
  return s;
}

CheckpointTensors tensors_at(int64_t step) {
  CheckpointTensors t;
  t.mode = "kv";
  t.trainable = {{"compression_tokens", filled({4, 3}, static_cast<float>(step))},
                 {"lora_A", filled({2, 3}, -1.0f * static_cast<float>(step))}};
  Tensor count = Tensor::zeros({1}, DType::I32);
  count.data<int32_t>()[0] = static_cast<int32_t>(step);
  t.optimizer = {{"compression_tokens.exp_avg", filled({4, 3}, 0.5f)}, {"step", count}};
  return t;
}

void flip_byte(const std::string& path, size_t from_end) {
  std::string bytes = test::read_file(path);
  ASSERT_GT(bytes.size(), from_end);
  bytes[bytes.size() - 1 - from_end] ^= 0x01;
  test::write_file(path, bytes);
}

std::string error_of(const std::string& dir) {
  return test::input_error([&] { read_checkpoint(dir); });
}

TEST(Checkpoint, WritesTheDesignLayoutAndReadsBackBitExact) {
  const std::string dir = test::temp_dir("checkpoint") + "/checkpoints";
  const std::string written = write_checkpoint(dir, state_at(123), tensors_at(123), 3);
  EXPECT_EQ(written, dir + "/step_00000123");
  for (const char* file : {"trainable.safetensors", "optimizer.safetensors", "state.json"})
    EXPECT_TRUE(fs::is_regular_file(written + "/" + file)) << file;
  EXPECT_EQ(test::read_file(dir + "/latest"), "step_00000123\n");
  EXPECT_FALSE(fs::exists(written + ".tmp"));

  const Checkpoint c = read_checkpoint(written);
  EXPECT_EQ(c.state.step, 123);
  EXPECT_EQ(c.state.samples_seen, 984);
  EXPECT_EQ(c.state.sampler, (SamplerState{1, 3, 8, 43}));
  EXPECT_EQ(c.state.seed, 7);
  EXPECT_EQ(c.state.shuffle_seed, 11);
  EXPECT_EQ(c.state.world_size, 2);
  EXPECT_EQ(c.state.skipped_steps, 1);
  EXPECT_EQ(c.state.config_yaml, state_at(123).config_yaml);
  EXPECT_EQ(c.trainable_metadata.at("format"), "xcomp-trainable");
  EXPECT_EQ(c.trainable_metadata.at("mode"), "kv");
  const CheckpointTensors expected = tensors_at(123);
  for (const auto& [name, tensor] : expected.trainable) {
    ASSERT_TRUE(c.trainable.count(name)) << name;
    const Tensor& got = c.trainable.at(name);
    ASSERT_EQ(got.shape(), tensor.shape());
    EXPECT_EQ(0, std::memcmp(got.data<float>(), tensor.data<float>(), tensor.numel() * sizeof(float))) << name;
  }
  EXPECT_EQ(c.optimizer.at("step").data<int32_t>()[0], 123);
  EXPECT_EQ(c.optimizer.at("compression_tokens.exp_avg").data<float>()[5], tensors_at(0).optimizer[0].second.data<float>()[5]);
}

TEST(Checkpoint, KeepsOnlyTheNewestK) {
  const std::string dir = test::temp_dir("checkpoint-keep") + "/checkpoints";
  for (int64_t step = 1; step <= 5; ++step) write_checkpoint(dir, state_at(step), tensors_at(step), 2);
  std::vector<std::string> names;
  for (const auto& e : fs::directory_iterator(dir)) names.push_back(e.path().filename().string());
  std::sort(names.begin(), names.end());
  EXPECT_EQ(names, (std::vector<std::string>{"latest", "step_00000004", "step_00000005"}));
  ASSERT_TRUE(newest_good_checkpoint(dir).has_value());
  EXPECT_EQ(newest_good_checkpoint(dir)->state.step, 5);
}

TEST(Checkpoint, AFlippedByteInAnyFileIsNamedAndTheOlderCheckpointUsed) {
  for (const char* file : {"trainable.safetensors", "optimizer.safetensors", "state.json"}) {
    const std::string dir = test::temp_dir("checkpoint-flip") + "/checkpoints";
    write_checkpoint(dir, state_at(10), tensors_at(10), 3);
    const std::string newest = write_checkpoint(dir, state_at(20), tensors_at(20), 3);
    flip_byte(newest + "/" + file, 3);
    const std::string message = error_of(newest);
    EXPECT_NE(message.find(newest + "/" + file), std::string::npos) << message;
    const std::optional<Checkpoint> good = newest_good_checkpoint(dir);
    ASSERT_TRUE(good.has_value()) << file;
    EXPECT_EQ(good->state.step, 10) << file;
    EXPECT_EQ(good->path, dir + "/step_00000010");
  }
}

TEST(Checkpoint, ACrashedWriteOrADanglingLatestLeavesTheLastGoodOneInUse) {
  const std::string dir = test::temp_dir("checkpoint-crash") + "/checkpoints";
  write_checkpoint(dir, state_at(10), tensors_at(10), 3);
  // A write killed half way: the temporary directory is there, without state.json.
  fs::create_directories(dir + "/step_00000020.tmp");
  test::write_file(dir + "/step_00000020.tmp/trainable.safetensors", "partial");
  EXPECT_EQ(newest_good_checkpoint(dir)->state.step, 10);
  // A directory without its state.json (never produced by a write, but possible by hand).
  fs::create_directories(dir + "/step_00000030");
  EXPECT_NE(error_of(dir + "/step_00000030").find("state.json: missing"), std::string::npos);
  test::write_file(dir + "/latest", "step_00000099\n");
  EXPECT_EQ(newest_good_checkpoint(dir)->state.step, 10);
  // The next write clears the leftovers of the crash and the dangling timeline.
  write_checkpoint(dir, state_at(11), tensors_at(11), 3);
  EXPECT_FALSE(fs::exists(dir + "/step_00000020.tmp"));
  EXPECT_FALSE(fs::exists(dir + "/step_00000030"));
  EXPECT_EQ(newest_good_checkpoint(dir)->state.step, 11);
}

TEST(Checkpoint, NoCheckpointAtAll) {
  const std::string dir = test::temp_dir("checkpoint-none");
  EXPECT_FALSE(newest_good_checkpoint(dir + "/checkpoints").has_value());
  EXPECT_EQ(checkpoint_dir_name(7), "step_00000007");
}

}  // namespace
}  // namespace xcomp
