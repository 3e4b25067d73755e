#include "data/memory_dataset.h"

#include "core/error.h"

namespace pconv::data {

MemoryDataset::MemoryDataset(ImageSet images, const DataConfig& cfg, bool augment,
                             std::string description)
    : images_(std::move(images)),
      norm_(cfg.mean, cfg.std),
      augment_(augment),
      description_(std::move(description)) {
  PCONV_CHECK(images_.channels == 3, description_, ": expected RGB images");
  PCONV_CHECK(images_.size() > 0, description_, ": no images");
}

Shape MemoryDataset::sample_shape() const {
  return {3, images_.height, images_.width};
}

void MemoryDataset::load(int64_t i, bool augment, uint64_t seed, float* out) const {
  ShiftFlip t;
  if (augment) {
    Rng rng(seed);
    t = draw_shift_flip(rng, kPad);
  }
  shift_flip_to_chw(images_.image(i), images_.height, images_.width, t, norm_, out);
}

}  // namespace pconv::data
