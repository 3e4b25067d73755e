// The "data" section of a pconv-train config: which data set, where, and how it is preprocessed.
// Keys and defaults are documented in docs/data.md.
#pragma once

#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "core/json_reader.h"

namespace pconv::data {

struct DataConfig {
  std::string dataset = "cifar10";  // "cifar10" | "folder" (ImageNet layout)
  std::string root;  // empty = auto (cifar10: the cache, the shared tarball, or a download)
  std::string train_split = "train", test_split = "test";  // folder names under root
  int image_size = 32;                  // 32 for cifar10; 224 default for folders
  int train_limit = 0, test_limit = 0;  // 0 = all; else a deterministic class-balanced subset
  bool augment = true;  // cifar: pad-4 random crop + hflip; folder: random-resized crop + hflip
  std::vector<float> mean, std;  // per RGB channel, on [0,1] pixels
  std::string cache_dir;         // extracted archives and decoded caches
};

// Per-channel statistics used when the config gives none.
std::vector<float> default_mean(const std::string& dataset);
std::vector<float> default_std(const std::string& dataset);

// <repo>/.cache unless the environment sets PCONV_CACHE_DIR.
std::string default_cache_dir();

// Reads and validates the section; every error names the JSON path. Fills the defaults
// (mean/std, cache_dir, image_size by dataset), so the result is complete. Calls r.finish().
DataConfig parse_data_config(JsonReader& r);

// Fills defaults and validates a config built in code; `where` names it in errors.
void complete_data_config(DataConfig& cfg, const std::string& where = "data config");

// How evaluation turns an RGB image into the model input, for code that must repeat it without
// this library (the runner pconv-deploy writes): {"size": S, "resize_shorter": R, "mean": [..],
// "std": [..]}. R = 0: the image is resized to S x S (CIFAR); else the shorter side goes to R and
// the centre S x S is cropped (folders: R = round(256 S / 224)). Then x/255, minus mean, over std.
nlohmann::json eval_preprocess_json(const DataConfig& cfg);

}  // namespace pconv::data
