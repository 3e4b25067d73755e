// The opencl target: generated OpenCL kernels and host runtime built and run on whatever OpenCL
// platform this machine has (PoCL on the CPU here; an NVIDIA or phone GPU elsewhere), compared
// with the reference executor; the structure of the emitted kernels (load redundancy
// elimination, one kernel per pattern layer, balanced work-groups); device choice and errors.
// Skipped only when no OpenCL platform exists at all.
#include <dlfcn.h>
#include <gtest/gtest.h>

#include <algorithm>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <regex>
#include <sstream>

#include "core/architectures.h"
#include "deploy/compiler.h"
#include "deploy/synth.h"
#include "deploy/target.h"
#include "deploy_test_models.h"

using namespace pconv;
using namespace pconv::deploy;

namespace {

// Platforms reported by the ICD loader, probed through dlopen so the test binary does not link
// OpenCL: -1 when no loader is installed.
int opencl_platforms() {
  void* lib = dlopen("libOpenCL.so.1", RTLD_NOW | RTLD_LOCAL);
  if (!lib) lib = dlopen("libOpenCL.so", RTLD_NOW | RTLD_LOCAL);
  if (!lib) return -1;
  using GetIds = int (*)(unsigned, void**, unsigned*);
  auto get = reinterpret_cast<GetIds>(dlsym(lib, "clGetPlatformIDs"));
  unsigned n = 0;
  const int e = get ? get(0, nullptr, &n) : -1;
  dlclose(lib);
  return e == 0 ? static_cast<int>(n) : 0;
}

#define REQUIRE_OPENCL()                                                                        \
  do {                                                                                          \
    const int np = opencl_platforms();                                                          \
    if (np <= 0)                                                                                \
      GTEST_SKIP() << (np < 0 ? "no OpenCL ICD loader (libOpenCL.so.1) installed"               \
                              : "no OpenCL platform found (no ICD under /etc/OpenCL/vendors)"); \
  } while (0)

std::string work_dir(const std::string& name) {
  const std::string d = std::string(PCONV_BINARY_DIR) + "/deploy-tests/opencl-" + name;
  std::filesystem::remove_all(d);
  return d;
}

std::string read_text(const std::string& path) {
  std::ifstream f(path);
  std::stringstream ss;
  ss << f.rdbuf();
  return ss.str();
}

CompileResult compile(const ModelFile& m, const std::string& name) {
  CompileOptions opt;
  opt.target = "opencl";
  opt.out_dir = work_dir(name);
  opt.print_table = false;
  return compile_model(m, name, opt);
}

std::string dir_of(const CompileResult& c) {
  const std::string& f = c.gen.files.front();
  return f.substr(0, f.rfind('/'));
}

void check_opencl(const ModelFile& m, const std::string& name, int samples = 2) {
  const CompileResult c = compile(m, name);
  const VerifyReport r = verify_generated(m, c, samples, 11);
  EXPECT_TRUE(r.ok) << name << " on opencl: " << r.message;
  EXPECT_EQ(r.ref_top1, r.gen_top1) << r.message;
}

// Odd sizes: stride 1 and 2 on 13x11 / 7x6 / 3x3 / 2x2 maps (ragged tiles in both directions),
// 1x1, depthwise and a 5x5 (generic) conv, a standalone BN, ReLU6, pools, a linear head over a
// flattened map.
ModelFile odd_model(uint64_t seed) {
  ModelFile m;
  Graph& g = m.graph;
  int x = g.input("in", 3, 13, 11);
  x = g.relu("r1", g.batch_norm("b1", g.conv("c1", x, conv(17, 3, 1))));
  x = g.relu("r2", g.batch_norm("b2", g.conv("c2", x, conv(19, 3, 2))));  // 7x6
  x = g.relu6("r3", g.batch_norm("b3", g.conv("c3", x, conv(9, 1, 1))));
  x = g.relu("r4", g.batch_norm("b4", g.conv("c4", x, conv(9, 3, 1, 9))));  // depthwise
  x = g.relu("r5", g.conv("c5", x, conv(21, 3, 1)));
  x = g.conv("c5b", x, conv(12, 5, 1));                                             // generic
  x = g.relu("r5b", g.batch_norm("b5b", g.max_pool("p1", x, PoolAttrs{2, 2, 0})));  // 3x3
  x = g.relu("r6", g.batch_norm("b6", g.conv("c6", x, conv(33, 3, 1))));
  x = g.avg_pool("p2", x, PoolAttrs{3, 2, 1});  // 2x2
  x = g.relu("r7", g.conv("c7", x, conv(18, 3, 1)));
  x = g.flatten("f", x);
  g.linear("fc", x, LinearAttrs{7, true});
  m.params = init_params(g, seed);
  randomize_bn(m, seed + 1);
  prune_model(m, 4, 2.5, false);
  return m;
}

ModelFile vgg16_cifar() {
  SynthOptions o;
  o.conn_rate = 8.8;
  return synth_model(o);
}

}  // namespace

