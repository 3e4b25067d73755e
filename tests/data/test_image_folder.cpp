// The image-folder reader on a small folder of PNG and JPEG files written here.
#include <gtest/gtest.h>

#include "error_of.h"

#include <functional>

#include "core/error.h"
#include "data/batch_loader.h"
#include "data/dataset.h"
#include "data/image_folder.h"
#include "data_test_util.h"

namespace pconv::data {
namespace {

using testing::pattern_image;
using testing::ScratchDir;
using testing::write_image;

// <root>/train/{bird, ant}/... with mixed-case extensions, a grayscale PNG and a stray text file.
void make_folder(const ScratchDir& d) {
  write_image(d / "train/bird/b1.png", pattern_image(20, 12, 1));
  write_image(d / "train/bird/b0.PNG", pattern_image(20, 12, 2));
  write_image(d / "train/bird/b2.JpEg", pattern_image(40, 30, 3));
  write_image(d / "train/ant/a0.jpg", pattern_image(17, 23, 4));
  cv::Mat gray(10, 14, CV_8UC1);
  for (int y = 0; y < 10; ++y)
    for (int x = 0; x < 14; ++x) gray.at<uint8_t>(y, x) = static_cast<uint8_t>(y * 20 + x);
  write_image(d / "train/ant/gray.png", gray);
  testing::write_bytes(d / "train/ant/notes.txt", "not an image");
}

TEST(ImageFolder, ScansClassesSortedAndImagesOfAnyCase) {
  ScratchDir d("folder-scan");
  make_folder(d);
  const FolderIndex idx = scan_image_folder(d / "train");
  EXPECT_EQ(idx.class_names, (std::vector<std::string>{"ant", "bird"}));
  ASSERT_EQ(idx.size(), 5);
  EXPECT_EQ(idx.labels, (std::vector<int32_t>{0, 0, 1, 1, 1}));
  EXPECT_EQ(idx.files[0], d / "train/ant/a0.jpg");
  EXPECT_EQ(idx.files[2], d / "train/bird/b0.PNG");  // sorted by name within the class
  EXPECT_GT(idx.total_bytes, 0u);
  EXPECT_TRUE(is_image_file("X.JPEG"));
  EXPECT_FALSE(is_image_file("x.gif"));
}

TEST(ImageFolder, DecodesRgbAndGrayscaleToRgb) {
  ScratchDir d("folder-decode");
  make_folder(d);
  const cv::Mat bgr = pattern_image(20, 12, 1);
  const cv::Mat rgb = decode_image(d / "train/bird/b1.png");
  ASSERT_EQ(rgb.type(), CV_8UC3);
  ASSERT_EQ(rgb.size(), bgr.size());
  for (int y = 0; y < 12; ++y)
    for (int x = 0; x < 20; ++x)
      for (int c = 0; c < 3; ++c)
        ASSERT_EQ(rgb.at<cv::Vec3b>(y, x)[c], bgr.at<cv::Vec3b>(y, x)[2 - c]);

  const cv::Mat g = decode_image(d / "train/ant/gray.png");
  ASSERT_EQ(g.type(), CV_8UC3);
  for (int y = 0; y < 10; ++y)
    for (int x = 0; x < 14; ++x)
      for (int c = 0; c < 3; ++c) ASSERT_EQ(g.at<cv::Vec3b>(y, x)[c], y * 20 + x);
}

TEST(ImageFolder, ErrorsNameTheFileOrFolder) {
  ScratchDir d("folder-errors");
  make_folder(d);
  testing::write_bytes(d / "train/ant/broken.jpg", "\xFF\xD8\xFF garbage that is no JPEG");
  std::string msg = error_of([&] { decode_image(d / "train/ant/broken.jpg"); });
  EXPECT_NE(msg.find("broken.jpg"), std::string::npos) << msg;
  EXPECT_NE(msg.find("decode"), std::string::npos) << msg;

  msg = error_of([&] { scan_image_folder(d / "nope"); });
  EXPECT_NE(msg.find("nope"), std::string::npos) << msg;

  std::filesystem::create_directories(d / "empty/ant");
  msg = error_of([&] { scan_image_folder(d / "empty"); });
  EXPECT_NE(msg.find("empty/ant"), std::string::npos) << msg;
}

TEST(ImageFolder, LoaderSurfacesACorruptFileAsAnError) {
  ScratchDir d("folder-corrupt");
  make_folder(d);
  testing::write_bytes(d / "train/bird/b3.jpg", std::string(64, 'x'));
  DataConfig cfg;
  cfg.dataset = "folder";
  cfg.root = d.path();
  cfg.image_size = 16;
  auto ds = open_dataset(cfg, Split::Train);
  ASSERT_EQ(ds->size(), 6);
  LoaderOptions opt;
  opt.batch_size = 6;
  opt.shuffle = false;
  BatchLoader loader(*ds, opt);
  loader.start_epoch(0);
  Batch b;
  const std::string msg = error_of([&] { loader.next(b); });
  EXPECT_NE(msg.find("b3.jpg"), std::string::npos) << msg;
  EXPECT_THROW(loader.next(b), Error);  // needs a new start_epoch
}

TEST(ImageFolder, FolderDatasetShapesAndEvalPath) {
  ScratchDir d("folder-dataset");
  make_folder(d);
  DataConfig cfg;
  cfg.dataset = "folder";
  cfg.root = d.path();
  cfg.test_split = "train";
  cfg.image_size = 8;
  auto ds = open_dataset(cfg, Split::Test);
  EXPECT_FALSE(ds->augments());
  EXPECT_EQ(ds->sample_shape(), (Shape{3, 8, 8}));
  LoaderOptions opt;
  opt.batch_size = 2;
  opt.shuffle = false;
  opt.drop_last = false;
  BatchLoader loader(*ds, opt);
  EXPECT_EQ(loader.batches_per_epoch(), 3);
  loader.start_epoch(0);
  Batch b;
  std::vector<int> sizes;
  while (loader.next(b)) {
    sizes.push_back(b.size());
    EXPECT_EQ(b.images.shape(), (Shape{b.size(), 3, 8, 8}));
  }
  EXPECT_EQ(sizes, (std::vector<int>{2, 2, 1}));
}

TEST(ImageFolder, TrainPathIsARandomResizedCropDrawnFromTheSeed) {
  ScratchDir d("folder-augment");
  make_folder(d);
  DataConfig cfg;
  cfg.dataset = "folder";
  cfg.root = d.path();
  cfg.image_size = 16;
  auto ds = open_dataset(cfg, Split::Train);
  ASSERT_TRUE(ds->augments());
  const int64_t big = 4;  // bird/b2.JpEg, 40x30
  std::vector<float> a(3 * 16 * 16), b(3 * 16 * 16), eval(3 * 16 * 16);
  ds->load(big, true, 11, a.data());
  ds->load(big, true, 11, b.data());
  EXPECT_EQ(a, b) << "same seed, same bits";
  ds->load(big, false, 11, eval.data());
  int differ = 0;
  for (uint64_t seed = 0; seed < 6; ++seed) {
    ds->load(big, true, seed, b.data());
    differ += (b != a) && (b != eval);
  }
  EXPECT_GE(differ, 5) << "crops should vary with the seed";
}

}  // namespace
}  // namespace pconv::data
