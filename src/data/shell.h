// The few external programs the data module runs (tar, sha256sum, curl/wget), quoted safely.
#pragma once

#include <string>

namespace pconv::data {

std::string shell_quote(const std::string& s);     // 'a b' -> "'a b'"
int run_shell(const std::string& command);         // exit status; -1 when it could not run
bool have_program(const std::string& name);        // on PATH
std::string sha256_file(const std::string& path);  // lowercase hex; throws naming the file

}  // namespace pconv::data
