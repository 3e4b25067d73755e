#include "data/cifar10_source.h"

#include <unistd.h>

#include <cstdlib>
#include <filesystem>
#include <functional>

#include "core/error.h"
#include "core/log.h"
#include "data/cifar_binary.h"
#include "data/image_folder.h"
#include "data/image_set.h"
#include "data/shell.h"

#ifndef PCONV_SOURCE_DIR
#define PCONV_SOURCE_DIR "."
#endif

namespace fs = std::filesystem;

namespace pconv::data {

namespace {

constexpr int64_t kTrainPerClass = 5000, kTestPerClass = 1000;

// Throws unless `split_dir` holds CIFAR-10's classes with `per_class` images each.
void check_cifar_jpeg_split(const std::string& split_dir, int64_t per_class) {
  const FolderIndex idx = scan_image_folder(split_dir);
  PCONV_CHECK(idx.class_names == cifar10_class_names(), split_dir,
              ": class folders are not CIFAR-10's ten classes");
  std::vector<int64_t> counts(10, 0);
  for (int32_t l : idx.labels) ++counts[static_cast<size_t>(l)];
  for (size_t c = 0; c < 10; ++c) {
    PCONV_CHECK(counts[c] == per_class, split_dir, "/", idx.class_names[c], ": ", counts[c],
                " images, expected ", per_class);
  }
}

void check_cifar_binary_dir(const std::string& dir) {
  for (bool train : {true, false}) {
    for (const auto& f : cifar_binary_files(dir, train)) {
      std::error_code ec;
      const auto size = fs::file_size(f, ec);
      PCONV_CHECK(!ec && size == 10000 * kCifarRecordBytes, f, ": expected ",
                  10000 * kCifarRecordBytes, " bytes (10,000 records)");
    }
  }
}

std::string download_cifar10_binary(const std::string& cache_dir) {
  const std::string archive = cache_dir + "/cifar-10-binary.tar.gz";
  const std::string part = cat(archive, ".part.", ::getpid());
  fs::create_directories(cache_dir);
  std::string cmd;
  if (have_program("curl")) {
    cmd = cat("curl -fsSL --connect-timeout 20 -o ", shell_quote(part), " ", kCifarBinaryUrl);
  } else if (have_program("wget")) {
    cmd = cat("wget -q --timeout=20 -O ", shell_quote(part), " ", kCifarBinaryUrl);
  } else {
    throw Error("neither curl nor wget is installed to download CIFAR-10");
  }
  log_info("downloading ", kCifarBinaryUrl);
  const int rc = run_shell(cmd);
  if (rc != 0) {
    fs::remove(part);
    throw Error(cat("download of ", kCifarBinaryUrl, " failed (exit ", rc, ")"));
  }
  const std::string md5 = file_digest(part, "md5sum");
  if (md5 != kCifarBinaryMd5) {
    fs::remove(part);
    throw Error(
        cat(kCifarBinaryUrl, ": downloaded file has md5 ", md5, ", expected ", kCifarBinaryMd5));
  }
  fs::rename(part, archive);
  return extract_into_cache(archive, cache_dir, kCifarBinaryDir, check_cifar_binary_dir);
}

}  // namespace

std::string extract_into_cache(const std::string& tarball, const std::string& cache_dir,
                               const std::string& top,
                               const std::function<void(const std::string&)>& verify) {
  const std::string final_dir = cache_dir + "/" + top;
  const std::string tmp = cat(cache_dir, "/.extract-", top, "-", ::getpid());
  fs::create_directories(cache_dir);
  fs::remove_all(tmp);
  fs::create_directories(tmp);
  log_info("extracting ", tarball, " into ", final_dir);
  const int rc = run_shell(cat("tar -xzf ", shell_quote(tarball), " -C ", shell_quote(tmp)));
  if (rc != 0) {
    fs::remove_all(tmp);
    throw Error(cat(tarball, ": tar -xzf failed (exit ", rc, "); is the archive complete?"));
  }
  try {
    verify(tmp + "/" + top);
  } catch (...) {
    fs::remove_all(tmp);
    throw;
  }
  std::error_code ec;
  fs::rename(tmp + "/" + top, final_dir, ec);
  fs::remove_all(tmp);
  // A concurrent process may have finished first; its copy is as good as ours.
  PCONV_CHECK(!ec || fs::is_directory(final_dir), final_dir, ": cannot move the extracted data ",
              "into place (", ec.message(), ")");
  return final_dir;
}

CifarLocation detect_cifar10_layout(const std::string& root, const std::string& train_split) {
  using L = CifarLocation::Layout;
  if (is_cifar_binary_dir(root)) return {L::Binary, root};
  if (is_cifar_binary_dir(root + "/" + kCifarBinaryDir))
    return {L::Binary, root + "/" + kCifarBinaryDir};
  if (fs::is_directory(root + "/" + train_split)) return {L::JpegFolders, root};
  const std::string nested = root + "/" + kCifarJpegDir;
  if (fs::is_directory(nested + "/" + train_split)) return {L::JpegFolders, nested};
  throw Error(cat(root, ": no CIFAR-10 here; expected the binary release (data_batch_1..5.bin, ",
                  "test_batch.bin) or image folders (", train_split, "/<class>/*.jpg), directly ",
                  "or in ", kCifarBinaryDir, "/ or ", kCifarJpegDir, "/"));
}

std::vector<std::string> cifar10_tarball_candidates() {
  std::vector<std::string> out;
  if (const char* env = std::getenv("PCONV_SHARED_DIR"); env && *env) {
    out.push_back(cat(env, "/datasets/", kCifarJpegTarball));
  }
  out.push_back(cat(PCONV_SOURCE_DIR, "/../shared/datasets/", kCifarJpegTarball));
  return out;
}

std::string extract_cifar10_tarball(const std::string& tarball, const std::string& cache_dir) {
  const std::string sum = file_digest(tarball, "sha256sum");
  PCONV_CHECK(sum == kCifarJpegSha256, tarball, ": sha256 is ", sum, ", expected ",
              kCifarJpegSha256, " (damaged or a different archive)");
  return extract_into_cache(tarball, cache_dir, kCifarJpegDir, [](const std::string& dir) {
    check_cifar_jpeg_split(dir + "/train", kTrainPerClass);
    check_cifar_jpeg_split(dir + "/test", kTestPerClass);
  });
}

CifarLocation locate_cifar10(const DataConfig& cfg) {
  using L = CifarLocation::Layout;
  if (!cfg.root.empty()) return detect_cifar10_layout(cfg.root, cfg.train_split);
  const std::string jpeg = cfg.cache_dir + "/" + kCifarJpegDir;
  if (fs::is_directory(jpeg + "/train") && fs::is_directory(jpeg + "/test")) {
    return {L::JpegFolders, jpeg};
  }
  const std::string binary = cfg.cache_dir + "/" + kCifarBinaryDir;
  if (is_cifar_binary_dir(binary)) return {L::Binary, binary};

  std::string looked = cat(jpeg, ", ", binary);
  for (const auto& tarball : cifar10_tarball_candidates()) {
    looked += ", " + tarball;
    if (fs::is_regular_file(tarball)) {
      return {L::JpegFolders, extract_cifar10_tarball(tarball, cfg.cache_dir)};
    }
  }
  try {
    return {L::Binary, download_cifar10_binary(cfg.cache_dir)};
  } catch (const Error& e) {
    throw Error(cat("CIFAR-10 not found: looked in ", looked, "; ", e.what(),
                    ". Set data.root, PCONV_SHARED_DIR, or run datasets/prepare_cifar10.sh"));
  }
}

}  // namespace pconv::data
