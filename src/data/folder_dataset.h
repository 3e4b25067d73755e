// An image-folder data set decoded on the fly (ImageNet does not fit in memory): each load()
// reads and decodes one file. Training: random-resized crop + flip; evaluation: resize the
// shorter side to 256 * size / 224 and centre crop.
#pragma once

#include "data/dataset.h"
#include "data/image_folder.h"
#include "data/transforms.h"

namespace pconv::data {

class FolderDataset : public Dataset {
 public:
  FolderDataset(FolderIndex index, const DataConfig& cfg, bool augment);

  int64_t size() const override { return index_.size(); }
  const std::vector<std::string>& class_names() const override { return index_.class_names; }
  Shape sample_shape() const override { return {3, size_, size_}; }
  int32_t label(int64_t i) const override { return index_.labels[static_cast<size_t>(i)]; }
  bool augments() const override { return augment_; }
  void load(int64_t i, bool augment, uint64_t seed, float* out) const override;
  std::string describe() const override;

  const FolderIndex& index() const { return index_; }

 private:
  FolderIndex index_;
  Normalizer norm_;
  int size_;
  bool augment_;
};

}  // namespace pconv::data
