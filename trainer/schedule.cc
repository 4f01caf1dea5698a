#include "trainer/schedule.h"

#include <glog/logging.h>

#include <algorithm>
#include <cmath>

namespace xcomp {

LrSchedule lr_schedule_from_config(const TrainConfig& train) {
  LrSchedule s;
  s.kind = train.schedule;
  s.base_lr = train.lr;
  s.warmup_steps = train.warmup_steps;
  s.total_steps = train.steps;
  s.min_lr_ratio = train.min_lr_ratio;
  return s;
}

double lr_multiplier(const LrSchedule& s, int64_t step) {
  CHECK_GE(step, 0);
  // Warmup, the same for every kind; max(1, ...) as transformers, so warmup 0 is no warmup.
  if (step < s.warmup_steps) return static_cast<double>(step) / static_cast<double>(std::max<int64_t>(1, s.warmup_steps));
  if (s.kind == LrScheduleKind::kConstantWithWarmup) return 1.0;
  const double decay_steps = static_cast<double>(std::max<int64_t>(1, s.total_steps - s.warmup_steps));
  const double progress = std::min(1.0, static_cast<double>(step - s.warmup_steps) / decay_steps);
  double factor = 0.0;
  if (s.kind == LrScheduleKind::kCosine) {
    const double kPi = 3.14159265358979323846;
    factor = std::max(0.0, 0.5 * (1.0 + std::cos(kPi * progress)));
  } else {
    factor = std::max(0.0, 1.0 - progress);
  }
  // transformers' min-lr cosine: the floor is mixed in after the cosine is computed.
  return s.min_lr_ratio + (1.0 - s.min_lr_ratio) * factor;
}

}  // namespace xcomp
