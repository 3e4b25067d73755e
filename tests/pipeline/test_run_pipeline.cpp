// The stage runner end to end on a small image folder the test writes: pretrain, ADMM, prune,
// retrain; the run folder's files; refusing to overwrite; stopping and resuming; config errors.
#include <gtest/gtest.h>

#include "error_of.h"

#include <unistd.h>

#include <atomic>
#include <filesystem>
#include <fstream>
#include <functional>
#include <opencv2/imgcodecs.hpp>
#include <regex>

#include "admm/prune.h"
#include "core/build_commit.h"
#include "core/model_file.h"
#include "pipeline/provenance.h"
#include "pipeline/run.h"

namespace pconv {
namespace {

namespace fs = std::filesystem;
using nlohmann::json;

// 4 classes of 16x16 PNGs: a bright blob in quadrant k.
fs::path write_folder() {
  // Per process: ctest runs this file's tests as parallel processes.
  fs::path root = fs::path(::testing::TempDir()) / ("pipeline-blobs-" + std::to_string(getpid()));
  if (fs::exists(root / "done")) return root;
  uint32_t r = 7;
  auto rnd = [&] { return (r = r * 1664525u + 1013904223u) >> 24; };
  for (const char* split : {"train", "test"}) {
    int n = std::string(split) == "train" ? 96 : 32;
    for (int k = 0; k < 4; ++k) {
      fs::path d = root / split / ("class" + std::to_string(k));
      fs::create_directories(d);
      for (int i = 0; i < n / 4; ++i) {
        cv::Mat img(16, 16, CV_8UC3);
        for (int y = 0; y < 16; ++y)
          for (int x = 0; x < 16; ++x) {
            bool in = (y / 8 == k / 2) && (x / 8 == k % 2);
            for (int c = 0; c < 3; ++c)
              img.at<cv::Vec3b>(y, x)[c] = static_cast<uint8_t>((in ? 150 : 40) + rnd() % 60);
          }
        cv::imwrite((d / (std::to_string(i) + ".png")).string(), img);
      }
    }
  }
  std::ofstream(root / "done") << "ok";
  return root;
}

json config(const fs::path& run_dir) {
  json graph = {
      {"nodes",
       {{{"name", "input"}, {"op", "input"}, {"shape", {3, 16, 16}}},
        {{"name", "conv1"}, {"op", "conv"}, {"inputs", {"input"}}, {"out_channels", 8}, {"pad", 1}},
        {{"name", "bn1"}, {"op", "batch_norm"}, {"inputs", {"conv1"}}},
        {{"name", "relu1"}, {"op", "relu"}, {"inputs", {"bn1"}}},
        {{"name", "pool1"}, {"op", "max_pool"}, {"inputs", {"relu1"}}},
        {{"name", "conv2"}, {"op", "conv"}, {"inputs", {"pool1"}}, {"out_channels", 8}, {"pad", 1}},
        {{"name", "bn2"}, {"op", "batch_norm"}, {"inputs", {"conv2"}}},
        {{"name", "relu2"}, {"op", "relu"}, {"inputs", {"bn2"}}},
        {{"name", "gap"}, {"op", "global_avg_pool"}, {"inputs", {"relu2"}}},
        {{"name", "flat"}, {"op", "flatten"}, {"inputs", {"gap"}}},
        {{"name", "fc"}, {"op", "linear"}, {"inputs", {"flat"}}, {"out_features", 4}}}}};
  return {{"name", "blobs"},
          {"run_dir", run_dir.string()},
          {"seed", 3},
          {"model", {{"graph", graph}}},
          {"data",
           {{"dataset", "folder"},
            {"root", write_folder().string()},
            {"image_size", 16},
            {"augment", false}}},
          {"train",
           {{"batch_size", 16}, {"optimizer", {{"lr", 0.1}}}, {"schedule", {{"kind", "cosine"}}}}},
          {"pruning", {{"rate", 2}, {"admm", {{"rho", 0.01}, {"rho_factor", 2.0}}}}},
          {"stages",
           {{{"kind", "pretrain"}, {"epochs", 8}},
            {{"kind", "admm"}, {"epochs", 2}},
            {{"kind", "prune"}},
            {{"kind", "retrain"}, {"epochs", 2}}}}};
}

TEST(RunPipeline, AllStagesResumeAndRefuseToOverwrite) {
  fs::path dir = fs::path(::testing::TempDir()) / "run-all";
  fs::remove_all(dir);
  RunConfig cfg = parse_run_config(config(dir), "test.json");
  RunResult r = run_pipeline(cfg, RunOptions{});
  ASSERT_TRUE(r.finished);
  for (const char* s : {"1-pretrain", "2-admm", "3-prune", "4-retrain"}) {
    EXPECT_TRUE(fs::exists(dir / s / "final.h5")) << s;
    EXPECT_FALSE(fs::exists(dir / s / "checkpoint.h5")) << s;
  }
  EXPECT_TRUE(fs::exists(dir / "1-pretrain" / "best.h5"));
  EXPECT_TRUE(fs::exists(dir / "summary.json"));
  ASSERT_EQ(r.summary["stages"].size(), 4u);
  EXPECT_GT(r.summary["stages"][0]["test_top1"].get<double>(), 0.5) << r.summary.dump(1);
  EXPECT_TRUE(r.summary["stages"][3]["constraints_ok"].get<bool>());

  // The final model is pruned: 4 SCPs, conv2 keeps exactly half its 64 kernels.
  ModelFile m = load_model(r.model_path);
  EXPECT_EQ(m.pruning.library.size(), 4u);
  ASSERT_TRUE(m.pruning.layer_ids.count("conv2"));
  int kept = 0;
  for (int8_t id : m.pruning.layer_ids.at("conv2")) kept += id >= 0;
  EXPECT_EQ(kept, 32);
  EXPECT_TRUE(admm::verify(m.graph, m.params, m.pruning).ok());
  // It carries the eval preprocessing, so deployed code can classify raw images like pconv-eval.
  ASSERT_TRUE(m.meta.contains("input")) << m.meta.dump();
  EXPECT_EQ(m.meta["input"]["mean"].get<std::vector<float>>(), data::default_mean("folder"));
  EXPECT_EQ(m.meta["input"]["size"], 16);
  EXPECT_EQ(m.meta["input"]["resize_shorter"], 18);  // 256/224 of 16, then a centre crop

  // The ADMM stage logged its residual per epoch.
  std::ifstream metrics(dir / "2-admm" / "metrics.jsonl");
  std::string line;
  int lines = 0;
  while (std::getline(metrics, line)) {
    json j = json::parse(line);
    EXPECT_TRUE(j.contains("admm")) << line;
    ++lines;
  }
  EXPECT_EQ(lines, 2);

  // A second run refuses to overwrite, and --resume finds every stage done.
  EXPECT_NE(error_of([&] { run_pipeline(cfg, RunOptions{}); }).find("--resume"), std::string::npos);
  RunOptions resume;
  resume.resume = true;
  RunResult again = run_pipeline(cfg, resume);
  EXPECT_TRUE(again.finished);
  EXPECT_EQ(again.summary["stages"][3]["test_top1"], r.summary["stages"][3]["test_top1"]);
}

TEST(RunPipeline, StopSavesACheckpointThatResumes) {
  fs::path dir = fs::path(::testing::TempDir()) / "run-stop";
  fs::remove_all(dir);
  json j = config(dir);
  j["stages"] = {{{"kind", "pretrain"}, {"epochs", 2}}};
  RunConfig cfg = parse_run_config(j, "test.json");
  std::atomic<bool> stop{true};  // stop after the first step
  RunOptions opt;
  opt.stop = &stop;
  RunResult r = run_pipeline(cfg, opt);
  EXPECT_FALSE(r.finished);
  ASSERT_TRUE(fs::exists(dir / "1-pretrain" / "checkpoint.h5"));
  ModelFile ck = load_model((dir / "1-pretrain" / "checkpoint.h5").string());
  ASSERT_TRUE(ck.train);
  EXPECT_EQ(ck.train->step, 1);
  EXPECT_TRUE(ck.train->tensors.count("optim/momentum/conv1/weight"));
  EXPECT_EQ(ck.meta["commits"], json::array({build_commit()}));
  // Pretend an older binary started the stage: the summary then names both builds.
  ck.meta["commits"] = json::array({"0123abc"});
  save_model((dir / "1-pretrain" / "checkpoint.h5").string(), ck);
  stop = false;
  opt.resume = true;
  r = run_pipeline(cfg, opt);
  EXPECT_TRUE(r.finished);
  ModelFile fin = load_model((dir / "1-pretrain" / "final.h5").string());
  EXPECT_EQ(fin.train->step, 2 * (96 / 16));
  EXPECT_FALSE(fs::exists(dir / "1-pretrain" / "checkpoint.h5"));
  const json both = json::array({"0123abc", build_commit()});
  EXPECT_EQ(r.summary["stages"][0]["commits"], both) << r.summary.dump(1);
  EXPECT_EQ(r.summary["stage_commits"], both);
  EXPECT_EQ(r.summary["commit"], build_commit());
  // A later --resume finds the stage done and keeps the commits it was trained at.
  r = run_pipeline(cfg, opt);
  EXPECT_EQ(r.summary["stage_commits"], both);
  // A stage finished by a binary that recorded no build commit is not credited to this one.
  fin.meta["stage_summary"].erase("commits");
  save_model((dir / "1-pretrain" / "final.h5").string(), fin);
  r = run_pipeline(cfg, opt);
  EXPECT_EQ(r.summary["stage_commits"], json::array({"not recorded"}));
}

// The commit is the build's (cmake/build_commit.cmake): a short hash, maybe "-dirty", or unknown.
TEST(Provenance, BuildCommitLooksLikeACommit) {
  const std::string c = build_commit();
  EXPECT_TRUE(c == "unknown" || std::regex_match(c, std::regex("[0-9a-f]{7,40}(-dirty)?"))) << c;
  EXPECT_EQ(git_commit(), c);
}

TEST(RunConfig, ErrorsNamePathAndFile) {
  fs::path dir = fs::path(::testing::TempDir()) / "run-err";
  json j = config(dir);
  j["train"]["optimizer"]["lrr"] = 0.1;
  EXPECT_NE(error_of([&] {
              parse_run_config(j, "c.json");
            }).find("c.json: $.train.optimizer.lrr: unknown key"),
            std::string::npos);
  j = config(dir);
  j.erase("pruning");
  EXPECT_NE(error_of([&] { parse_run_config(j, "c.json"); }).find("needs a \"pruning\" section"),
            std::string::npos);
  j = config(dir);
  j["stages"][0]["kind"] = "finetune";
  EXPECT_NE(error_of([&] { parse_run_config(j, "c.json"); }).find("$.stages[0].kind"),
            std::string::npos);
  j = config(dir);
  j["model"]["arch"] = "resnet20";
  EXPECT_NE(error_of([&] { parse_run_config(j, "c.json"); }).find("exactly one of"),
            std::string::npos);
}

TEST(RunConfig, DistillIsInheritedOverriddenOrTurnedOffPerStage) {
  const fs::path teacher = fs::path(::testing::TempDir()) / "distill-teacher.h5";
  { std::ofstream(teacher) << "x"; }  // the parser only checks that the file is there
  json j = config("/tmp/x");
  j["train"]["distill"] = {{"teacher", teacher.string()}, {"temperature", 3}};
  j["stages"][1]["distill"] = nullptr;
  j["stages"][3]["distill"] = {{"teacher", teacher.string()}, {"alpha", 0.5}};
  RunConfig c = parse_run_config(j, "c.json");
  EXPECT_EQ(c.stages[0].loop.distill.teacher, teacher.string());
  EXPECT_FLOAT_EQ(c.stages[0].loop.distill.temperature, 3.f);
  EXPECT_FLOAT_EQ(c.stages[0].loop.distill.alpha, 0.9f);
  EXPECT_TRUE(c.stages[1].loop.distill.teacher.empty());
  EXPECT_FLOAT_EQ(c.stages[3].loop.distill.alpha, 0.5f);
  EXPECT_FLOAT_EQ(c.stages[3].loop.distill.temperature, 4.f);

  j["stages"][3]["distill"] = {{"teacher", teacher.string()}, {"alpha", 1.5}};
  EXPECT_NE(error_of([&] { parse_run_config(j, "c.json"); }).find("$.stages[3].distill.alpha"),
            std::string::npos);

  // A missing teacher parses (shipped configs name models yet to be trained) but stops the run
  // before its first stage.
  const fs::path dir = fs::path(::testing::TempDir()) / "run-no-teacher";
  fs::remove_all(dir);
  j = config(dir);
  j["stages"][3]["distill"] = {{"teacher", "/no/such/teacher.h5"}};
  RunConfig missing = parse_run_config(j, "c.json");
  EXPECT_NE(error_of([&] {
              run_pipeline(missing, RunOptions{});
            }).find("c.json: $.stages[3].distill.teacher: no such file \"/no/such/teacher.h5\""),
            std::string::npos);
  EXPECT_FALSE(fs::exists(dir / "1-pretrain")) << "no stage may run first";
  // A teacher inside the run folder may come from an earlier stage: not checked up front.
  j["stages"] = {j["stages"][0], j["stages"][0]};
  j["stages"][0]["epochs"] = 1;
  j["stages"][1]["epochs"] = 1;
  j["stages"][1]["distill"] = {{"teacher", (dir / "1-pretrain" / "final.h5").string()}};
  RunResult own = run_pipeline(parse_run_config(j, "c.json"), RunOptions{});
  EXPECT_TRUE(own.finished);
}

TEST(RunConfig, OverridesSetNestedKeys) {
  json j = config("/tmp/x");
  apply_override(j, "train.optimizer.lr=0.2");
  apply_override(j, "stages.1.epochs=7");
  apply_override(j, "data.root=/elsewhere");
  EXPECT_EQ(j["train"]["optimizer"]["lr"], 0.2);
  EXPECT_EQ(j["stages"][1]["epochs"], 7);
  EXPECT_EQ(j["data"]["root"], "/elsewhere");
  EXPECT_NE(error_of([&] { apply_override(j, "stages.9.epochs=1"); }).find("index 9"),
            std::string::npos);
  EXPECT_NE(error_of([&] { apply_override(j, "noequals"); }).find("key.path=value"),
            std::string::npos);
}

}  // namespace
}  // namespace pconv
