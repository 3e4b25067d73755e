// Generated code against the reference: small odd-shaped models on c and x86, pruned nets end to
// end on every target available here, golden structure of the emitted code, the fmla check.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <filesystem>
#include <fstream>
#include <map>
#include <regex>
#include <set>
#include <sstream>
#include <tuple>

#include "core/architectures.h"
#include "deploy/compiler.h"
#include "deploy/synth.h"
#include "deploy/target.h"
#include "deploy_test_models.h"
#include "deploy_test_run.h"

using namespace pconv;
using namespace pconv::deploy;

namespace {

// Odd sizes everywhere: stride 1 and 2, maps of 13x11 / 7x6 / 4x3 / 2x2, channels that are no
// multiple of any vector width, 1x1 and depthwise convs, ReLU6, pools, a linear head.
ModelFile odd_model(uint64_t seed) {
  ModelFile m;
  Graph& g = m.graph;
  int x = g.input("in", 3, 13, 11);
  x = g.relu("r1", g.batch_norm("b1", g.conv("c1", x, conv(17, 3, 1))));
  x = g.relu("r2", g.batch_norm("b2", g.conv("c2", x, conv(19, 3, 2))));  // 7x6
  x = g.relu6("r3", g.batch_norm("b3", g.conv("c3", x, conv(9, 1, 1))));
  x = g.relu("r4", g.batch_norm("b4", g.conv("c4", x, conv(9, 3, 1, 9))));  // depthwise
  x = g.relu("r5", g.conv("c5", x, conv(21, 3, 1)));
  x = g.max_pool("p1", x, PoolAttrs{2, 2, 0});  // 3x3
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

}  // namespace

TEST(DeployRun, OddShapesC) {
  check_target(odd_model(1), "odd", "c");
}
TEST(DeployRun, OddShapesX86) {
  check_target(odd_model(1), "odd", "x86");
}
TEST(DeployRun, OddShapesAvx2) {
  check_target(odd_model(2), "odd2", "avx2");
}
TEST(DeployRun, WideResidualC) {
  check_target(wide_residual_model(3), "wide", "c");
}
TEST(DeployRun, WideResidualX86) {
  check_target(wide_residual_model(3), "wide", "x86");
}

// The channel-stationary rows layout takes these layers by default on AVX-512: the filter blocks
// run where it is turned off (PCONV_STATIONARY_ROW_VECS=0, as a target without it would).
struct RowsOff {
  RowsOff() { setenv("PCONV_STATIONARY_ROW_VECS", "0", 1); }
  ~RowsOff() { unsetenv("PCONV_STATIONARY_ROW_VECS"); }
};

TEST(DeployRun, FilterBlocksAvx512) {
  if (!host_has_avx512()) GTEST_SKIP() << "no AVX-512 on this machine";
  const RowsOff rows_off;
  const ModelFile m = block_model(6);
  check_target(m, "blocks", "avx512");
  const CompileResult c = compile_in(m, "blocks", "avx512", work_dir("blocks-kind"));
  std::map<std::string, int> block;
  for (const auto& L : c.gen.layers)
    if (L.contains("filter_block")) block[L["name"].get<std::string>()] = L["filter_block"];
  EXPECT_GT(block["r2"], 0);  // 29x29 from 130 channels
  EXPECT_GT(block["c3"], 0);  // 14x14 from 37
  EXPECT_GT(block["r3"], 0);
  EXPECT_EQ(block.count("r1"), 0u);  // 3 input channels: the per-filter kernel
}

// With a small band budget (PCONV_BAND_KB) the row kernel's 48-row maps fall into 8 or more
// bands, and threads take runs of bands instead of the filters of each band: every op threaded,
// on x86 and c, against both oracles.
struct SmallBands {
  SmallBands() { setenv("PCONV_BAND_KB", "2", 1); }
  ~SmallBands() { unsetenv("PCONV_BAND_KB"); }
};

TEST(DeployRun, RowKernelThreadsTakeRunsOfBands) {
  const SmallBands small_bands;
  const RowsOff rows_off;
  ModelFile m;
  Graph& g = m.graph;
  int x = g.input("in", 6, 48, 24);
  x = g.relu("r1", g.conv("c1", x, conv(12, 3, 1)));
  x = g.relu6("r2", g.conv("c2", x, conv(16, 3, 1)));
  x = g.conv("c3", x, conv(10, 3, 1));
  x = g.flatten("f", g.global_avg_pool("gap", x));
  g.linear("fc", x, LinearAttrs{5, true});
  m.params = init_params(g, 13);
  prune_model(m, 4, 2.0, false);
  for (const char* target : {"x86", "c"}) {
    SCOPED_TRACE(target);
    check_target(m, "bands", target);
    const std::string src = read_text(std::string(PCONV_BINARY_DIR) + "/deploy-tests/bands-" +
                                      target + "/pconv_model.cpp");
    EXPECT_NE(src.find("PC_OMP_FOR\n  for (int b0 = 0; b0 < 48;"), std::string::npos);
  }
}

TEST(DeployRun, SmallMapActivationsAvx512AndAvx2) {
  const ModelFile m = small_map_model(8);
  if (host_has_avx512()) check_target(m, "smallmap", "avx512");
  check_target(m, "smallmap", "avx2");
}

// The small-map convs gather into a scratch per thread, sized by pconv_create for the thread
// count set then. A model created on one thread and run on three must keep to that scratch (ASan
// would report the overflow) and give the same logits as one created on three: within 1e-5
// relative, as the layers split by input channels sum in an order set by the thread count.
TEST(DeployRun, SmallMapScratchFollowsTheThreadCountAtCreate) {
  if (std::system(
          "echo 'int main(){}' | g++ -x c++ -fsanitize=address -o /dev/null - 2>/dev/null") != 0)
    GTEST_SKIP() << "no AddressSanitizer runtime";
  const ModelFile m = small_map_model(9);
  const std::string dir = work_dir("smallmap-threads");
  compile_in(m, "smallmap", "x86", dir);
  {
    std::ofstream f(dir + "/threads_driver.cpp");
    f << "#include <omp.h>\n#include <cmath>\n#include <cstdio>\n#include <vector>\n"
         "#include \"pconv_model.h\"\n"
         "int main(int, char** argv) {\n"
         "  std::vector<float> x(pconv_input_size(), 0.25f), a(pconv_output_size()), "
         "b(pconv_output_size());\n"
         "  for (size_t i = 0; i < x.size(); ++i) x[i] = 0.01f * (float)(i % 97) - 0.4f;\n"
         "  omp_set_num_threads(1);\n  pconv_model* one = pconv_create(argv[1]);\n"
         "  omp_set_num_threads(3);\n  pconv_model* three = pconv_create(argv[1]);\n"
         "  if (!one || !three || pconv_run(one, x.data(), a.data()) || "
         "pconv_run(three, x.data(), b.data())) return 2;\n"
         "  for (size_t i = 0; i < a.size(); ++i)\n"
         "    if (std::fabs(a[i] - b[i]) > 1e-5f * (1.0f + std::fabs(a[i]))) {\n"
         "      std::printf(\"differ at %zu: %g %g\\n\", i, a[i], b[i]);\n      return 1;\n    }\n"
         "  pconv_destroy(one);\n  pconv_destroy(three);\n  std::printf(\"same\\n\");\n  return "
         "0;\n}\n";
  }
  std::string out;
  ASSERT_EQ(run_command("cd " + dir +
                            " && g++ -std=c++17 -O1 -g -fopenmp -fsanitize=address -march=native "
                            "threads_driver.cpp pconv_model.cpp -o threads_driver 2>&1",
                        &out),
            0)
      << out;
  EXPECT_EQ(run_command(dir + "/threads_driver " + dir + "/weights.bin 2>&1", &out), 0) << out;
  EXPECT_NE(out.find("same"), std::string::npos) << out;
}

// ResNet-20 with every op threaded; then at connectivity 2 with the default threading, where
// its 8x8 layers (128 MACs an output) split by input channels on AVX-512 and feed residual adds.
// A dense first conv with lanes over output channels: whole tiles only (it writes its own border,
// no border pass after it) and with a ragged last tile (masked stores on AVX-512, staged through
// a buffer on AVX2; the border pass kept), each read by the row kernel (which reads the whole
// border), at 1-3 threads on NaN-filled memory.
TEST(DeployRun, FirstConvChannelLanesAvx512AndAvx2) {
  for (const auto& [target, w] : std::vector<std::pair<std::string, int>>{
           {"avx512", 32}, {"avx512", 37}, {"avx2", 32}, {"avx2", 37}}) {
    SCOPED_TRACE(target + " " + std::to_string(w));
    if (target == "avx512" && !host_has_avx512()) continue;
    ModelFile m;
    Graph& g = m.graph;
    int x = g.input("in", 3, 12, w);
    x = g.relu("r1", g.batch_norm("b1", g.conv("c1", x, conv(32, 3, 1))));
    x = g.relu("r2", g.conv("c2", x, conv(16, 3, 1)));
    x = g.flatten("f", g.global_avg_pool("gap", x));
    g.linear("fc", x, LinearAttrs{5, true});
    m.params = init_params(g, 7);
    randomize_bn(m, 8);
    prune_model(m, 4, 2.0, false);  // the first conv stays dense
    const std::string dir = work_dir(cat("lanes-", target, "-", w));
    const CompileResult c = compile_in(m, "lanes", target, dir, 0);
    std::map<std::string, nlohmann::json> layer = layers_by_name(c);
    EXPECT_EQ(layer["r1"]["kind"], "dense_channel_lanes");
    EXPECT_EQ(layer["r1"]["writes_border"], w % 16 == 0);
    EXPECT_EQ(layer["r2"]["kind"], "sparse");
    const std::string src = read_text(dir + "/pconv_model.cpp");
    EXPECT_EQ(src.find(cat("pc_zero_border_k<32, 12, ", w)) == std::string::npos, w % 16 == 0);
    check_poisoned_thread_counts(m, c, dir, 60);
  }
}

// Rows of 224 floats plus margins (1 KiB on AVX-512) get one more vector (272 floats), so every
// fourth row no longer falls in the same L1 sets; the lanes conv then zeroes that padding with its
// right margin, read by the row kernel after it on NaN-filled memory.
TEST(DeployRun, RowsOfOneKibArePaddedAvx512) {
  if (!host_has_avx512()) GTEST_SKIP() << "no AVX-512 on this machine";
  const ModelFile m = two_conv_model(3, 5, 224, 16, 16, 3);
  const std::string dir = work_dir("rowpad");
  const CompileResult c = compile_in(m, "rowpad", "avx512", dir, 0);
  EXPECT_EQ(layers_by_name(c)["r1"]["kind"], "dense_channel_lanes");
  EXPECT_NE(read_text(dir + "/pconv_model.cpp").find("y0 * 272"), std::string::npos);
  const VerifyReport r = verify_generated(m, c, 2, 21);
  EXPECT_TRUE(r.ok) << r.message;
}

// Dense 1x1 convs with stride 2 (ResNet projection shortcuts) gather the pixels they read: here
// rows of 6 and 3 floats, no whole number of vectors but on c (flat: scattered stores): 13x11 ->
// 7x6 with BN and ReLU, 6 filters (a block of 4 and a short one of 2), then 7x6 -> 4x3 with ReLU6
// and 5 filters; on c, avx2, x86 and (under qemu, where installed) neon with every op threaded,
// then on NaN-filled memory at 1-3 threads (x86), against both oracles.
TEST(DeployRun, PointwiseStridedConvs) {
  ModelFile m;
  Graph& g = m.graph;
  int x = g.input("in", 10, 13, 11);
  x = g.relu("r1", g.conv("c1", x, conv(12, 3, 1)));
  x = g.relu("r2", g.batch_norm("b2", g.conv("c2", x, conv(6, 1, 2))));
  x = g.relu6("r3", g.conv("c3", x, conv(5, 1, 2)));
  pooled_head(m, x, 4, 21);
  std::vector<std::string> targets = {"c", "avx2", "x86"};
  if (std::system("which qemu-aarch64 aarch64-linux-gnu-g++ > /dev/null 2>&1") == 0)
    targets.push_back("neon");
  for (const std::string& target : targets) {
    SCOPED_TRACE(target);
    check_target(m, "pointwise", target);
    const std::string dir = work_dir("pointwise-kind-" + target);
    const CompileResult c = compile_in(m, "pointwise", target, dir);
    std::map<std::string, nlohmann::json> layer = layers_by_name(c);
    const bool flat = target != "c";
    for (const char* r : {"r2", "r3"}) {
      EXPECT_EQ(layer[r]["kind"], "dense_1x1_strided") << r;
      EXPECT_EQ(layer[r]["form"], flat ? "gathered_flat" : "gathered") << r;
    }
    if (target == "x86") check_poisoned_thread_counts(m, c, dir, 70);
  }
}

// Stride-2 pattern convs: a conv (BN, ReLU6), a depthwise one (ReLU) and a conv without
// activation, each halving the map, and a dense 1x1 stride-2 projection (BN) added to the
// depthwise one's output. 29x80 gives outputs 15x40, 8x20, 4x10: ragged row blocks and, on AVX2
// (5 vectors in tiles of 2), c and NEON, a ragged column block; 31x64 gives 16x32, 8x16, 4x8,
// whole vectors for AVX-512 too. Rows that are no whole number of vectors run flat (vectors over
// the phase planes' rows one after another, their lanes scattered to the output rows). Every
// target here with every op threaded, then x86 on NaN-filled memory at 1-3 threads (the phases
// are written by one loop and read by the next; the flat lanes past the map read what no one
// wrote, and must not reach the output).
namespace {
ModelFile strided_model(int h, int w, uint64_t seed) {
  ModelFile m;
  Graph& g = m.graph;
  int x = g.input("in", 6, h, w);
  x = g.relu("r1", g.conv("c1", x, conv(16, 3, 1)));
  x = g.relu6("r2", g.batch_norm("b2", g.conv("c2", x, conv(20, 3, 2))));
  const int y = g.relu("r3", g.conv("c3", x, conv(20, 3, 2, 20)));
  x = g.relu("r5", g.add("add", y, g.batch_norm("b5", g.conv("c5", x, conv(20, 1, 2)))));
  pooled_head(m, g.conv("c4", x, conv(24, 3, 2)), 5, seed);
  return m;
}
}  // namespace

TEST(DeployRun, StridedConvsTakeInputPhases) {
  std::vector<std::string> targets = {"c", "avx2", "x86"};
  if (std::system("which qemu-aarch64 aarch64-linux-gnu-g++ > /dev/null 2>&1") == 0)
    targets.push_back("neon");
  for (const auto& [h, w] : {std::pair{29, 80}, std::pair{31, 64}}) {
    const ModelFile m = strided_model(h, w, static_cast<uint64_t>(h));
    for (const std::string& target : targets) {
      SCOPED_TRACE(target + " " + std::to_string(h) + "x" + std::to_string(w));
      const std::string name = "strided" + std::to_string(w);
      check_target(m, name, target);
      const std::string dir = work_dir(name + "-kind-" + target);
      const CompileResult c = compile_in(m, name, target, dir, 0);
      std::map<std::string, nlohmann::json> layer = layers_by_name(c);
      const int vec = target_by_name(target).vec;
      int out_w = w;
      for (const char* r : {"r2", "r3", "c4"}) {
        out_w = (out_w + 1) / 2;
        EXPECT_EQ(layer[r]["kind"], "sparse_strided") << r;
        EXPECT_EQ(layer[r]["form"], out_w % vec == 0 ? "phases" : "phases_flat")
            << r << " " << out_w;
        if (std::string(r) == "r3") {
          EXPECT_EQ(layer["b5"]["kind"], "dense_1x1_strided");
          EXPECT_EQ(layer["b5"]["form"], out_w % vec == 0 ? "gathered" : "gathered_flat");
        }
      }
      if (target == "x86") check_poisoned_thread_counts(m, c, dir, 80);
    }
  }
}

TEST(DeployRun, PrunedResNet20X86) {
  SynthOptions o;
  o.arch = "resnet20";
  o.conn_rate = 3.1;
  check_target(synth_model(o), "resnet20", "x86", 1);
  o.conn_rate = 2.0;
  check_target(synth_model(o), "resnet20", "x86", 1, -1);
}

TEST(DeployRun, PrunedVgg16CifarX86) {
  SynthOptions o;
  o.conn_rate = 8.8;
  check_target(synth_model(o), "vgg16c", "x86", 1);
}

TEST(DeployRun, PrunedVgg16CifarNeonUnderQemu) {
  if (std::system("which qemu-aarch64 aarch64-linux-gnu-g++ > /dev/null 2>&1") != 0)
    GTEST_SKIP() << "no aarch64 cross compiler or qemu";
  SynthOptions o;
  o.conn_rate = 8.8;
  check_target(synth_model(o), "vgg16c", "neon", 1);
}

// The primary oracle is pconv::Net (dense oneDNN inference of the pruned, unfolded weights): its
// own logits pass, and a logit moved by well over the tolerance fails naming it.
TEST(DeployVerify, NetOracleAcceptsItsLogitsAndRejectsAPerturbedOne) {
  const ModelFile m = wide_residual_model(7);
  const std::vector<float> x = random_input(m, 3);
  std::vector<float> y = net_forward(m, x);
  ASSERT_EQ(y.size(), 10u);
  VerifyReport r = compare_with_reference(m, x, y);
  EXPECT_TRUE(r.ok) << r.message;
  EXPECT_EQ(r.ref_top1, r.naive_top1) << r.message;
  // The two oracles agree with each other within the float32 tolerance.
  EXPECT_LE(r.naive_max_tol_ratio, 1.0f) << r.message;
  y[3] += 1e-3f * (std::fabs(y[3]) + 1.0f);
  r = compare_with_reference(m, x, y);
  EXPECT_FALSE(r.ok);
  EXPECT_NE(r.message.find("pconv::Net: logit 3"), std::string::npos) << r.message;
}

TEST(DeployCodegen, EmitsOnePatternLoopPerMaskAndTileVariant) {
  ModelFile m;
  int x = m.graph.input("in", 16, 32, 32);
  m.graph.conv("c", x, conv(8, 3, 1));
  m.params = init_params(m.graph, 1);
  m.pruning.library = synth_library(4);
  m.pruning.layer_ids["c"] = joint_project(m.params.at("c/weight"), m.pruning.library, 1.0);
  const std::string dir = work_dir("golden");
  const CompileResult c = compile_in(m, "golden", "avx512", dir);
  // 32x32 at 16 lanes: 2 vectors per row -> one tile width (T = 2); 32 rows in blocks of 6 leave
  // a remainder of 2: two tile variants, each with one loop per mask.
  const size_t masks = c.ir.ops[1].plan.masks.size();
  EXPECT_EQ(masks, 4u);
  EXPECT_EQ(c.gen.pattern_kernels, static_cast<int>(2 * masks));
  const std::string src = read_text(dir + "/pconv_model.cpp");
  EXPECT_NE(src.find("Generated by pconv-deploy (src/deploy/codegen.cpp)"), std::string::npos);
  EXPECT_NE(src.find("L1_tile_6x2("), std::string::npos);
  EXPECT_NE(src.find("L1_tile_2x2("), std::string::npos);
  // Row streaming: neighbours come from aligned loads through valignd, never unaligned loads.
  EXPECT_EQ(src.find("loadu"), std::string::npos);
  EXPECT_NE(src.find("alignr"), std::string::npos);
  // Each pattern has 4 taps and its record is 5 words.
  EXPECT_EQ(std::count(src.begin(), src.end(), '\n') > 0, true);
  EXPECT_EQ(occurrences(src, "r += 5)"), 2 * masks);
}

// The pruned small maps of the odd model take the small-map kernels; OddShapesX86 checks them
// against the oracles. On AVX-512 the maps of 9 pixels up to 4 vectors (7x6, whose rows straddle
// vectors, and 3x3) take the channel-stationary form (pixel lanes) and the 2x2 map, whose 4
// pixels would leave 12 of 16 lanes idle, the gather form (pixel x tap lanes). AVX2 has no packed
// layout: the 3x3 map (21 channels in) takes the rows layout (a band of 3 rows of one vector),
// the 2x2 map the gather form, the 7x6 map (9 channels in, too few for the stationary form) the
// row kernel.
TEST(DeployCodegen, SmallMapsUseThePixelTapKernelOnAvx512AndAvx2) {
  const ModelFile m = odd_model(1);
  for (const auto& [target, bcast, margin] :
       {std::tuple<std::string, std::string, std::string>{"avx512", "_mm512_maskz_broadcast_f32x4",
                                                          "<2, 2, 1, 21, 48, 432, 64,"},
        {"avx2", "_mm256_broadcast_ps", "<2, 2, 1, 21, 24, 216, 32,"}}) {
    SCOPED_TRACE(target);
    const std::string dir = work_dir("small-map-" + target);
    const CompileResult c = compile_in(m, "small", target, dir);
    std::map<std::string, std::string> kind;
    for (const auto& L : c.gen.layers)
      if (L.contains("kind")) kind[L["name"].get<std::string>()] = L["kind"].get<std::string>();
    EXPECT_EQ(kind["r6"], "sparse_stationary");                                  // 3x3
    EXPECT_EQ(kind["r7"], "sparse_small_map");                                   // 2x2
    EXPECT_EQ(kind["r5"], target == "avx512" ? "sparse_stationary" : "sparse");  // 7x6
    // AVX-512 gathers with permutes and sums each pixel's lanes with shuffles; AVX2 in scalar.
    for (const auto& L : c.gen.layers)
      if (L["kind"] == "sparse_small_map") {
        EXPECT_EQ(L["vector_gather"], target == "avx512") << L["name"];
        EXPECT_EQ(L["vector_epilogue"], target == "avx512") << L["name"];
      }
    for (const auto& L : c.gen.layers)
      if (L["kind"] == "sparse_stationary") {
        EXPECT_EQ(L["groups"], 1) << L["name"];      // 33 filters: one accumulator buffer
        EXPECT_EQ(L["tap_shifts"], 5) << L["name"];  // the 4 SCPs: the centre and 4 neighbours
        // 3x3: one packed vector on AVX-512, two loaded from a packed copy on AVX2; 7x6 (AVX-512
        // only): three packed vectors.
        EXPECT_EQ(L["vectors"], L["name"] == "r5" ? 3 : target == "avx2" ? 2 : 1) << L["name"];
        EXPECT_EQ(L["layout"], target == "avx2" ? "packed_loads" : "packed") << L["name"];
      }
    const std::string src = read_text(dir + "/pconv_model.cpp");
    EXPECT_NE(src.find(bcast), std::string::npos);
    if (target == "avx512") {
      EXPECT_NE(src.find("_mm512_maskz_alignr_epi32(0x"), std::string::npos);
    }
    // Maps only scalar code touches (pool -> small map -> pool -> small map -> classifier) keep a
    // one-float margin, not a vector: c6's 3x3 output rows are 5 floats (the padded average pool
    // p2 reads them), c7's 2x2 rows 4 (the classifier reads them).
    EXPECT_NE(src.find("pc_geom{33, 3, 3, 5, 25, 6, 0}"), std::string::npos);
    EXPECT_NE(src.find("pc_geom{18, 2, 2, 4, 16, 5, 0}"), std::string::npos);
    // c5's 7x6 map is no gather form's output (the stationary form reads and writes any row
    // layout): it keeps the vector margin (one vector a side: 16 floats on avx512, 8 on avx2),
    // as the max pool p1 reads it.
    EXPECT_NE(src.find("pc_pool_k" + margin), std::string::npos);
    // Their readers read no padding (pools, the classifier), so no border of theirs is zeroed.
    for (const char* c : {"<33, 3, 3,", "<18, 2, 2,", "<21, 7, 6,"})
      EXPECT_EQ(src.find(std::string("pc_zero_border_k") + c), std::string::npos) << c;
  }
}

// Ops below min_parallel_work run on the calling thread: by default every op of this small model;
// with the bar between the convs' MAC counts, the heaviest conv alone stays threaded, the code
// still matches both oracles, and pconv_run leaves the caller's thread count as it found it.
TEST(DeployCodegen, SmallOpsRunOnTheCallingThread) {
  const ModelFile m = wide_residual_model(4);
  auto compile = [&](const std::string& dir, int64_t bar) {
    return compile_in(m, "threads", "x86", dir, bar);
  };
  const std::string all_dir = work_dir("threads-default"), dir = work_dir("threads-mixed");
  const CompileResult all = compile(all_dir, -1);
  EXPECT_EQ(all.gen.one_thread_ops.size(), all.gen.layers.size() + 3);  // + add, gap, fc
  std::string src = read_text(all_dir + "/pconv_model.cpp");
  EXPECT_EQ(occurrences(src, "pc_set_threads(1);"), 1u);
  EXPECT_EQ(occurrences(src, "pc_set_threads(pc_threads);"), 1u);

  int64_t top = 0, next = 0;
  std::string heaviest;
  for (const Op& op : all.ir.ops)
    if (op.type == OpType::Conv) {
      if (op.plan.nonzero_macs > top) {
        next = top;
        top = op.plan.nonzero_macs;
        heaviest = op.name;
      } else {
        next = std::max(next, op.plan.nonzero_macs);
      }
    }
  ASSERT_GT(top, next);
  const CompileResult mixed = compile(dir, next + 1);
  std::vector<std::string> one;
  for (const auto& n : mixed.gen.one_thread_ops) one.push_back(n.get<std::string>());
  EXPECT_EQ(std::count(one.begin(), one.end(), heaviest), 0);
  EXPECT_EQ(std::count(one.begin(), one.end(), "fc"), 1);
  src = read_text(dir + "/pconv_model.cpp");
  EXPECT_GE(occurrences(src, "pc_set_threads(1);"), 1u);
  EXPECT_GE(occurrences(src, "pc_set_threads(pc_threads);"), 1u);
  const VerifyReport r = verify_generated(m, mixed, 2, 5);
  EXPECT_TRUE(r.ok) << r.message;
  std::string out;
  ASSERT_EQ(
      run_command(
          runner_command(dir, "--input " + dir + "/verify_input.f32 --repeat 3 --threads 3"), &out),
      0)
      << out;
  EXPECT_NE(out.find("\nthreads 3\n"), std::string::npos) << out;
}

TEST(DeployCodegen, NeonAssemblyHoldsFmla) {
  if (std::system("which aarch64-linux-gnu-g++ > /dev/null 2>&1") != 0)
    GTEST_SKIP() << "no aarch64 cross compiler";
  const ModelFile m = odd_model(4);
  const std::string dir = work_dir("asm-neon");
  compile_in(m, "asm", "neon", dir);
  std::string out;
  ASSERT_EQ(run_command("aarch64-linux-gnu-g++ -O3 -std=c++17 -S -o " + dir + "/m.s " + dir +
                            "/pconv_model.cpp",
                        &out),
            0)
      << out;
  const std::string s = read_text(dir + "/m.s");
  EXPECT_TRUE(std::regex_search(s, std::regex("\\bfmla\\s+v[0-9]+\\.4s")));
}

TEST(DeployCodegen, X86AssemblyHoldsVectorFma) {
  const ModelFile m = odd_model(4);
  const std::string dir = work_dir("asm-x86");
  compile_in(m, "asm", "avx512", dir);
  std::string out;
  ASSERT_EQ(run_command("g++ -O3 -std=c++17 -mavx512f -mfma -S -o " + dir + "/m.s " + dir +
                            "/pconv_model.cpp",
                        &out),
            0)
      << out;
  EXPECT_TRUE(
      std::regex_search(read_text(dir + "/m.s"), std::regex("vfmadd[0-9]+ps\\s+[^\\n]*%zmm")));
}

TEST(DeployCodegen, WeightsFileMismatchIsReported) {
  const ModelFile m = odd_model(5);
  const std::string dir = work_dir("mismatch");
  const CompileResult c = compile_in(m, "mm", "c", dir);
  build_generated(dir, c.target);
  // Corrupt one weight word: the checksum must catch it and name the file.
  {
    std::fstream f(dir + "/weights.bin", std::ios::in | std::ios::out | std::ios::binary);
    f.seekp(24 + 40);
    const char z[4] = {1, 2, 3, 4};
    f.write(z, 4);
  }
  std::string out;
  EXPECT_NE(run_command(runner_command(dir, "--input /dev/zero"), &out), 0);
  EXPECT_NE(out.find("weights.bin"), std::string::npos) << out;
}
