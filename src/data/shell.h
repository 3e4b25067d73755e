// The few external programs the data module runs (tar, sha256sum, curl/wget), quoted safely.
#pragma once

#include <string>

namespace pconv::data {

std::string shell_quote(const std::string& s);  // 'a b' -> "'a b'"
int run_shell(const std::string& command);      // exit status; -1 when it could not run
bool have_program(const std::string& name);     // on PATH
// Lowercase hex digest by `tool` ("sha256sum", "md5sum"); throws naming the file.
std::string file_digest(const std::string& path, const std::string& tool = "sha256sum");

}  // namespace pconv::data
