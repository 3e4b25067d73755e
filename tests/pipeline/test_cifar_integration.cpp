// Integration on real data: a small net trained for a couple of minutes on a CIFAR-10 subset
// (the JPEG set in ../shared/datasets) reaches accuracy far above chance on the full test set.
#include <gtest/gtest.h>

#include <filesystem>

#include "pipeline/run.h"

namespace pconv {
namespace {

namespace fs = std::filesystem;

bool shared_cifar_present() {
  return fs::exists(fs::path(PCONV_SHARED_DIR) / "datasets" / "cifar10-jpeg.tar.gz");
}

TEST(CifarIntegration, QuicknetLearnsOnARealSubset) {
  if (!shared_cifar_present())
    GTEST_SKIP() << "CIFAR-10 archive not found under " << PCONV_SHARED_DIR << "/datasets";
  fs::path dir = fs::path(::testing::TempDir()) / "cifar-integration";
  fs::remove_all(dir);
  nlohmann::json j = {
      {"name", "cifar-integration"},
      {"run_dir", dir.string()},
      {"seed", 1},
      {"model", {{"arch", "quicknet"}, {"width", 0.5}}},
      {"data", {{"dataset", "cifar10"}, {"train_limit", 10000}}},
      {"train",
       {{"batch_size", 128},
        {"label_smoothing", 0.1},
        {"optimizer", {{"lr", 0.2}, {"weight_decay", 5e-4}}},
        {"schedule", {{"kind", "onecycle"}, {"pct_start", 0.25}, {"div_factor", 10}}}}},
      {"stages", {{{"kind", "pretrain"}, {"epochs", 3}}}}};
  RunResult r = run_pipeline(parse_run_config(j, "integration"), RunOptions{});
  ASSERT_TRUE(r.finished);
  const auto& s = r.summary["stages"][0];
  // Chance is 0.10 on 10 classes; three short epochs on a fifth of the data give about 0.5.
  EXPECT_GT(s["test_top1"].get<double>(), 0.40) << s.dump();
  std::printf("quicknet/0.5, 3 epochs on 10k CIFAR-10 images: test top1 %.4f (%.0fs training)\n",
              s["test_top1"].get<double>(), s["train_seconds"].get<double>());
}

}  // namespace
}  // namespace pconv
