// Learning-rate schedules as pure functions of the step, so a resumed run gets the same rate.
#pragma once

#include <string>
#include <vector>

#include "core/json_reader.h"

namespace pconv {

struct ScheduleConfig {
  std::string kind = "cosine";     // constant | step | cosine | onecycle
  double warmup_epochs = 0;        // linear warm-up from 0 (constant, step, cosine)
  std::vector<double> milestones;  // step: epochs at which the rate is multiplied by gamma
  double gamma = 0.1;
  double min_lr_ratio = 0.0;  // cosine / onecycle: final rate as a fraction of the peak
  double pct_start = 0.25;    // onecycle: fraction of the steps spent rising
  double div_factor = 25.0;   // onecycle: starting rate = peak / div_factor
};
ScheduleConfig parse_schedule_config(JsonReader& r, const ScheduleConfig& defaults);

class LrSchedule {
 public:
  LrSchedule(const ScheduleConfig& cfg, double peak_lr, int64_t steps_per_epoch, int epochs);
  double at(int64_t step) const;  // rate for optimizer step `step` (0-based, within the stage)

 private:
  ScheduleConfig cfg_;
  double peak_;
  int64_t spe_, total_;
};

}  // namespace pconv
