// Finding CIFAR-10 on disk: a given root in either layout, or (root empty) the extracted copy in
// the cache, the shared JPEG tarball (extracted and verified on first use), or a download of the
// official binary release. datasets/prepare_cifar10.sh does the same extraction from a shell.
#pragma once

#include <functional>
#include <string>
#include <vector>

#include "data/data_config.h"

namespace pconv::data {

constexpr const char* kCifarJpegTarball = "cifar10-jpeg.tar.gz";
constexpr const char* kCifarJpegSha256 =
    "efac85c8ed52f4ead1e1f1b670d8dcf435d551fccebdd8b6365e0a01a504f3a4";
constexpr const char* kCifarJpegDir = "cifar10-jpeg";            // the tarball's top folder
constexpr const char* kCifarBinaryDir = "cifar-10-batches-bin";  // the official release's
constexpr const char* kCifarBinaryUrl = "https://www.cs.toronto.edu/~kriz/cifar-10-binary.tar.gz";
constexpr const char* kCifarBinaryMd5 = "c32a1d4ab5d03f1284b67883e8d87530";  // as published

struct CifarLocation {
  enum class Layout { Binary, JpegFolders } layout;
  std::string dir;  // Binary: holds data_batch_*.bin; JpegFolders: holds <split>/<class>/*.jpg
};

// `root` holding either layout (itself or one folder down); errors say what was expected.
CifarLocation detect_cifar10_layout(const std::string& root, const std::string& train_split);

// Where the shared tarball may be: $PCONV_SHARED_DIR/datasets, then <repo>/../shared/datasets.
std::vector<std::string> cifar10_tarball_candidates();

// Extracts `tarball` (tar -xzf) into a temporary folder under cache_dir, runs `verify` on its
// top folder `top`, then renames that to cache_dir/top: an interrupted or rejected extraction
// never looks complete. Returns cache_dir/top; if another process got there first, uses its copy.
std::string extract_into_cache(const std::string& tarball, const std::string& cache_dir,
                               const std::string& top,
                               const std::function<void(const std::string&)>& verify);

// Verifies the tarball's sha256, extracts it into <cache_dir>/cifar10-jpeg (through a temporary
// folder and a rename), checks 50,000 train / 10,000 test images in CIFAR-10's classes.
std::string extract_cifar10_tarball(const std::string& tarball, const std::string& cache_dir);

// The cifar10 data for cfg: cfg.root if set, else the cache, the tarball, or a download.
CifarLocation locate_cifar10(const DataConfig& cfg);

}  // namespace pconv::data
