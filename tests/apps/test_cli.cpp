// The option parser every pconv-* command shares, and what the built commands print for --help
// and for bad options: a user must learn what is wrong and where, never see "stoi".
#include <gtest/gtest.h>

#include <sys/wait.h>

#include <climits>
#include <cstdio>
#include <string>
#include <vector>

#include "cli.h"

namespace {

using pconv::cli::Args;

struct Argv {
  explicit Argv(std::vector<std::string> a) : s(std::move(a)) {
    for (auto& x : s) p.push_back(x.data());
  }
  int argc() { return static_cast<int>(p.size()); }
  std::vector<std::string> s;
  std::vector<char*> p;
};

std::string error_of(Args& a, int (Args::*f)(long, long), long lo, long hi) {
  try {
    (a.*f)(lo, hi);
  } catch (const pconv::Error& e) {
    return e.what();
  }
  return "";
}

TEST(CliArgs, ParsesOptionsValuesAndPositionals) {
  Argv v({"prog", "model.h5", "--repeat", "7", "--rate", "8.8", "--flag"});
  Args a(v.argc(), v.p.data(), "usage");
  ASSERT_TRUE(a.next());
  EXPECT_FALSE(a.is_option());
  EXPECT_EQ(a.arg(), "model.h5");
  ASSERT_TRUE(a.next());
  EXPECT_TRUE(a.is("--repeat"));
  EXPECT_EQ(a.int_value(1), 7);
  ASSERT_TRUE(a.next());
  EXPECT_DOUBLE_EQ(a.double_value(1.0, 100.0), 8.8);
  ASSERT_TRUE(a.next());
  EXPECT_TRUE(a.is("--flag"));
  EXPECT_FALSE(a.next());
}

TEST(CliArgs, BadNumbersNameTheOptionTheValueAndTheRange) {
  Argv v({"prog", "--repeat", "x7", "--repeat", "0", "--threads", "3", "--batch"});
  Args a(v.argc(), v.p.data(), "usage");
  ASSERT_TRUE(a.next());
  EXPECT_EQ(error_of(a, &Args::int_value, 1, INT_MAX),
            "--repeat: expected an integer >= 1, got 'x7'");
  ASSERT_TRUE(a.next());
  EXPECT_EQ(error_of(a, &Args::int_value, 1, INT_MAX),
            "--repeat: expected an integer >= 1, got '0'");
  ASSERT_TRUE(a.next());
  EXPECT_EQ(error_of(a, &Args::int_value, 1, 2),
            "--threads: expected an integer in [1, 2], got '3'");
  ASSERT_TRUE(a.next());
  EXPECT_EQ(error_of(a, &Args::int_value, 1, INT_MAX), "--batch needs a value (see --help)");
}

TEST(CliArgs, UnknownOptionSaysSo) {
  Argv v({"prog", "--frobnicate"});
  Args a(v.argc(), v.p.data(), "usage");
  ASSERT_TRUE(a.next());
  ASSERT_TRUE(a.is_option());
  try {
    a.unknown();
    FAIL() << "unknown() must throw";
  } catch (const pconv::Error& e) {
    EXPECT_STREQ(e.what(), "unknown option --frobnicate (see --help)");
  }
}

// Runs a built command; returns its exit status and fills out with stdout + stderr.
int run(const std::string& args, std::string& out) {
  const std::string cmd = std::string(PCONV_BINARY_DIR) + "/bin/" + args + " 2>&1";
  FILE* p = popen(cmd.c_str(), "r");
  if (!p) return -1;
  char buf[4096];
  out.clear();
  for (size_t n; (n = fread(buf, 1, sizeof buf, p)) > 0;) out.append(buf, n);
  const int st = pclose(p);
  return WIFEXITED(st) ? WEXITSTATUS(st) : -1;
}

const std::vector<std::string> kCommands = {"pconv-train",   "pconv-eval",  "pconv-deploy",
                                            "pconv-synth",   "pconv-bench", "pconv-bench-train",
                                            "pconv-inspect", "pconv-import"};

TEST(Commands, HelpPrintsUsageAndSucceeds) {
  for (const std::string& c : kCommands) {
    std::string out;
    EXPECT_EQ(run(c + " --help", out), 0) << c << ": " << out;
    EXPECT_NE(out.find("usage: " + c), std::string::npos) << c << ": " << out;
  }
}

TEST(Commands, UnknownOptionFailsNamingIt) {
  for (const std::string& c : kCommands) {
    std::string out;
    EXPECT_NE(run(c + " --no-such-option", out), 0) << c;
    EXPECT_NE(out.find("--no-such-option"), std::string::npos) << c << ": " << out;
  }
  std::string out;  // a stray positional where a command takes none
  EXPECT_NE(run("pconv-synth stray.h5", out), 0);
  EXPECT_NE(out.find("unexpected argument 'stray.h5'"), std::string::npos) << out;
}

TEST(Commands, BadNumberFailsNamingOptionAndValue) {
  const std::vector<std::pair<std::string, std::string>> cases = {
      {"pconv-train c.json --threads two", "--threads"},
      {"pconv-eval m.h5 --batch 0", "--batch"},
      {"pconv-synth --arch vgg16 --seed x --out m.h5", "--seed"},
      {"pconv-bench m.h5 --repeat -3", "--repeat"},
      {"pconv-bench-train --steps 0", "--steps"}};
  for (const auto& [c, opt] : cases) {
    std::string out;
    EXPECT_NE(run(c, out), 0) << c;
    EXPECT_NE(out.find(opt + ": expected"), std::string::npos) << c << ": " << out;
    EXPECT_EQ(out.find("stoi"), std::string::npos) << c << ": " << out;
  }
}

}  // namespace
