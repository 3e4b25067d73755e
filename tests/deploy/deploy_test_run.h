// Compiling generated code in the deploy tests and checking it against both oracles (pconv::Net
// and the naive reference): work folders under the build tree, analysis.json's layers, runs at
// several thread counts on NaN-filled memory.
#pragma once

#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <map>
#include <sstream>
#include <string>
#include <vector>

#include "deploy/compiler.h"
#include "deploy/verify.h"

namespace pconv::deploy {

inline std::string read_text(const std::string& path) {
  std::ifstream f(path);
  std::stringstream ss;
  ss << f.rdbuf();
  return ss.str();
}

inline std::string work_dir(const std::string& name) {
  const std::string d = std::string(PCONV_BINARY_DIR) + "/deploy-tests/" + name;
  std::filesystem::remove_all(d);
  return d;
}

// Compiles m for target into dir, quietly; min_parallel_work as in CompileOptions (negative: the
// target's default).
inline CompileResult compile_in(const ModelFile& m, const std::string& name,
                                const std::string& target, const std::string& dir,
                                int64_t min_parallel_work = -1) {
  CompileOptions opt;
  opt.target = target;
  opt.out_dir = dir;
  opt.print_table = false;
  opt.min_parallel_work = min_parallel_work;
  return compile_model(m, name, opt);
}

// Compiles m for target into work_dir(name) and returns the generated pconv_model.cpp.
inline std::string generated_source(const ModelFile& m, const std::string& name,
                                    const std::string& target) {
  const std::string dir = work_dir(name);
  compile_in(m, name, target, dir);
  return read_text(dir + "/pconv_model.cpp");
}

// analysis.json's generated layers by name.
inline std::map<std::string, nlohmann::json> layers_by_name(const CompileResult& c) {
  std::map<std::string, nlohmann::json> layer;
  for (const auto& L : c.gen.layers) layer[L["name"].get<std::string>()] = L;
  return layer;
}

// Expects every named layer of `layer` (layers_by_name) to hold each of `fields`.
inline void expect_layers(std::map<std::string, nlohmann::json> layer,
                          const std::vector<std::string>& names,
                          const std::map<std::string, nlohmann::json>& fields) {
  for (const std::string& name : names) {
    SCOPED_TRACE(name);
    for (const auto& [key, value] : fields) EXPECT_EQ(layer[name][key], value) << key;
  }
}

// min_parallel_work 0 by default: every op threaded, as these models are small enough that the
// default would run most on one thread, and the threaded loops are what can go wrong; -1 (the
// target's default) gives the mix a user gets, with the layers split by input channels.
inline void check_target(const ModelFile& m, const std::string& name, const std::string& target,
                         int samples = 2, int64_t min_parallel_work = 0) {
  const std::string dir = work_dir(name + "-" + target + (min_parallel_work ? "-default" : ""));
  const CompileResult c = compile_in(m, name, target, dir, min_parallel_work);
  const VerifyReport r = verify_generated(m, c, samples, 11);
  EXPECT_TRUE(r.ok) << name << " on " << target << ": " << r.message;
  EXPECT_EQ(r.ref_top1, r.gen_top1) << r.message;
  EXPECT_EQ(r.naive_top1, r.gen_top1) << r.message;
}

// Builds the code compiled into dir on NaN-filled memory (PCONV_POISON) and runs it at 1, 2 and 3
// threads on fresh inputs (seeds from `seed`) against both oracles.
inline void check_poisoned_thread_counts(const ModelFile& m, const CompileResult& c,
                                         const std::string& dir, uint64_t seed) {
  build_generated(dir, c.target, "-DPCONV_POISON=ON");
  for (int threads : {1, 2, 3}) {
    SCOPED_TRACE(threads);
    const std::vector<float> x = random_input(m, seed + static_cast<uint64_t>(threads));
    const VerifyReport r = compare_with_reference(m, x, run_generated(dir, c.target, x, threads));
    EXPECT_TRUE(r.ok) << r.message;
    EXPECT_EQ(r.ref_top1, r.gen_top1) << r.message;
  }
}

}  // namespace pconv::deploy
