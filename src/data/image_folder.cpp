#include "data/image_folder.h"

#include <sys/stat.h>

#include <algorithm>
#include <cctype>
#include <filesystem>
#include <fstream>
#include <opencv2/imgcodecs.hpp>
#include <opencv2/imgproc.hpp>

#include "core/error.h"
#include "data/rng.h"

namespace fs = std::filesystem;

namespace pconv::data {

bool is_image_file(const std::string& name) {
  const auto dot = name.rfind('.');
  if (dot == std::string::npos) return false;
  std::string ext = name.substr(dot + 1);
  for (char& ch : ext) ch = static_cast<char>(std::tolower(static_cast<unsigned char>(ch)));
  return ext == "jpg" || ext == "jpeg" || ext == "png";
}

namespace {

uint64_t hash_string(const std::string& s) {  // FNV-1a
  uint64_t h = 0xcbf29ce484222325ull;
  for (unsigned char ch : s) h = (h ^ ch) * 0x100000001b3ull;
  return h;
}

}  // namespace

FolderIndex scan_image_folder(const std::string& split_dir, bool fingerprint) {
  FolderIndex idx;
  idx.dir = split_dir;
  std::error_code ec;
  PCONV_CHECK(fs::is_directory(split_dir, ec), split_dir,
              ": image folder not found (expected <root>/<split>/<class>/*.jpg|jpeg|png)");
  for (const auto& e : fs::directory_iterator(split_dir)) {
    if (e.is_directory()) idx.class_names.push_back(e.path().filename().string());
  }
  std::sort(idx.class_names.begin(), idx.class_names.end());
  PCONV_CHECK(!idx.class_names.empty(), split_dir,
              ": no class folders (expected <split>/<class>/*.jpg|jpeg|png)");

  uint64_t h = 0;
  for (size_t c = 0; c < idx.class_names.size(); ++c) {
    const std::string class_dir = split_dir + "/" + idx.class_names[c];
    std::vector<std::string> names;
    for (const auto& e : fs::directory_iterator(class_dir)) {
      const std::string name = e.path().filename().string();
      if (e.is_regular_file() && is_image_file(name)) names.push_back(name);
    }
    PCONV_CHECK(!names.empty(), class_dir, ": class folder holds no .jpg/.jpeg/.png images");
    std::sort(names.begin(), names.end());
    for (const auto& name : names) {
      const std::string path = class_dir + "/" + name;
      if (fingerprint) {
        struct stat st {};  // one stat per file: size and mtime together
        PCONV_CHECK(::stat(path.c_str(), &st) == 0, path, ": cannot stat image file");
        const auto size = static_cast<uint64_t>(st.st_size);
        const auto mtime = static_cast<uint64_t>(st.st_mtim.tv_sec) * 1000000000ull +
                           static_cast<uint64_t>(st.st_mtim.tv_nsec);
        h = mix_seed(h ^ hash_string(idx.class_names[c] + "/" + name), size, mtime);
        idx.total_bytes += size;
      }
      idx.files.push_back(path);
      idx.labels.push_back(static_cast<int32_t>(c));
    }
  }
  if (fingerprint) idx.fingerprint = mix_seed(h, idx.files.size(), idx.total_bytes);
  return idx;
}

cv::Mat decode_image(const std::string& path) {
  std::ifstream in(path, std::ios::binary | std::ios::ate);
  PCONV_CHECK(in, path, ": cannot open image file");
  const auto size = static_cast<size_t>(in.tellg());
  std::vector<uint8_t> bytes(size);
  in.seekg(0);
  PCONV_CHECK(size > 0 && in.read(reinterpret_cast<char*>(bytes.data()),
                                  static_cast<std::streamsize>(size)),
              path, ": cannot read image file (empty or unreadable)");
  cv::Mat bgr;
  try {
    bgr = cv::imdecode(bytes, cv::IMREAD_COLOR | cv::IMREAD_IGNORE_ORIENTATION);
  } catch (const cv::Exception& e) {
    throw Error(cat(path, ": cannot decode image (", e.what(), ")"));
  }
  PCONV_CHECK(!bgr.empty() && bgr.type() == CV_8UC3, path,
              ": cannot decode image (corrupt, truncated or not a JPEG/PNG)");
  cv::Mat rgb;
  cv::cvtColor(bgr, rgb, cv::COLOR_BGR2RGB);
  return rgb;
}

}  // namespace pconv::data
