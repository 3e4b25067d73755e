#include "data/transforms.h"

#include <algorithm>
#include <cmath>
#include <opencv2/imgproc.hpp>

#include "core/error.h"

namespace pconv::data {

Normalizer::Normalizer(const std::vector<float>& mean, const std::vector<float>& std) {
  PCONV_CHECK(mean.size() == 3 && std.size() == 3, "normalisation needs 3 means and 3 stds");
  for (int c = 0; c < 3; ++c) {
    scale[c] = 1.f / (255.f * std[static_cast<size_t>(c)]);
    bias[c] = -mean[static_cast<size_t>(c)] / std[static_cast<size_t>(c)];
  }
}

ShiftFlip draw_shift_flip(Rng& rng, int pad) {
  ShiftFlip t;
  t.dy = rng.between(-pad, pad);
  t.dx = rng.between(-pad, pad);
  t.flip = rng.coin();
  return t;
}

void shift_flip_to_chw(const uint8_t* src, int h, int w, const ShiftFlip& t, const Normalizer& n,
                       float* out) {
  const int64_t plane = int64_t{h} * w;
  for (int c = 0; c < 3; ++c) {
    const float zero = n(c, 0);
    float* o = out + c * plane;
    for (int y = 0; y < h; ++y) {
      const int sy = y + t.dy;
      float* row = o + int64_t{y} * w;
      if (sy < 0 || sy >= h) {
        std::fill(row, row + w, zero);
        continue;
      }
      const uint8_t* srow = src + int64_t{sy} * w * 3 + c;
      for (int x = 0; x < w; ++x) {
        const int sx = (t.flip ? w - 1 - x : x) + t.dx;
        row[x] = (sx < 0 || sx >= w) ? zero : n(c, srow[3 * sx]);
      }
    }
  }
}

CropBox draw_random_resized_crop(int width, int height, Rng& rng) {
  const double area = double(width) * height;
  const double log_lo = std::log(3.0 / 4.0), log_hi = std::log(4.0 / 3.0);
  CropBox b;
  bool found = false;
  for (int attempt = 0; attempt < 10 && !found; ++attempt) {
    const double target = area * rng.uniform(0.08, 1.0);
    const double ratio = std::exp(rng.uniform(log_lo, log_hi));
    const int w = static_cast<int>(std::lround(std::sqrt(target * ratio)));
    const int h = static_cast<int>(std::lround(std::sqrt(target / ratio)));
    if (w > 0 && h > 0 && w <= width && h <= height) {
      b.w = w;
      b.h = h;
      b.x = rng.between(0, width - w);
      b.y = rng.between(0, height - h);
      found = true;
    }
  }
  if (!found) {  // centre crop with the ratio clamped into [3/4, 4/3]
    const double in_ratio = double(width) / height;
    if (in_ratio < 3.0 / 4.0) {
      b.w = width;
      b.h = std::min(height, static_cast<int>(std::lround(width / (3.0 / 4.0))));
    } else if (in_ratio > 4.0 / 3.0) {
      b.h = height;
      b.w = std::min(width, static_cast<int>(std::lround(height * (4.0 / 3.0))));
    } else {
      b.w = width;
      b.h = height;
    }
    b.x = (width - b.w) / 2;
    b.y = (height - b.h) / 2;
  }
  b.flip = rng.coin();
  return b;
}

namespace {

// Area averaging when shrinking (an antialiased resize, as PIL's), bilinear when enlarging.
void resize_to(const cv::Mat& src, cv::Mat& dst, int w, int h) {
  const bool shrink = w < src.cols && h < src.rows;
  cv::resize(src, dst, cv::Size(w, h), 0, 0, shrink ? cv::INTER_AREA : cv::INTER_LINEAR);
}

}  // namespace

void rgb_to_chw(const cv::Mat& rgb, bool flip, const Normalizer& n, float* out) {
  const int h = rgb.rows, w = rgb.cols;
  const int64_t plane = int64_t{h} * w;
  for (int y = 0; y < h; ++y) {
    const uint8_t* row = rgb.ptr<uint8_t>(y);
    for (int c = 0; c < 3; ++c) {
      float* o = out + c * plane + int64_t{y} * w;
      if (flip) {
        for (int x = 0; x < w; ++x) o[w - 1 - x] = n(c, row[3 * x + c]);
      } else {
        for (int x = 0; x < w; ++x) o[x] = n(c, row[3 * x + c]);
      }
    }
  }
}

void resized_crop_to_chw(const cv::Mat& rgb, const CropBox& box, int size, const Normalizer& n,
                         float* out) {
  cv::Mat resized;
  resize_to(rgb(cv::Rect(box.x, box.y, box.w, box.h)), resized, size, size);
  rgb_to_chw(resized, box.flip, n, out);
}

void resize_center_crop_to_chw(const cv::Mat& rgb, int size, const Normalizer& n, float* out) {
  const int shorter = static_cast<int>(std::lround(256.0 * size / 224.0));
  int w, h;
  if (rgb.cols <= rgb.rows) {
    w = shorter;
    h = static_cast<int>(std::lround(double(rgb.rows) * shorter / rgb.cols));
  } else {
    h = shorter;
    w = static_cast<int>(std::lround(double(rgb.cols) * shorter / rgb.rows));
  }
  cv::Mat resized;
  resize_to(rgb, resized, w, h);
  const cv::Rect crop((w - size) / 2, (h - size) / 2, size, size);
  rgb_to_chw(resized(crop), false, n, out);
}

}  // namespace pconv::data
