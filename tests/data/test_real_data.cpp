// The real data sets in the shared folder: CIFAR-10 (JPEG tarball) and the 100-image ImageNet
// sample. Skipped, saying why, where the shared folder is absent.
#include <gtest/gtest.h>

#include <filesystem>
#include <opencv2/imgcodecs.hpp>

#include "core/log.h"
#include "data/batch_loader.h"
#include "data/dataset.h"
#include "data/image_folder.h"
#include "data/shell.h"

namespace fs = std::filesystem;

namespace pconv::data {
namespace {

const std::string kDatasets = std::string(PCONV_SHARED_DIR) + "/datasets";

std::vector<int64_t> class_counts(const Dataset& ds) {
  std::vector<int64_t> counts(static_cast<size_t>(ds.num_classes()), 0);
  for (int64_t i = 0; i < ds.size(); ++i) ++counts[static_cast<size_t>(ds.label(i))];
  return counts;
}

#define SKIP_WITHOUT(file)                 \
  if (!fs::exists(kDatasets + "/" + file)) \
  GTEST_SKIP() << kDatasets << "/" << file << " is absent (shared data sets not here)"

TEST(RealData, Cifar10AutoOpensFullSplits) {
  SKIP_WITHOUT("cifar10-jpeg.tar.gz");
  DataConfig cfg;  // dataset cifar10, root empty: the cache, else the shared tarball
  double t0 = wall_seconds();
  auto train = open_dataset(cfg, Split::Train);
  auto test = open_dataset(cfg, Split::Test);
  std::printf("cifar10 open (train + test): %.2f s\n", wall_seconds() - t0);
  ASSERT_EQ(train->size(), 50000);
  ASSERT_EQ(test->size(), 10000);
  EXPECT_EQ(train->num_classes(), 10);
  EXPECT_EQ(train->class_names().front(), "airplane");
  EXPECT_EQ(train->class_names().back(), "truck");
  for (int64_t n : class_counts(*train)) EXPECT_EQ(n, 5000);
  for (int64_t n : class_counts(*test)) EXPECT_EQ(n, 1000);

  // Real pixels: a normalised test image is neither constant nor out of range.
  std::vector<float> img(3 * 32 * 32);
  test->load(0, false, 0, img.data());
  const auto [lo, hi] = std::minmax_element(img.begin(), img.end());
  EXPECT_LT(*lo, *hi);
  EXPECT_GE(*lo, -0.4914f / 0.2470f - 1e-4f);
  EXPECT_LE(*hi, (1 - 0.4465f) / 0.2616f + 1e-4f);

  // A second open reads the decoded cache.
  t0 = wall_seconds();
  auto again = open_dataset(cfg, Split::Train);
  std::printf("cifar10 train cached open: %.2f s\n", wall_seconds() - t0);
  ASSERT_EQ(again->size(), 50000);
  std::vector<float> a(3 * 32 * 32), b(3 * 32 * 32);
  train->load(12345, true, 99, a.data());
  again->load(12345, true, 99, b.data());
  EXPECT_EQ(a, b);
}

TEST(RealData, Cifar10LimitIsClassBalanced) {
  SKIP_WITHOUT("cifar10-jpeg.tar.gz");
  DataConfig cfg;
  cfg.train_limit = 1000;
  cfg.test_limit = 205;
  auto train = open_dataset(cfg, Split::Train);
  auto test = open_dataset(cfg, Split::Test);
  ASSERT_EQ(train->size(), 1000);
  ASSERT_EQ(test->size(), 205);
  for (int64_t n : class_counts(*train)) EXPECT_EQ(n, 100);
  const auto tc = class_counts(*test);
  for (size_t c = 0; c < tc.size(); ++c) EXPECT_EQ(tc[c], c < 5 ? 21 : 20) << "class " << c;
}

// Extracts the sample into the cache (as a user would by hand) once.
std::string imagenet_sample_root() {
  const std::string cache = PCONV_CACHE_DIR;
  const std::string root = cache + "/imagenet-sample";
  if (!fs::is_directory(root + "/val")) {
    const std::string tmp = cache + "/.extract-imagenet-" + std::to_string(::getpid());
    fs::create_directories(tmp);
    const int rc = run_shell("tar -xzf " + shell_quote(kDatasets + "/imagenet-sample-100.tar.gz") +
                             " -C " + shell_quote(tmp));
    EXPECT_EQ(rc, 0);
    std::error_code ec;
    fs::rename(tmp + "/imagenet-sample", root, ec);
    fs::remove_all(tmp);
  }
  return root;
}

TEST(RealData, ImagenetSampleEvalBatches) {
  SKIP_WITHOUT("imagenet-sample-100.tar.gz");
  DataConfig cfg;
  cfg.dataset = "folder";
  cfg.root = imagenet_sample_root();
  cfg.test_split = "val";
  cfg.image_size = 224;
  auto ds = open_dataset(cfg, Split::Test);
  ASSERT_EQ(ds->size(), 100);
  ASSERT_EQ(ds->num_classes(), 100);
  for (int64_t n : class_counts(*ds)) EXPECT_EQ(n, 1);
  EXPECT_EQ(ds->sample_shape(), (Shape{3, 224, 224}));

  LoaderOptions opt;
  opt.batch_size = 32;
  opt.shuffle = false;
  opt.augment = false;
  opt.drop_last = false;
  BatchLoader loader(*ds, opt);
  ASSERT_EQ(loader.batches_per_epoch(), 4);
  loader.start_epoch(0);
  Batch batch;
  int seen = 0, batches = 0;
  const double t0 = wall_seconds();
  while (loader.next(batch)) {
    ++batches;
    EXPECT_EQ(batch.images.shape(), (Shape{batch.size(), 3, 224, 224}));
    for (int i = 0; i < batch.size(); ++i) EXPECT_EQ(batch.labels[i], seen + i);
    seen += batch.size();
  }
  std::printf("imagenet sample: 100 images decoded + resized in %.2f s\n", wall_seconds() - t0);
  EXPECT_EQ(seen, 100);
  EXPECT_EQ(batches, 4);

  // The grayscale image comes out with three equal channels (before normalisation).
  const auto* folder = ds.get();
  int gray = -1;
  for (int64_t i = 0; i < ds->size() && gray < 0; ++i) {
    const std::string dir = cfg.root + "/val/" + folder->class_names()[static_cast<size_t>(i)];
    for (const auto& e : fs::directory_iterator(dir)) {
      if (cv::imread(e.path().string(), cv::IMREAD_UNCHANGED).channels() == 1)
        gray = static_cast<int>(i);
    }
  }
  ASSERT_GE(gray, 0) << "the sample should hold one grayscale image";
  std::vector<float> img(3 * 224 * 224);
  ds->load(gray, false, 0, img.data());
  const auto mean = default_mean("folder"), sd = default_std("folder");
  const int64_t plane = 224 * 224;
  for (int64_t p = 0; p < plane; p += 97) {
    const float r = img[p] * sd[0] + mean[0], g = img[plane + p] * sd[1] + mean[1],
                b = img[2 * plane + p] * sd[2] + mean[2];
    ASSERT_NEAR(r, g, 1e-5f);
    ASSERT_NEAR(g, b, 1e-5f);
  }
}

// Throughput of the loader alone (no compute), 1 worker, augmentation on. A measurement, not a
// check: run with --gtest_also_run_disabled_tests --gtest_filter=*Throughput*.
TEST(RealData, DISABLED_LoaderThroughput) {
  SKIP_WITHOUT("cifar10-jpeg.tar.gz");
  DataConfig cfg;
  auto train = open_dataset(cfg, Split::Train);
  LoaderOptions opt;  // batch 128, shuffle, augment, 1 worker, prefetch 3
  BatchLoader loader(*train, opt);
  Batch batch;
  for (int epoch = 0; epoch < 2; ++epoch) {
    loader.start_epoch(epoch);
    const double t0 = wall_seconds();
    int64_t n = 0;
    while (loader.next(batch)) n += batch.size();
    const double dt = wall_seconds() - t0;
    std::printf("cifar10 train epoch %d: %lld images in %.2f s = %.0f images/s\n", epoch,
                static_cast<long long>(n), dt, n / dt);
    EXPECT_EQ(n, 50000 / 128 * 128);
  }

  DataConfig icfg;
  icfg.dataset = "folder";
  icfg.root = imagenet_sample_root();
  icfg.train_split = "val";
  icfg.image_size = 224;
  auto inet = open_dataset(icfg, Split::Train);
  opt.batch_size = 25;
  BatchLoader iloader(*inet, opt);
  int64_t n = 0;
  const double t0 = wall_seconds();
  for (int epoch = 0; epoch < 3; ++epoch) {
    iloader.start_epoch(epoch);
    while (iloader.next(batch)) n += batch.size();
  }
  const double dt = wall_seconds() - t0;
  std::printf("imagenet sample, random-resized crop 224: %.0f images/s\n", n / dt);
}

}  // namespace
}  // namespace pconv::data
