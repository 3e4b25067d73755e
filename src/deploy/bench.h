// pconv-bench: the generated x86 code against oneDNN on the same layers, batch 1. Per layer the
// generated code's time comes from its per-layer timing hook (one build, -DPC_LAYER_TIMES,
// -march=native); each conv is timed in oneDNN as direct, Winograd (where oneDNN accepts it) and
// auto, each primitive created once and executed many times (median). The whole dense model runs
// through pconv::Net. All of them are timed in interleaved rounds (BenchOptions::rounds). Effective
// GFLOP/s count non-zero MACs (2 FLOP each).
#pragma once

#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "core/model_file.h"

namespace pconv::deploy {

struct BenchOptions {
  std::vector<int> threads = {1, 2};
  int repeat = 30;  // timed runs per measurement (median, min, max reported)
  // The runs are split into this many interleaved rounds (each measurement's share in every
  // round); a figure is the median of its round medians, with the min and max over all runs.
  int rounds = 5;
  std::string work_dir;  // where the generated code is written and built
  std::string target = "x86";
  std::string command;  // the command line, recorded in the results
};

// Runs the benchmark; the JSON holds every figure (schema: see docs/deploy.md, "pconv-bench").
nlohmann::json run_bench(const ModelFile& m, const std::string& name, const BenchOptions& opt);

// Renderings of run_bench's JSON: a terminal table and a markdown report.
std::string bench_table(const nlohmann::json& j);
std::string bench_markdown(const nlohmann::json& j);

}  // namespace pconv::deploy
