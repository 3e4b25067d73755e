// pconv-import: state_dict-style .h5 files written here with the HDF5 C API (keys in PyTorch's
// naming, as h5py writes model.state_dict()), dense and pattern-pruned, imported and checked
// tensor by tensor, by the pruning verifier and by pconv::Net's logits; every error case names
// its key or layer. With numpy + h5py, scripts/export_pytorch.py's torch-free path. The round trip
// to generated code (issue 5): a pruned CIFAR VGG-16 (4 SCPs, connectivity 8.8) imported,
// inspected, deployed for x86 and run against reference logits: PyTorch's (the script builds,
// trains, prunes and fine-tunes the model; on CIFAR-10 images too, fed by pconv's own data
// pipeline) when torch is installed, and always from a file this test writes itself.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <iostream>
#include <memory>
#include <optional>
#include <random>
#include <set>
#include <sstream>

#include "admm/inspect.h"
#include "admm/pattern.h"
#include "admm/projection.h"
#include "admm/prune.h"
#include "core/architectures.h"
#include "core/error.h"
#include "data/data_config.h"
#include "data/dataset.h"
#include "deploy/compiler.h"
#include "deploy/reference.h"
#include "deploy/verify.h"
#include "pipeline/import_pytorch.h"
#include "train/net.h"

#include <hdf5.h>

#include "core/hdf5_util.h"

namespace pconv {
namespace {

namespace fs = std::filesystem;

struct Files {
  // One folder per test: ctest runs the tests of this file as parallel processes.
  fs::path dir = fs::path(PCONV_BINARY_DIR) /
                 (std::string("pipeline_import_") +
                  ::testing::UnitTest::GetInstance()->current_test_info()->name());
  Files() {
    fs::remove_all(dir);
    fs::create_directories(dir);
  }
  ~Files() { fs::remove_all(dir); }
  std::string path(const std::string& name) const { return (dir / name).string(); }
};

// PyTorch's state_dict key of a pconv parameter, spelled out independently of torch_key().
std::string pytorch_name(const ParamSpec& s) {
  switch (s.role) {
    case ParamRole::Weight:
    case ParamRole::Gamma:
      return s.layer + ".weight";
    case ParamRole::Bias:
    case ParamRole::Beta:
      return s.layer + ".bias";
    case ParamRole::RunningMean:
      return s.layer + ".running_mean";
    case ParamRole::RunningVar:
      return s.layer + ".running_var";
  }
  return "";
}

int run_import(const std::vector<std::string>& args, std::string* out, std::string* err) {
  std::ostringstream o, e;
  const int rc = import_command(args, o, e);
  *out = o.str();
  *err = e.str();
  return rc;
}

#define EXPECT_HAS(text, part)                               \
  EXPECT_NE(std::string(text).find(part), std::string::npos) \
      << "missing \"" << (part) << "\" in:\n"                \
      << (text)

TEST(ImportNames, PyTorchKeysOfEveryArchitectureAreUnique) {
  for (const std::string& arch : architecture_names()) {
    const Graph g = build_architecture(arch, {});
    std::set<std::string> keys;
    for (const ParamSpec& s : g.params()) {
      EXPECT_EQ(torch_key(s), pytorch_name(s)) << arch;
      EXPECT_TRUE(keys.insert(torch_key(s)).second) << arch << ": " << torch_key(s) << " twice";
    }
  }
  // Spot checks against torchvision's and the CIFAR models' state_dict keys.
  auto has = [](const std::string& arch, const std::string& key) {
    for (const ParamSpec& s : build_architecture(arch, {}).params())
      if (torch_key(s) == key) return true;
    return false;
  };
  EXPECT_TRUE(has("resnet20", "layer1.0.bn1.running_mean"));
  EXPECT_TRUE(has("resnet20", "layer2.0.downsample.1.weight"));
  EXPECT_TRUE(has("resnet18", "layer4.1.bn2.bias"));
  EXPECT_TRUE(has("vgg16", "classifier.6.weight"));
  EXPECT_TRUE(has("vgg16_cifar", "features.41.running_var"));
  EXPECT_TRUE(has("vgg16_cifar", "classifier.bias"));
  EXPECT_TRUE(has("mobilenet_v2", "features.1.conv.0.0.weight"));
  EXPECT_TRUE(has("mobilenet_v2", "classifier.1.weight"));
  EXPECT_FALSE(has("resnet20", "bn1.gamma"));
}

TEST(ImportCommand, UsageErrors) {
  Files f;
  std::string out, err;
  EXPECT_EQ(run_import({f.path("x.h5"), "--out", f.path("m.h5")}, &out, &err), 2);
  EXPECT_HAS(err, "usage");
  EXPECT_EQ(run_import({f.path("x.h5"), "--arch", "resnet21", "--out", f.path("m.h5")}, &out, &err),
            2);
  EXPECT_HAS(err, "unknown architecture \"resnet21\"");
  EXPECT_EQ(
      run_import({f.path("x.h5"), "--arch", "resnet20", "--width", "abc", "--out", f.path("m.h5")},
                 &out, &err),
      2);
  EXPECT_HAS(err, "--width: \"abc\"");
  EXPECT_EQ(run_import({f.path("x.h5"), "--arch", "resnet20", "--out", f.path("m.h5")}, &out, &err),
            1);
  EXPECT_HAS(err, f.path("x.h5"));
  EXPECT_FALSE(fs::exists(f.path("m.h5")));
}

// What h5py writes from a (possibly masked) model.state_dict(), plus the pattern masks.
struct StateDictFile {
  std::vector<std::pair<std::string, Tensor>> tensors;  // float32 datasets at the root
  std::vector<std::string> batches_tracked;             // int64 scalars
  std::vector<std::string> int_tensors;                 // int32 1-D datasets (error cases)
  std::optional<Tensor> patterns_raw;                   // written as int8 with its shape
  std::map<std::string, std::pair<Shape, std::vector<int8_t>>> ids;  // by conv weight key
  std::vector<std::pair<std::string, Tensor>> reference;             // /reference/<name>

