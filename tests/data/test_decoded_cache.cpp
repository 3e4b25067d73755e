// The decoded-image cache: round trip, staleness when the source changes, damaged files, and a
// cifar10 JPEG-folder root opened twice (second time from the cache).
#include <gtest/gtest.h>

#include <chrono>
#include <filesystem>

#include "core/error.h"
#include "data/cifar_binary.h"
#include "data/dataset.h"
#include "data/decoded_cache.h"
#include "data_test_util.h"

namespace fs = std::filesystem;

namespace pconv::data {
namespace {

using testing::pattern_image;
using testing::ScratchDir;
using testing::write_image;

void make_pngs(const ScratchDir& d, int w, int h) {
  for (int c = 0; c < 3; ++c)
    for (int i = 0; i < 4; ++i)
      write_image(d / ("src/class" + std::to_string(c) + "/" + std::to_string(i) + ".png"),
                  pattern_image(w, h, c * 10 + i));
}

TEST(DecodedCache, RoundTripIsExact) {
  ScratchDir d("cache-roundtrip");
  make_pngs(d, 6, 5);
  const FolderIndex idx = scan_image_folder(d / "src");
  const std::string path = decoded_cache_path(d / "cache", idx.dir);
  EXPECT_EQ(path.rfind(d / "cache/decoded/", 0), 0u) << path;
  EXPECT_FALSE(read_decoded_cache(path, idx).has_value());

  const ImageSet set = load_folder_cached(idx, path);  // decodes and writes
  ASSERT_TRUE(fs::exists(path));
  ASSERT_EQ(set.size(), 12);
  EXPECT_EQ(set.height, 5);
  EXPECT_EQ(set.width, 6);
  // Pixels are the PNGs' in RGB order.
  const cv::Mat bgr = pattern_image(6, 5, 2 * 10 + 3);
  const uint8_t* img = set.image(11);
  for (int y = 0; y < 5; ++y)
    for (int x = 0; x < 6; ++x)
      for (int c = 0; c < 3; ++c)
        ASSERT_EQ(img[(y * 6 + x) * 3 + c], bgr.at<cv::Vec3b>(y, x)[2 - c]);

  const auto back = read_decoded_cache(path, idx);
  ASSERT_TRUE(back.has_value());
  EXPECT_EQ(back->pixels, set.pixels);
  EXPECT_EQ(back->labels, set.labels);
  EXPECT_EQ(back->class_names, set.class_names);
  EXPECT_EQ(back->height, 5);
  for (const auto& e : fs::directory_iterator(d / "cache/decoded"))
    EXPECT_EQ(e.path().string().find(".tmp"), std::string::npos) << "temporary file left behind";
}

TEST(DecodedCache, ChangedSourceOrDamagedFileIsNotUsed) {
  ScratchDir d("cache-stale");
  make_pngs(d, 6, 5);
  FolderIndex idx = scan_image_folder(d / "src");
  const std::string path = d / "c.pcd";
  write_decoded_cache(path, decode_folder(idx, 2), idx);
  ASSERT_TRUE(read_decoded_cache(path, idx).has_value());

  // Same size, different content and mtime.
  write_image(d / "src/class1/2.png", pattern_image(6, 5, 99));
  fs::last_write_time(d / "src/class1/2.png",
                      fs::last_write_time(d / "src/class1/2.png") + std::chrono::seconds(5));
  const FolderIndex changed = scan_image_folder(d / "src");
  EXPECT_NE(changed.fingerprint, idx.fingerprint);
  EXPECT_FALSE(read_decoded_cache(path, changed).has_value());

  // A truncated file is rejected rather than read short.
  write_decoded_cache(path, decode_folder(changed, 1), changed);
  fs::resize_file(path, fs::file_size(path) - 7);
  EXPECT_FALSE(read_decoded_cache(path, changed).has_value());
  testing::write_bytes(path, "garbage");
  EXPECT_FALSE(read_decoded_cache(path, changed).has_value());
}

TEST(DecodedCache, MixedSizesNameTheOddFile) {
  ScratchDir d("cache-sizes");
  make_pngs(d, 6, 5);
  write_image(d / "src/class2/odd.png", pattern_image(7, 5, 1));
  try {
    decode_folder(scan_image_folder(d / "src"), 2);
    FAIL() << "expected an error";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("odd.png"), std::string::npos) << e.what();
  }
}

TEST(DecodedCache, Cifar10FolderRootIsDecodedOnceThenCached) {
  ScratchDir d("cache-cifar");
  for (const auto& name : cifar10_class_names())
    for (int i = 0; i < 2; ++i) {
      write_image(d / ("cifar10-jpeg/train/" + name + "/" + std::to_string(i) + ".png"),
                  pattern_image(32, 32, i));
      write_image(d / ("cifar10-jpeg/test/" + name + "/" + std::to_string(i) + ".png"),
                  pattern_image(32, 32, i + 5));
    }
  DataConfig cfg;
  cfg.root = d.path();  // one folder above cifar10-jpeg/: auto-detected
  cfg.cache_dir = d / "cache";
  auto first = open_dataset(cfg, Split::Train);
  ASSERT_EQ(first->size(), 20);
  const std::string path = decoded_cache_path(cfg.cache_dir, d / "cifar10-jpeg/train");
  ASSERT_TRUE(fs::exists(path));
  const auto written = fs::last_write_time(path);
  auto second = open_dataset(cfg, Split::Train);
  EXPECT_EQ(fs::last_write_time(path), written) << "second open rewrote the cache";
  std::vector<float> a(3 * 32 * 32), b(3 * 32 * 32);
  for (int64_t i = 0; i < 20; ++i) {
    first->load(i, true, 5, a.data());
    second->load(i, true, 5, b.data());
    ASSERT_EQ(a, b);
    EXPECT_EQ(first->label(i), second->label(i));
  }

  // Class folders other than CIFAR-10's are refused, naming the folder.
  fs::rename(d / "cifar10-jpeg/test/truck", d / "cifar10-jpeg/test/lorry");
  try {
    open_dataset(cfg, Split::Test);
    FAIL() << "expected an error";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("cifar10-jpeg/test"), std::string::npos) << e.what();
  }
}

}  // namespace
}  // namespace pconv::data
