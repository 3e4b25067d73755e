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

std::string sha256_file(const std::string& path) {
  FILE* p = ::popen(("sha256sum " + shell_quote(path) + " 2>/dev/null").c_str(), "r");
  PCONV_CHECK(p, path, ": cannot run sha256sum");
  char buf[128] = {};
  const size_t n = std::fread(buf, 1, sizeof buf - 1, p);
  const int status = ::pclose(p);
  std::string out(buf, n);
  PCONV_CHECK(status == 0 && out.size() >= 64, path, ": sha256sum failed (missing or unreadable?)");
  return out.substr(0, 64);
}

}  // namespace pconv::data
