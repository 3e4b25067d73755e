// Helpers shared by the data tests: scratch folders and small image files written on the spot.
#pragma once

#include <unistd.h>

#include <cstdint>
#include <filesystem>
#include <fstream>
#include <opencv2/core.hpp>
#include <opencv2/imgcodecs.hpp>
#include <string>
#include <vector>

namespace pconv::data::testing {

// A fresh folder under the build tree, removed at the end of the test.
class ScratchDir {
 public:
  explicit ScratchDir(const std::string& name) {
    path_ =
        std::string(PCONV_BINARY_DIR) + "/test-scratch/" + name + "-" + std::to_string(::getpid());
    std::filesystem::remove_all(path_);
    std::filesystem::create_directories(path_);
  }
  ~ScratchDir() { std::filesystem::remove_all(path_); }
  const std::string& path() const { return path_; }
  std::string operator/(const std::string& rel) const { return path_ + "/" + rel; }

 private:
  std::string path_;
};

// A w x h BGR image whose pixels are a pure function of (seed, y, x, channel).
inline cv::Mat pattern_image(int w, int h, int seed) {
  cv::Mat m(h, w, CV_8UC3);
  for (int y = 0; y < h; ++y) {
    for (int x = 0; x < w; ++x) {
      for (int c = 0; c < 3; ++c) {
        m.at<cv::Vec3b>(y, x)[c] =
            static_cast<uint8_t>((seed * 131 + y * 31 + x * 7 + c * 85) & 255);
      }
    }
  }
  return m;
}

inline void write_image(const std::string& path, const cv::Mat& m) {
  std::filesystem::create_directories(std::filesystem::path(path).parent_path());
  if (!cv::imwrite(path, m)) throw std::runtime_error("test could not write " + path);
}

inline void write_bytes(const std::string& path, const std::string& bytes) {
  std::filesystem::create_directories(std::filesystem::path(path).parent_path());
  std::ofstream(path, std::ios::binary) << bytes;
}

}  // namespace pconv::data::testing
