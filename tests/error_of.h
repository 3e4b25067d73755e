// Test helper: the message of the pconv::Error that `f` throws, or "" when it throws none, so a
// test can assert that an error names its place (file, JSON path, layer).
#pragma once

#include <functional>
#include <string>

#include "core/error.h"

namespace pconv {

inline std::string error_of(const std::function<void()>& f) {
  try {
    f();
  } catch (const Error& e) {
    return e.what();
  }
  return "";
}

}  // namespace pconv
