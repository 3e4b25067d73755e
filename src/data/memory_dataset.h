// A data set of fixed-size images held in memory (CIFAR-10): pad-4 random crop + horizontal flip
// when augmenting, the image itself otherwise.
#pragma once

#include "data/dataset.h"
#include "data/image_set.h"
#include "data/transforms.h"

namespace pconv::data {

class MemoryDataset : public Dataset {
 public:
  MemoryDataset(ImageSet images, const DataConfig& cfg, bool augment, std::string description);

  int64_t size() const override { return images_.size(); }
  const std::vector<std::string>& class_names() const override { return images_.class_names; }
  Shape sample_shape() const override;
  int32_t label(int64_t i) const override { return images_.labels[static_cast<size_t>(i)]; }
  bool augments() const override { return augment_; }
  void load(int64_t i, bool augment, uint64_t seed, float* out) const override;
  std::string describe() const override { return description_; }

  const ImageSet& images() const { return images_; }

  static constexpr int kPad = 4;

 private:
  ImageSet images_;
  Normalizer norm_;
  bool augment_;
  std::string description_;
};

}  // namespace pconv::data
