// pconv-inspect's logic on a model this test prunes and saves, and on a corrupted copy.
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <opencv2/imgcodecs.hpp>
#include <sstream>

#include "admm/inspect.h"
#include "core/architectures.h"
#include "core/error.h"

namespace pconv::admm {
namespace {

using nlohmann::json;
namespace fs = std::filesystem;

struct Files {
  // One folder per test: ctest runs the tests of this file as parallel processes.
  fs::path dir = fs::path(PCONV_BINARY_DIR) /
                 (std::string("admm_inspect_") +
                  ::testing::UnitTest::GetInstance()->current_test_info()->name());
  Files() {
    fs::remove_all(dir);
    fs::create_directories(dir);
  }
  ~Files() { fs::remove_all(dir); }
};

ModelFile pruned_resnet20(double rate) {
  ModelFile m;
  m.graph = build_architecture("resnet20", {});
  m.params = init_params(m.graph, 31);
  PruningConfig cfg;
  cfg.rate = rate;
  m.pruning = hard_prune(m.graph, m.params, make_plan(cfg, m.graph, m.params));
  return m;
}

int run(const std::vector<std::string>& args, std::string& out, std::string& err) {
  std::ostringstream o, e;
  const int rc = inspect_command(args, o, e);
  out = o.str(), err = e.str();
  return rc;
}

TEST(Inspect, ReportsTablesJsonAndPngs) {
  Files f;
  const ModelFile m = pruned_resnet20(4.0);
  const std::string path = (f.dir / "m.h5").string();
  save_model(path, m);
  std::string out, err;
  const std::string jpath = (f.dir / "r.json").string(), png = (f.dir / "png").string();
  ASSERT_EQ(run({path, "--json", jpath, "--png-dir", png}, out, err), 0) << out << err;
  EXPECT_NE(out.find("layer2.1.conv2"), std::string::npos) << out;
  EXPECT_NE(out.find("all hold"), std::string::npos) << out;

  std::ifstream jf(jpath);
  const json j = json::parse(jf);
  EXPECT_TRUE(j["verified"].get<bool>());
  EXPECT_EQ(j["granularity"], "pattern");
  EXPECT_EQ(j["library"].size(), 4u);
  int64_t total = 0, kept = 0;
  for (const json& l : j["layers"]) {
    total += l["weights_total"].get<int64_t>();
    kept += l["weights_kept"].get<int64_t>();
    if (l["name"] == "layer2.1.conv2") {
      EXPECT_TRUE(l["pruned"].get<bool>());
      EXPECT_EQ(l["kernels_total"].get<int64_t>(), 32 * 32);
      EXPECT_EQ(l["kernels_kept"].get<int64_t>(), 256);
      EXPECT_DOUBLE_EQ(l["connectivity_rate"].get<double>(), 4.0);
      EXPECT_EQ(l["weights_kept"].get<int64_t>(), 256 * 4);
      int64_t hist = 0;
      for (const json& h : l["pattern_hist"]) hist += h.get<int64_t>();
      EXPECT_EQ(hist, 256);
      EXPECT_EQ(l["macs_kept"].get<int64_t>() * 9, l["macs_total"].get<int64_t>());
      EXPECT_LE(l["nonzero"].get<int64_t>(), 256 * 4);
    }
    if (l["name"] == "conv1") {
      EXPECT_FALSE(l["pruned"].get<bool>());
      EXPECT_EQ(l["weights_kept"], l["weights_total"]);
    }
  }
  EXPECT_EQ(j["totals"]["conv_weights_total"].get<int64_t>(), total);
  EXPECT_EQ(j["totals"]["conv_weights_kept"].get<int64_t>(), kept);
  EXPECT_NEAR(j["totals"]["conv_compression"].get<double>(), double(total) / kept, 1e-9);
  EXPECT_GT(j["totals"]["mac_reduction"].get<double>(), 5.0);  // 9x on all but 3 small convs

  // One PNG per pruned layer; the cell of a removed kernel is black, a kept one is not.
  int pngs = 0;
  for (const auto& e : fs::directory_iterator(png)) pngs += e.path().extension() == ".png";
  EXPECT_EQ(pngs, 18);
  const cv::Mat img = cv::imread((fs::path(png) / "layer1.0.conv1.png").string());
  ASSERT_FALSE(img.empty());
  const auto& ids = m.pruning.layer_ids.at("layer1.0.conv1");  // 16 x 16, cell 24 px
  for (int j2 : {0, 1, 2, 3, 17, 100, 255}) {
    const int o = j2 / 16, i = j2 % 16;
    const cv::Vec3b px = img.at<cv::Vec3b>(40 + o * 24 + 12, 10 + i * 24 + 12);
    const bool black = px[0] == 0 && px[1] == 0 && px[2] == 0;
    EXPECT_EQ(black, ids[static_cast<size_t>(j2)] < 0) << "kernel " << j2;
  }
}

TEST(Inspect, CorruptedModelExitsNonZeroNamingTheLayer) {
  Files f;
  ModelFile m = pruned_resnet20(2.0);
  const auto& ids = m.pruning.layer_ids.at("layer3.1.conv1");
  size_t j = 0;
  while (ids[j] < 0) ++j;
  const Pattern p = scp4_library()[ids[j]];
  int pos = 0;
  while (p.has(pos)) ++pos;
  m.params["layer3.1.conv1/weight"][static_cast<int64_t>(j) * 9 + pos] = 0.25f;
  const std::string path = (f.dir / "bad.h5").string();
  save_model(path, m);
  std::string out, err;
  EXPECT_EQ(run({path}, out, err), 1);
  EXPECT_NE(err.find("layer layer3.1.conv1"), std::string::npos) << err;
  EXPECT_NE(err.find("outside its pattern"), std::string::npos) << err;
  EXPECT_EQ(err.find("layer2"), std::string::npos) << "only the corrupted layer is named: " << err;
}

TEST(Inspect, UsageAndFileErrors) {
  std::string out, err;
  EXPECT_EQ(run({}, out, err), 2);
  EXPECT_EQ(run({"/nonexistent/model.h5"}, out, err), 2);
  EXPECT_NE(err.find("/nonexistent/model.h5"), std::string::npos) << err;
  EXPECT_EQ(run({"a.h5", "--bogus"}, out, err), 2);
}

TEST(Inspect, DenseModelHasNothingToViolate) {
  ModelFile m;
  m.graph = build_architecture("resnet20", {});
  m.params = init_params(m.graph, 1);
  const InspectReport r = inspect(m);
  EXPECT_TRUE(r.verification.ok());
  EXPECT_EQ(r.granularity, "dense");
  EXPECT_DOUBLE_EQ(r.conv_compression, 1.0);
  EXPECT_EQ(r.macs_kept, r.macs_total);
}

}  // namespace
}  // namespace pconv::admm
