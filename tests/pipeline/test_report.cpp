// The run report: scripts/report.py on a synthetic run folder (report.md references only PNG
// files that exist and are PNGs; the summary holds the known figures; optional inputs are
// tolerated), and write_report (TensorBoard events, inspect.json from model.h5, the script, and
// the warnings when a part cannot be made). Tests that need python3 with matplotlib skip without.
#include "pipeline/report.h"

#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <regex>
#include <set>
#include <sstream>

#include "admm/config.h"
#include "admm/prune.h"
#include "core/architectures.h"
#include "core/model_file.h"
#include "test_report_fixture.h"

namespace fs = std::filesystem;
using namespace pconv;
namespace fx = pconv::report_test;

namespace {

std::string read_file(const fs::path& p) {
  std::ifstream f(p, std::ios::binary);
  std::stringstream ss;
  ss << f.rdbuf();
  return ss.str();
}

bool is_png(const fs::path& p) {
  const std::string s = read_file(p);
  return s.size() > 8 && s.compare(0, 8, "\x89PNG\r\n\x1a\n") == 0;
}

// Image references ![..](path) of a markdown file, each checked to be an existing PNG; returns
// the file names.
std::set<std::string> checked_images(const fs::path& run) {
  const std::string md = read_file(run / "report.md");
  std::set<std::string> names;
  const std::regex img(R"(!\[[^\]]*\]\(([^)]+)\))");
  for (auto it = std::sregex_iterator(md.begin(), md.end(), img); it != std::sregex_iterator();
       ++it) {
    const fs::path p = run / (*it)[1].str();
    EXPECT_TRUE(fs::exists(p)) << p;
    EXPECT_TRUE(is_png(p)) << p << " is not a PNG";
    names.insert(p.filename().string());
  }
  return names;
}

std::string python_or_skip() {
  return find_python_with_matplotlib();
}

int run_script(const std::string& python, const std::string& run, const std::string& extra = "") {
  const std::string cmd = "'" + python + "' '" + default_report_script() + "' '" + run +
                          "' --quiet " + extra + " >'" + run + "/../script.log' 2>&1";
  return std::system(cmd.c_str());
}

}  // namespace

TEST(ReportScript, ChartsAndSummaryOfAFullRun) {
  const std::string py = python_or_skip();
  if (py.empty()) GTEST_SKIP() << "no python3 with matplotlib";
  const fs::path run = fs::path(fx::scratch_dir("full")) / "run";
  fx::write_synthetic_run(run.string());
  ASSERT_EQ(run_script(py, run.string()), 0) << read_file(run / "../script.log");
  EXPECT_EQ(checked_images(run),
            (std::set<std::string>{"loss.png", "accuracy.png", "lr.png", "admm_residual.png",
                                   "kernels.png", "patterns.png", "latency.png"}));
  const std::string md = read_file(run / "report.md");
  EXPECT_NE(md.find("| dense accuracy (end of pretrain) | 80.00% |"), std::string::npos) << md;
  EXPECT_NE(md.find("| after ADMM | 72.00% |"), std::string::npos);
  EXPECT_NE(md.find("| after hard prune | 61.00% |"), std::string::npos);
  EXPECT_NE(md.find("| final accuracy (last stage) | 78.00% |"), std::string::npos);
  EXPECT_NE(md.find("-2.00 points"), std::string::npos);
  EXPECT_NE(md.find("| conv weight compression | 6.12x"), std::string::npos);
  EXPECT_NE(md.find("| MAC reduction (whole model) | 2.45x"), std::string::npos);
  EXPECT_NE(md.find("| constraints | verified |"), std::string::npos);
  // Latency: sums 0.45 ms generated vs 1.2 ms oneDNN; conv2 0.15 vs 0.4.
  EXPECT_NE(md.find("0.450 ms generated vs 1.200 ms oneDNN best (2.67x)"), std::string::npos);
  EXPECT_NE(md.find("| conv2 | 0.1500 | 0.4000 | 2.67x |"), std::string::npos);
  EXPECT_NE(md.find("| conv3 | 16x16x3x3 | 64/256 | 4.00x | 256/2304 | 0:20 1:14 2:16 3:14 |"),
            std::string::npos);
  // ADMM residual summary: max 0.8 at epoch 1, 0.8/27 at the end.
  EXPECT_NE(md.find("0.0296 at the end"), std::string::npos);
  // The stage table lists the stages in run order.
  const size_t a = md.find("| 1-pretrain |"), b = md.find("| 2-admm |"), c = md.find("| 3-prune |"),
               d = md.find("| 4-retrain |");
  ASSERT_NE(d, std::string::npos);
  EXPECT_TRUE(a < b && b < c && c < d);
}

