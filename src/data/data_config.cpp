#include "data/data_config.h"

#include <cmath>
#include <cstdlib>

#include "core/error.h"

#ifndef PCONV_SOURCE_DIR
#define PCONV_SOURCE_DIR "."
#endif

namespace pconv::data {

std::vector<float> default_mean(const std::string& dataset) {
  if (dataset == "cifar10") return {0.4914f, 0.4822f, 0.4465f};
  return {0.485f, 0.456f, 0.406f};  // ImageNet
}

std::vector<float> default_std(const std::string& dataset) {
  if (dataset == "cifar10") return {0.2470f, 0.2435f, 0.2616f};  // per-pixel std over the train set
  return {0.229f, 0.224f, 0.225f};
}

std::string default_cache_dir() {
  if (const char* env = std::getenv("PCONV_CACHE_DIR"); env && *env) return env;
  return std::string(PCONV_SOURCE_DIR) + "/.cache";
}

namespace {

void check_channels(const std::vector<float>& v, const std::string& where, bool positive) {
  PCONV_CHECK(v.size() == 3, where, ": needs 3 values (R, G, B), got ", v.size());
  for (float x : v) {
    PCONV_CHECK(!positive || x > 0.f, where, ": values must be > 0, got ", x);
  }
}

std::vector<float> to_float(const std::vector<double>& v) {
  return {v.begin(), v.end()};
}

}  // namespace

void complete_data_config(DataConfig& c, const std::string& where) {
  PCONV_CHECK(c.dataset == "cifar10" || c.dataset == "folder", where,
              ": dataset must be \"cifar10\" or \"folder\", got \"", c.dataset, "\"");
  PCONV_CHECK(c.dataset != "folder" || !c.root.empty(), where,
              ": dataset \"folder\" needs a root (the folder holding the split folders)");
  PCONV_CHECK(c.dataset != "cifar10" || c.image_size == 32, where,
              ": cifar10 images are 32x32; image_size must be 32, got ", c.image_size);
  PCONV_CHECK(c.image_size >= 8 && c.image_size <= 4096, where, ": image_size ", c.image_size,
              " is out of range [8, 4096]");
  PCONV_CHECK(c.train_limit >= 0 && c.test_limit >= 0, where, ": limits must be >= 0");
  PCONV_CHECK(!c.train_split.empty() && !c.test_split.empty(), where,
              ": split folder names must not be empty");
  if (c.mean.empty()) c.mean = default_mean(c.dataset);
  if (c.std.empty()) c.std = default_std(c.dataset);
  check_channels(c.mean, where + ": mean", false);
  check_channels(c.std, where + ": std", true);
  if (c.cache_dir.empty()) c.cache_dir = default_cache_dir();
}

DataConfig parse_data_config(JsonReader& r) {
  DataConfig c;
  c.dataset = r.get_enum("dataset", c.dataset, {"cifar10", "folder"});
  c.root = r.get_string("root", "");
  PCONV_CHECK(c.dataset != "folder" || !c.root.empty(), r.where("root"),
              ": dataset \"folder\" needs a root (the folder holding the split folders)");
  c.train_split = r.get_string("train_split", c.train_split);
  c.test_split = r.get_string("test_split", c.test_split);
  PCONV_CHECK(!c.train_split.empty(), r.where("train_split"), ": must not be empty");
  PCONV_CHECK(!c.test_split.empty(), r.where("test_split"), ": must not be empty");
  if (c.dataset == "cifar10") {
    c.image_size = r.get_int("image_size", 32);
    PCONV_CHECK(c.image_size == 32, r.where("image_size"),
                ": cifar10 images are 32x32; image_size must be 32, got ", c.image_size);
  } else {
    c.image_size = r.get_int("image_size", 224, 8, 4096);
  }
  c.train_limit = r.get_int("train_limit", 0, 0);
  c.test_limit = r.get_int("test_limit", 0, 0);
  c.augment = r.get_bool("augment", true);
  c.mean = to_float(r.get_double_list("mean", {}));
  c.std = to_float(r.get_double_list("std", {}));
  if (!c.mean.empty()) check_channels(c.mean, r.where("mean"), false);
  if (!c.std.empty()) check_channels(c.std, r.where("std"), true);
  c.cache_dir = r.get_string("cache_dir", "");
  r.finish();
  complete_data_config(c, r.path());
  return c;
}

nlohmann::json eval_preprocess_json(const DataConfig& cfg) {
  const int shorter = cfg.dataset == "folder"
                          ? static_cast<int>(std::lround(256.0 * cfg.image_size / 224.0))
                          : 0;  // must match resize_center_crop_to_chw
  return {
      {"size", cfg.image_size}, {"resize_shorter", shorter}, {"mean", cfg.mean}, {"std", cfg.std}};
}

}  // namespace pconv::data
