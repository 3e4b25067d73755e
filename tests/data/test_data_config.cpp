// The "data" config section: defaults, and errors that name the JSON path.
#include <gtest/gtest.h>

#include "core/error.h"
#include "core/json_reader.h"
#include "data/data_config.h"

namespace pconv::data {
namespace {

DataConfig parse(const std::string& text) {
  JsonReader r(nlohmann::json::parse(text), "$.data", "config.json");
  return parse_data_config(r);
}

std::string error_of(const std::string& text) {
  try {
    parse(text);
  } catch (const Error& e) {
    return e.what();
  }
  return "";
}

TEST(DataConfig, DefaultsForCifar10AndFolders) {
  const DataConfig c = parse("{}");
  EXPECT_EQ(c.dataset, "cifar10");
  EXPECT_EQ(c.image_size, 32);
  EXPECT_TRUE(c.augment);
  EXPECT_EQ(c.mean, default_mean("cifar10"));
  EXPECT_EQ(c.std, default_std("cifar10"));
  EXPECT_FALSE(c.cache_dir.empty());

  const DataConfig f = parse(
      R"({"dataset": "folder", "root": "/data/imagenet", "test_split": "val", "train_limit": 500,
          "augment": false, "mean": [0.5, 0.5, 0.5], "std": [0.25, 0.25, 0.25], "cache_dir": "/c"})");
  EXPECT_EQ(f.image_size, 224);
  EXPECT_EQ(f.root, "/data/imagenet");
  EXPECT_EQ(f.test_split, "val");
  EXPECT_EQ(f.train_limit, 500);
  EXPECT_FALSE(f.augment);
  EXPECT_EQ(f.mean, (std::vector<float>{0.5f, 0.5f, 0.5f}));
  EXPECT_EQ(f.std, (std::vector<float>{0.25f, 0.25f, 0.25f}));
  EXPECT_EQ(f.cache_dir, "/c");
}

// What the deployed runner needs to repeat evaluation's preprocessing without this library.
TEST(DataConfig, EvalPreprocessJsonDescribesTheEvalTransform) {
  const nlohmann::json c = eval_preprocess_json(parse("{}"));
  EXPECT_EQ(c.at("size"), 32);
  EXPECT_EQ(c.at("resize_shorter"), 0);  // CIFAR images are used whole
  EXPECT_EQ(c.at("mean").get<std::vector<float>>(), default_mean("cifar10"));
  EXPECT_EQ(c.at("std").get<std::vector<float>>(), default_std("cifar10"));
  const nlohmann::json f =
      eval_preprocess_json(parse(R"({"dataset": "folder", "root": "/d", "image_size": 160})"));
  EXPECT_EQ(f.at("size"), 160);
  EXPECT_EQ(f.at("resize_shorter"), 183);  // 256/224 of the crop, as torchvision's eval does
  EXPECT_EQ(f.at("mean").get<std::vector<float>>(), default_mean("folder"));
  EXPECT_EQ(
      eval_preprocess_json(parse(R"({"dataset": "folder", "root": "/d"})")).at("resize_shorter"),
      256);
}

TEST(DataConfig, ErrorsNameThePath) {
  struct Case {
    const char* json;
    const char* path;
  };
  for (const Case& c : {Case{R"({"dataset": "mnist"})", "$.data.dataset"},
                        Case{R"({"dataset": "folder"})", "$.data.root"},
                        Case{R"({"image_size": 64})", "$.data.image_size"},
                        Case{R"({"mean": [0.5, 0.5]})", "$.data.mean"},
                        Case{R"({"std": [0.2, 0, 0.2]})", "$.data.std"},
                        Case{R"({"train_limit": -1})", "$.data.train_limit"},
                        Case{R"({"augmentation": true})", "augmentation"},
                        Case{R"({"test_split": ""})", "$.data.test_split"}}) {
    const std::string msg = error_of(c.json);
    EXPECT_NE(msg.find(c.path), std::string::npos) << c.json << " -> \"" << msg << "\"";
  }
}

}  // namespace
}  // namespace pconv::data