TEST(ReportScript, ToleratesMissingInspectBenchAndSummary) {
  const std::string py = python_or_skip();
  if (py.empty()) GTEST_SKIP() << "no python3 with matplotlib";
  const fs::path run = fs::path(fx::scratch_dir("bare")) / "run";
  fx::write_synthetic_run(run.string(), /*with_inspect=*/false, /*with_bench=*/false);
  fs::remove(run / "summary.json");
  ASSERT_EQ(run_script(py, run.string(), "--no-inspect"), 0) << read_file(run / "../script.log");
  EXPECT_EQ(checked_images(run),
            (std::set<std::string>{"loss.png", "accuracy.png", "lr.png", "admm_residual.png"}));
  const std::string md = read_file(run / "report.md");
  EXPECT_NE(md.find("| final accuracy (last stage) | 78.00% |"), std::string::npos) << md;
  EXPECT_EQ(md.find("compression"), std::string::npos);
  EXPECT_EQ(md.find("## Latency"), std::string::npos);
}

TEST(ReportScript, ReadsTheMinimalBenchForm) {
  const std::string py = python_or_skip();
  if (py.empty()) GTEST_SKIP() << "no python3 with matplotlib";
  const fs::path run = fs::path(fx::scratch_dir("minbench")) / "run";
  fx::write_synthetic_run(run.string(), true, false);
  fx::write_text(run / "bench.json", R"({"layers": [
      {"name": "conv2", "generated_ms": 0.5, "onednn_best_ms": 1.0},
      {"name": "conv3", "generated_ms": null, "onednn_best_ms": 1.0},
      {"name": "conv4", "generated_ms": 0.25, "onednn_best_ms": 1.0}]})");
  ASSERT_EQ(run_script(py, run.string()), 0) << read_file(run / "../script.log");
  EXPECT_EQ(checked_images(run).count("latency.png"), 1u);
  const std::string md = read_file(run / "report.md");
  EXPECT_NE(md.find("| conv2 | 0.5000 | 1.0000 | 2.00x |"), std::string::npos) << md;
  EXPECT_NE(md.find("| conv4 | 0.2500 | 1.0000 | 4.00x |"), std::string::npos);
  EXPECT_EQ(md.find("| conv3 | "), md.find("| conv3 | 16x16x3x3"));  // only in the pruning table
}

TEST(ReportScript, DenseOnlyRunInProgress) {
  const std::string py = python_or_skip();
  if (py.empty()) GTEST_SKIP() << "no python3 with matplotlib";
  const fs::path run = fs::path(fx::scratch_dir("dense")) / "run";
  fx::write_jsonl(run / "1-pretrain" / "metrics.jsonl",
                  nlohmann::json::array({fx::synthetic_record("pretrain", 1, 0.3)}));
  ASSERT_EQ(run_script(py, run.string()), 0) << read_file(run / "../script.log");
  EXPECT_EQ(checked_images(run), (std::set<std::string>{"loss.png", "accuracy.png", "lr.png"}));
  const std::string md = read_file(run / "report.md");
  EXPECT_NE(md.find("| dense accuracy (end of pretrain) | 30.00% |"), std::string::npos) << md;
  EXPECT_EQ(md.find("after ADMM"), std::string::npos);  // no ADMM stage, no row
}

TEST(WriteReport, EventsInspectAndChartsFromAModelFile) {
  const fs::path run = fs::path(fx::scratch_dir("model")) / "run";
  fx::write_synthetic_run(run.string(), /*with_inspect=*/false, /*with_bench=*/false);
  ModelFile m;  // quicknet, hard-pruned as the prune stage does (4 SCPs, connectivity 2)
  m.graph = build_architecture("quicknet", ArchOptions());
  m.params = init_params(m.graph, 1);
  admm::PruningConfig pc;
  pc.rate = 2.0;
  m.pruning = admm::hard_prune(m.graph, m.params, admm::make_plan(pc, m.graph, m.params));
  save_model((run / "model.h5").string(), m);

  const ReportResult r = write_report(run.string());
  EXPECT_EQ(fs::path(r.events_path).parent_path(), run / "tb");
  EXPECT_TRUE(fs::exists(r.events_path));
  ASSERT_EQ(r.inspect_json, (run / "inspect.json").string());
  std::ifstream f(r.inspect_json);
  const nlohmann::json insp = nlohmann::json::parse(f);
  EXPECT_TRUE(insp.at("verified").get<bool>());
  EXPECT_EQ(insp.at("granularity"), "pattern");
  int pruned = 0;
  for (const nlohmann::json& l : insp.at("layers")) {
    if (!l.at("pruned").get<bool>()) continue;
    ++pruned;
    EXPECT_TRUE(is_png(run / "report" / "patterns" / (l.at("name").get<std::string>() + ".png")))
        << l.at("name");
  }
  EXPECT_GT(pruned, 0);
  for (const nlohmann::json& l : insp.at("layers")) {  // conn_rate 2: ceil(O·I / 2) kept
    if (l.at("pruned").get<bool>()) {
      EXPECT_EQ(l.at("kernels_kept").get<int64_t>(),
                (l.at("kernels_total").get<int64_t>() + 1) / 2);
    }
  }
  EXPECT_GT(insp.at("totals").at("conv_compression").get<double>(), 2.0);
  if (find_python_with_matplotlib().empty()) {
    EXPECT_TRUE(r.report_md.empty());
    ASSERT_EQ(r.warnings.size(), 1u);
    EXPECT_NE(r.warnings[0].find("matplotlib"), std::string::npos);
    return;
  }
  EXPECT_TRUE(r.warnings.empty()) << r.warnings.at(0);
  ASSERT_EQ(r.report_md, (run / "report.md").string());
  const std::set<std::string> imgs = checked_images(run);
  EXPECT_EQ(imgs.count("kernels.png"), 1u);
  EXPECT_EQ(imgs.count("patterns.png"), 1u);
  const std::string md = read_file(run / "report.md");
  EXPECT_NE(md.find("](report/patterns/"), std::string::npos) << md;

  // A second call keeps the fresh inspect.json and replaces the event file.
  const auto t = fs::last_write_time(run / "inspect.json");
  const ReportResult again = write_report(run.string());
  EXPECT_EQ(fs::last_write_time(run / "inspect.json"), t);
  EXPECT_NE(again.events_path, r.events_path);
  EXPECT_FALSE(fs::exists(r.events_path));
  EXPECT_TRUE(fs::exists(again.events_path));
}

