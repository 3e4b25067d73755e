#include "data/cifar_binary.h"

#include <filesystem>
#include <fstream>

#include "core/error.h"

namespace fs = std::filesystem;

namespace pconv::data {

const std::vector<std::string>& cifar10_class_names() {
  static const std::vector<std::string> names = {
      "airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck"};
  return names;
}

std::vector<std::string> cifar_binary_files(const std::string& dir, bool train) {
  if (!train) return {dir + "/test_batch.bin"};
  std::vector<std::string> files;
  for (int i = 1; i <= 5; ++i) files.push_back(cat(dir, "/data_batch_", i, ".bin"));
  return files;
}

bool is_cifar_binary_dir(const std::string& dir) {
  return fs::is_regular_file(dir + "/data_batch_1.bin") &&
         fs::is_regular_file(dir + "/test_batch.bin");
}

ImageSet read_cifar_binary(const std::vector<std::string>& files) {
  ImageSet set;
  set.height = set.width = kCifarSide;
  set.channels = 3;
  set.class_names = cifar10_class_names();
  constexpr int64_t plane = kCifarSide * kCifarSide;

  int64_t total = 0;
  for (const auto& f : files) {
    std::error_code ec;
    const auto bytes = fs::file_size(f, ec);
    PCONV_CHECK(!ec, f, ": cannot read CIFAR-10 batch file (", ec.message(), ")");
    PCONV_CHECK(bytes % kCifarRecordBytes == 0 && bytes > 0, f, ": size ", bytes,
                " is not a multiple of the ", kCifarRecordBytes, "-byte CIFAR-10 record");
    total += static_cast<int64_t>(bytes) / kCifarRecordBytes;
  }
  set.labels.resize(static_cast<size_t>(total));
  set.pixels.resize(static_cast<size_t>(total * 3 * plane));

  std::vector<uint8_t> rec(kCifarRecordBytes);
  int64_t n = 0;
  for (const auto& f : files) {
    std::ifstream in(f, std::ios::binary);
    PCONV_CHECK(in, f, ": cannot open CIFAR-10 batch file");
    int64_t in_file = 0;
    while (in.read(reinterpret_cast<char*>(rec.data()), kCifarRecordBytes)) {
      PCONV_CHECK(rec[0] < 10, f, ": record ", in_file, " has label ", int{rec[0]},
                  " (CIFAR-10 labels are 0..9)");
      set.labels[static_cast<size_t>(n)] = rec[0];
      // CHW planes -> HWC pixels.
      uint8_t* dst = set.pixels.data() + n * 3 * plane;
      const uint8_t* src = rec.data() + 1;
      for (int64_t p = 0; p < plane; ++p) {
        dst[3 * p + 0] = src[p];
        dst[3 * p + 1] = src[plane + p];
        dst[3 * p + 2] = src[2 * plane + p];
      }
      ++n;
      ++in_file;
    }
  }
  PCONV_CHECK(n == total, "CIFAR-10 batch files changed while being read (", n, " of ", total,
              " records)");
  return set;
}

}  // namespace pconv::data