TEST(DeployOpenCL, OddShapes) {
  REQUIRE_OPENCL();
  check_opencl(odd_model(1), "odd");
}

TEST(DeployOpenCL, WideResidual) {
  REQUIRE_OPENCL();
  check_opencl(wide_residual_model(3), "wide");
}

TEST(DeployOpenCL, PrunedResNet20) {
  REQUIRE_OPENCL();
  SynthOptions o;
  o.arch = "resnet20";
  o.conn_rate = 3.1;
  check_opencl(synth_model(o), "resnet20", 1);
}

// The pruned VGG-16 (CIFAR, 32x32) end to end, then the runner's batch-1 latency on the device.
TEST(DeployOpenCL, PrunedVgg16Cifar) {
  REQUIRE_OPENCL();
  const ModelFile m = vgg16_cifar();
  const CompileResult c = compile(m, "vgg16c");
  const VerifyReport r = verify_generated(m, c, 1, 11);
  EXPECT_TRUE(r.ok) << r.message;
  EXPECT_EQ(r.ref_top1, r.gen_top1) << r.message;
  const std::string d = dir_of(c);
  // No program-scope __constant data: NVIDIA's compiler refused VGG-16's per-filter tables there
  // (83 KB against its 64 KiB limit); they live in a global buffer.
  EXPECT_EQ(read_text(d + "/pconv_model.cl").find("__constant"), std::string::npos);
  std::string out;
  ASSERT_EQ(run_command(runner_command(d, "--input " + d + "/verify_input.f32 --repeat 10"), &out),
            0)
      << out;
  EXPECT_NE(out.find("pconv-opencl: device \""), std::string::npos) << out;
  EXPECT_NE(out.find("latency_ms median"), std::string::npos) << out;
  std::printf("pruned VGG-16/CIFAR on opencl, batch 1 (verify: %s):\n%s", r.message.c_str(),
              out.c_str());
}

