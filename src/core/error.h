// Errors that reach a user name the problem and its place (a file, a JSON path, a layer).
#pragma once

#include <sstream>
#include <stdexcept>
#include <string>

namespace pconv {

class Error : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

// Builds a message from streamable parts: throw Error(cat("layer ", name, ": bad shape"));
template <typename... Args>
std::string cat(const Args&... args) {
  std::ostringstream os;
  (os << ... << args);
  return os.str();
}

#define PCONV_CHECK(cond, ...)                                    \
  do {                                                            \
    if (!(cond)) throw ::pconv::Error(::pconv::cat(__VA_ARGS__)); \
  } while (0)

}  // namespace pconv
