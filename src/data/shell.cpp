#include "data/shell.h"

#include <sys/wait.h>

#include <cstdio>
#include <cstdlib>

#include "core/error.h"

namespace pconv::data {

std::string shell_quote(const std::string& s) {
  std::string q = "'";
  for (char c : s) {
    if (c == '\'') {
      q += "'\\''";
    } else {
      q += c;
    }
  }
  return q + "'";
}

int run_shell(const std::string& command) {
  const int status = std::system(command.c_str());
  if (status == -1 || !WIFEXITED(status)) return -1;
  return WEXITSTATUS(status);
}

bool have_program(const std::string& name) {
  return run_shell("command -v " + shell_quote(name) + " >/dev/null 2>&1") == 0;
}

std::string file_digest(const std::string& path, const std::string& tool) {
  FILE* p = ::popen((tool + " " + shell_quote(path) + " 2>/dev/null").c_str(), "r");
  PCONV_CHECK(p, path, ": cannot run ", tool);
  char buf[128] = {};
  const size_t n = std::fread(buf, 1, sizeof buf - 1, p);
  const int status = ::pclose(p);
  std::string out(buf, n);
  const size_t end = out.find(' ');
  PCONV_CHECK(status == 0 && end != std::string::npos && end >= 32, path, ": ", tool,
              " failed (missing or unreadable?)");
  return out.substr(0, end);
}

}  // namespace pconv::data
