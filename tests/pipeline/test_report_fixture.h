// A synthetic run folder for the report and TensorBoard tests: the files pconv-train and
// pconv-inspect write (docs/user-guide.md, docs/pruning.md), with known values.
//   1-pretrain  epochs 1..3          global steps 1..3
//   2-admm      epochs 1..3 (admm)   global steps 4..6, layers conv2 and conv3
//   3-prune     epoch 0              global step 7
//   4-retrain   epochs 1..2          global steps 8..9
#pragma once

#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <string>

namespace pconv::report_test {

// <tmp>/pconv-report-<pid>/<name>, emptied; the <pid> folder is removed when the test exits.
inline std::string scratch_dir(const std::string& name) {
  struct Root {
    std::filesystem::path path =
        std::filesystem::temp_directory_path() / ("pconv-report-" + std::to_string(getpid()));
    ~Root() {
      std::error_code ec;
      std::filesystem::remove_all(path, ec);
    }
  };
  static const Root root;
  const std::filesystem::path p = root.path / name;
  std::filesystem::remove_all(p);
  std::filesystem::create_directories(p);
  return p.string();
}

inline void write_text(const std::filesystem::path& p, const std::string& s) {
  std::filesystem::create_directories(p.parent_path());
  std::ofstream f(p);
  f << s;
}

inline void write_jsonl(const std::filesystem::path& p, const nlohmann::json& records) {
  std::string s;
  for (const nlohmann::json& r : records) s += r.dump() + "\n";
  write_text(p, s);
}

// ADMM residual of layer `k` (0 conv2, 1 conv3) at ADMM epoch e (1..3): falls geometrically.
inline double synthetic_residual(int k, int e) {
  return (k == 0 ? 0.8 : 0.5) / (e * e * e);
}

inline nlohmann::json synthetic_record(const std::string& stage, int epoch, double top1) {
  return {{"stage", stage},
          {"epoch", epoch},
          {"lr", 0.1 / epoch},
          {"train_loss", 2.0 / epoch},
          {"train_top1", top1 - 0.05},
          {"test_loss", 2.2 / epoch},
          {"test_top1", top1},
          {"test_top5", top1 + 0.1},
          {"train_seconds", 10.0},
          {"eval_seconds", 1.0},
          {"images_per_s", 500.0}};
}

inline void write_synthetic_run(const std::string& dir, bool with_inspect = true,
                                bool with_bench = true) {
  namespace fs = std::filesystem;
  using nlohmann::json;
  const fs::path d(dir);
  write_text(d / "config.json", R"({"name": "synthetic"})");
  json pre = json::array(), adm = json::array(), ret = json::array();
  for (int e = 1; e <= 3; ++e) pre.push_back(synthetic_record("pretrain", e, 0.5 + 0.1 * e));
  for (int e = 1; e <= 3; ++e) {
    json r = synthetic_record("admm", e, 0.75 - 0.01 * e);
    r["penalty"] = 0.3 / e;
    json layers = json::object();
    double mx = 0;
    for (int k = 0; k < 2; ++k) {
      layers[k == 0 ? "conv2" : "conv3"] = {{"residual", synthetic_residual(k, e)},
                                            {"changed", 0.1 / e}};
      mx = std::max(mx, synthetic_residual(k, e));
    }
    r["admm"] = {{"rho", 1e-3 * e}, {"residual_max", mx}, {"z_updates", e}, {"layers", layers}};
    adm.push_back(r);
  }
  for (int e = 1; e <= 2; ++e) ret.push_back(synthetic_record("retrain", e, 0.74 + 0.02 * e));
  write_jsonl(d / "1-pretrain" / "metrics.jsonl", pre);
  write_jsonl(d / "2-admm" / "metrics.jsonl", adm);
  write_jsonl(d / "3-prune" / "metrics.jsonl", json::array({{{"stage", "prune"},
                                                             {"epoch", 0},
                                                             {"test_top1", 0.61},
                                                             {"test_top5", 0.9},
                                                             {"test_loss", 1.3}}}));
  write_jsonl(d / "4-retrain" / "metrics.jsonl", ret);
  json stages = json::array();
  auto stage = [](const std::string& name, const std::string& kind, int epochs, double top1) {
    return json{{"name", name},
                {"stage", kind},
                {"epochs", epochs},
                {"test_top1", top1},
                {"test_top5", top1 + 0.1},
                {"train_seconds", 11.0 * epochs},
                {"wall_seconds", 12.0 * epochs}};
  };
  stages.push_back(stage("1-pretrain", "pretrain", 3, 0.8));
  stages.push_back(stage("2-admm", "admm", 3, 0.72));
  stages.push_back(stage("3-prune", "prune", 0, 0.61));
  stages.push_back(stage("4-retrain", "retrain", 2, 0.78));
  write_text(d / "summary.json", json{{"run", "synthetic"},
                                      {"stages", stages},
                                      {"commit", "abc1234"},
                                      {"model", (d / "model.h5").string()}}
                                     .dump(2));
  if (with_inspect) {
    // conv1 dense (excluded first conv), conv2 16x8 and conv3 16x16 with 4 SCPs at rate 4.
    json layers = json::array({{{"name", "conv1"},
                                {"pruned", false},
                                {"shape", {8, 3, 3, 3}},
                                {"kernels_total", 24},
                                {"kernels_kept", 24},
                                {"connectivity_rate", 1.0},
                                {"pattern_hist", json::array()},
                                {"weights_total", 216},
                                {"weights_kept", 216},
                                {"nonzero", 216},
                                {"macs_total", 221184},
                                {"macs_kept", 221184}},
                               {{"name", "conv2"},
                                {"pruned", true},
                                {"shape", {16, 8, 3, 3}},
                                {"kernels_total", 128},
                                {"kernels_kept", 32},
                                {"connectivity_rate", 4.0},
                                {"pattern_hist", {10, 8, 9, 5}},
                                {"weights_total", 1152},
                                {"weights_kept", 128},
                                {"nonzero", 128},
                                {"macs_total", 294912},
                                {"macs_kept", 32768}},
                               {{"name", "conv3"},
                                {"pruned", true},
                                {"shape", {16, 16, 3, 3}},
                                {"kernels_total", 256},
                                {"kernels_kept", 64},
                                {"connectivity_rate", 4.0},
                                {"pattern_hist", {20, 14, 16, 14}},
                                {"weights_total", 2304},
                                {"weights_kept", 256},
                                {"nonzero", 256},
                                {"macs_total", 147456},
                                {"macs_kept", 16384}}});
    write_text(d / "inspect.json",
               json{{"granularity", "pattern"},
                    {"library", {{1, 3, 4, 5}, {1, 3, 4, 7}, {3, 4, 5, 7}, {1, 4, 5, 7}}},
                    {"layers", layers},
                    {"totals",
                     {{"conv_weights_total", 3672},
                      {"conv_weights_kept", 600},
                      {"conv_compression", 6.12},
                      {"macs_total", 663552},
                      {"macs_kept", 270336},
                      {"mac_reduction", 2.4545}}},
                    {"verified", true},
                    {"violations", json::array()}}
                   .dump(2));
  }
  if (with_bench) {
    // pconv-bench's schema (docs/reports.md): runs[].layers[] with generated.median_ms and
    // onednn_best_ms.
    json layers = json::array();
    int i = 0;
    for (const char* n : {"conv1", "conv2", "conv3"}) {
      layers.push_back({{"name", n},
                        {"type", "conv"},
                        {"generated", {{"median_ms", 0.1 + 0.05 * i}}},
                        {"onednn_best_ms", 0.3 + 0.1 * i}});
      ++i;
    }
    write_text(d / "bench.json", json{{"model", "synthetic"},
                                      {"runs", json::array({{{"threads", 1}, {"layers", layers}}})}}
                                     .dump(2));
  }
}

}  // namespace pconv::report_test
