#include "data/dataset.h"

#include <opencv2/core.hpp>

#include "core/error.h"
#include "core/log.h"
#include "data/cifar10_source.h"
#include "data/cifar_binary.h"
#include "data/decoded_cache.h"
#include "data/folder_dataset.h"
#include "data/memory_dataset.h"

namespace pconv::data {

namespace {

std::unique_ptr<Dataset> open_cifar10(const DataConfig& cfg, Split split, bool augment) {
  const bool train = split == Split::Train;
  const CifarLocation loc = locate_cifar10(cfg);
  if (loc.layout == CifarLocation::Layout::Binary) {
    ImageSet set = read_cifar_binary(cifar_binary_files(loc.dir, train));
    const std::string what = cat("cifar10 ", train ? "train" : "test", ": ", set.size(),
                                 " images (binary release) from ", loc.dir);
    return std::make_unique<MemoryDataset>(std::move(set), cfg, augment, what);
  }
  const std::string dir = loc.dir + "/" + (train ? cfg.train_split : cfg.test_split);
  const FolderIndex index = scan_image_folder(dir);
  PCONV_CHECK(index.class_names == cifar10_class_names(), dir,
              ": class folders must be CIFAR-10's ten classes (airplane automobile bird cat deer "
              "dog frog horse ship truck)");
  ImageSet set = load_folder_cached(index, decoded_cache_path(cfg.cache_dir, dir));
  PCONV_CHECK(set.height == kCifarSide && set.width == kCifarSide, dir, ": images are ", set.width,
              "x", set.height, ", CIFAR-10's are 32x32");
  const std::string what = cat("cifar10 ", train ? "train" : "test", ": ", set.size(),
                               " images (JPEG folders, decoded cache) from ", dir);
  return std::make_unique<MemoryDataset>(std::move(set), cfg, augment, what);
}

}  // namespace

std::unique_ptr<Dataset> open_dataset(const DataConfig& config, Split split) {
  DataConfig cfg = config;
  complete_data_config(cfg);
  const bool train = split == Split::Train;
  const bool augment = train && cfg.augment;
  std::unique_ptr<Dataset> ds;
  if (cfg.dataset == "cifar10") {
    ds = open_cifar10(cfg, split, augment);
  } else {
    // The loader's workers are the pipeline's parallelism; OpenCV's own thread pool (resize)
    // would only compete with the trainer's OpenMP threads for the same cores.
    cv::setNumThreads(0);
    const std::string dir = cfg.root + "/" + (train ? cfg.train_split : cfg.test_split);
    ds = std::make_unique<FolderDataset>(scan_image_folder(dir, /*fingerprint=*/false), cfg,
                                         augment);
  }
  const int limit = train ? cfg.train_limit : cfg.test_limit;
  if (limit > 0 && limit < ds->size()) {
    std::vector<int32_t> labels(static_cast<size_t>(ds->size()));
    for (int64_t i = 0; i < ds->size(); ++i) labels[static_cast<size_t>(i)] = ds->label(i);
    auto indices = balanced_subset(labels, ds->num_classes(), limit);
    ds = make_subset(std::shared_ptr<const Dataset>(std::move(ds)), std::move(indices));
  }
  log_info(ds->describe());
  return ds;
}

}  // namespace pconv::data
