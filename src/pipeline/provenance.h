// Where a result came from: the command line and the source commit, recorded in every model
// file and results JSON so a figure can be reproduced.
#pragma once

#include <string>

namespace pconv {

// The commit this binary was built from (core/build_commit.h): short hash, "-dirty" or "unknown".
std::string git_commit();
std::string command_line(int argc, char** argv);
void set_command_line(const std::string& cmd);  // recorded once by main()
const std::string& recorded_command_line();

}  // namespace pconv
