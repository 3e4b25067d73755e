// Augmentation and preprocessing: crop offsets, exact mirroring, normalisation values, and the
// random-resized crop's geometry.
#include <gtest/gtest.h>

#include <cmath>
#include <set>

#include "data/memory_dataset.h"
#include "data/transforms.h"

namespace pconv::data {
namespace {

const std::vector<float> kMean = {0.5f, 0.25f, 0.125f}, kStd = {0.5f, 0.25f, 2.0f};

// 32x32 HWC image with all-distinct (y, x) per channel so a crop offset is recoverable.
ImageSet one_image_set(int n = 1) {
  ImageSet s;
  s.height = s.width = 32;
  s.class_names = {"a", "b"};
  for (int i = 0; i < n; ++i) {
    s.labels.push_back(i % 2);
    for (int y = 0; y < 32; ++y)
      for (int x = 0; x < 32; ++x)
        for (int c = 0; c < 3; ++c)
          s.pixels.push_back(static_cast<uint8_t>((y * 8 + x * 3 + c * 50 + i) % 251));
  }
  return s;
}

TEST(Transforms, NormalisationValues) {
  const Normalizer n(kMean, kStd);
  for (int c = 0; c < 3; ++c)
    for (int v : {0, 1, 77, 128, 255})
      EXPECT_NEAR(n(c, static_cast<uint8_t>(v)), (v / 255.f - kMean[c]) / kStd[c], 1e-6f);
}

TEST(Transforms, IdentityAndFlipMirrorExactly) {
  const ImageSet s = one_image_set();
  const Normalizer n(kMean, kStd);
  std::vector<float> plain(3 * 32 * 32), flipped(3 * 32 * 32);
  shift_flip_to_chw(s.image(0), 32, 32, {0, 0, false}, n, plain.data());
  shift_flip_to_chw(s.image(0), 32, 32, {0, 0, true}, n, flipped.data());
  for (int c = 0; c < 3; ++c)
    for (int y = 0; y < 32; ++y)
      for (int x = 0; x < 32; ++x) {
        const size_t o = static_cast<size_t>((c * 32 + y) * 32 + x);
        ASSERT_EQ(plain[o], n(c, s.image(0)[(y * 32 + x) * 3 + c]));
        ASSERT_EQ(flipped[o], plain[static_cast<size_t>((c * 32 + y) * 32 + 31 - x)]);
      }
}

TEST(Transforms, ShiftMovesPixelsAndPadsWithZero) {
  const ImageSet s = one_image_set();
  const Normalizer n(kMean, kStd);
  std::vector<float> out(3 * 32 * 32);
  const ShiftFlip t{-3, 4, false};
  shift_flip_to_chw(s.image(0), 32, 32, t, n, out.data());
  for (int c = 0; c < 3; ++c)
    for (int y = 0; y < 32; ++y)
      for (int x = 0; x < 32; ++x) {
        const int sy = y - 3, sx = x + 4;
        const bool inside = sy >= 0 && sy < 32 && sx >= 0 && sx < 32;
        const float want = inside ? n(c, s.image(0)[(sy * 32 + sx) * 3 + c]) : n(c, 0);
        ASSERT_EQ(out[static_cast<size_t>((c * 32 + y) * 32 + x)], want)
            << c << " " << y << " " << x;
      }
}

TEST(Transforms, DrawnShiftsCoverExactlyPlusMinusFour) {
  std::set<int> dys, dxs;
  int flips = 0;
  for (uint64_t seed = 0; seed < 4000; ++seed) {
    Rng rng(seed);
    const ShiftFlip t = draw_shift_flip(rng, 4);
    dys.insert(t.dy);
    dxs.insert(t.dx);
    flips += t.flip;
  }
  EXPECT_EQ(dys, (std::set<int>{-4, -3, -2, -1, 0, 1, 2, 3, 4}));
  EXPECT_EQ(dxs, dys);
  EXPECT_NEAR(flips / 4000.0, 0.5, 0.05);
}

// The dataset's augmented output matches exactly one (dy, dx, flip) with |dy|, |dx| <= 4.
TEST(Transforms, MemoryDatasetAugmentationIsAShiftFlipWithinFour) {
  DataConfig cfg;
  cfg.mean = kMean;
  cfg.std = kStd;
  const MemoryDataset ds(one_image_set(), cfg, true, "test");
  const Normalizer n(kMean, kStd);
  std::vector<float> got(3 * 32 * 32), cand(3 * 32 * 32), again(3 * 32 * 32);
  for (uint64_t seed = 0; seed < 20; ++seed) {
    ds.load(0, true, seed, got.data());
    ds.load(0, true, seed, again.data());
    EXPECT_EQ(got, again) << "same seed, same bits";
    int matches = 0;
    for (int dy = -6; dy <= 6; ++dy)
      for (int dx = -6; dx <= 6; ++dx)
        for (bool flip : {false, true}) {
          shift_flip_to_chw(ds.images().image(0), 32, 32, {dy, dx, flip}, n, cand.data());
          if (cand == got) {
            ++matches;
            EXPECT_LE(std::abs(dy), 4);
            EXPECT_LE(std::abs(dx), 4);
          }
        }
    EXPECT_EQ(matches, 1) << "seed " << seed;
  }
  ds.load(0, false, 7, got.data());
  shift_flip_to_chw(ds.images().image(0), 32, 32, {0, 0, false}, n, cand.data());
  EXPECT_EQ(got, cand) << "no augmentation: the image itself";
}

TEST(Transforms, RandomResizedCropStaysInsideWithTorchvisionRanges) {
  for (auto [w, h] : {std::pair{500, 375}, std::pair{64, 300}, std::pair{224, 224}}) {
    for (uint64_t seed = 0; seed < 500; ++seed) {
      Rng rng(seed);
      const CropBox b = draw_random_resized_crop(w, h, rng);
      ASSERT_GE(b.x, 0);
      ASSERT_GE(b.y, 0);
      ASSERT_GT(b.w, 0);
      ASSERT_GT(b.h, 0);
      ASSERT_LE(b.x + b.w, w);
      ASSERT_LE(b.y + b.h, h);
      const double area = double(b.w) * b.h / (double(w) * h);
      const double ratio = double(b.w) / b.h;
      const bool fallback = area > 0.99;  // the whole image (clamped ratio) after 10 misses
      if (!fallback) {
        EXPECT_GE(area, 0.08 * 0.9);
        EXPECT_GE(ratio, 0.75 * 0.9);
        EXPECT_LE(ratio, 4.0 / 3.0 * 1.1);
      }
    }
  }
}

TEST(Transforms, ResizeCenterCropTakesTheCentre) {
  // 256 x 300 at size 224: the shorter side is already 256, so no resampling; the crop starts at
  // ((256-224)/2, (300-224)/2) = (16, 38).
  cv::Mat rgb(300, 256, CV_8UC3);
  for (int y = 0; y < 300; ++y)
    for (int x = 0; x < 256; ++x)
      rgb.at<cv::Vec3b>(y, x) = cv::Vec3b(uint8_t(x), uint8_t(y % 256), uint8_t((x + y) % 256));
  const Normalizer n(kMean, kStd);
  std::vector<float> out(3 * 224 * 224);
  resize_center_crop_to_chw(rgb, 224, n, out.data());
  for (int y = 0; y < 224; y += 13)
    for (int x = 0; x < 224; x += 11)
      for (int c = 0; c < 3; ++c)
        ASSERT_EQ(out[static_cast<size_t>((c * 224 + y) * 224 + x)],
                  n(c, rgb.at<cv::Vec3b>(y + 38, x + 16)[c]));
}

TEST(Transforms, ResizeCenterCropOfAConstantImageIsConstant) {
  const cv::Mat rgb(123, 457, CV_8UC3, cv::Scalar(10, 200, 90));
  const Normalizer n(kMean, kStd);
  std::vector<float> out(3 * 64 * 64);
  resize_center_crop_to_chw(rgb, 64, n, out.data());
  for (int c = 0; c < 3; ++c)
    for (int p = 0; p < 64 * 64; ++p)
      ASSERT_NEAR(out[static_cast<size_t>(c * 64 * 64 + p)],
                  n(c, c == 0   ? 10
                       : c == 1 ? 200
                                : 90),
                  1e-6f);
}

}  // namespace
}  // namespace pconv::data
