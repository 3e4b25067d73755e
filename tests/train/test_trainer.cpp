// The training loop on a small synthetic task: it learns, it calls the hooks where documented,
// and a run stopped mid-epoch and resumed from its saved file ends bit-identical to one that ran
// straight through; distillation from a saved teacher alone teaches it.
#include <gtest/gtest.h>

#include <omp.h>

#include <cstring>

#include "core/model_file.h"
#include "data/data_config.h"
#include "data/memory_dataset.h"
#include "train/trainer.h"

namespace pconv {
namespace {

// 4 classes of 8x8 images: class k has its bright blob in quadrant k, plus noise.
data::ImageSet blobs(int n, uint32_t seed) {
  data::ImageSet s;
  s.height = s.width = 8;
  s.class_names = {"a", "b", "c", "d"};
  uint32_t r = seed;
  auto rnd = [&] { return (r = r * 1664525u + 1013904223u) >> 24; };
  for (int i = 0; i < n; ++i) {
    int k = i % 4;
    s.labels.push_back(k);
    for (int y = 0; y < 8; ++y)
      for (int x = 0; x < 8; ++x) {
        bool in = (y / 4 == k / 2) && (x / 4 == k % 2);
        for (int c = 0; c < 3; ++c)
          s.pixels.push_back(static_cast<uint8_t>((in ? 140 : 40) + rnd() % 80));
      }
  }
  return s;
}

data::DataConfig blob_config() {
  data::DataConfig c;
  c.image_size = 8;
  c.mean = {0.5f, 0.5f, 0.5f};
  c.std = {0.25f, 0.25f, 0.25f};
  return c;
}

Graph small_net() {
  Graph g;
  int x = g.input("input", 3, 8, 8);
  ConvAttrs c;
  c.out_channels = 8;
  x = g.conv("conv1", x, c);
  x = g.relu("relu1", g.batch_norm("bn1", x));
  x = g.max_pool("pool", x, PoolAttrs{2, 2, 0});
  int y = g.conv("conv2", x, c);
  y = g.batch_norm("bn2", y);
  x = g.relu("relu2", g.add("add", x, y));
  x = g.flatten("flat", g.global_avg_pool("gap", x));
  g.linear("fc", x, LinearAttrs{4, true});
  return g;
}

TrainLoopConfig loop(int epochs) {
  TrainLoopConfig c;
  c.epochs = epochs;
  c.batch_size = 16;
  c.sgd.lr = 0.05;
  c.schedule.kind = "cosine";
  c.seed = 5;
  return c;
}

struct CountingHooks : TrainHooks {
  int begins = 0, adjusts = 0, steps = 0, epochs = 0;
  int64_t last_step = 0;
  void on_stage_begin(ParamMap&) override { ++begins; }
  double adjust_grads(const ParamMap&, ParamMap&) override {
    ++adjusts;
    return 0.5;
  }
  void after_step(int64_t step, ParamMap&, ParamMap&) override {
    ++steps;
    last_step = step;
  }
  void on_epoch_end(int, ParamMap&, nlohmann::json& m) override {
    ++epochs;
    m["hook"] = epochs;
  }
};

TEST(Trainer, LearnsAndCallsHooks) {
  // No augmentation: a 4-pixel crop shift would move the blob across quadrants.
  data::MemoryDataset train(blobs(256, 1), blob_config(), false, "blobs train");
  data::MemoryDataset test(blobs(128, 2), blob_config(), false, "blobs test");
  Graph g = small_net();
  ParamMap p = init_params(g, 1);
  CountingHooks hooks;
  Trainer t(g, p, loop(4), train, test, &hooks);
  TrainState st;
  ASSERT_TRUE(t.run(st, {}));
  EXPECT_EQ(st.epoch, 4);
  EXPECT_EQ(st.step, 4 * (256 / 16));
  EXPECT_EQ(hooks.begins, 1);
  EXPECT_EQ(hooks.adjusts, st.step);
  EXPECT_EQ(hooks.steps, st.step);
  EXPECT_EQ(hooks.last_step, st.step);
  ASSERT_EQ(st.metrics.size(), 4u);
  EXPECT_EQ(st.metrics[3]["hook"], 4);
  EXPECT_NEAR(st.metrics[3]["penalty"].get<double>(), 0.5, 1e-9);
  EXPECT_GT(st.metrics[3]["test_top1"].get<double>(), 0.9) << st.metrics.dump();
}

TEST(Trainer, ResumeFromFileMidEpochIsBitExact) {
  data::MemoryDataset train(blobs(160, 3), blob_config(), true, "blobs train");
  data::MemoryDataset test(blobs(64, 4), blob_config(), false, "blobs test");
  Graph g = small_net();

  ParamMap straight = init_params(g, 9);
  {
    Trainer t(g, straight, loop(3), train, test, nullptr);
    TrainState st;
    ASSERT_TRUE(t.run(st, {}));
  }

  // Stop after 13 steps (epoch 2, batch 3 of 10), save through the model file, resume.
  ParamMap first = init_params(g, 9);
  std::string path = ::testing::TempDir() + "resume.h5";
  {
    Trainer t(g, first, loop(3), train, test, nullptr);
    TrainState st;
    int64_t steps = 0;
    TrainCallbacks cb;
    cb.stop_requested = [&] { return ++steps == 13; };
    cb.checkpoint = [&](const TrainState& s, const nlohmann::json&, bool) {
      ModelFile m;
      m.graph = g;
      m.params = first;
      m.train = s;
      save_model(path, m);
    };
    ASSERT_FALSE(t.run(st, cb));
  }
  ModelFile m = load_model(path);
  ASSERT_TRUE(m.train);
  EXPECT_EQ(m.train->step, 13);
  EXPECT_EQ(m.train->epoch, 1);
  EXPECT_EQ(m.train->extra["batch_in_epoch"], 3);
  {
    Trainer t(g, m.params, loop(3), train, test, nullptr);
    TrainState st = *m.train;
    ASSERT_TRUE(t.run(st, {}));
    EXPECT_EQ(st.step, 30);
    ASSERT_EQ(st.metrics.size(), 3u);
  }
  for (const auto& [k, w] : straight) {
    const Tensor& r = m.params.at(k);
    ASSERT_EQ(r.size(), w.size());
    EXPECT_EQ(std::memcmp(r.data(), w.data(), sizeof(float) * w.size()), 0) << k;
  }
}

// With alpha = 1 the labels carry no weight: a fresh student learns the task from the teacher's
// logits alone, which only happens if the distillation gradient reaches it.
TEST(Trainer, DistillationAloneTeachesTheTask) {
  data::MemoryDataset train(blobs(256, 1), blob_config(), false, "blobs train");
  data::MemoryDataset test(blobs(128, 2), blob_config(), false, "blobs test");
  Graph g = small_net();
  ModelFile teacher;
  teacher.graph = g;
  teacher.params = init_params(g, 1);
  {
    Trainer t(g, teacher.params, loop(4), train, test, nullptr);
    TrainState st;
    ASSERT_TRUE(t.run(st, {}));
    ASSERT_GT(st.metrics.back()["test_top1"].get<double>(), 0.9);
  }
  const std::string path = ::testing::TempDir() + "teacher.h5";
  save_model(path, teacher);

  // The labels the student sees are all wrong (class k relabelled k + 1): only the teacher knows.
  data::ImageSet wrong = blobs(256, 1);
  for (auto& y : wrong.labels) y = (y + 1) % 4;
  data::MemoryDataset mislabelled(wrong, blob_config(), false, "blobs mislabelled");
  TrainLoopConfig c = loop(4);
  c.distill.teacher = path;
  c.distill.alpha = 1.f;
  c.distill.temperature = 2.f;
  ParamMap student = init_params(g, 7);
  Trainer t(g, student, c, mislabelled, test, nullptr);
  TrainState st;
  ASSERT_TRUE(t.run(st, {}));
  EXPECT_GT(st.metrics.back()["test_top1"].get<double>(), 0.9) << st.metrics.dump();
}

TEST(Trainer, RejectsATeacherWithOtherClasses) {
  data::MemoryDataset train(blobs(32, 3), blob_config(), false, "blobs");
  ModelFile other;
  other.graph = Graph();
  int x = other.graph.input("input", 3, 8, 8);
  x = other.graph.flatten("flat", x);
  other.graph.linear("fc", x, LinearAttrs{10, true});
  other.params = init_params(other.graph, 1);
  const std::string path = ::testing::TempDir() + "teacher10.h5";
  save_model(path, other);
  Graph g = small_net();
  ParamMap p = init_params(g, 1);
  TrainLoopConfig c = loop(1);
  c.distill.teacher = path;
  try {
    Trainer t(g, p, c, train, train, nullptr);
    FAIL();
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("teacher10.h5 has 10 classes"), std::string::npos)
        << e.what();
  }
}

TEST(Trainer, RejectsMismatchedData) {
  data::MemoryDataset train(blobs(32, 3), blob_config(), true, "blobs");
  Graph g;
  int x = g.input("input", 3, 8, 8);
  x = g.flatten("flat", x);
  g.linear("fc", x, LinearAttrs{10, true});
  ParamMap p = init_params(g, 1);
  try {
    Trainer t(g, p, loop(1), train, train, nullptr);
    FAIL();
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("4 classes"), std::string::npos) << e.what();
  }
}

}  // namespace
}  // namespace pconv
