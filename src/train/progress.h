// A one-line progress display: a bar on a terminal, a line every few seconds in a log file.
#pragma once

#include <string>

namespace pconv {

class Progress {
 public:
  Progress(std::string label, int64_t total, double log_interval_s = 10.0);
  // `done` units of `total`, `items` processed since construction (for the rate), a status text.
  void update(int64_t done, int64_t items, const std::string& status);
  void finish(const std::string& status);

 private:
  void draw(int64_t done, int64_t items, const std::string& status, bool final);
  std::string label_;
  int64_t total_;
  double start_, last_draw_ = -1e9, interval_;
  bool tty_;
};

std::string format_duration(double seconds);  // "1h02m", "4m05s", "12s"

}  // namespace pconv
