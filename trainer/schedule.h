// Learning-rate schedules, matching Hugging Face transformers' LambdaLR schedules so
// that runs are comparable with PyTorch ones:
//   constant_with_warmup  get_constant_schedule_with_warmup: 0 -> lr linearly over the
//                         warmup steps, then lr
//   cosine                get_cosine_schedule_with_warmup (min_lr_ratio 0) or
//                         get_cosine_with_min_lr_schedule_with_warmup(min_lr_rate):
//                         warmup, then half a cosine from lr down to min_lr_ratio * lr
//   linear                get_linear_schedule_with_warmup (min_lr_ratio 0): warmup,
//                         then a straight line from lr down to min_lr_ratio * lr
// `step` is the number of optimizer updates already made: the first update uses
// step 0 (so with warmup it runs at lr 0, exactly as transformers' schedulers do), and
// the floor min_lr_ratio * lr is reached at step == total_steps. Past the end the
// learning rate stays at the floor (transformers' cosine would rise again).
#pragma once

#include <cstdint>

#include "io/config.h"

namespace xcomp {

struct LrSchedule {
  LrScheduleKind kind = LrScheduleKind::kConstantWithWarmup;
  double base_lr = 0.0;
  int64_t warmup_steps = 0;
  int64_t total_steps = 1;
  double min_lr_ratio = 0.0;  // cosine and linear only
};

// The schedule the experiment configuration describes (train.*).
LrSchedule lr_schedule_from_config(const TrainConfig& train);

// The factor applied to base_lr before update number `step` + 1 (step >= 0).
double lr_multiplier(const LrSchedule& schedule, int64_t step);

inline double learning_rate(const LrSchedule& schedule, int64_t step) {
  return schedule.base_lr * lr_multiplier(schedule, step);
}

}  // namespace xcomp
