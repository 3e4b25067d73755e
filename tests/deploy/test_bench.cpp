// pconv-bench's measurement on a small model: every conv and linear gets the generated code's
// time and oneDNN's, from interleaved rounds, and the ratios are the times' ratios. (What the
// figures are on real models is for scripts/bench_deploy.sh, not for a test.)
#include <gtest/gtest.h>

#include <filesystem>

#include "deploy/bench.h"
#include "deploy_test_models.h"

using namespace pconv;
using namespace pconv::deploy;

TEST(DeployBench, TimesEveryLayerBothWaysInInterleavedRounds) {
  const ModelFile m = wide_residual_model(5);
  BenchOptions o;
  o.threads = {1};
  o.repeat = 5;
  o.rounds = 2;
  o.work_dir = std::string(PCONV_BINARY_DIR) + "/deploy-tests/bench";
  std::filesystem::remove_all(o.work_dir);
  const nlohmann::json j = run_bench(m, "wide", o);
  EXPECT_EQ(j["rounds"], 2);
  EXPECT_EQ(j["repeat"], 5);
  ASSERT_EQ(j["runs"].size(), 1u);
  const nlohmann::json& run = j["runs"][0];
  EXPECT_EQ(run["threads"], 1);
  int convs = 0, linears = 0;
  double gen_sum = 0, best_sum = 0;
  for (const auto& L : run["layers"]) {
    SCOPED_TRACE(L["name"].get<std::string>());
    if (L["type"] == "conv") {
      ++convs;
      const double gen = L["generated"]["median_ms"], best = L["onednn_best_ms"];
      EXPECT_GT(gen, 0.0);
      EXPECT_LE(L["generated"]["min_ms"].get<double>(), gen);
      EXPECT_GE(L["generated"]["max_ms"].get<double>(), gen);
      for (const char* alg : {"onednn_direct", "onednn_auto"})
        EXPECT_GT(L[alg]["median_ms"].get<double>(), 0.0) << alg;
      EXPECT_LE(best, L["onednn_direct"]["median_ms"].get<double>());
      EXPECT_NEAR(L["speedup_vs_best"].get<double>(), best / gen, 1e-9);
      gen_sum += gen, best_sum += best;
    } else if (L["type"] == "linear") {
      ++linears;
      EXPECT_GT(L["onednn"]["median_ms"].get<double>(), 0.0);
    }
  }
  EXPECT_EQ(convs, 4);
  EXPECT_EQ(linears, 1);
  EXPECT_NEAR(run["conv"]["generated_ms"].get<double>(), gen_sum, 1e-9);
  EXPECT_NEAR(run["conv"]["onednn_best_ms"].get<double>(), best_sum, 1e-9);
  EXPECT_GT(run["total"]["dense_model_net"]["median_ms"].get<double>(), 0.0);
  EXPECT_GT(run["total"]["generated_e2e"]["median_ms"].get<double>(), 0.0);
}
