// Interrupted training runs of the xcomp binary on stories260K: SIGTERM checkpoints at
// the next step boundary, exits 0, and resume=auto continues the curve; a second signal
// exits at once; kill -9 at random moments (in the middle of checkpoint writes too), of
// the process or of one rank of an mpirun job, never leaves a damaged checkpoint behind,
// and every resume finds an intact one; SIGUSR1 to mpirun stops every rank cleanly.
#include <gtest/gtest.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <csignal>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <random>
#include <thread>

#include <nlohmann/json.hpp>

#include "io/checkpoint.h"
#include "tests/test_support.h"

namespace xcomp {
namespace {

namespace fs = std::filesystem;

// Prepared TinyStories shards, once per test binary.
const std::string& shards() {
  static const std::string dir = [] {
    const std::string d = test::temp_dir("resume-shards");
    const test::CommandResult prep = test::run_xcomp(
        "prepare --format text --input '" + test::fixture("tinystories/tinystories_sample.txt") + "' --out '" + d +
        "' --tokenizer '" + test::fixture("stories260K/tok512.model") + "' --split-by hash --test-fraction 0.2");
    EXPECT_EQ(prep.exit_code, 0) << prep.err;
    return d;
  }();
  return dir;
}

std::string train_args(const std::string& run_dir, const std::string& extra) {
  return "train --config '" + test::source_dir() + "/configs/stories260k-regen-kv.yaml' run_dir='" + run_dir +
         "' resume=auto threads=1 eval.every=0 compressor.max_text_len=32 data.micro_batch=2 log.progress=never "
         "train.warmup_steps=2 model.path='" + test::fixture("stories260K/stories260K.bin") + "' model.tokenizer='" +
         test::fixture("stories260K/tok512.model") + "' 'data.train=[\"" + shards() + "/train-*.h5\"]' " + extra;
}

// The launcher prefix of a two-rank job (CI runs as root, on fewer cores than ranks).
const char* const kMpirun2 = "mpirun -np 2 --allow-run-as-root --oversubscribe --bind-to none ";

// Starts `[launcher] xcomp ARGS` in the background (the shell execs it, so the pid is
// xcomp's, or mpirun's).
pid_t start_xcomp(const std::string& args, const std::string& log, const std::string& launcher = "") {
  const std::string command =
      "exec " + launcher + "'" + test::xcomp_binary() + "' " + args + " >'" + log + "' 2>&1 </dev/null";
  const pid_t pid = ::fork();
  if (pid == 0) {
    ::execl("/bin/sh", "sh", "-c", command.c_str(), static_cast<char*>(nullptr));
    ::_exit(127);
  }
  return pid;
}

// The exit code, or 128 + the signal that ended it.
int wait_for(pid_t pid) {
  int status = 0;
  ::waitpid(pid, &status, 0);
  return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
}

// The steps in metrics.jsonl, in file order.
std::vector<int64_t> logged_steps(const std::string& run_dir) {
  std::ifstream in(run_dir + "/metrics.jsonl");
  std::vector<int64_t> steps;
  for (std::string line; std::getline(in, line);) {
    const nlohmann::json r = nlohmann::json::parse(line, nullptr, false);
    if (!r.is_discarded() && r.contains("loss")) steps.push_back(r["step"].get<int64_t>());
  }
  return steps;
}

std::vector<int64_t> one_to(int64_t n) {
  std::vector<int64_t> v;
  for (int64_t i = 1; i <= n; ++i) v.push_back(i);
  return v;
}

// Waits until the run has logged `step` (or a minute has passed).
void wait_for_step(const std::string& run_dir, int64_t step) {
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::minutes(1);
  while (std::chrono::steady_clock::now() < deadline) {
    const std::vector<int64_t> steps = logged_steps(run_dir);
    if (!steps.empty() && steps.back() >= step) return;
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  ADD_FAILURE() << run_dir << " never reached step " << step;
}

// The ranks mpirun started (its child processes).
std::vector<pid_t> children_of(pid_t parent) {
  std::vector<pid_t> out;
  for (const auto& task : fs::directory_iterator("/proc/" + std::to_string(parent) + "/task")) {
    std::ifstream in(task.path() / "children");
    for (pid_t pid; in >> pid;) out.push_back(pid);
  }
  return out;
}

// Every finished checkpoint directory verifies, and the newest good one is returned.
int64_t verify_checkpoints(const std::string& run, const std::string& when) {
  if (fs::exists(run + "/checkpoints")) {
    for (const auto& entry : fs::directory_iterator(run + "/checkpoints")) {
      const std::string name = entry.path().filename().string();
      if (name.rfind("step_", 0) == 0 && name.find(".tmp") == std::string::npos) {
        EXPECT_NO_THROW(read_checkpoint(entry.path().string())) << when << ": " << name;
      }
    }
  }
  const std::optional<Checkpoint> good = newest_good_checkpoint(run + "/checkpoints");
  return good ? good->state.step : 0;
}

// Waits until the file holds `text` (or a minute has passed).
void wait_for_text(const std::string& path, const std::string& text) {
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::minutes(1);
  while (std::chrono::steady_clock::now() < deadline) {
    std::ifstream in(path);
    const std::string bytes((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
    if (bytes.find(text) != std::string::npos) return;
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  ADD_FAILURE() << path << " never showed '" << text << "'";
}

TEST(CheckpointResume, SigtermCheckpointsAtTheNextStepAndResumeContinuesTheCurve) {
  const std::string dir = test::temp_dir("sigterm");
  const std::string run = dir + "/run";
  const pid_t pid = start_xcomp(train_args(run, "train.steps=1000 checkpoint.every=0"), dir + "/log");
  wait_for_step(run, 3);
  ::kill(pid, SIGTERM);
  ASSERT_EQ(wait_for(pid), 0) << test::read_file(dir + "/log");
  const std::optional<Checkpoint> saved = newest_good_checkpoint(run + "/checkpoints");
  ASSERT_TRUE(saved.has_value()) << test::read_file(dir + "/log");
  const int64_t stopped_at = saved->state.step;
  EXPECT_GE(stopped_at, 3);
  EXPECT_LT(stopped_at, 1000);
  EXPECT_EQ(logged_steps(run), one_to(stopped_at));

  const test::CommandResult resumed =
      test::run_xcomp(train_args(run, "train.steps=1000 checkpoint.every=0 train.stop_after=" +
                                          std::to_string(stopped_at + 3)));
  ASSERT_EQ(resumed.exit_code, 0) << resumed.err;
  EXPECT_NE(resumed.err.find("resuming from " + saved->path), std::string::npos) << resumed.err;
  EXPECT_EQ(logged_steps(run), one_to(stopped_at + 3));
}

TEST(CheckpointResume, ASecondSignalExitsAtOnce) {
  const std::string dir = test::temp_dir("second-signal");
  const pid_t pid = start_xcomp(train_args(dir + "/run", "train.steps=1000 checkpoint.every=0"), dir + "/log");
  wait_for_step(dir + "/run", 2);
  ::kill(pid, SIGUSR1);
  ::kill(pid, SIGTERM);
  // Which of the two the process handles second depends on the kernel's delivery order.
  const int code = wait_for(pid);
  EXPECT_TRUE(code == 128 + SIGTERM || code == 128 + SIGUSR1) << code << "\n" << test::read_file(dir + "/log");
  EXPECT_FALSE(fs::exists(dir + "/run/checkpoints/latest")) << "the second signal should not wait for a checkpoint";
}

TEST(CheckpointResume, KillNineAtRandomMomentsNeverLosesAnIntactCheckpoint) {
  const std::string dir = test::temp_dir("kill9");
  const std::string run = dir + "/run";
  const std::string args = train_args(run, "train.steps=60 checkpoint.every=1 checkpoint.keep=2");
  std::mt19937 random(20261126);
  std::uniform_int_distribution<int> delay_ms(300, 1300);  // start-up takes about half a second
  int64_t newest = 0;
  for (int round = 0; round < 20; ++round) {
    const pid_t pid = start_xcomp(args, dir + "/log");
    std::this_thread::sleep_for(std::chrono::milliseconds(delay_ms(random)));
    ::kill(pid, SIGKILL);
    wait_for(pid);
    // Every finished checkpoint directory verifies, whatever moment the kill hit.
    const int64_t step = verify_checkpoints(run, "round " + std::to_string(round));
    EXPECT_GE(step, newest) << "round " << round << ": progress went backwards";
    newest = step;
  }
  EXPECT_GT(newest, 0) << "no round got as far as a checkpoint";
  const test::CommandResult finished = test::run_xcomp(args);
  ASSERT_EQ(finished.exit_code, 0) << finished.err;
  EXPECT_EQ(logged_steps(run), one_to(60));
  EXPECT_EQ(test::read_file(run + "/checkpoints/latest"), "step_00000060\n");
  EXPECT_TRUE(fs::exists(run + "/trainable.safetensors"));
}

TEST(CheckpointResume, KillNineOfOneRankUnderMpirunThenUsr1ThenResumeOnOneRank) {
  if (std::system("mpirun --version >/dev/null 2>&1") != 0) GTEST_SKIP() << "no mpirun";
  const std::string dir = test::temp_dir("kill9-mpi");
  const std::string run = dir + "/run";
  const std::string args = train_args(run, "train.steps=100000 checkpoint.every=1 checkpoint.keep=2");
  std::mt19937 random(5);
  std::uniform_int_distribution<int> delay_ms(1200, 2500);  // mpirun and two ranks start in about a second
  int64_t newest = 0;
  for (int round = 0; round < 20; ++round) {
    const pid_t mpirun = start_xcomp(args, dir + "/log", kMpirun2);
    std::this_thread::sleep_for(std::chrono::milliseconds(delay_ms(random)));
    const std::vector<pid_t> ranks = children_of(mpirun);
    if (!ranks.empty()) ::kill(ranks[round % ranks.size()], SIGKILL);
    EXPECT_NE(wait_for(mpirun), 0) << "round " << round;
    const int64_t step = verify_checkpoints(run, "round " + std::to_string(round));
    EXPECT_GE(step, newest) << "round " << round << ": progress went backwards";
    newest = step;
  }
  EXPECT_GT(newest, 0);
  // SIGUSR1 to mpirun reaches every rank (what Slurm sends before preemption).
  const pid_t mpirun = start_xcomp(args, dir + "/log", kMpirun2);
  // Its own progress, not the records a killed round left past its last checkpoint: a
  // signal before the ranks reach main() would end them as it ends any process.
  wait_for_text(dir + "/log", "wrote checkpoint " + run + "/checkpoints/" + checkpoint_dir_name(newest + 2));
  ::kill(mpirun, SIGUSR1);
  ASSERT_EQ(wait_for(mpirun), 0) << test::read_file(dir + "/log");
  const int64_t stopped = verify_checkpoints(run, "after SIGUSR1");
  EXPECT_GE(stopped, newest + 2);
  // The same global batch (2 ranks x 2) on one rank x 4 continues the curve.
  const test::CommandResult resumed = test::run_xcomp(
      train_args(run, "train.steps=100000 checkpoint.every=1 data.micro_batch=4 train.stop_after=" +
                          std::to_string(stopped + 2)));
  ASSERT_EQ(resumed.exit_code, 0) << resumed.err;
  EXPECT_EQ(logged_steps(run), one_to(stopped + 2));
}

}  // namespace
}  // namespace xcomp
