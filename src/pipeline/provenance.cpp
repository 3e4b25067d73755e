#include "pipeline/provenance.h"

#include <cstdio>
#include <cstdlib>

namespace pconv {

namespace {
std::string g_command;
}

std::string git_commit() {
  std::string cmd =
      std::string("git -C '") + PCONV_SOURCE_DIR + "' rev-parse --short HEAD 2>/dev/null";
  FILE* p = popen(cmd.c_str(), "r");
  if (!p) return "unknown";
  char buf[64] = {0};
  std::string out = fgets(buf, sizeof buf, p) ? buf : "";
  int rc = pclose(p);
  while (!out.empty() && (out.back() == '\n' || out.back() == '\r')) out.pop_back();
  if (rc != 0 || out.empty()) return "unknown";
  // Mark a tree with uncommitted changes, so a result is never attributed to a clean commit.
  std::string dirty =
      std::string("git -C '") + PCONV_SOURCE_DIR + "' diff --quiet HEAD -- src apps 2>/dev/null";
  if (std::system(dirty.c_str()) != 0) out += "-dirty";
  return out;
}

std::string command_line(int argc, char** argv) {
  std::string s;
  for (int i = 0; i < argc; ++i) {
    if (i) s += ' ';
    std::string a = argv[i];
    bool quote = a.find_first_of(" \t\"'") != std::string::npos;
    s += quote ? "'" + a + "'" : a;
  }
  return s;
}

void set_command_line(const std::string& cmd) {
  g_command = cmd;
}
const std::string& recorded_command_line() {
  return g_command;
}

}  // namespace pconv
