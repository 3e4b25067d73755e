// ImageNet-layout folders: <split_dir>/<class>/<image>.{jpg,jpeg,png} (any case). Classes are the
// sub-folders sorted by name (byte order); label i is the i-th class.
#pragma once

#include <cstdint>
#include <opencv2/core.hpp>
#include <string>
#include <vector>

namespace pconv::data {

struct FolderIndex {
  std::string dir;  // the split folder that was scanned
  std::vector<std::string> class_names;
  std::vector<std::string> files;  // sorted by class, then by file name
  std::vector<int32_t> labels;
  // Identifies the folder's content without reading it: a hash over (relative path, size,
  // mtime) of every image, their count and total size. A changed file changes it.
  uint64_t fingerprint = 0;
  uint64_t total_bytes = 0;

  int64_t size() const { return static_cast<int64_t>(files.size()); }
};

bool is_image_file(const std::string& name);

// Lists the images. Errors name the folder: missing, no class folders, or a class without images.
// `fingerprint` false skips the per-file stat (1.3 M of them for ImageNet) and leaves
// fingerprint and total_bytes 0: for folders that are never cached.
FolderIndex scan_image_folder(const std::string& split_dir, bool fingerprint = true);

// Decodes to 3-channel RGB uint8 (grayscale is replicated, alpha dropped, EXIF orientation
// ignored as PIL does). Throws pconv::Error naming the file when it cannot be read or decoded.
cv::Mat decode_image(const std::string& path);

}  // namespace pconv::data
