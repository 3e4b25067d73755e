// Minimal logging to stderr with elapsed time; progress bars are drawn by the trainer.
#pragma once

#include <string>

#include "core/error.h"

namespace pconv {

enum class LogLevel { Debug, Info, Warn, Error };
void set_log_level(LogLevel l);
void log_line(LogLevel l, const std::string& msg);
double wall_seconds();  // monotonic seconds since process start

template <typename... Args>
void log_info(const Args&... a) {
  log_line(LogLevel::Info, cat(a...));
}
template <typename... Args>
void log_warn(const Args&... a) {
  log_line(LogLevel::Warn, cat(a...));
}
template <typename... Args>
void log_debug(const Args&... a) {
  log_line(LogLevel::Debug, cat(a...));
}

}  // namespace pconv
