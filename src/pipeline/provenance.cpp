#include "pipeline/provenance.h"

#include "core/build_commit.h"

namespace pconv {

namespace {
std::string g_command;
}

std::string git_commit() {
  return build_commit();
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
