// Every config shipped under configs/ parses and names a known architecture, so none rots.
#include <gtest/gtest.h>

#include <filesystem>

#include "pipeline/run_config.h"

namespace pconv {
namespace {

TEST(ShippedConfigs, AllParse) {
  int n = 0;
  for (const auto& e :
       std::filesystem::directory_iterator(std::string(PCONV_SOURCE_DIR) + "/configs")) {
    if (e.path().extension() != ".json") continue;
    SCOPED_TRACE(e.path().string());
    RunConfig c = load_run_config(e.path().string(), {});
    EXPECT_FALSE(c.stages.empty());
    EXPECT_EQ(c.name + ".json", e.path().filename().string()) << "name should match the file";
    ++n;
  }
  EXPECT_GE(n, 9);
}

}  // namespace
}  // namespace pconv
