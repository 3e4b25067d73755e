#include "train/progress.h"

#include <unistd.h>

#include <cstdio>

#include "core/log.h"

namespace pconv {

std::string format_duration(double s) {
  char buf[32];
  int t = static_cast<int>(s + 0.5);
  if (t >= 3600)
    std::snprintf(buf, sizeof buf, "%dh%02dm", t / 3600, (t / 60) % 60);
  else if (t >= 60)
    std::snprintf(buf, sizeof buf, "%dm%02ds", t / 60, t % 60);
  else
    std::snprintf(buf, sizeof buf, "%ds", t);
  return buf;
}

Progress::Progress(std::string label, int64_t total, double log_interval_s)
    : label_(std::move(label)),
      total_(total),
      start_(wall_seconds()),
      interval_(log_interval_s),
      tty_(isatty(STDERR_FILENO) != 0) {}

void Progress::update(int64_t done, int64_t items, const std::string& status) {
  double now = wall_seconds();
  if (now - last_draw_ < (tty_ ? 0.25 : interval_)) return;
  last_draw_ = now;
  draw(done, items, status, false);
}

void Progress::finish(const std::string& status) {
  draw(total_, 0, status, true);
}

void Progress::draw(int64_t done, int64_t items, const std::string& status, bool final) {
  double el = wall_seconds() - start_;
  double frac = total_ > 0 ? static_cast<double>(done) / static_cast<double>(total_) : 1.0;
  double eta = frac > 0 ? el * (1 - frac) / frac : 0;
  char head[160];
  if (final) {
    std::snprintf(head, sizeof head, "%s done in %s", label_.c_str(), format_duration(el).c_str());
  } else {
    double rate = el > 0 ? static_cast<double>(items) / el : 0;
    std::snprintf(head, sizeof head, "%s %lld/%lld %5.0f img/s ETA %s", label_.c_str(),
                  static_cast<long long>(done), static_cast<long long>(total_), rate,
                  format_duration(eta).c_str());
  }
  if (tty_) {
    const int width = 20;
    int fill = static_cast<int>(frac * width);
    std::string bar = "[" + std::string(static_cast<size_t>(fill), '#') +
                      std::string(static_cast<size_t>(width - fill), '.') + "]";
    std::fprintf(stderr, "\r\033[K%s %s %s%s", bar.c_str(), head, status.c_str(),
                 final ? "\n" : "");
    std::fflush(stderr);
  } else {
    log_info(head, " ", status);
  }
}

}  // namespace pconv
