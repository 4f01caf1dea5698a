// Learning-rate schedules against transformers' get_*_schedule_with_warmup
// (tests/reference/make_adamw_reference.py).
#include "trainer/schedule.h"

#include <gtest/gtest.h>

#include <cmath>
#include <nlohmann/json.hpp>

#include "tests/test_support.h"

namespace xcomp {
namespace {

using json = nlohmann::json;

LrScheduleKind kind_of(const std::string& name) {
  if (name == "cosine") return LrScheduleKind::kCosine;
  if (name == "linear") return LrScheduleKind::kLinear;
  EXPECT_EQ(name, "constant_with_warmup");
  return LrScheduleKind::kConstantWithWarmup;
}

TEST(LrSchedule, MatchesTransformers) {
  const json ref = json::parse(test::read_file(test::source_dir() + "/tests/reference/data/adamw_reference.json"));
  ASSERT_EQ(ref["schedules"].size(), 8u);
  for (const json& c : ref["schedules"]) {
    LrSchedule s;
    s.kind = kind_of(c["kind"]);
    s.base_lr = c["base_lr"];
    s.warmup_steps = c["warmup_steps"];
    s.total_steps = c["total_steps"];
    s.min_lr_ratio = c["min_lr_ratio"];
    SCOPED_TRACE(c.dump().substr(0, 120));
    // Up to and including total_steps; past it transformers' cosine rises again, ours stays.
    for (int64_t step = 0; step <= s.total_steps; ++step) {
      const double expected = c["lrs"][static_cast<size_t>(step)];
      EXPECT_NEAR(learning_rate(s, step), expected, 1e-12 * s.base_lr) << "step " << step;
    }
  }
}

TEST(LrSchedule, StaysAtTheFloorPastTheEnd) {
  LrSchedule s;
  s.base_lr = 2.0;
  s.warmup_steps = 2;
  s.total_steps = 10;
  s.min_lr_ratio = 0.25;
  for (LrScheduleKind kind : {LrScheduleKind::kCosine, LrScheduleKind::kLinear}) {
    s.kind = kind;
    EXPECT_DOUBLE_EQ(learning_rate(s, 10), 0.5);
    EXPECT_DOUBLE_EQ(learning_rate(s, 11), 0.5);
    EXPECT_DOUBLE_EQ(learning_rate(s, 1000), 0.5);
    EXPECT_DOUBLE_EQ(learning_rate(s, 1), 1.0);  // warmup ignores the floor, as transformers
  }
  s.kind = LrScheduleKind::kLinear;
  EXPECT_DOUBLE_EQ(learning_rate(s, 6), 2.0 * (0.25 + 0.75 * 0.5));  // halfway down
}

TEST(LrSchedule, FromTheTrainConfig) {
  TrainConfig t;
  t.lr = 3e-3;
  t.steps = 1500;
  t.warmup_steps = 50;
  t.schedule = LrScheduleKind::kCosine;
  t.min_lr_ratio = 0.1;
  const LrSchedule s = lr_schedule_from_config(t);
  EXPECT_EQ(s.kind, LrScheduleKind::kCosine);
  EXPECT_DOUBLE_EQ(s.base_lr, 3e-3);
  EXPECT_EQ(s.warmup_steps, 50);
  EXPECT_EQ(s.total_steps, 1500);
  EXPECT_DOUBLE_EQ(s.min_lr_ratio, 0.1);
  EXPECT_DOUBLE_EQ(learning_rate(s, 0), 0.0);
  EXPECT_DOUBLE_EQ(learning_rate(s, 50), 3e-3);
}

}  // namespace
}  // namespace xcomp
