// pconv-eval --deployed: generated code run over a whole (small) data set in the runner's batch
// mode agrees with the reference executor image by image, and a wrong model is caught.
#include <gtest/gtest.h>

#include <unistd.h>

#include <filesystem>

#include "data/memory_dataset.h"
#include "deploy/compiler.h"
#include "deploy/deployed_eval.h"
#include "deploy/synth.h"
#include "deploy/verify.h"
#include "error_of.h"

namespace pconv::deploy {
namespace {

namespace fs = std::filesystem;

data::ImageSet random_images(int n) {
  data::ImageSet s;
  s.height = s.width = 32;
  s.class_names = data::cifar10_class_names();
  uint32_t r = 11;
  for (int i = 0; i < n; ++i) {
    s.labels.push_back(i % 10);
    for (int p = 0; p < 32 * 32 * 3; ++p)
      s.pixels.push_back(static_cast<uint8_t>((r = r * 1664525u + 1013904223u) >> 24));
  }
  return s;
}

TEST(DeployedEval, GeneratedCodeAgreesWithTheModelOnEveryImage) {
  SynthOptions so;
  so.arch = "resnet20";
  so.conn_rate = 2.0;
  ModelFile m = synth_model(so);
  const fs::path dir =
      fs::path(::testing::TempDir()) / ("deployed-eval-" + std::to_string(getpid()));
  fs::remove_all(dir);
  CompileOptions co;
  co.target = "x86";
  co.out_dir = dir.string();
  co.print_table = false;
  compile_model(m, "resnet20", co);

  data::DataConfig dc;
  dc.mean = {0.5f, 0.5f, 0.5f};
  dc.std = {0.25f, 0.25f, 0.25f};
  data::MemoryDataset ds(random_images(37), dc, false, "random");
  data::LoaderOptions lo;
  lo.batch_size = 16;  // 37 images: the last batch is partial
  lo.shuffle = lo.augment = lo.drop_last = false;
  data::BatchLoader loader(ds, lo);
  Net net(m.graph, m.params);
  DeployedEval e = evaluate_deployed(net, loader, dir.string());
  EXPECT_EQ(e.images, 37);
  EXPECT_EQ(e.agreement, 1.0);
  EXPECT_EQ(e.model_top1, e.deployed_top1);
  EXPECT_LT(e.max_logit_diff, 1e-3);

  // Another model's weights behind the same code: the runner refuses them (checksum) or the
  // predictions stop agreeing; either way the evaluation does not pass silently.
  ModelFile other = synth_model([&] {
    SynthOptions o = so;
    o.seed = 2;
    return o;
  }());
  Net other_net(other.graph, other.params);
  std::string err;
  DeployedEval bad;
  err = error_of([&] { bad = evaluate_deployed(other_net, loader, dir.string()); });
  EXPECT_TRUE(!err.empty() || bad.agreement < 1.0 || bad.max_logit_diff > 1e-3);

  // The same check for a device this machine cannot run: inputs exported, the runner run by hand
  // (as on a phone or GPU machine), its logits scored. A file of the wrong length is refused.
  const std::string xs = (dir / "xs.f32").string(), ys = (dir / "ys.f32").string();
  EXPECT_EQ(export_eval_inputs(loader, xs), 37);
  EXPECT_EQ(fs::file_size(xs), 37u * 3 * 32 * 32 * sizeof(float));
  std::string out;
  ASSERT_EQ(run_command("'" + (dir / "build" / "runner").string() + "' '" +
                            (dir / "weights.bin").string() + "' --batch --input '" + xs +
                            "' --output '" + ys + "'",
                        &out),
            0)
      << out;
  DeployedEval remote = compare_deployed_logits(net, loader, ys);
  EXPECT_EQ(remote.images, 37);
  EXPECT_EQ(remote.agreement, 1.0);
  EXPECT_EQ(remote.deployed_top1, e.deployed_top1);
  EXPECT_EQ(remote.max_logit_diff, e.max_logit_diff);
  fs::resize_file(ys, fs::file_size(ys) - sizeof(float));
  EXPECT_NE(error_of([&] { compare_deployed_logits(net, loader, ys); }).find("expected 370 logits"),
            std::string::npos);
  EXPECT_NE(error_of([&] {
              evaluate_deployed(net, loader, "/nonexistent");
            }).find("not a folder written by pconv-deploy"),
            std::string::npos);
}

}  // namespace
}  // namespace pconv::deploy
