#include "data/folder_dataset.h"

#include "core/error.h"

namespace pconv::data {

FolderDataset::FolderDataset(FolderIndex index, const DataConfig& cfg, bool augment)
    : index_(std::move(index)),
      norm_(cfg.mean, cfg.std),
      size_(cfg.image_size),
      augment_(augment) {}

void FolderDataset::load(int64_t i, bool augment, uint64_t seed, float* out) const {
  const cv::Mat rgb = decode_image(index_.files[static_cast<size_t>(i)]);
  if (augment) {
    Rng rng(seed);
    resized_crop_to_chw(rgb, draw_random_resized_crop(rgb.cols, rgb.rows, rng), size_, norm_, out);
  } else {
    resize_center_crop_to_chw(rgb, size_, norm_, out);
  }
}

std::string FolderDataset::describe() const {
  return cat("image folder ", index_.dir, ": ", size(), " images, ", num_classes(),
             " classes, decoded on the fly at ", size_, "x", size_);
}

}  // namespace pconv::data