// Load redundancy elimination, checked on the kernel text: a dense 3x3 mask over a 2x4 tile loads
// each of the 4 x 6 input values it needs once (24 loads for 72 FMAs; per tap it would be 72), a
// 4-tap pattern loads only the rows and columns its taps touch; one kernel per pattern layer,
// every mask's loop per tile variant, shapes baked in.
TEST(DeployOpenCLCodegen, KernelsLoadEachInputOncePerTile) {
  ModelFile m;
  int x = m.graph.input("in", 6, 8, 8);
  x = m.graph.conv("c1", x, conv(5, 3, 1));
  m.graph.conv("c2", x, conv(7, 3, 1));
  m.params = init_params(m.graph, 2);
  // One SCP for c2: centre, up, left, right (bits 1, 3, 4, 5 of the 3x3 mask).
  m.pruning.library = {static_cast<uint16_t>(1 << 1 | 1 << 3 | 1 << 4 | 1 << 5)};
  m.pruning.layer_ids["c2"] = joint_project(m.params.at("c2/weight"), m.pruning.library, 1.0);
  const CompileResult c = compile(m, "loads");
  const std::string cl = read_text(dir_of(c) + "/pconv_model.cl");
  EXPECT_NE(cl.find("Generated by pconv-deploy (src/deploy/opencl_codegen.cpp)"),
            std::string::npos);
  EXPECT_NE(cl.find("__kernel void L1("), std::string::npos) << cl;
  EXPECT_NE(cl.find("__kernel void L2("), std::string::npos) << cl;
  auto body = [&](const std::string& fn) {
    const size_t a = cl.find("__kernel void " + fn + "(");
    const size_t b = cl.find("\n}\n", a);
    return cl.substr(a, b - a);
  };
  // 8x8 maps tile exactly into 2x4 tiles: one variant, one loop per mask.
  const std::string b1 = body("L1"), b2 = body("L2");
  EXPECT_EQ(occurrences(b1, "// tile "), 1u) << b1;
  EXPECT_EQ(occurrences(b1, "for (int n = cnt["), 1u) << b1;  // dense first conv: one 9-tap mask
  EXPECT_EQ(occurrences(b1, "= ic["), 24u) << b1;
  EXPECT_EQ(occurrences(b1, "fma("), 72u) << b1;
  // The up/left/centre/right pattern: input row -1 feeds only the up tap (4 values), rows 0 and 1
  // need columns -1..4 (6 each), row 2 nothing: 16 loads for 4 taps x 8 outputs.
  EXPECT_EQ(occurrences(b2, "for (int n = cnt["), 1u) << b2;
  EXPECT_EQ(occurrences(b2, "= ic["), 16u) << b2;
  EXPECT_EQ(occurrences(b2, "fma("), 32u) << b2;
  EXPECT_EQ(occurrences(b2, "r += 5)"), 1u) << b2;  // 4 taps: records of 5 words
  // Shapes and strides are constants: no size arguments.
  EXPECT_NE(cl.find("__kernel void L2(__global float* restrict A, __global const uint* restrict "
                    "W,\n    __global const int* restrict Tb)"),
            std::string::npos);
  EXPECT_EQ(c.gen.pattern_kernels, 2);
}

// Ragged maps give the full tile and the ragged variants, each with every mask's loop.
TEST(DeployOpenCLCodegen, RaggedMapsGetTileVariants) {
  ModelFile m;
  int x = m.graph.input("in", 4, 7, 9);  // 7 rows = 3 x 2 + 1, 9 columns = 2 x 4 + 1
  m.graph.conv("c", x, conv(6, 3, 1));
  m.params = init_params(m.graph, 3);
  m.pruning.library = synth_library(4);
  m.pruning.layer_ids["c"] = joint_project(m.params.at("c/weight"), m.pruning.library, 1.0);
  const CompileResult c = compile(m, "ragged");
  const size_t masks = c.ir.ops[1].plan.masks.size();
  const std::string cl = read_text(dir_of(c) + "/pconv_model.cl");
  for (const char* v : {"// tile 2x4", "// tile 2x1", "// tile 1x4", "// tile 1x1"})
    EXPECT_NE(cl.find(v), std::string::npos) << v;
  EXPECT_EQ(c.gen.pattern_kernels, static_cast<int>(4 * masks));
}

