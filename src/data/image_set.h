// Decoded images of one fixed size held in memory: uint8 pixels, HWC, RGB, image after image.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

namespace pconv::data {

struct ImageSet {
  int height = 0, width = 0, channels = 3;
  std::vector<uint8_t> pixels;  // size() * height * width * channels, HWC per image
  std::vector<int32_t> labels;
  std::vector<std::string> class_names;

  int64_t size() const { return static_cast<int64_t>(labels.size()); }
  int64_t image_bytes() const { return int64_t{height} * width * channels; }
  const uint8_t* image(int64_t i) const { return pixels.data() + i * image_bytes(); }
};

// CIFAR-10's classes in its label order (alphabetical, so image folders sort the same way).
const std::vector<std::string>& cifar10_class_names();

}  // namespace pconv::data
