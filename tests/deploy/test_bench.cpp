// pconv-bench's measurement on a small model: every conv and linear gets the generated code's
// time (in the model and alone, run back to back as oneDNN's primitives are) and oneDNN's, from
// interleaved rounds, and the ratios are the times' ratios. (What the
// figures are on real models is for scripts/bench_deploy.sh, not for a test.)
#include <gtest/gtest.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <sstream>

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
  double gen_sum = 0, best_sum = 0, alone_sum = 0;
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
      const double alone = L["generated_alone"]["median_ms"];
      EXPECT_GT(alone, 0.0);
      EXPECT_LE(L["generated_alone"]["min_ms"].get<double>(), alone);
      EXPECT_NEAR(L["speedup_vs_best_alone"].get<double>(), best / alone, 1e-9);
      gen_sum += gen, best_sum += best, alone_sum += alone;
    } else if (L["type"] == "linear") {
      ++linears;
      EXPECT_GT(L["onednn"]["median_ms"].get<double>(), 0.0);
    }
  }
  EXPECT_EQ(convs, 4);
  EXPECT_EQ(linears, 1);
  EXPECT_NEAR(run["conv"]["generated_ms"].get<double>(), gen_sum, 1e-9);
  EXPECT_NEAR(run["conv"]["onednn_best_ms"].get<double>(), best_sum, 1e-9);
  EXPECT_NEAR(run["conv"]["generated_alone_ms"].get<double>(), alone_sum, 1e-9);
  EXPECT_NEAR(run["conv"]["speedup_vs_best_alone"].get<double>(), best_sum / alone_sum, 1e-9);
  EXPECT_GT(run["total"]["dense_model_net"]["median_ms"].get<double>(), 0.0);
  EXPECT_GT(run["total"]["generated_e2e"]["median_ms"].get<double>(), 0.0);

  // The runner it built: running each layer 3 times back to back leaves the logits bit for bit
  // as they were, and times every layer alone too.
  const std::string runner = runner_command(
      o.work_dir, "--input " + o.work_dir + "/verify_input.f32 --threads 1 --layer-times");
  auto run_to = [&](const std::string& args, const std::string& name) {
    const std::string out = o.work_dir + "/" + name;
    EXPECT_EQ(std::system((runner + args + " --output " + out + ".f32 > " + out + ".txt").c_str()),
              0);
    std::ifstream logits(out + ".f32", std::ios::binary), text(out + ".txt");
    std::stringstream a, b;
    a << logits.rdbuf();
    b << text.rdbuf();
    return std::make_pair(a.str(), b.str());
  };
  const auto [once, once_text] = run_to("", "once");
  const auto [thrice, thrice_text] = run_to(" --layer-repeat 3", "thrice");
  ASSERT_FALSE(once.empty());
  EXPECT_EQ(once, thrice);
  auto count = [](const std::string& s, const std::string& prefix) {
    int n = 0;
    std::istringstream is(s);
    for (std::string line; std::getline(is, line);) n += line.rfind(prefix, 0) == 0;
    return n;
  };
  EXPECT_EQ(count(once_text, "layer_alone "), 0);
  EXPECT_GT(count(thrice_text, "layer "), 4);
  EXPECT_EQ(count(thrice_text, "layer_alone "), count(thrice_text, "layer "));
}
