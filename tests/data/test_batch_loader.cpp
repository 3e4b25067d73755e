// BatchLoader: coverage of every sample, partial last batch, determinism across worker counts,
// resuming mid-epoch, buffer reuse, error propagation and shutdown mid-epoch.
#include <gtest/gtest.h>

#include <chrono>
#include <cstring>
#include <set>
#include <thread>

#include "core/error.h"
#include "data/batch_loader.h"
#include "data/memory_dataset.h"

namespace pconv::data {
namespace {

// Sample i is a 1x2x2 "image" holding (i, seed bits, augment flag, 0); optionally slow or failing.
class FakeDataset : public Dataset {
 public:
  explicit FakeDataset(int64_t n, int fail_at = -1, int sleep_us = 0)
      : n_(n), fail_at_(fail_at), sleep_us_(sleep_us) {}
  int64_t size() const override { return n_; }
  const std::vector<std::string>& class_names() const override { return names_; }
  Shape sample_shape() const override { return {1, 2, 2}; }
  int32_t label(int64_t i) const override { return static_cast<int32_t>(i % 3); }
  bool augments() const override { return true; }
  void load(int64_t i, bool augment, uint64_t seed, float* out) const override {
    if (sleep_us_) std::this_thread::sleep_for(std::chrono::microseconds(sleep_us_));
    PCONV_CHECK(i != fail_at_, "fake sample ", i, " is broken");
    out[0] = static_cast<float>(i);
    out[1] = static_cast<float>(seed % 1000003);
    out[2] = augment ? 1.f : 0.f;
    out[3] = 0.f;
  }
  std::string describe() const override { return "fake"; }

