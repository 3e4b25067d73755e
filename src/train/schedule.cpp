#include "train/schedule.h"

#include <algorithm>
#include <cmath>

#include "core/error.h"

namespace pconv {

ScheduleConfig parse_schedule_config(JsonReader& r, const ScheduleConfig& d) {
  ScheduleConfig c;
  c.kind = r.get_enum("kind", d.kind, {"constant", "step", "cosine", "onecycle"});
  c.warmup_epochs = r.get_double("warmup_epochs", d.warmup_epochs, 0.0, 1e6);
  c.milestones = r.get_double_list("milestones", d.milestones);
  c.gamma = r.get_double("gamma", d.gamma, 0.0, 1.0);
  c.min_lr_ratio = r.get_double("min_lr_ratio", d.min_lr_ratio, 0.0, 1.0);
  c.pct_start = r.get_double("pct_start", d.pct_start, 0.0, 1.0);
  c.div_factor = r.get_double("div_factor", d.div_factor, 1.0, 1e6);
  for (size_t i = 1; i < c.milestones.size(); ++i)
    PCONV_CHECK(c.milestones[i] > c.milestones[i - 1], r.where("milestones"),
                ": milestones must increase");
  return c;
}

LrSchedule::LrSchedule(const ScheduleConfig& cfg, double peak_lr, int64_t steps_per_epoch,
                       int epochs)
    : cfg_(cfg),
      peak_(peak_lr),
      spe_(std::max<int64_t>(1, steps_per_epoch)),
      total_(std::max<int64_t>(1, steps_per_epoch * epochs)) {}

double LrSchedule::at(int64_t step) const {
  const double pi = 3.14159265358979323846;
  const double t = static_cast<double>(step);
  const double total = static_cast<double>(total_);
  const double lo = peak_ * cfg_.min_lr_ratio;
  if (cfg_.kind == "onecycle") {
    double up = std::max(1.0, cfg_.pct_start * total);
    double start = peak_ / cfg_.div_factor;
    if (t < up) return start + (peak_ - start) * t / up;
    double f = std::min(1.0, (t - up) / std::max(1.0, total - up));
    return lo + (peak_ - lo) * 0.5 * (1 + std::cos(pi * f));
  }
  double warm = cfg_.warmup_epochs * static_cast<double>(spe_);
  if (t < warm) return peak_ * (t + 1) / warm;
  if (cfg_.kind == "constant") return peak_;
  if (cfg_.kind == "step") {
    double epoch = t / static_cast<double>(spe_);
    double lr = peak_;
    for (double m : cfg_.milestones)
      if (epoch >= m) lr *= cfg_.gamma;
    return lr;
  }
  double f = std::min(1.0, (t - warm) / std::max(1.0, total - warm));  // cosine
  return lo + (peak_ - lo) * 0.5 * (1 + std::cos(pi * f));
}

}  // namespace pconv