  void erase(const std::string& key) {
    for (auto it = tensors.begin(); it != tensors.end(); ++it)
      if (it->first == key) {
        tensors.erase(it);
        return;
      }
    ADD_FAILURE() << "no key " << key;
  }
  Tensor& at(const std::string& key) {
    for (auto& [k, t] : tensors)
      if (k == key) return t;
    throw std::runtime_error("no key " + key);
  }
};

StateDictFile state_dict_of(const Graph& g, const ParamMap& p) {
  StateDictFile f;
  for (const ParamSpec& s : g.params()) {
    f.tensors.emplace_back(pytorch_name(s), p.at(s.key));
    if (s.role == ParamRole::RunningVar)
      f.batches_tracked.push_back(s.layer + ".num_batches_tracked");
  }
  return f;
}

void set_patterns(StateDictFile& f, const admm::PatternLibrary& lib) {
  Tensor t({lib.size(), 3, 3});
  for (int k = 0; k < lib.size(); ++k)
    for (int pos = 0; pos < 9; ++pos) t[k * 9 + pos] = lib[k].has(pos) ? 1.f : 0.f;
  f.patterns_raw = t;
}

void check_h5(herr_t rc, const std::string& what) {
  if (rc < 0) throw std::runtime_error("HDF5 write failed: " + what);
}

void write_dataset(hid_t loc, const std::string& name, hid_t file_type, hid_t mem_type,
                   const Shape& shape, const void* data) {
  std::vector<hsize_t> dims(shape.begin(), shape.end());
  hid_t space = shape.empty()
                    ? H5Screate(H5S_SCALAR)
                    : H5Screate_simple(static_cast<int>(dims.size()), dims.data(), nullptr);
  hid_t ds = H5Dcreate2(loc, name.c_str(), file_type, space, H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT);
  check_h5(ds, name);
  check_h5(H5Dwrite(ds, mem_type, H5S_ALL, H5S_ALL, H5P_DEFAULT, data), name);
  H5Dclose(ds);
  H5Sclose(space);
}

void write_file(const std::string& path, const StateDictFile& f) {
  hid_t file = H5Fcreate(path.c_str(), H5F_ACC_TRUNC, H5P_DEFAULT, H5P_DEFAULT);
  check_h5(file, path);
  for (const auto& [key, t] : f.tensors)
    write_dataset(file, key, H5T_IEEE_F32LE, H5T_NATIVE_FLOAT, t.shape(), t.data());
  const int64_t tracked = 391;
  for (const std::string& key : f.batches_tracked)
    write_dataset(file, key, H5T_STD_I64LE, H5T_NATIVE_INT64, {}, &tracked);
  const std::vector<int32_t> ints{1, 2, 3};
  for (const std::string& key : f.int_tensors)
    write_dataset(file, key, H5T_STD_I32LE, H5T_NATIVE_INT32, {3}, ints.data());
  if (f.patterns_raw) {
    std::vector<int8_t> v(static_cast<size_t>(f.patterns_raw->size()));
    for (size_t i = 0; i < v.size(); ++i)
      v[i] = static_cast<int8_t>((*f.patterns_raw)[static_cast<int64_t>(i)]);
    write_dataset(file, "patterns", H5T_STD_I8LE, H5T_NATIVE_INT8, f.patterns_raw->shape(),
                  v.data());
  }
  if (!f.ids.empty()) {
    hid_t grp = H5Gcreate2(file, "pattern_ids", H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT);
    check_h5(grp, "pattern_ids");
    for (const auto& [key, si] : f.ids)
      write_dataset(grp, key, H5T_STD_I8LE, H5T_NATIVE_INT8, si.first, si.second.data());
    H5Gclose(grp);
  }
  if (!f.reference.empty()) {
    hid_t grp = H5Gcreate2(file, "reference", H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT);
    check_h5(grp, "reference");
    for (const auto& [name, t] : f.reference)
      write_dataset(grp, name, H5T_IEEE_F32LE, H5T_NATIVE_FLOAT, t.shape(), t.data());
    H5Gclose(grp);
  }
  H5Fclose(file);
}

// Random, non-trivial parameters: BN statistics and affine terms away from their defaults.
ParamMap random_params(const Graph& g, uint64_t seed) {
  ParamMap p = init_params(g, seed);
  std::mt19937_64 rng(seed + 1);
  auto fill = [&](Tensor& t, float lo, float hi) {
    std::uniform_real_distribution<float> u(lo, hi);
    for (int64_t i = 0; i < t.size(); ++i) t[i] = u(rng);
  };
  for (const ParamSpec& s : g.params()) {
    Tensor& t = p.at(s.key);
    if (s.role == ParamRole::Gamma) fill(t, 0.5f, 1.5f);
    if (s.role == ParamRole::Beta || s.role == ParamRole::Bias) fill(t, -0.2f, 0.2f);
    if (s.role == ParamRole::RunningMean) fill(t, -0.1f, 0.1f);
    if (s.role == ParamRole::RunningVar) fill(t, 0.5f, 2.0f);
  }
  return p;
}

// Joint pattern + connectivity projection (admm's) of every 3x3 conv but the first.
PruningState prune_like_pytorch(const Graph& g, ParamMap& p, StateDictFile* f,
                                const admm::PatternLibrary& lib, double rate) {
  PruningState st;
  st.library = lib.masks();
  bool first = true;
  for (const Node& n : g.nodes()) {
    if (n.kind != OpKind::Conv || n.conv().kernel_h != 3 || n.conv().groups != 1) continue;
    if (first) {
      first = false;
      continue;
    }
    Tensor& w = p.at(param_key(n.name, ParamRole::Weight));
    std::vector<int8_t> ids = admm::joint_pattern_ids(w, lib, rate);
    admm::apply_pattern_ids(w, ids, lib);
    st.layer_ids[n.name] = ids;
    if (f) {
      f->at(n.name + ".weight") = w;
      f->ids[n.name + ".weight"] = {{w.dim(0), w.dim(1)}, ids};
    }
  }
  return st;
}

Tensor random_input(const Graph& g, int n, uint64_t seed) {
  const Shape& s = g.input_shape();
  Tensor x({n, s[0], s[1], s[2]});
  std::mt19937_64 rng(seed);
  std::uniform_real_distribution<float> u(-1.f, 1.f);
  for (int64_t i = 0; i < x.size(); ++i) x[i] = u(rng);
  return x;
}

Tensor logits(const Graph& g, const ParamMap& p, const Tensor& x) {
  ParamMap copy = p;
  Net net(g, copy);
  return net.forward(x, false);
}

void expect_bit_identical(const Tensor& a, const Tensor& b, const std::string& what) {
  ASSERT_EQ(a.shape(), b.shape()) << what;
  EXPECT_EQ(std::memcmp(a.data(), b.data(), sizeof(float) * static_cast<size_t>(a.size())), 0)
      << what;
}

void expect_same_params(const Graph& g, const ParamMap& want, const ParamMap& got) {
  EXPECT_EQ(got.size(), g.params().size());
  for (const ParamSpec& s : g.params()) {
    ASSERT_TRUE(got.count(s.key)) << s.key;
    expect_bit_identical(got.at(s.key), want.at(s.key), s.key);
  }
}

std::string import_error(const std::string& path, const std::string& arch, ArchOptions ao = {},
                         bool classes_from_file = true) {
  ImportOptions opt;
  opt.arch = arch;
  opt.arch_options = ao;
  opt.num_classes_from_file = classes_from_file;
  try {
    import_pytorch(path, opt);
  } catch (const Error& e) {
    return e.what();
  }
  ADD_FAILURE() << "importing " << path << " as " << arch << " did not fail";
  return "";
}

TEST(Import, DenseResNet20IsBitExactAndGivesTheSameLogits) {
  Files f;
  const Graph g = build_architecture("resnet20", {});
  const ParamMap p = random_params(g, 7);
  write_file(f.path("sd.h5"), state_dict_of(g, p));

  std::string out, err;
  ASSERT_EQ(
      run_import({f.path("sd.h5"), "--arch", "resnet20", "--out", f.path("m.h5")}, &out, &err), 0)
      << err;
  EXPECT_HAS(out, "dense");
  const ModelFile m = load_model(f.path("m.h5"));
  EXPECT_EQ(m.graph.to_json(), g.to_json());
  expect_same_params(g, p, m.params);
  EXPECT_TRUE(m.pruning.empty());
  EXPECT_EQ(m.meta.at("arch"), "resnet20");
  EXPECT_EQ(m.meta.at("source"), f.path("sd.h5"));
  EXPECT_EQ(m.meta.at("num_classes"), 10);

  const Tensor x = random_input(g, 3, 11);
  const Tensor before = logits(g, p, x), after = logits(m.graph, m.params, x);
  expect_bit_identical(after, before, "logits");
  // Not a vacuous comparison: the logits depend on the weights (and differ per sample).
  EXPECT_NE(before[0], before[10]);
}

TEST(Import, PrunedVgg16CifarKeepsItsMasksAndPassesVerification) {
  Files f;
  ArchOptions ao;
  ao.width = 0.5f;
  const Graph g = build_architecture("vgg16_cifar", ao);
  ParamMap p = random_params(g, 3);
  StateDictFile sd = state_dict_of(g, p);
  const admm::PatternLibrary lib = admm::scp4_library();
  const PruningState want = prune_like_pytorch(g, p, &sd, lib, 8.0);
  set_patterns(sd, lib);
  write_file(f.path("sd.h5"), sd);
  ASSERT_EQ(want.layer_ids.size(), 12u);  // 13 3x3 convs, the first left dense

  std::string out, err;
  ASSERT_EQ(run_import({f.path("sd.h5"), "--arch", "vgg16_cifar", "--width", "0.5", "--out",
                        f.path("m.h5")},
                       &out, &err),
            0)
      << err;
  EXPECT_HAS(out, "12 layers, 4 patterns");
  const ModelFile m = load_model(f.path("m.h5"));
  expect_same_params(g, p, m.params);
  EXPECT_EQ(m.pruning.library, want.library);
  EXPECT_EQ(m.pruning.layer_ids, want.layer_ids);
  EXPECT_EQ(m.pruning.info.at("method"), "import");
  EXPECT_EQ(m.pruning.info.at("granularity"), "pattern");
  for (const auto& [layer, ids] : want.layer_ids) {
    const int64_t kept = std::count_if(ids.begin(), ids.end(), [](int8_t x) { return x >= 0; });
    EXPECT_EQ(m.pruning.info.at("per_layer").at(layer).at("budget"), kept) << layer;
    EXPECT_EQ(kept, admm::kernel_budget(static_cast<int64_t>(ids.size()), 8.0)) << layer;
  }
  EXPECT_TRUE(admm::verify(m.graph, m.params, m.pruning).ok());
  const admm::InspectReport r = admm::inspect(m);
  EXPECT_TRUE(r.verification.ok()) << r.verification.str();
  EXPECT_EQ(r.granularity, "pattern");

  const Tensor x = random_input(g, 2, 5);
  expect_bit_identical(logits(m.graph, m.params, x), logits(g, p, x), "logits");
}

// Every built-in architecture (narrow, 32x32, so the files stay small) round-trips bit for bit,
// with the options given on the command line.
TEST(Import, EveryArchitectureRoundTrips) {
  Files f;
  for (const std::string& arch : architecture_names()) {
    ArchOptions ao;
    ao.width = 0.25f;
    ao.num_classes = 7;
    const Graph g = build_architecture(arch, ao);
    const ParamMap p = random_params(g, 13);
    write_file(f.path(arch + ".h5"), state_dict_of(g, p));
    std::string out, err;
    ASSERT_EQ(run_import({f.path(arch + ".h5"), "--arch", arch, "--width", "0.25", "--image-size",
                          "32", "--out", f.path(arch + "_m.h5")},
                         &out, &err),
              0)
        << arch << ": " << err;
    const ModelFile m = load_model(f.path(arch + "_m.h5"));
    EXPECT_EQ(m.graph.to_json(), g.to_json()) << arch;
    expect_same_params(g, p, m.params);
  }
}

class ImportErrors : public ::testing::Test {
 protected:
  Graph g = build_architecture("resnet20", {});
  ParamMap p = random_params(g, 1);
  StateDictFile sd = state_dict_of(g, p);
  Files f;
  std::string write() {
    write_file(f.path("sd.h5"), sd);
    return f.path("sd.h5");
  }
  // A pruned variant: the convs pruned to 4 SCPs at rate 4 in both the params and the file.
  PruningState prune() {
    const admm::PatternLibrary lib = admm::scp4_library();
    PruningState st = prune_like_pytorch(g, p, &sd, lib, 4.0);
    set_patterns(sd, lib);
    return st;
  }
};

TEST_F(ImportErrors, MissingKeyNamesKeyAndShape) {
  sd.erase("layer2.1.bn2.running_var");
  const std::string e = import_error(write(), "resnet20");
  EXPECT_HAS(e, "missing key layer2.1.bn2.running_var");
  EXPECT_HAS(e, "resnet20 needs [32]");
  EXPECT_HAS(e, "1 problem");
}

TEST_F(ImportErrors, UnexpectedKeyNamesKeyAndShape) {
  sd.tensors.emplace_back("layer1.0.conv3.weight", Tensor({16, 16, 3, 3}));
  const std::string e = import_error(write(), "resnet20");
  EXPECT_HAS(e, "unexpected key layer1.0.conv3.weight: file has [16, 16, 3, 3]");
}

TEST_F(ImportErrors, ShapeMismatchNamesKeyAndBothShapes) {
  sd.at("layer1.0.conv1.weight") = Tensor({16, 16, 1, 1});
  const std::string e = import_error(write(), "resnet20");
  EXPECT_HAS(e, "layer1.0.conv1.weight: file has [16, 16, 1, 1], resnet20 needs [16, 16, 3, 3]");
  EXPECT_HAS(e, "--width");
}

TEST_F(ImportErrors, EveryProblemIsListed) {
  sd.erase("fc.bias");
  sd.at("bn1.weight") = Tensor({17});
  sd.tensors.emplace_back("head.weight", Tensor({2, 2}));
  const std::string e = import_error(write(), "resnet20");
  EXPECT_HAS(e, "3 problem");
  EXPECT_HAS(e, "missing key fc.bias");
  EXPECT_HAS(e, "bn1.weight: file has [17], resnet20 needs [16]");
  EXPECT_HAS(e, "unexpected key head.weight");
}

TEST_F(ImportErrors, NumClassesComesFromTheClassifierUnlessGiven) {
  ArchOptions ao;
  ao.num_classes = 100;
  const Graph g100 = build_architecture("resnet20", ao);
  const ParamMap p100 = random_params(g100, 2);
  write_file(f.path("sd.h5"), state_dict_of(g100, p100));
  ImportOptions opt;
  opt.arch = "resnet20";
  const ModelFile m = import_pytorch(f.path("sd.h5"), opt);
  EXPECT_EQ(m.graph.num_classes(), 100);
  expect_same_params(g100, p100, m.params);

  std::string out, err;
  EXPECT_EQ(run_import({f.path("sd.h5"), "--arch", "resnet20", "--num-classes", "10", "--out",
                        f.path("m.h5")},
                       &out, &err),
            1);
  EXPECT_HAS(err, "fc.weight: file has [100, 64], resnet20 needs [10, 64]");
  EXPECT_FALSE(fs::exists(f.path("m.h5")));
}

TEST_F(ImportErrors, IntegerDatasetsAndStrayBatchCounters) {
  sd.erase("fc.bias");
  sd.int_tensors.push_back("fc.bias");
  sd.batches_tracked.push_back("conv1.num_batches_tracked");  // conv1 is no batch norm
  const std::string e = import_error(write(), "resnet20");
  EXPECT_HAS(e, "unexpected key fc.bias: an integer dataset");
  EXPECT_HAS(e, "unexpected key conv1.num_batches_tracked: resnet20 has no batch norm conv1");
  EXPECT_EQ(e.find("bn1.num_batches_tracked"), std::string::npos) << e;
}

TEST_F(ImportErrors, PrunedResNet20ImportsAndMatchesItsMasks) {
  const PruningState want = prune();
  ImportOptions opt;
  opt.arch = "resnet20";
  const ModelFile m = import_pytorch(write(), opt);
  EXPECT_EQ(m.pruning.layer_ids, want.layer_ids);
  EXPECT_EQ(m.pruning.layer_ids.size(), 18u);
  expect_same_params(g, p, m.params);
}

TEST_F(ImportErrors, WeightOutsideItsPatternNamesTheLayer) {
  prune();
  Tensor& w = sd.at("layer2.0.conv2.weight");
  const std::vector<int8_t>& ids = sd.ids.at("layer2.0.conv2.weight").second;
  const admm::PatternLibrary lib = admm::scp4_library();
  size_t j = 0;
  while (ids[j] < 0) ++j;
  int pos = 0;
  while (lib[ids[j]].has(pos)) ++pos;
  w[static_cast<int64_t>(j) * 9 + pos] = 1e-30f;  // tolerate nothing, however small
  const std::string e = import_error(write(), "resnet20");
  EXPECT_HAS(e, "violate their own pattern masks");
  EXPECT_HAS(e, "layer2.0.conv2");
  EXPECT_EQ(e.find("layer1.0.conv1"), std::string::npos) << e;
}

TEST_F(ImportErrors, NonZeroRemovedKernelNamesTheLayer) {
  prune();
  const std::vector<int8_t>& ids = sd.ids.at("layer3.2.conv1.weight").second;
  size_t j = 0;
  while (ids[j] >= 0) ++j;
  sd.at("layer3.2.conv1.weight")[static_cast<int64_t>(j) * 9 + 4] = -0.5f;
  const std::string e = import_error(write(), "resnet20");
  EXPECT_HAS(e, "layer3.2.conv1");
}

TEST_F(ImportErrors, BadPatternIdsNameTheirKey) {
  prune();
  sd.ids.at("layer1.1.conv2.weight").second[5] = 4;  // the library holds ids 0..3
  std::string e = import_error(write(), "resnet20");
  EXPECT_HAS(e, "pattern_ids/layer1.1.conv2.weight: kernel (0, 5) has pattern id 4");

  sd.ids.at("layer1.1.conv2.weight").second[5] = 0;
  sd.ids["layer3.0.downsample.0.weight"] = {{64, 32}, std::vector<int8_t>(64 * 32, 0)};
  e = import_error(write(), "resnet20");
  EXPECT_HAS(e, "pattern_ids/layer3.0.downsample.0.weight");
  EXPECT_HAS(e, "1x1 conv");

  sd.ids.erase("layer3.0.downsample.0.weight");
  sd.ids["layer2.0.conv1.weight"].first = {16, 32};
  e = import_error(write(), "resnet20");
  EXPECT_HAS(e, "pattern_ids/layer2.0.conv1.weight: file has [16, 32], resnet20 needs [32, 16]");

  sd.ids["layer2.0.conv1.weight"].first = {32, 16};
  sd.ids["layer9.weight"] = {{1, 1}, {0}};
  e = import_error(write(), "resnet20");
  EXPECT_HAS(e, "pattern_ids/layer9.weight: resnet20 has no layer layer9");
}

TEST_F(ImportErrors, PatternsAndIdsComeTogether) {
  prune();
  auto ids = sd.ids;
  sd.ids.clear();
  EXPECT_HAS(import_error(write(), "resnet20"), "/patterns is present but /pattern_ids");
  sd.ids = ids;
  sd.patterns_raw.reset();
  EXPECT_HAS(import_error(write(), "resnet20"), "/pattern_ids is present but /patterns");
}

TEST_F(ImportErrors, PatternLibraryIsValidated) {
  prune();
  (*sd.patterns_raw)[0] = 1.f;  // pattern 0 {1,3,4,5} gains position 0: 5 positions
  EXPECT_HAS(import_error(write(), "resnet20"), "patterns[0]: a pattern keeps exactly 4");
  (*sd.patterns_raw)[0] = 2.f;
  EXPECT_HAS(import_error(write(), "resnet20"), "pattern 0 position 0 (row 0, column 0) holds 2");
}

// ---- scripts/export_pytorch.py -------------------------------------------------------------

bool python_has(const std::string& modules) {
  return std::system(("python3 -c 'import " + modules + "' >/dev/null 2>&1").c_str()) == 0;
}

std::string script() {
  return std::string(PCONV_SOURCE_DIR) + "/scripts/export_pytorch.py";
}

int shell(const std::string& cmd, std::string* output) {
  output->clear();
  FILE* p = popen((cmd + " 2>&1").c_str(), "r");
  if (!p) return -1;
  char buf[4096];
  while (size_t n = fread(buf, 1, sizeof buf, p)) output->append(buf, n);
  const int rc = pclose(p);
  return WIFEXITED(rc) ? WEXITSTATUS(rc) : -1;
}

// The torch-free path: a dense state dict through .npz -> export_pytorch.py --prune-rate (its
// numpy joint projection) must give exactly admm's pattern ids; --infer-patterns must recover
// them from the zeros of an already pruned model.
TEST(ExportScript, NumpyPathMatchesAdmmProjection) {
  if (!python_has("numpy, h5py")) GTEST_SKIP() << "python3 with numpy and h5py not found";
  Files f;
  const Graph g = build_architecture("resnet20", {});
  const ParamMap p = random_params(g, 21);
  write_file(f.path("dense.h5"), state_dict_of(g, p));
  const std::string to_npz =
      "python3 -c \"import h5py, numpy as np, sys; h = h5py.File(sys.argv[1]); "
      "np.savez(sys.argv[2], **{k: h[k][()] for k in h.keys()})\" ";
  std::string log;
  ASSERT_EQ(shell(to_npz + f.path("dense.h5") + " " + f.path("dense.npz"), &log), 0) << log;
  ASSERT_EQ(shell("python3 " + script() + " --from-npz " + f.path("dense.npz") +
                      " --prune-rate 8 --patterns scp4 --out " + f.path("pruned.h5"),
                  &log),
            0)
      << log;

  ParamMap want = p;
  const PruningState st = prune_like_pytorch(g, want, nullptr, admm::scp4_library(), 8.0);
  ImportOptions opt;
  opt.arch = "resnet20";
  const ModelFile m = import_pytorch(f.path("pruned.h5"), opt);
  EXPECT_EQ(m.pruning.library, st.library);
  EXPECT_EQ(m.pruning.layer_ids, st.layer_ids);
  expect_same_params(g, want, m.params);

  // Already pruned weights (here: the pconv side's) with the ids left for the script to infer.
  StateDictFile sd = state_dict_of(g, want);
  write_file(f.path("masked.h5"), sd);
  ASSERT_EQ(shell(to_npz + f.path("masked.h5") + " " + f.path("masked.npz"), &log), 0) << log;
  ASSERT_EQ(shell("python3 " + script() + " --from-npz " + f.path("masked.npz") +
                      " --infer-patterns --patterns '1,3,4,5;1,3,4,7;3,4,5,7;1,4,5,7' --out " +
                      f.path("inferred.h5"),
                  &log),
            0)
      << log;
  const ModelFile mi = import_pytorch(f.path("inferred.h5"), opt);
  EXPECT_EQ(mi.pruning.layer_ids, st.layer_ids);

  // Inference refuses a kernel that fits no pattern, naming the key.
  ASSERT_EQ(shell("python3 " + script() + " --from-npz " + f.path("dense.npz") +
                      " --infer-patterns --out " + f.path("bad.h5"),
                  &log),
            1);
  EXPECT_HAS(log, "layer1.0.conv1.weight: kernel (0, 0)");
}

// ---- the round trip to generated code ------------------------------------------------------

int argmax(const float* v, int k) {
  return static_cast<int>(std::max_element(v, v + k) - v);
}

// How a deployed model's logits compare with a reference's on some inputs.
struct Agreement {
  int samples = 0, same_top1 = 0, near_ties = 0;
  float worst = 0;  // max |err| / tol
};

// `inputs` (N samples of the model's input) through the generated code in `dir` and through
// pconv::Net, each logit against `want` (N x K, PyTorch's or the file's reference) within twice the
// float32 reduction-length tolerance (both sides round in float32); the top-1 must be the same
// unless the reference's top two are closer than that tolerance.
Agreement expect_logits_match(const ModelFile& m, const std::string& dir,
                              const deploy::Target& target, const std::vector<float>& inputs,
                              const Tensor& want, const std::string& what) {
  Agreement a;
  const int k = static_cast<int>(want.dim(1));
  const size_t per = static_cast<size_t>(numel(m.graph.input_shape()));
  a.samples = static_cast<int>(inputs.size() / per);
  EXPECT_EQ(a.samples, want.dim(0)) << what;
  Tensor x(
      {a.samples, m.graph.input_shape()[0], m.graph.input_shape()[1], m.graph.input_shape()[2]});
  std::copy(inputs.begin(), inputs.end(), x.data());
  const Tensor net = logits(m.graph, m.params, x);
  for (int n = 0; n < a.samples; ++n) {
    const std::vector<float> in(inputs.begin() + static_cast<int64_t>(n * per),
                                inputs.begin() + static_cast<int64_t>((n + 1) * per));
    const std::vector<float> gen = deploy::run_generated(dir, target, in);
    EXPECT_EQ(gen.size(), static_cast<size_t>(k)) << what;
    if (gen.size() != static_cast<size_t>(k)) return a;
    const deploy::ReferenceResult r = deploy::reference_forward(m, in);
    const float* w = want.data() + n * k;
    float max_tol = 0;
    for (int c = 0; c < k; ++c) {
      const float tol = 2 * deploy::logit_tolerance(r, static_cast<size_t>(c));
      max_tol = std::max(max_tol, tol);
      EXPECT_NEAR(gen[static_cast<size_t>(c)], w[c], tol)
          << what << ": generated code, sample " << n << " class " << c;
      EXPECT_NEAR(net[n * k + c], w[c], tol)
          << what << ": pconv::Net, sample " << n << " class " << c;
      a.worst = std::max(a.worst, std::fabs(gen[static_cast<size_t>(c)] - w[c]) / tol);
    }
    const int top = argmax(w, k), got = argmax(gen.data(), k);
    if (top == got) {
      ++a.same_top1;
    } else {
      std::vector<float> sorted(w, w + k);
      std::sort(sorted.rbegin(), sorted.rend());
      const bool tie = sorted[0] - sorted[1] <= 2 * max_tol;
      a.near_ties += tie;
      EXPECT_TRUE(tie) << what << ": sample " << n << " top-1 " << got << ", reference " << top;
    }
  }
  return a;
}

// A pruned CIFAR VGG-16 state_dict file (4 SCPs at connectivity rate 8.8) through pconv-import,
// inspect (no violation), pconv-deploy's x86 compiler and verification; returns the model and
// leaves the generated, built code in f.path("x86").
ModelFile import_and_deploy(const Files& f, const std::string& file, const std::string& width,
                            deploy::CompileResult* c) {
  std::string out, err;
  EXPECT_EQ(run_import({file, "--arch", "vgg16_cifar", "--width", width, "--out", f.path("m.h5")},
                       &out, &err),
            0)
      << err;
  const ModelFile m = load_model(f.path("m.h5"));
  EXPECT_EQ(m.pruning.layer_ids.size(), 12u);  // 13 3x3 convs, the first left dense
  for (const auto& [layer, ids] : m.pruning.layer_ids) {
    const int64_t kept = std::count_if(ids.begin(), ids.end(), [](int8_t x) { return x >= 0; });
    EXPECT_EQ(kept, admm::kernel_budget(static_cast<int64_t>(ids.size()), 8.8)) << layer;
  }
  EXPECT_EQ(m.pruning.library, admm::scp4_library().masks());
  const admm::InspectReport r = admm::inspect(m);
  EXPECT_TRUE(r.verification.ok()) << r.verification.str();

  deploy::CompileOptions co;
  co.target = "x86";
  co.out_dir = f.path("x86");
  co.print_table = false;
  *c = deploy::compile_model(m, "vgg16_cifar", co);
  const deploy::VerifyReport v = deploy::verify_generated(m, *c, 1);
  EXPECT_TRUE(v.ok) << v.message;
  return m;
}

// The reference inputs and logits of the file: N x 3 x 32 x 32 and N x 10; they must depend on
// the input (a collapsed model would make the comparison vacuous).
std::pair<std::vector<float>, Tensor> file_reference(const std::string& file, int n) {
  const h5::File ref = h5::File::open_read(file);
  const Tensor x = ref.read_tensor("/reference/input");
  const Tensor want = ref.read_tensor("/reference/logits");
  EXPECT_EQ(x.shape(), (Shape{n, 3, 32, 32}));
  EXPECT_EQ(want.shape(), (Shape{n, 10}));
  float spread = 0;
  for (int c = 0; c < 10; ++c) spread = std::max(spread, std::fabs(want[c] - want[10 + c]));
  EXPECT_GT(spread, 1e-3f) << "the reference logits do not depend on the input";
  return {std::vector<float>(x.data(), x.data() + x.size()), want};
}

// Any numeric dataset (the script writes indices and labels as integers), converted by HDF5.
std::vector<float> read_as_float(const std::string& path, const std::string& obj) {
  hid_t file = H5Fopen(path.c_str(), H5F_ACC_RDONLY, H5P_DEFAULT);
  check_h5(file, path);
  hid_t ds = H5Dopen2(file, obj.c_str(), H5P_DEFAULT);
  check_h5(ds, path + ":" + obj);
  hid_t space = H5Dget_space(ds);
  std::vector<float> v(static_cast<size_t>(H5Sget_simple_extent_npoints(space)));
  check_h5(H5Dread(ds, H5T_NATIVE_FLOAT, H5S_ALL, H5S_ALL, H5P_DEFAULT, v.data()),
           path + ":" + obj);
  H5Sclose(space);
  H5Dclose(ds);
  H5Fclose(file);
  return v;
}

bool cifar_available() {
  return fs::exists(fs::path(PCONV_SHARED_DIR) / "datasets" / "cifar10-jpeg.tar.gz") ||
         fs::is_directory(fs::path(PCONV_CACHE_DIR) / "cifar10-jpeg" / "test") ||
         fs::exists(fs::path(PCONV_CACHE_DIR) / "cifar-10-batches-bin" / "test_batch.bin");
}

// PyTorch (through the script) builds a width-0.25 CIFAR VGG-16, trains it a few steps, prunes it
// to the 4 SCPs at connectivity rate 8.8 with pconv's joint projection, fine-tunes it with the
// masks held, and writes its eval-mode logits: on a fixed random input, and, where CIFAR-10 is
// available, on 20 test images read by the script as pconv reads them. The import must verify,
// the x86 code must reproduce PyTorch's logits on the random input, and on the CIFAR-10 images
// pconv's own data pipeline must feed the generated code inputs on which it gives PyTorch's
// logits and top-1 (so preprocessing, image order, BN and layout all agree).
TEST(ExportScript, PyTorchPrunedVggDeploysForX86WithPyTorchsLogits) {
  if (!python_has("torch, h5py")) GTEST_SKIP() << "python3 with torch and h5py not found";
  Files f;
  const bool cifar = cifar_available();
  std::unique_ptr<data::Dataset> test_set;
  if (cifar) {
    // pconv first: it extracts the shared archive and writes the decoded caches the script reads.
    data::DataConfig dc;
    dc.cache_dir = PCONV_CACHE_DIR;
    test_set = data::open_dataset(dc, data::Split::Test);
    data::open_dataset(dc, data::Split::Train);
  }
  std::string log;
  const std::string data_args = cifar ? std::string(" --data cifar10 --cache-dir ") +
                                            PCONV_CACHE_DIR +
                                            " --eval-limit 20 --aux-eval-limit 20 --lr 0.02"
                                      : std::string();
  ASSERT_EQ(
      shell("python3 " + script() +
                " --arch vgg16_cifar --width 0.25 --train-steps 6 --prune-rate 8.8 "
                "--patterns scp4 --finetune-steps 3 --batch 8 --calibrate-bn 4 --reference-batch 3 "
                "--seed 5" +
                data_args + " --threads 1 --out " + f.path("torch.h5"),
            &log),
      0)
      << log;
  deploy::CompileResult c;
  const ModelFile m = import_and_deploy(f, f.path("torch.h5"), "0.25", &c);
  const auto [x, want] = file_reference(f.path("torch.h5"), 3);
  const Agreement a = expect_logits_match(m, f.path("x86"), c.target, x, want, "random input");
  EXPECT_EQ(a.same_top1 + a.near_ties, a.samples);
  std::cout << "x86 code vs PyTorch, random inputs: worst |err| / tol = " << a.worst << "\n";
  if (!cifar) {
    std::cout << "CIFAR-10 not found: the image comparison was not run\n";
    return;
  }
  // CIFAR-10 test images, by pconv's data set, against PyTorch's logits on the same indices.
  const std::vector<float> idx = read_as_float(f.path("torch.h5"), "/reference/test_indices");
  const std::vector<float> labels = read_as_float(f.path("torch.h5"), "/reference/test_labels");
  const Tensor torch_logits =
      h5::File::open_read(f.path("torch.h5")).read_tensor("/reference/test_logits");
  ASSERT_EQ(idx.size(), 20u);
  ASSERT_EQ(torch_logits.shape(), (Shape{20, 10}));
  const size_t per = static_cast<size_t>(test_set->sample_numel());
  std::vector<float> images(per * 20);
  std::set<int> classes;
  for (int i = 0; i < 20; ++i) {
    const auto j = static_cast<int64_t>(idx[static_cast<size_t>(i)]);
    EXPECT_EQ(test_set->label(j), static_cast<int32_t>(labels[static_cast<size_t>(i)]))
        << "image order differs at " << j;
    classes.insert(test_set->label(j));
    test_set->load(j, false, 0, images.data() + static_cast<size_t>(i) * per);
  }
  EXPECT_EQ(classes.size(), 10u);  // evenly spaced over the class-sorted set: every class
  const Agreement ai =
      expect_logits_match(m, f.path("x86"), c.target, images, torch_logits, "CIFAR-10 images");
  EXPECT_EQ(ai.same_top1, 20);
  std::cout << "x86 code vs PyTorch, 20 CIFAR-10 test images: same top-1 on " << ai.same_top1
            << ", worst |err| / tol = " << ai.worst << "\n";
}

// Without torch, the same round trip from a file this test writes itself: a width-0.25 CIFAR
// VGG-16 with random weights and BN statistics, pruned to the 4 SCPs at rate 8.8 with admm's
// projection, in PyTorch's naming, with reference logits from the naive double executor on the
// original parameters. Runs with or without torch (it is the fallback's own check).
TEST(Import, SelfWrittenPrunedVggDeploysForX86WithItsReferenceLogits) {
  Files f;
  ArchOptions ao;
  ao.width = 0.25f;
  const Graph g = build_architecture("vgg16_cifar", ao);
  ParamMap p = random_params(g, 17);
  // Pruning keeps about 4/9 of 1/8.8 of each conv's weights: scale them up so the activations
  // keep their size through 13 layers (else the logits collapse to the classifier's bias).
  bool first = true;
  for (const Node& n : g.nodes()) {
    if (n.kind != OpKind::Conv) continue;
    Tensor& w = p.at(param_key(n.name, ParamRole::Weight));
    if (!first)
      for (int64_t i = 0; i < w.size(); ++i) w[i] *= std::sqrt(8.8f * 9 / 4);
    first = false;
  }
  StateDictFile sd = state_dict_of(g, p);
  ModelFile src;
  src.graph = g;
  src.pruning = prune_like_pytorch(g, p, &sd, admm::scp4_library(), 8.8);
  src.params = p;
  set_patterns(sd, admm::scp4_library());
  const Tensor x = random_input(g, 3, 23);
  Tensor want({3, 10});
  const int64_t per = x.size() / 3;
  for (int n = 0; n < 3; ++n) {
    const deploy::ReferenceResult r = deploy::reference_forward(
        src, std::vector<float>(x.data() + n * per, x.data() + (n + 1) * per));
    std::copy(r.logits.begin(), r.logits.end(), want.data() + n * 10);
  }
  sd.reference = {{"input", x}, {"logits", want}};
  write_file(f.path("sd.h5"), sd);

  deploy::CompileResult c;
  const ModelFile m = import_and_deploy(f, f.path("sd.h5"), "0.25", &c);
  expect_same_params(g, p, m.params);
  const auto [xs, ref] = file_reference(f.path("sd.h5"), 3);
  const Agreement a = expect_logits_match(m, f.path("x86"), c.target, xs, ref, "self-written");
  EXPECT_EQ(a.same_top1 + a.near_ties, 3);
  std::cout << "x86 code vs the file's reference logits: worst |err| / tol = " << a.worst << "\n";
}

}  // namespace
}  // namespace pconv