TEST(WriteReport, WarnsInsteadOfThrowing) {
  const ReportResult none = write_report("/nonexistent/pconv/run");
  ASSERT_EQ(none.warnings.size(), 1u);
  EXPECT_NE(none.warnings[0].find("not a folder"), std::string::npos);
  EXPECT_TRUE(none.events_path.empty());

  const fs::path run = fs::path(fx::scratch_dir("warn")) / "run";
  fx::write_synthetic_run(run.string(), /*with_inspect=*/false, /*with_bench=*/false);
  fx::write_text(run / "model.h5", "not an HDF5 file");
  ReportOptions o;
  o.script = (run / "missing.py").string();
  const ReportResult r = write_report(run.string(), o);
  EXPECT_TRUE(fs::exists(r.events_path));  // the events do not depend on the other parts
  EXPECT_TRUE(r.report_md.empty());
  ASSERT_EQ(r.warnings.size(), 2u);
  EXPECT_NE(r.warnings[0].find("inspect.json not written"), std::string::npos) << r.warnings[0];
  EXPECT_NE(r.warnings[1].find("missing.py not found"), std::string::npos) << r.warnings[1];

  fs::remove_all(run / "1-pretrain");
  fs::remove_all(run / "2-admm");
  fs::remove_all(run / "3-prune");
  fs::remove_all(run / "4-retrain");
  ReportOptions only_tb;
  only_tb.inspect = only_tb.charts = false;
  const ReportResult e = write_report(run.string(), only_tb);
  ASSERT_EQ(e.warnings.size(), 1u);
  EXPECT_NE(e.warnings[0].find("no stage folder"), std::string::npos) << e.warnings[0];
}

// Without inspect.json, report.py runs pconv-inspect on model.h5 (when this build has it).
TEST(ReportScript, RunsPconvInspectWhenNoInspectJson) {
  const std::string py = python_or_skip();
  if (py.empty()) GTEST_SKIP() << "no python3 with matplotlib";
  const std::string exe = std::string(PCONV_BINARY_DIR) + "/bin/pconv-inspect";
  if (!fs::exists(exe)) GTEST_SKIP() << exe << " is not built";
  const fs::path run = fs::path(fx::scratch_dir("inspect-bin")) / "run";
  fx::write_synthetic_run(run.string(), /*with_inspect=*/false, /*with_bench=*/false);
  ModelFile m;
  m.graph = build_architecture("quicknet", ArchOptions());
  m.params = init_params(m.graph, 2);
  admm::PruningConfig pc;
  pc.rate = 3.0;
  m.pruning = admm::hard_prune(m.graph, m.params, admm::make_plan(pc, m.graph, m.params));
  save_model((run / "model.h5").string(), m);
  ASSERT_EQ(run_script(py, run.string(), "--inspect-bin '" + exe + "'"), 0)
      << read_file(run / "../script.log");
  ASSERT_TRUE(fs::exists(run / "inspect.json"));
  const std::set<std::string> imgs = checked_images(run);
  EXPECT_EQ(imgs.count("kernels.png"), 1u);
  EXPECT_EQ(imgs.count("patterns.png"), 1u);
  EXPECT_NE(read_file(run / "report.md").find("| constraints | verified |"), std::string::npos);
}