 private:
  int64_t n_;
  int fail_at_, sleep_us_;
  std::vector<std::string> names_{"a", "b", "c"};
};

struct Epoch {
  std::vector<std::vector<float>> images;
  std::vector<std::vector<int32_t>> labels;
  std::vector<Shape> shapes;
};

Epoch run_epoch(BatchLoader& loader, int epoch, int first = 0) {
  Epoch e;
  loader.start_epoch(epoch, first);
  Batch b;
  while (loader.next(b)) {
    e.images.emplace_back(b.images.data(), b.images.data() + b.images.size());
    e.labels.push_back(b.labels);
    e.shapes.push_back(b.images.shape());
  }
  return e;
}

TEST(BatchLoader, EverySampleOnceAndAShortLastBatch) {
  FakeDataset ds(103);
  LoaderOptions opt;
  opt.batch_size = 10;
  opt.drop_last = false;
  BatchLoader loader(ds, opt);
  ASSERT_EQ(loader.batches_per_epoch(), 11);
  const Epoch e = run_epoch(loader, 0);
  ASSERT_EQ(e.images.size(), 11u);
  EXPECT_EQ(e.shapes.back(), (Shape{3, 1, 2, 2}));
  EXPECT_EQ(e.shapes.front(), (Shape{10, 1, 2, 2}));
  std::set<int> seen;
  for (size_t b = 0; b < e.images.size(); ++b)
    for (size_t i = 0; i < e.labels[b].size(); ++i) {
      const int idx = static_cast<int>(e.images[b][4 * i]);
      EXPECT_TRUE(seen.insert(idx).second) << "sample " << idx << " twice";
      EXPECT_EQ(e.labels[b][i], idx % 3);
      EXPECT_EQ(e.images[b][4 * i + 2], 1.f);  // augmenting
    }
  EXPECT_EQ(seen.size(), 103u);

  opt.drop_last = true;
  BatchLoader dropping(ds, opt);
  EXPECT_EQ(dropping.batches_per_epoch(), 10);
  EXPECT_EQ(run_epoch(dropping, 0).images.size(), 10u);
}

TEST(BatchLoader, OrderDependsOnSeedAndEpochOnly) {
  FakeDataset ds(200);
  LoaderOptions opt;
  opt.batch_size = 20;
  BatchLoader a(ds, opt), b(ds, opt);
  EXPECT_EQ(run_epoch(a, 3).images, run_epoch(b, 3).images);
  EXPECT_NE(run_epoch(a, 3).images, run_epoch(a, 4).images);
  opt.seed = 1;
  BatchLoader c(ds, opt);
  EXPECT_NE(run_epoch(a, 3).images, run_epoch(c, 3).images);
  opt.shuffle = false;
  BatchLoader plain(ds, opt);
  const Epoch e = run_epoch(plain, 5);
  for (size_t i = 0; i < 20; ++i) EXPECT_EQ(e.images[0][4 * i], static_cast<float>(i));
}

ImageSet random_images(int n) {
  ImageSet s;
  s.height = s.width = 32;
  s.class_names = {"x", "y", "z", "w"};
  Rng rng(42);
  s.pixels.resize(static_cast<size_t>(n) * 32 * 32 * 3);
  for (auto& p : s.pixels) p = static_cast<uint8_t>(rng.next());
  for (int i = 0; i < n; ++i) s.labels.push_back(i % 4);
  return s;
}

TEST(BatchLoader, BitIdenticalAcrossWorkerCountsWithAugmentation) {
  DataConfig cfg;
  complete_data_config(cfg);
  const MemoryDataset ds(random_images(300), cfg, true, "random");
  LoaderOptions opt;
  opt.batch_size = 32;
  opt.drop_last = false;
  opt.seed = 7;
  BatchLoader one(ds, opt);
  const Epoch ref = run_epoch(one, 2);
  ASSERT_EQ(ref.images.size(), 10u);
  for (auto [workers, prefetch] : {std::pair{2, 3}, std::pair{3, 1}, std::pair{4, 6}}) {
    opt.workers = workers;
    opt.prefetch = prefetch;
    BatchLoader many(ds, opt);
    const Epoch e = run_epoch(many, 2);
    EXPECT_EQ(e.labels, ref.labels) << workers << " workers";
    ASSERT_EQ(e.images.size(), ref.images.size());
    for (size_t b = 0; b < e.images.size(); ++b) {
      ASSERT_EQ(e.images[b].size(), ref.images[b].size());
      EXPECT_EQ(0, std::memcmp(e.images[b].data(), ref.images[b].data(), e.images[b].size() * 4))
          << "batch " << b << " differs with " << workers << " workers";
    }
  }
}

TEST(BatchLoader, ResumedEpochYieldsTheRemainingBatchesExactly) {
  DataConfig cfg;
  complete_data_config(cfg);
  const MemoryDataset ds(random_images(250), cfg, true, "random");
  LoaderOptions opt;
  opt.batch_size = 16;
  opt.workers = 2;
  BatchLoader loader(ds, opt);
  const Epoch full = run_epoch(loader, 9);
  ASSERT_EQ(full.images.size(), 15u);
  // Abandon an epoch part-way (prefetched batches in flight), then resume the other at batch 6.
  loader.start_epoch(1);
  Batch b;
  ASSERT_TRUE(loader.next(b));
  const Epoch rest = run_epoch(loader, 9, 6);
  ASSERT_EQ(rest.images.size(), 9u);
  for (size_t i = 0; i < rest.images.size(); ++i) {
    EXPECT_EQ(rest.images[i], full.images[6 + i]) << "batch " << 6 + i;
    EXPECT_EQ(rest.labels[i], full.labels[6 + i]);
  }
  EXPECT_TRUE(run_epoch(loader, 9, 15).images.empty());
  EXPECT_THROW(loader.start_epoch(9, 16), Error);
}

TEST(BatchLoader, ReusesBuffersAfterWarmUp) {
  FakeDataset ds(64);
  LoaderOptions opt;
  opt.batch_size = 8;
  opt.prefetch = 2;
  BatchLoader loader(ds, opt);
  std::set<const float*> first, later;
  Batch b;
  loader.start_epoch(0);
  while (loader.next(b)) first.insert(b.images.data());
  for (int epoch = 1; epoch < 4; ++epoch) {
    loader.start_epoch(epoch);
    while (loader.next(b)) later.insert(b.images.data());
  }
  EXPECT_LE(first.size(), 3u);  // prefetch slots + the caller's batch
  for (const float* p : later)
    EXPECT_TRUE(first.count(p)) << "a buffer was allocated after warm-up";
}

TEST(BatchLoader, WorkerErrorsReachTheCaller) {
  FakeDataset ds(50, /*fail_at=*/17);
  LoaderOptions opt;
  opt.batch_size = 10;
  opt.shuffle = false;
  BatchLoader loader(ds, opt);
  loader.start_epoch(0);
  Batch b;
  EXPECT_TRUE(loader.next(b));
  try {
    loader.next(b);
    FAIL() << "expected the worker's error";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("fake sample 17"), std::string::npos) << e.what();
  }
  EXPECT_THROW(loader.next(b), Error);
  loader.start_epoch(0, 2);  // usable again
  EXPECT_TRUE(loader.next(b));
}

TEST(BatchLoader, StopsPromptlyWhenTheCallerQuitsMidEpoch) {
  FakeDataset ds(100000, -1, /*sleep_us=*/200);
  LoaderOptions opt;
  opt.batch_size = 5000;  // about 1 s per batch
  opt.workers = 2;
  std::chrono::steady_clock::time_point t0;
  {
    BatchLoader loader(ds, opt);
    loader.start_epoch(0);
    std::this_thread::sleep_for(std::chrono::milliseconds(50));  // two batches half made
    t0 = std::chrono::steady_clock::now();
  }
  const double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  EXPECT_LT(s, 0.3) << "shutdown waited for whole batches";
}

TEST(BatchLoader, RejectsBadOptions) {
  FakeDataset ds(10);
  LoaderOptions opt;
  opt.batch_size = 11;
  EXPECT_THROW(BatchLoader(ds, opt), Error);  // drop_last would leave nothing
  opt.drop_last = false;
  BatchLoader loader(ds, opt);
  EXPECT_EQ(loader.batches_per_epoch(), 1);
  Batch b;
  EXPECT_THROW(loader.next(b), Error);  // before start_epoch
  opt.workers = 0;
  EXPECT_THROW(BatchLoader(ds, opt), Error);
}

}  // namespace
}  // namespace pconv::data
