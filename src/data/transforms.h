// Preprocessing of one image into the network's input: crops, flips, resizes, and per-channel
// normalisation to float CHW. Random choices are drawn separately (draw_*), so the pixel
// functions are pure and testable.
#pragma once

#include <cstdint>
#include <opencv2/core.hpp>
#include <vector>

#include "data/rng.h"

namespace pconv::data {

// x in [0,255] -> (x/255 - mean[c]) / std[c], as one multiply-add per value.
struct Normalizer {
  Normalizer(const std::vector<float>& mean, const std::vector<float>& std);
  float scale[3], bias[3];
  float operator()(int c, uint8_t v) const { return static_cast<float>(v) * scale[c] + bias[c]; }
};

// CIFAR augmentation: a crop of the image zero-padded by `pad` on every side, whose top-left
// corner is moved by (dy, dx) in [-pad, pad] from the centred position, then a horizontal flip.
struct ShiftFlip {
  int dy = 0, dx = 0;
  bool flip = false;
};
ShiftFlip draw_shift_flip(Rng& rng, int pad);

// out[c][y][x] = norm(src[y + dy][x' + dx][c]) with x' = flip ? w-1-x : x; pixels outside the
// image are 0 (before normalisation, as torchvision pads). src is HWC RGB uint8, out is CHW.
void shift_flip_to_chw(const uint8_t* src, int h, int w, const ShiftFlip& t, const Normalizer& n,
                       float* out);

// Inception-style random-resized crop (torchvision's RandomResizedCrop): area fraction in
// [0.08, 1], aspect ratio log-uniform in [3/4, 4/3], 10 tries, else the centre crop of the
// clamped ratio. Plus a coin for the horizontal flip.
struct CropBox {
  int x = 0, y = 0, w = 0, h = 0;
  bool flip = false;
};
CropBox draw_random_resized_crop(int width, int height, Rng& rng);

// Training path for image folders: crop `box`, resize to size x size, flip, normalise.
void resized_crop_to_chw(const cv::Mat& rgb, const CropBox& box, int size, const Normalizer& n,
                         float* out);

// Evaluation path: resize the shorter side to round(256 * size / 224), centre crop size x size.
void resize_center_crop_to_chw(const cv::Mat& rgb, int size, const Normalizer& n, float* out);

// Writes a size x size RGB image as normalised CHW, mirrored when `flip`.
void rgb_to_chw(const cv::Mat& rgb, bool flip, const Normalizer& n, float* out);

}  // namespace pconv::data
