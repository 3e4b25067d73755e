#include "data/decoded_cache.h"

#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cctype>
#include <cstdio>
#include <cstring>
#include <exception>
#include <filesystem>
#include <memory>
#include <mutex>
#include <thread>

#include "core/error.h"
#include "core/log.h"

namespace fs = std::filesystem;

namespace pconv::data {

namespace {

constexpr char kMagic[8] = {'P', 'C', 'O', 'N', 'V', 'D', 'C', '\0'};

struct File {
  FILE* f = nullptr;
  ~File() {
    if (f) std::fclose(f);
  }
};

class Writer {
 public:
  Writer(FILE* f, const std::string& path) : f_(f), path_(path) {}
  void bytes(const void* p, size_t n) {
    PCONV_CHECK(std::fwrite(p, 1, n, f_) == n, path_, ": write failed (disk full?)");
  }
  template <typename T>
  void put(T v) {
    bytes(&v, sizeof v);
  }

 private:
  FILE* f_;
  const std::string& path_;
};

class Reader {
 public:
  explicit Reader(FILE* f) : f_(f) {}
  bool bytes(void* p, size_t n) { return std::fread(p, 1, n, f_) == n; }
  template <typename T>
  bool get(T& v) {
    return bytes(&v, sizeof v);
  }

 private:
  FILE* f_;
};

}  // namespace

void write_decoded_cache(const std::string& path, const ImageSet& set, const FolderIndex& source) {
  const std::string tmp = cat(path, ".tmp.", ::getpid());
  fs::create_directories(fs::path(path).parent_path());
  {
    File file{std::fopen(tmp.c_str(), "wb")};
    PCONV_CHECK(file.f, tmp, ": cannot create decoded-image cache (", std::strerror(errno), ")");
    Writer w(file.f, tmp);
    w.bytes(kMagic, sizeof kMagic);
    w.put<uint32_t>(kDecodedCacheVersion);
    w.put<uint32_t>(static_cast<uint32_t>(set.height));
    w.put<uint32_t>(static_cast<uint32_t>(set.width));
    w.put<uint32_t>(static_cast<uint32_t>(set.channels));
    w.put<uint64_t>(static_cast<uint64_t>(set.size()));
    w.put<uint64_t>(static_cast<uint64_t>(source.size()));
    w.put<uint64_t>(source.total_bytes);
    w.put<uint64_t>(source.fingerprint);
    w.put<uint32_t>(static_cast<uint32_t>(set.class_names.size()));
    for (const auto& name : set.class_names) {
      w.put<uint32_t>(static_cast<uint32_t>(name.size()));
      w.bytes(name.data(), name.size());
    }
    w.bytes(set.labels.data(), set.labels.size() * sizeof(int32_t));
    w.bytes(set.pixels.data(), set.pixels.size());
    PCONV_CHECK(std::fflush(file.f) == 0, tmp, ": write failed (disk full?)");
  }
  std::error_code ec;
  fs::rename(tmp, path, ec);
  if (ec) {
    fs::remove(tmp);
    throw Error(
        cat(path, ": cannot rename the decoded-image cache into place (", ec.message(), ")"));
  }
}

std::optional<ImageSet> read_decoded_cache(const std::string& path, const FolderIndex& source) {
  File file{std::fopen(path.c_str(), "rb")};
  if (!file.f) return std::nullopt;
  Reader r(file.f);
  char magic[8];
  uint32_t version = 0, h = 0, w = 0, c = 0, num_classes = 0;
  uint64_t count = 0, files = 0, bytes = 0, fingerprint = 0;
  if (!r.bytes(magic, sizeof magic) || std::memcmp(magic, kMagic, sizeof magic) != 0) {
    log_warn(path, ": not a decoded-image cache; rebuilding it");
    return std::nullopt;
  }
  if (!r.get(version) || version != kDecodedCacheVersion) return std::nullopt;
  if (!r.get(h) || !r.get(w) || !r.get(c) || !r.get(count) || !r.get(files) || !r.get(bytes) ||
      !r.get(fingerprint) || !r.get(num_classes)) {
    log_warn(path, ": truncated decoded-image cache; rebuilding it");
    return std::nullopt;
  }
  if (files != static_cast<uint64_t>(source.size()) || bytes != source.total_bytes ||
      fingerprint != source.fingerprint) {
    log_info(path, ": source folder ", source.dir, " changed; rebuilding the decoded cache");
    return std::nullopt;
  }
  ImageSet set;
  set.height = static_cast<int>(h);
  set.width = static_cast<int>(w);
  set.channels = static_cast<int>(c);
  bool ok = num_classes < 100000 && count < (uint64_t{1} << 32);
  for (uint32_t k = 0; ok && k < num_classes; ++k) {
    uint32_t len = 0;
    ok = r.get(len) && len < 4096;
    if (ok) {
      std::string name(len, '\0');
      ok = r.bytes(name.data(), len);
      set.class_names.push_back(std::move(name));
    }
  }
  if (ok) {
    set.labels.resize(count);
    set.pixels.resize(count * set.image_bytes());
    ok = r.bytes(set.labels.data(), count * sizeof(int32_t)) &&
         r.bytes(set.pixels.data(), set.pixels.size()) && std::fgetc(file.f) == EOF;
  }
  if (!ok) {
    log_warn(path, ": damaged decoded-image cache; rebuilding it");
    return std::nullopt;
  }
  return set;
}

ImageSet decode_folder(const FolderIndex& index, int threads) {
  PCONV_CHECK(index.size() > 0, index.dir, ": no images to decode");
  const cv::Mat first = decode_image(index.files[0]);
  ImageSet set;
  set.height = first.rows;
  set.width = first.cols;
  set.channels = 3;
  set.class_names = index.class_names;
  set.labels = index.labels;
  set.pixels.resize(static_cast<size_t>(index.size() * set.image_bytes()));

  std::atomic<int64_t> next{0};
  std::atomic<bool> failed{false};
  std::exception_ptr error;
  std::mutex error_mutex;
  auto work = [&] {
    try {
      for (int64_t i = next++; i < index.size() && !failed; i = next++) {
        const std::string& path = index.files[static_cast<size_t>(i)];
        const cv::Mat rgb = decode_image(path);
        PCONV_CHECK(rgb.rows == set.height && rgb.cols == set.width, path, ": image is ", rgb.cols,
                    "x", rgb.rows, " but the folder's first image (", index.files[0], ") is ",
                    set.width, "x", set.height, "; cached folders need one size");
        uint8_t* dst = set.pixels.data() + i * set.image_bytes();
        for (int y = 0; y < rgb.rows; ++y) {
          std::memcpy(dst + int64_t{y} * rgb.cols * 3, rgb.ptr<uint8_t>(y), size_t(rgb.cols) * 3);
        }
      }
    } catch (...) {
      std::lock_guard<std::mutex> lock(error_mutex);
      if (!error) error = std::current_exception();
      failed = true;
    }
  };
  std::vector<std::thread> pool;
  for (int t = 1; t < threads; ++t) pool.emplace_back(work);
  work();
  for (auto& t : pool) t.join();
  if (error) std::rethrow_exception(error);
  return set;
}

std::string decoded_cache_path(const std::string& cache_dir, const std::string& folder) {
  std::error_code ec;
  fs::path p = fs::weakly_canonical(fs::absolute(folder), ec);
  if (ec) p = fs::absolute(folder);
  uint64_t h = 0xcbf29ce484222325ull;  // FNV-1a of the absolute path: one cache per folder
  for (unsigned char ch : p.string()) h = (h ^ ch) * 0x100000001b3ull;
  std::string name = p.parent_path().filename().string() + "-" + p.filename().string();
  for (char& ch : name) {
    if (!std::isalnum(static_cast<unsigned char>(ch)) && ch != '-' && ch != '_') ch = '_';
  }
  char hex[17];
  std::snprintf(hex, sizeof hex, "%016llx", static_cast<unsigned long long>(h));
  return cat(cache_dir, "/decoded/", name, "-", hex, ".pcd");
}

ImageSet load_folder_cached(const FolderIndex& index, const std::string& cache_path) {
  if (auto cached = read_decoded_cache(cache_path, index)) return std::move(*cached);
  const double t0 = wall_seconds();
  const int threads = std::max(1, static_cast<int>(std::thread::hardware_concurrency()));
  ImageSet set = decode_folder(index, threads);
  log_info("decoded ", set.size(), " images of ", index.dir, " in ", wall_seconds() - t0, " s");
  try {
    write_decoded_cache(cache_path, set, index);
  } catch (const Error& e) {
    log_warn("not caching decoded images: ", e.what());
  }
  return set;
}

}  // namespace pconv::data