// Neighbouring filter positions share a work-group, and the IR's reorder made them similar: in
// the pruned VGG-16 every group of filters of a pattern layer differs in kernel count by at most
// the spread the reorder leaves (here: checked against the unreordered order, which is worse).
TEST(DeployOpenCLCodegen, WorkGroupsHoldSimilarFilters) {
  const ModelFile m = vgg16_cifar();
  CompileOptions opt;
  opt.target = "opencl";
  opt.out_dir = work_dir("balance");
  opt.print_table = false;
  const CompileResult c = compile_model(m, "balance", opt);
  opt.out_dir = work_dir("balance-noreorder");
  opt.plan.reorder_filters = false;
  const CompileResult u = compile_model(m, "balance", opt);
  auto spread = [](const CompileResult& r) {
    // Sum over pattern layers and work-groups of (max - min) kernels per filter in the group.
    int64_t s = 0;
    for (const auto& l : r.gen.layers) {
      if (!l.contains("work_group")) continue;
      const Op& op = r.ir.ops[l["op"].get<size_t>()];
      if (!op.plan.pruned) continue;
      const int g = l["work_group"][1].get<int>();
      for (int p0 = 0; p0 < op.c; p0 += g) {
        int lo = 1 << 30, hi = 0;
        for (int p = p0; p < std::min(op.c, p0 + g); ++p) {
          const int k = op.plan.kernels_per_filter[static_cast<size_t>(
              op.plan.filter_order[static_cast<size_t>(p)])];
          lo = std::min(lo, k);
          hi = std::max(hi, k);
        }
        s += hi - lo;
      }
    }
    return s;
  };
  const int64_t a = spread(c), b = spread(u);
  EXPECT_LT(a, b) << "reordered spread " << a << ", unreordered " << b;
}

// PCONV_OPENCL_PLATFORM: a substring of a platform picks it and the runner says which device ran;
// one that matches nothing fails naming the platforms found; no platform at all is a clear error.
TEST(DeployOpenCL, PlatformChoiceAndErrors) {
  REQUIRE_OPENCL();
  const ModelFile m = wide_residual_model(5);
  const CompileResult c = compile(m, "choice");
  const std::string d = dir_of(c);
  build_generated(d, c.target);
  {
    std::ofstream f(d + "/x.f32", std::ios::binary);
    const std::vector<float> x = random_input(m, 1);
    f.write(reinterpret_cast<const char*>(x.data()), static_cast<std::streamsize>(x.size() * 4));
  }
  const std::string run = runner_command(d, "--input " + d + "/x.f32");
  std::string out;
  ASSERT_EQ(run_command(run, &out), 0) << out;
  std::smatch mt;
  ASSERT_TRUE(std::regex_search(out, mt, std::regex("platform \"([^\"]+)\""))) << out;
  const std::string platform = mt[1];
  // A lower-case piece of the platform's name selects it.
  std::string piece = platform.substr(0, std::min<size_t>(6, platform.size()));
  std::transform(piece.begin(), piece.end(), piece.begin(), ::tolower);
  ASSERT_EQ(run_command("PCONV_OPENCL_PLATFORM='" + piece + "' " + run, &out), 0) << out;
  EXPECT_NE(out.find("platform \"" + platform + "\""), std::string::npos) << out;
  EXPECT_NE(run_command("PCONV_OPENCL_PLATFORM=no-such-platform-xyz " + run, &out), 0);
  EXPECT_NE(out.find("PCONV_OPENCL_PLATFORM=\"no-such-platform-xyz\" matches no platform"),
            std::string::npos)
      << out;
  EXPECT_NE(out.find(platform), std::string::npos) << out;  // lists what it found
  // No ICD at all: the loader finds no platform and the runner says so.
  EXPECT_NE(run_command("OCL_ICD_VENDORS=/nonexistent-pconv " + run, &out), 0);
  EXPECT_NE(out.find("no OpenCL platform found"), std::string::npos) << out;
}

TEST(DeployOpenCL, WeightsFileMismatchIsReported) {
  REQUIRE_OPENCL();
  const ModelFile m = wide_residual_model(6);
  const CompileResult c = compile(m, "mismatch");
  const std::string d = dir_of(c);
  build_generated(d, c.target);
  {
    std::fstream f(d + "/weights.bin", std::ios::in | std::ios::out | std::ios::binary);
    f.seekp(24 + 40);
    const char z[4] = {1, 2, 3, 4};
    f.write(z, 4);
  }
  std::string out;
  EXPECT_NE(run_command(runner_command(d, "--input " + d + "/weights.bin"), &out), 0);
  EXPECT_NE(out.find("weights.bin is corrupt"), std::string::npos) << out;
}
