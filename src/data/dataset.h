// A data set as the trainer sees it: labelled samples, preprocessed on demand into normalised
// float CHW. open_dataset() picks the reader from a DataConfig.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "core/tensor.h"
#include "data/data_config.h"

namespace pconv::data {

enum class Split { Train, Test };

class Dataset {
 public:
  virtual ~Dataset() = default;

  virtual int64_t size() const = 0;
  virtual const std::vector<std::string>& class_names() const = 0;
  int num_classes() const { return static_cast<int>(class_names().size()); }
  virtual Shape sample_shape() const = 0;  // {C, H, W} after preprocessing
  int64_t sample_numel() const { return numel(sample_shape()); }
  virtual int32_t label(int64_t i) const = 0;
  // Whether this split augments (the train split with "augment": true in the config).
  virtual bool augments() const = 0;
  // Writes sample i as sample_numel() normalised floats (CHW). With `augment`, the random
  // transform is drawn from `seed` alone: same arguments, same bits. Thread-safe.
  virtual void load(int64_t i, bool augment, uint64_t seed, float* out) const = 0;
  // One line for logs: "cifar10 train: 50000 images, 10 classes, from <path>".
  virtual std::string describe() const = 0;
};

// Opens the split of the configured data set (completing the config's defaults first), applying
// train_limit / test_limit. May extract the shared CIFAR-10 archive and write the decoded cache
// on first use (see docs/data.md).
std::unique_ptr<Dataset> open_dataset(const DataConfig& cfg, Split split);

// Deterministic class-balanced subset of `limit` indices: classes take turns (in label order)
// contributing their next image (in index order) until `limit` are taken; a class that runs out
// leaves its turns to the others. Returned sorted. limit >= labels.size() returns all.
std::vector<int64_t> balanced_subset(const std::vector<int32_t>& labels, int num_classes,
                                     int64_t limit);

// A view of some samples of another data set, in the given order.
std::unique_ptr<Dataset> make_subset(std::shared_ptr<const Dataset> base,
                                     std::vector<int64_t> indices);

}  // namespace pconv::data
