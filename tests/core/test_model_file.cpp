#include <gtest/gtest.h>

#include <cstring>
#include <fstream>
#include <random>
#include <sstream>

#include "core/architectures.h"
#include "core/model_file.h"

namespace pconv {
namespace {

std::string tmp(const std::string& name) {
  return ::testing::TempDir() + name;
}

ModelFile sample_model() {
  ModelFile m;
  m.graph = build_architecture("resnet20", ArchOptions{});
  m.params = init_params(m.graph, 42);
  m.pruning.library = {0b000111010, 0b010011010};
  std::vector<int8_t> ids(16 * 16);
  for (size_t i = 0; i < ids.size(); ++i) ids[i] = static_cast<int8_t>(int(i % 3) - 1);
  m.pruning.layer_ids["layer1.0.conv2"] = ids;
  m.pruning.info = {{"method", "test"}};
  TrainState t;
  t.stage = "admm";
  t.epoch = 3;
  t.step = 1173;
  std::mt19937_64 rng(7);
  rng();
  std::ostringstream os;
  os << rng;
  t.rng = os.str();
  t.metrics = nlohmann::json::array({{{"epoch", 1}, {"loss", 1.5}}});
  t.extra = {{"admm", {{"rho", 0.01}}}};
  t.tensors["optim/momentum/fc/weight"] = Tensor({10, 64}, 0.25f);
  m.train = t;
  m.meta = {{"command", "test"}};
  return m;
}

TEST(ModelFile, RoundTripIsBitExact) {
  ModelFile m = sample_model();
  std::string p = tmp("round.h5");
  save_model(p, m);
  ModelFile r = load_model(p);
  EXPECT_EQ(r.graph.to_json(), m.graph.to_json());
  ASSERT_EQ(r.params.size(), m.params.size());
  for (const auto& [k, t] : m.params) {
    ASSERT_EQ(r.params.at(k).shape(), t.shape()) << k;
    EXPECT_EQ(std::memcmp(r.params.at(k).data(), t.data(), sizeof(float) * t.size()), 0) << k;
  }
  EXPECT_EQ(r.pruning.library, m.pruning.library);
  EXPECT_EQ(r.pruning.layer_ids, m.pruning.layer_ids);
  EXPECT_EQ(r.pruning.info, m.pruning.info);
  ASSERT_TRUE(r.train.has_value());
  EXPECT_EQ(r.train->stage, "admm");
  EXPECT_EQ(r.train->epoch, 3);
  EXPECT_EQ(r.train->step, 1173);
  EXPECT_EQ(r.train->rng, m.train->rng);
  EXPECT_EQ(r.train->metrics, m.train->metrics);
  EXPECT_EQ(r.train->extra, m.train->extra);
  EXPECT_EQ(r.train->tensors.at("optim/momentum/fc/weight")[5], 0.25f);
  EXPECT_EQ(r.meta, m.meta);
  // No temporary file left behind.
  EXPECT_FALSE(std::ifstream(p + ".tmp").good());
}

std::string load_error(const std::string& p) {
  try {
    load_model(p);
  } catch (const Error& e) {
    return e.what();
  }
  return "";
}

TEST(ModelFile, TruncatedAndCorruptFilesGiveClearErrors) {
  std::string p = tmp("full.h5");
  save_model(p, sample_model());
  std::ifstream in(p, std::ios::binary);
  std::string bytes((std::istreambuf_iterator<char>(in)), {});
  for (size_t cut : {size_t(100), bytes.size() / 2, bytes.size() - 100}) {
    std::string q = tmp("cut.h5");
    std::ofstream(q, std::ios::binary).write(bytes.data(), static_cast<std::streamsize>(cut));
    std::string e = load_error(q);
    EXPECT_NE(e.find(q), std::string::npos) << "cut at " << cut << ": " << e;
  }
  std::string junk = tmp("junk.h5");
  std::ofstream(junk) << "this is not hdf5";
  EXPECT_NE(load_error(junk).find("not an HDF5 file"), std::string::npos);
  EXPECT_NE(load_error(tmp("absent.h5")).find("not found"), std::string::npos);
}

TEST(ModelFile, ShapeMismatchNamesTheParameter) {
  ModelFile m = sample_model();
  m.params["fc/weight"] = Tensor({10, 63});
  try {
    save_model(tmp("bad.h5"), m);
    FAIL();
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("fc/weight"), std::string::npos) << e.what();
  }
}

}  // namespace
}  // namespace pconv

namespace pconv {
namespace {

TEST(ModelFile, PruningStateWithoutLibraryRoundTrips) {
  // Unstructured / filter pruning keeps no library or ids, only its info.
  ModelFile m;
  m.graph = build_architecture("resnet20", ArchOptions{});
  m.params = init_params(m.graph, 1);
  m.pruning.info = {{"granularity", "unstructured"}, {"per_layer", {{"layer1.0.conv1", 0.5}}}};
  std::string p = ::testing::TempDir() + "unstructured.h5";
  save_model(p, m);
  ModelFile r = load_model(p);
  EXPECT_TRUE(r.pruning.library.empty());
  EXPECT_EQ(r.pruning.info, m.pruning.info);
}

}  // namespace
}  // namespace pconv
