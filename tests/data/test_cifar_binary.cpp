// The CIFAR-10 binary reader on small .bin files written here.
#include <gtest/gtest.h>

#include <fstream>

#include "core/error.h"
#include "data/cifar_binary.h"
#include "data/dataset.h"
#include "data_test_util.h"

namespace pconv::data {
namespace {

using testing::ScratchDir;

// Pixel value of record r, channel c, row y, column x in the file (CHW order).
uint8_t pix(int r, int c, int y, int x) {
  return static_cast<uint8_t>(r * 37 + c * 101 + y * 5 + x * 3);
}

void write_records(const std::string& path, int first, int count) {
  std::ofstream out(path, std::ios::binary);
  for (int r = first; r < first + count; ++r) {
    out.put(static_cast<char>(r % 10));
    for (int c = 0; c < 3; ++c)
      for (int y = 0; y < 32; ++y)
        for (int x = 0; x < 32; ++x) out.put(static_cast<char>(pix(r, c, y, x)));
  }
}

TEST(CifarBinary, ReadsLabelsAndPixelsAsHwc) {
  ScratchDir dir("cifar-bin");
  write_records(dir / "a.bin", 0, 3);
  write_records(dir / "b.bin", 3, 2);
  const ImageSet set = read_cifar_binary({dir / "a.bin", dir / "b.bin"});
  ASSERT_EQ(set.size(), 5);
  EXPECT_EQ(set.height, 32);
  EXPECT_EQ(set.width, 32);
  EXPECT_EQ(set.class_names, cifar10_class_names());
  for (int r = 0; r < 5; ++r) {
    EXPECT_EQ(set.labels[r], r % 10);
    const uint8_t* img = set.image(r);
    for (int y = 0; y < 32; ++y)
      for (int x = 0; x < 32; ++x)
        for (int c = 0; c < 3; ++c)
          ASSERT_EQ(img[(y * 32 + x) * 3 + c], pix(r, c, y, x))
              << "r" << r << " y" << y << " x" << x;
  }
}

TEST(CifarBinary, ErrorsNameTheFile) {
  ScratchDir dir("cifar-bin-bad");
  testing::write_bytes(dir / "short.bin", std::string(100, '\0'));
  try {
    read_cifar_binary({dir / "short.bin"});
    FAIL() << "expected an error";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("short.bin"), std::string::npos) << e.what();
    EXPECT_NE(std::string(e.what()).find("3073"), std::string::npos) << e.what();
  }
  std::string rec(3073, '\0');
  rec[0] = 12;
  testing::write_bytes(dir / "label.bin", rec);
  EXPECT_THROW(read_cifar_binary({dir / "label.bin"}), Error);
  EXPECT_THROW(read_cifar_binary({dir / "missing.bin"}), Error);
}

TEST(CifarBinary, OpenDatasetDetectsTheNestedRelease) {
  ScratchDir dir("cifar-bin-release");
  const std::string rel = dir / "cifar-10-batches-bin";
  std::filesystem::create_directories(rel);
  for (int i = 1; i <= 5; ++i)
    write_records(rel + "/data_batch_" + std::to_string(i) + ".bin", i * 10, 4);
  write_records(rel + "/test_batch.bin", 0, 6);

  DataConfig cfg;
  cfg.root = dir.path();
  cfg.cache_dir = dir / "cache";
  auto train = open_dataset(cfg, Split::Train);
  auto test = open_dataset(cfg, Split::Test);
  EXPECT_EQ(train->size(), 20);
  EXPECT_EQ(test->size(), 6);
  EXPECT_EQ(train->num_classes(), 10);
  EXPECT_EQ(train->sample_shape(), (Shape{3, 32, 32}));
  EXPECT_TRUE(train->augments());
  EXPECT_FALSE(test->augments());
  EXPECT_EQ(train->label(5), 11 % 10);  // the second record of data_batch_2 (record 11)

  // Evaluation path: identity, normalised with CIFAR-10's default statistics.
  std::vector<float> out(3 * 32 * 32);
  test->load(4, false, 0, out.data());
  const auto mean = default_mean("cifar10"), sd = default_std("cifar10");
  for (int c = 0; c < 3; ++c)
    for (int y = 0; y < 32; y += 7)
      for (int x = 0; x < 32; x += 5)
        EXPECT_NEAR(out[(c * 32 + y) * 32 + x], (pix(4, c, y, x) / 255.f - mean[c]) / sd[c], 1e-5f);
}

}  // namespace
}  // namespace pconv::data
