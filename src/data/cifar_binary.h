// The official CIFAR-10 binary release (cifar-10-batches-bin): each record is 1 label byte and
// 3072 pixel bytes, the R, G and B planes of a 32x32 image (CHW).
#pragma once

#include <string>
#include <vector>

#include "data/image_set.h"

namespace pconv::data {

constexpr int kCifarSide = 32;
constexpr int64_t kCifarRecordBytes = 1 + 3 * kCifarSide * kCifarSide;

// Reads the files in order into one HWC set. Errors name the file (missing, size not a multiple
// of a record, label >= 10).
ImageSet read_cifar_binary(const std::vector<std::string>& files);

// data_batch_1..5.bin for the train split, test_batch.bin for the test split, under `dir`.
std::vector<std::string> cifar_binary_files(const std::string& dir, bool train);

// True when `dir` holds the binary release (data_batch_1.bin and test_batch.bin).
bool is_cifar_binary_dir(const std::string& dir);

}  // namespace pconv::data
