// Option parsing shared by the pconv-* commands, so every one answers --help the same way and a
// bad number names its option ("--repeat: expected an integer >= 1, got 'x'") instead of "stoi".
#pragma once

#include <cerrno>
#include <climits>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <vector>

#include "core/error.h"

namespace pconv::cli {

class Args {
 public:
  // usage: the full help text, printed for -h/--help (exit 0) and when a required part is missing.
  Args(int argc, char** argv, const char* usage) : argc_(argc), argv_(argv), usage_(usage) {}

  // Moves to the next argument; false past the last. Handles -h/--help itself.
  bool next() {
    if (++i_ >= argc_) return false;
    cur_ = argv_[i_];
    if (cur_ == "-h" || cur_ == "--help") {
      std::fputs(usage_, stdout);
      std::exit(0);
    }
    return true;
  }
  const std::string& arg() const { return cur_; }
  bool is(const char* name) const { return cur_ == name; }
  bool is_option() const { return cur_.size() > 1 && cur_[0] == '-'; }

  // The value of the current option (the next argument).
  std::string value() {
    PCONV_CHECK(i_ + 1 < argc_, cur_, " needs a value (see --help)");
    return argv_[++i_];
  }
  int int_value(long lo = INT_MIN, long hi = INT_MAX) {
    const std::string opt = cur_, v = value();
    char* end = nullptr;
    errno = 0;
    const long x = std::strtol(v.c_str(), &end, 10);
    PCONV_CHECK(!v.empty() && *end == '\0' && errno == 0 && x >= lo && x <= hi, opt,
                ": expected an integer", range(lo, hi), ", got '", v, "'");
    return static_cast<int>(x);
  }
  unsigned long long u64_value() {
    const std::string opt = cur_, v = value();
    char* end = nullptr;
    errno = 0;
    const unsigned long long x = std::strtoull(v.c_str(), &end, 10);
    PCONV_CHECK(!v.empty() && v[0] != '-' && *end == '\0' && errno == 0, opt,
                ": expected a non-negative integer, got '", v, "'");
    return x;
  }
  double double_value(double lo, double hi) {
    const std::string opt = cur_, v = value();
    char* end = nullptr;
    const double x = std::strtod(v.c_str(), &end);
    PCONV_CHECK(!v.empty() && *end == '\0' && x >= lo && x <= hi, opt, ": expected a number in [",
                lo, ", ", hi, "], got '", v, "'");
    return x;
  }
  // "a,b,c": exactly n numbers.
  std::vector<double> doubles_value(size_t n) {
    const std::string opt = cur_, v = value();
    std::vector<double> out;
    const char* p = v.c_str();
    for (;;) {
      char* end = nullptr;
      out.push_back(std::strtod(p, &end));
      PCONV_CHECK(end != p, opt, ": expected ", n, " numbers separated by commas, got '", v, "'");
      if (*end == '\0') break;
      PCONV_CHECK(*end == ',', opt, ": expected ", n, " numbers separated by commas, got '", v,
                  "'");
      p = end + 1;
    }
    PCONV_CHECK(out.size() == n, opt, ": expected ", n, " numbers separated by commas, got '", v,
                "'");
    return out;
  }
  [[noreturn]] void unknown() const {
    if (is_option()) throw Error(cat("unknown option ", cur_, " (see --help)"));
    throw Error(cat("unexpected argument '", cur_, "' (see --help)"));
  }
  // For a required part that is missing: prints the usage to stderr and says what is missing.
  [[noreturn]] void missing(const char* what) const {
    std::fputs(usage_, stderr);
    throw Error(cat("missing ", what));
  }

 private:
  static std::string range(long lo, long hi) {
    if (lo != INT_MIN && hi != INT_MAX) return cat(" in [", lo, ", ", hi, "]");
    if (lo != INT_MIN) return cat(" >= ", lo);
    return hi != INT_MAX ? cat(" <= ", hi) : std::string();
  }
  int argc_;
  char** argv_;
  const char* usage_;
  int i_ = 0;
  std::string cur_;
};

}  // namespace pconv::cli
