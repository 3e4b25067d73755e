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

using namespace pconv;
using namespace pconv::deploy;

namespace {

std::string read_text(const std::string& path) {
  std::ifstream f(path);
  std::stringstream ss;
  ss << f.rdbuf();
  return ss.str();
}

std::string work_dir(const std::string& name) {
  const std::string d = std::string(PCONV_BINARY_DIR) + "/deploy-tests/" + name;
  std::filesystem::remove_all(d);
  return d;
}

// Compiles m for target into dir, quietly; min_parallel_work as in CompileOptions (negative: the
// target's default).
CompileResult compile_in(const ModelFile& m, const std::string& name, const std::string& target,
                         const std::string& dir, int64_t min_parallel_work = -1) {
  CompileOptions opt;
  opt.target = target;
  opt.out_dir = dir;
  opt.print_table = false;
  opt.min_parallel_work = min_parallel_work;
  return compile_model(m, name, opt);
}

// analysis.json's generated layers by name.
std::map<std::string, nlohmann::json> layers_by_name(const CompileResult& c) {
  std::map<std::string, nlohmann::json> layer;
  for (const auto& L : c.gen.layers) layer[L["name"].get<std::string>()] = L;
  return layer;
}

// min_parallel_work 0 by default: every op threaded, as these models are small enough that the
// default would run most on one thread, and the threaded loops are what can go wrong; -1 (the
// target's default) gives the mix a user gets, with the layers split by input channels.
void check_target(const ModelFile& m, const std::string& name, const std::string& target,
                  int samples = 2, int64_t min_parallel_work = 0) {
  const std::string dir = work_dir(name + "-" + target + (min_parallel_work ? "-default" : ""));
  const CompileResult c = compile_in(m, name, target, dir, min_parallel_work);
  const VerifyReport r = verify_generated(m, c, samples, 11);
  EXPECT_TRUE(r.ok) << name << " on " << target << ": " << r.message;
  EXPECT_EQ(r.ref_top1, r.gen_top1) << r.message;
  EXPECT_EQ(r.naive_top1, r.gen_top1) << r.message;
}

// Builds the code compiled into dir on NaN-filled memory (PCONV_POISON) and runs it at 1, 2 and 3
// threads on fresh inputs (seeds from `seed`) against both oracles.
void check_poisoned_thread_counts(const ModelFile& m, const CompileResult& c,
                                  const std::string& dir, uint64_t seed) {
  build_generated(dir, c.target, "-DPCONV_POISON=ON");
  for (int threads : {1, 2, 3}) {
    SCOPED_TRACE(threads);
    const std::vector<float> x = random_input(m, seed + static_cast<uint64_t>(threads));
    const VerifyReport r = compare_with_reference(m, x, run_generated(dir, c.target, x, threads));
    EXPECT_TRUE(r.ok) << r.message;
    EXPECT_EQ(r.ref_top1, r.gen_top1) << r.message;
  }
}

// in -> conv c1 + ReLU (r1) -> conv c2 + ReLU (r2) -> global average pool -> linear of 4, the
// convs pruned to the 4 SCPs at connectivity 2.
ModelFile two_conv_model(int in_c, int h, int w, int c1, int c2, uint64_t seed) {
  ModelFile m;
  Graph& g = m.graph;
  int x = g.input("in", in_c, h, w);
  x = g.relu("r1", g.conv("c1", x, conv(c1, 3, 1)));
  x = g.relu("r2", g.conv("c2", x, conv(c2, 3, 1)));
  x = g.flatten("f", g.global_avg_pool("gap", x));
  g.linear("fc", x, LinearAttrs{4, true});
  m.params = init_params(g, seed);
  prune_model(m, 4, 2.0, false);
  return m;
}

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

// The filter-block kernel (AVX-512, rows of one vector, or two with >= 128 channels): filter
// counts that leave a short last block, row counts that leave a short row group, ReLU6, a conv
// without activation, and maps of 13x11 (one vector) and 29x29 (two, with a zero margin
// right of a partly filled vector) against both oracles.
ModelFile block_model(uint64_t seed, int patterns = 4) {
  ModelFile m;
  Graph& g = m.graph;
  int x = g.input("in", 3, 29, 29);
  x = g.relu("r1", g.conv("c1", x, conv(130, 3, 1)));
  x = g.relu6("r2", g.batch_norm("b2", g.conv("c2", x, conv(37, 3, 1))));  // 29x29, 130 in
  x = g.max_pool("p1", x, PoolAttrs{3, 2, 0});                             // 14x14
  x = g.conv("c3", x, conv(45, 3, 1));
  x = g.relu("r3", g.conv("c4", x, conv(19, 3, 1)));
  x = g.flatten("f", g.global_avg_pool("gap", x));
  g.linear("fc", x, LinearAttrs{5, true});
  m.params = init_params(g, seed);
  randomize_bn(m, seed + 1);
  prune_model(m, patterns, 2.0, false);
  return m;
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

// By default the same layers take the stationary form in bands of rows: 29x29 (two vectors a
// row, the second 13 lanes; bands of 3 rows and a last one of 2) and 14x14 (bands of 7), with
// ReLU6, no activation and ReLU, against both oracles; the 3-channel first conv keeps the
// per-filter row kernel.
TEST(DeployRun, StationaryRowsAvx512) {
  if (!host_has_avx512()) GTEST_SKIP() << "no AVX-512 on this machine";
  const ModelFile m = block_model(7);
  check_target(m, "rows", "avx512");
  const std::string dir = work_dir("rows-kind");
  const CompileResult c = compile_in(m, "rows", "avx512", dir);
  std::map<std::string, nlohmann::json> layer = layers_by_name(c);
  EXPECT_EQ(layer["r1"]["kind"], "sparse");
  for (const char* name : {"r2", "c3", "r3"}) {
    SCOPED_TRACE(name);
    EXPECT_EQ(layer[name]["kind"], "sparse_stationary");
    EXPECT_EQ(layer[name]["layout"], "rows");
  }
  EXPECT_EQ(layer["r2"]["band_rows"], 3);
  EXPECT_EQ(layer["r2"]["vectors"], 6);
  EXPECT_EQ(layer["c3"]["band_rows"], 7);
  const std::string src = read_text(dir + "/pconv_model.cpp");
  EXPECT_NE(src.find("_band2("), std::string::npos);  // 29 = 9 x 3 + 2
}

// Small maps (4x4, 3x3, 2x2) with each activation the small-map epilogue applies (ReLU6, none,
// ReLU), on the vector gather and epilogue (avx512) and the scalar ones (avx2).
ModelFile small_map_model(uint64_t seed, int patterns = 4) {
  ModelFile m;
  Graph& g = m.graph;
  int x = g.input("in", 6, 4, 4);
  x = g.relu6("r1", g.batch_norm("b1", g.conv("c1", x, conv(20, 3, 1))));  // 4x4
  x = g.conv("c2", x, conv(18, 3, 1));                                     // 4x4, no activation
  x = g.max_pool("p1", x, PoolAttrs{2, 1, 0});                             // 3x3
  x = g.relu6("r3", g.conv("c3", x, conv(17, 3, 1)));
  x = g.max_pool("p2", x, PoolAttrs{2, 1, 0});  // 2x2
  x = g.relu("r4", g.conv("c4", x, conv(19, 3, 1)));
  x = g.flatten("f", x);
  g.linear("fc", x, LinearAttrs{6, true});
  m.params = init_params(g, seed);
  randomize_bn(m, seed + 1);
  prune_model(m, patterns, 2.0, false);
  return m;
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

// With 12 patterns (the 4 SCPs and 8 more centre-holding 4-tap masks) the layers' taps include
// corners, whose shifts cross rows in both layouts: the packed 4x4 and 3x3 maps, and the rows
// layout's bands (29x29, 14x14), against both oracles.
TEST(DeployRun, StationaryCornerTapsAvx512) {
  if (!host_has_avx512()) GTEST_SKIP() << "no AVX-512 on this machine";
  for (const auto& [name, m] :
       {std::pair<std::string, ModelFile>{"corner-packed", small_map_model(10, 12)},
        {"corner-rows", block_model(11, 12)}}) {
    SCOPED_TRACE(name);
    check_target(m, name, "avx512");
    const CompileResult c = compile_in(m, name, "avx512", work_dir(name + "-kind"));
    int stationary = 0;
    for (const auto& L : c.gen.layers)
      if (L["kind"] == "sparse_stationary") {
        ++stationary;
        EXPECT_GT(L["tap_shifts"], 5) << L["name"];  // more than the centre and 4 neighbours
      }
    EXPECT_GE(stationary, 2);
  }
}

// The stationary channel loops prefetch the channel 2 ahead (Target::stationary_prefetch): in
// every loop of both layouts, each float the loop loads from channel c lies in a line it
// prefetches for channel c + 2 (ic + 2 planes), and every prefetched line holds one of them. In
// the packed loops, where the generated source names the plane's origin, the prefetched offsets
// must also be line starts there (the arena's slots are line-aligned).
TEST(DeployCodegen, StationaryLoopsPrefetchTheLinesTheyLoadTwoChannelsAhead) {
  const std::regex ic_re(R"(const float\* ic = (?:in \+ (\d+) \+ )?\w* ?\+? ?\(long\)c \* (\d+);)");
  const std::regex pf_re(R"(const float\* pf = c \+ (\d+) < \w+ \? ic \+ (\d+) : ic;)");
  const std::regex pre_re(R"(_mm_prefetch\(\(const char\*\)\(pf \+ (-?\d+)\))");
  const std::regex load_re(
      R"(_mm512_mask(?:z)?_loadu_ps\((?:\w+, )?(0x[0-9A-F]+), ic \+ (-?\d+)\))");
  SynthOptions vgg;  // its 4x4 layers split by channels: planes of 480 floats from float 7
  vgg.conn_rate = 8.8;
  for (const auto& [name, m] : {std::pair<std::string, ModelFile>{"pf-rows", block_model(12)},
                                {"pf-packed", small_map_model(13)},
                                {"pf-vgg16c", synth_model(vgg)}}) {
    SCOPED_TRACE(name);
    const std::string dir = work_dir(name);
    compile_in(m, name, "avx512", dir);
    std::istringstream src(read_text(dir + "/pconv_model.cpp"));
    int loops = 0;
    bool in_loop = false;
    int64_t org = -1, ps = 0;
    std::vector<int64_t> pre, touched;
    auto finish = [&] {
      ASSERT_FALSE(pre.empty()) << "loop " << loops << " prefetches nothing";
      for (int64_t f : touched)
        EXPECT_TRUE(
            std::any_of(pre.begin(), pre.end(), [&](int64_t y) { return f >= y && f < y + 16; }))
            << "loop " << loops << ": float " << f << " not prefetched";
      for (int64_t y : pre) {
        EXPECT_TRUE(std::any_of(touched.begin(), touched.end(),
                                [&](int64_t f) { return f >= y && f < y + 16; }))
            << "loop " << loops << ": line at " << y << " prefetched, never loaded";
        if (org >= 0 && ps % 16 == 0) {
          EXPECT_EQ((org + y) % 16, 0) << "loop " << loops;
        }
      }
      ++loops;
    };
    std::string prev;  // a stationary channel loop steps its record counts with c
    for (std::string line; std::getline(src, line); prev = line) {
      std::smatch mt;
      if (prev.find("++c, cnt += ") != std::string::npos && std::regex_search(line, mt, ic_re)) {
        in_loop = true;
        org = mt[1].matched ? std::stoll(mt[1]) : -1;
        ps = std::stoll(mt[2]);
        pre.clear();
        touched.clear();
      } else if (!in_loop) {
        continue;
      } else if (std::regex_search(line, mt, pf_re)) {
        EXPECT_EQ(std::stoi(mt[1]), 2);
        EXPECT_EQ(std::stoll(mt[2]), 2 * ps);
      } else if (std::regex_search(line, mt, pre_re)) {
        pre.push_back(std::stoll(mt[1]));
      } else if (std::regex_search(line, mt, load_re)) {
        const uint32_t mask = static_cast<uint32_t>(std::stoul(mt[1], nullptr, 16));
        for (int l = 0; l < 16; ++l)
          if (mask >> l & 1u) touched.push_back(std::stoll(mt[2]) + l);
      } else if (line.find("for (int n = ") != std::string::npos) {
        in_loop = false;
        finish();
      }
    }
    EXPECT_GE(loops, 2);
  }
}

// And each band function prefetches, at channel c, the output lines of filter c of its job
// (Target::stationary_out_prefetch): for whole rows and for row segments, the offsets it
// prefetches from the job's output (`po`, filter f's plane) are the offsets the epilogue after
// each call stores to (`ob`, the same plane, origin and row; a class of inner segments adds
// sg * its width at run time). Layers split by input channels store partial sums instead and
// pass no filters.
TEST(DeployCodegen, StationaryBandsPrefetchTheOutputLinesTheirEpilogueStores) {
  const std::regex fn_re(R"(^static inline void (L\d+_band\w+)\()");
  const std::regex po_re(R"(_mm_prefetch\(\(const char\*\)\(po \+ (\d+)\))");
  const std::regex call_re(
      R"((L\d+_band\w+)\(in .*out \+ \(long\)p0 \* (\d+) \+ (\d+ \+ [^,]*\(long\)y0 \* \d+),)");
  const std::regex ob_re(
      R"(float\* ob = out \+ \(long\)\(p0 \+ f\) \* (\d+) \+ (\d+ \+ [^;]*\(long\)y0 \* \d+);)");
  const std::regex st_re(R"(_mm512_mask_storeu_ps\(ob \+ (\d+),)");
  const ModelFile wide = two_conv_model(5, 10, 83, 72, 120, 70);  // 72 channels in: segments
  for (const auto& [name, m] :
       {std::pair<std::string, ModelFile>{"po-rows", block_model(14)}, {"po-segments", wide}}) {
    SCOPED_TRACE(name);
    const std::string dir = work_dir(name);
    compile_in(m, name, "avx512", dir);
    std::istringstream src(read_text(dir + "/pconv_model.cpp"));
    std::map<std::string, std::set<int64_t>> prefetched;  // band function -> po offsets
    std::string fn, called;
    std::set<int64_t> stored;
    int checked = 0;
    auto finish = [&] {
      if (called.empty()) return;
      EXPECT_EQ(prefetched[called], stored) << called;
      ++checked;
      called.clear();
      stored.clear();
    };
    for (std::string line; std::getline(src, line);) {
      std::smatch mt;
      if (std::regex_search(line, mt, fn_re)) {
        fn = mt[1];
      } else if (std::regex_search(line, mt, po_re)) {
        prefetched[fn].insert(std::stoll(mt[1]));
      } else if (std::regex_search(line, mt, call_re)) {
        finish();
        if (line.find(", 0);") != std::string::npos) continue;  // split: partials, no epilogue
        called = mt[1];
        const std::string plane = mt[2], origin = mt[3];
        std::string next;
        ASSERT_TRUE(std::getline(src, next));
        ASSERT_TRUE(std::getline(src, next));  // the epilogue's output row, filter f
        ASSERT_TRUE(std::regex_search(next, mt, ob_re)) << next;
        EXPECT_EQ(mt[1], plane);
        EXPECT_EQ(mt[2], origin);
      } else if (!called.empty() && std::regex_search(line, mt, st_re)) {
        stored.insert(std::stoll(mt[1]));
      } else if (line.rfind("}", 0) == 0) {
        finish();
      }
    }
    EXPECT_GE(checked, 2);
  }
}

// Layers with a long non-zero reduction (at least Target::stationary_split_min_reduction MACs
// an output) below min_parallel_work run split by input channels: the rows layout at 14x14 (97
// filters, so the threads' shares differ by one) and the packed one at 7x7, with ReLU, none and
// ReLU6. Their outputs take plane strides of their own, so the residual add that reads two of
// them and writes its own layout must read each through its geometry. The sums depend on the
// thread count: at 1, 2 and 3 threads each run must match both oracles. Borders are zeroed only
// as far as a reader reads them: the rows above and below the map for a rows-layout reader (c1's
// and r2's outputs), nothing for the add (c3's).
ModelFile split_model(uint64_t seed) {
  ModelFile m;
  Graph& g = m.graph;
  int x = g.input("in", 8, 14, 14);
  x = g.relu("r1", g.conv("c1", x, conv(90, 3, 1)));            // 8 channels in: the row kernel
  const int y = g.relu("r2", g.conv("c2", x, conv(97, 3, 1)));  // rows, split
  x = g.conv("c3", y, conv(97, 3, 1));                          // rows, split, no activation
  x = g.relu("r3", g.add("add", x, y));
  x = g.max_pool("p1", x, PoolAttrs{2, 2, 0});          // 7x7
  x = g.relu6("r4", g.conv("c4", x, conv(150, 3, 1)));  // packed, split
  x = g.flatten("f", g.global_avg_pool("gap", x));
  g.linear("fc", x, LinearAttrs{9, true});
  m.params = init_params(g, seed);
  randomize_bn(m, seed + 1);
  prune_model(m, 4, 2.0, false);
  return m;
}

TEST(DeployRun, StationarySplitByChannelsAvx512) {
  if (!host_has_avx512()) GTEST_SKIP() << "no AVX-512 on this machine";
  const ModelFile m = split_model(12);
  const std::string dir = work_dir("split");
  const CompileResult c = compile_in(m, "split", "avx512", dir);
  std::map<std::string, nlohmann::json> layer = layers_by_name(c);
  EXPECT_EQ(layer["r1"]["kind"], "sparse");
  for (const char* name : {"r2", "c3", "r4"}) {
    SCOPED_TRACE(name);
    EXPECT_EQ(layer[name]["kind"], "sparse_stationary");
    EXPECT_EQ(layer[name]["threads_split"], "input channels");
  }
  EXPECT_EQ(layer["r2"]["layout"], "rows");
  EXPECT_EQ(layer["r4"]["layout"], "packed");
  check_poisoned_thread_counts(m, c, dir, 40);
  const std::string src = read_text(dir + "/pconv_model.cpp");
  EXPECT_EQ(occurrences(src, "pc_zero_rows_k<90, 14, 14,"), 1u);  // c1 -> rows layout
  EXPECT_EQ(occurrences(src, "pc_zero_rows_k<97, 14, 14,"), 1u);  // r2 -> rows layout and the add
  EXPECT_EQ(occurrences(src, "pc_zero_border_k<97,"), 0u);  // c3 -> the add, the add -> a pool
}

// Rows wider than Target::stationary_max_row_vecs take the stationary form in row segments where
// the reduction is long enough, 72 input channels at connectivity 2 (144 MACs an output): 150
// wide with the 4 SCPs (10 vectors, the last 6 lanes: 5 segments of 2, the 3 inner ones one band
// function and one branch taking sg at run time; sideways taps on the band's own rows; 10 rows
// in bands of 3 and a last one of 1; ReLU) and 100 wide with 12 patterns (7 vectors, the last 4
// lanes: segments of 2, 2, 2 and 1; corner taps, so the rows above and below are shifted too;
// bands of 2 rows; no activation), at 1, 2 and 3 threads on NaN-filled memory against both oracles.
// The first conv (5 channels in) and the last (lists of 2 kernels) keep the row kernel.
TEST(DeployRun, StationaryRowSegmentsAvx512) {
  if (!host_has_avx512()) GTEST_SKIP() << "no AVX-512 on this machine";
  for (int patterns : {4, 12}) {
    SCOPED_TRACE(patterns);
    ModelFile m;
    Graph& g = m.graph;
    const int w = patterns == 4 ? 150 : 100;
    int x = g.input("in", 5, 10, w);
    x = g.relu("r1", g.conv("c1", x, conv(72, 3, 1)));
    const int c2 = g.conv("c2", x, conv(120, 3, 1));
    x = patterns == 4 ? g.relu("r2", c2) : c2;
    x = g.conv("c3", x, conv(15, 3, 1));
    x = g.flatten("f", g.global_avg_pool("gap", x));
    g.linear("fc", x, LinearAttrs{6, true});
    m.params = init_params(g, 50 + static_cast<uint64_t>(patterns));
    prune_model(m, patterns, 2.0, false);
    const std::string name = "segments" + std::to_string(patterns);
    const std::string dir = work_dir(name);
    const CompileResult c = compile_in(m, name, "avx512", dir, 0);
    std::map<std::string, nlohmann::json> layer = layers_by_name(c);
    const std::string seg = patterns == 4 ? "r2" : "c2";
    EXPECT_EQ(layer["r1"]["kind"], "sparse");
    EXPECT_EQ(layer[seg]["kind"], "sparse_stationary");
    EXPECT_EQ(layer[seg]["row_segments"], patterns == 4 ? 5 : 4);
    EXPECT_EQ(layer[seg]["band_rows"], patterns == 4 ? 3 : 2);
    EXPECT_EQ(layer["c3"]["kind"], "sparse");
    const std::string src = read_text(dir + "/pconv_model.cpp");
    const size_t fns = occurrences(src, "static inline void L2_band");
    // First, inner, last for each band height; at 100 wide also the segment beside the ragged
    // last vector (its right neighbour loads 4 lanes).
    EXPECT_EQ(fns, patterns == 4 ? 6u : 4u);
    check_poisoned_thread_counts(m, c, dir, 60);
  }
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
// pixels would leave 12 of 16 lanes idle, the gather form (pixel x tap lanes); AVX2 has only the
// gather form, for maps of at most 16 pixels, and the row kernel above that.
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
    EXPECT_EQ(kind["r6"], target == "avx512" ? "sparse_stationary" : "sparse_small_map");  // 3x3
    EXPECT_EQ(kind["r7"], "sparse_small_map");                                             // 2x2
    EXPECT_EQ(kind["r5"], target == "avx512" ? "sparse_stationary" : "sparse");            // 7x6
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
        EXPECT_EQ(L["vectors"], L["name"] == "r5" ? 3 : 1) << L["name"];
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
