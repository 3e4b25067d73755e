#include "core/log.h"

#include <chrono>
#include <cstdio>
#include <mutex>

namespace pconv {
namespace {
LogLevel g_level = LogLevel::Info;
std::mutex g_mu;
const auto g_start = std::chrono::steady_clock::now();
}  // namespace

void set_log_level(LogLevel l) {
  g_level = l;
}

double wall_seconds() {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - g_start).count();
}

void log_line(LogLevel l, const std::string& msg) {
  if (static_cast<int>(l) < static_cast<int>(g_level)) return;
  static const char* tags[] = {"debug", "info", "warn", "error"};
  std::lock_guard<std::mutex> lock(g_mu);
  std::fprintf(stderr, "[%8.1fs %s] %s\n", wall_seconds(), tags[static_cast<int>(l)], msg.c_str());
  std::fflush(stderr);
}

}  // namespace pconv
