// The channel-stationary form of the pattern convs (codegen_stationary.cpp) on AVX-512 (shifts
// in registers, the packed and rows layouts) and AVX2 (sideways taps loaded one float off in
// rows, or every tap loaded from a packed copy): layouts, bands, row segments, corner taps, the
// split by input channels and the prefetches, against both oracles where this machine can run the
// target.
#include <gtest/gtest.h>

#include <algorithm>
#include <map>
#include <regex>
#include <set>
#include <sstream>
#include <string>
#include <tuple>
#include <vector>

#include "deploy/synth.h"
#include "deploy/target.h"
#include "deploy_test_models.h"
#include "deploy_test_run.h"

using namespace pconv;
using namespace pconv::deploy;

namespace {

// Layers with a long non-zero reduction (at least Target::stationary_split_min_reduction MACs
// an output) below min_parallel_work run split by input channels: the rows layout at 14x14 (97
// filters, so the threads' shares differ by one) and at 7x7 the packed one (AVX-512) or rows
// (AVX2), with ReLU, none and ReLU6. Their outputs take plane strides of their own, so the residual
// add that reads two of them and writes its own layout must read each through its geometry. The
// sums depend on the thread count: at 1, 2 and 3 threads each run must match both oracles. Borders
// are zeroed only as far as a reader reads them: the rows above and below the map for a rows-layout
// reader (c1's and r2's outputs), nothing for the add (c3's).
ModelFile split_model(uint64_t seed) {
  ModelFile m;
  Graph& g = m.graph;
  int x = g.input("in", 8, 14, 14);
  x = g.relu("r1", g.conv("c1", x, conv(90, 3, 1)));            // 8 channels in: the row kernel
  const int y = g.relu("r2", g.conv("c2", x, conv(97, 3, 1)));  // rows, split
  x = g.conv("c3", y, conv(97, 3, 1));                          // rows, split, no activation
  x = g.relu("r3", g.add("add", x, y));
  x = g.max_pool("p1", x, PoolAttrs{2, 2, 0});          // 7x7
  x = g.relu6("r4", g.conv("c4", x, conv(150, 3, 1)));  // packed (AVX-512) or rows, split
  pooled_head(m, x, 9, seed);
  return m;
}

}  // namespace

// By default the block model's layers take the stationary form in bands of rows, with ReLU6, no
// activation and ReLU; the 3-channel first conv keeps the per-filter row kernel. AVX-512: 29x29
// (two vectors a row, the second 13 lanes) in bands of 3 rows and a last one of 2, 14x14 in bands
// of 7. AVX2 (16 registers, no cross-lane shift of a vector pair) loads the sideways taps one
// float off, masked to the map's columns: 29x29 (four vectors, the last 5 lanes) in segments of
// one vector, bands of 3 and 2; 14x14 (two vectors, the second 6 lanes) in bands of 1 row; the
// first segment's left tap reads from one float before the row, lane 0 masked off. Every op
// threaded, then the default threading on NaN-filled memory at 1-3 threads, against both oracles.
TEST(DeployRun, StationaryRowsAvx512AndAvx2) {
  struct Case {
    std::string target;
    int r2_segments, r2_vectors, c3_band;
    std::string last_band;  // the function of the 2-row band (29 = 9 x 3 + 2)
  };
  for (const Case& k :
       std::vector<Case>{{"avx512", 1, 6, 7, "_band2("}, {"avx2", 4, 3, 1, "_band2_s0("}}) {
    if (k.target == "avx512" && !host_has_avx512()) continue;
    SCOPED_TRACE(k.target);
    const ModelFile m = block_model(7);
    check_target(m, "rows", k.target);
    const std::string dir = work_dir("rows-kind-" + k.target);
    const CompileResult c = compile_in(m, "rows", k.target, dir);
    std::map<std::string, nlohmann::json> layer = layers_by_name(c);
    EXPECT_EQ(layer["r1"]["kind"], "sparse");
    expect_layers(layer, {"r2", "c3", "r3"}, {{"kind", "sparse_stationary"}, {"layout", "rows"}});
    EXPECT_EQ(layer["r2"]["row_segments"], k.r2_segments);
    EXPECT_EQ(layer["r2"]["band_rows"], 3);
    EXPECT_EQ(layer["r2"]["vectors"], k.r2_vectors);
    EXPECT_EQ(layer["c3"]["band_rows"], k.c3_band);
    const std::string src = read_text(dir + "/pconv_model.cpp");
    EXPECT_NE(src.find(k.last_band), std::string::npos);
    if (k.target == "avx2") {
      EXPECT_EQ(src.find("alignr"), std::string::npos);
      EXPECT_NE(src.find("pc_maskload8(0xFE, ic + -1)"), std::string::npos);  // x - 1 from x = 0
    }
    check_poisoned_thread_counts(m, c, dir, 30);
  }
}

// AVX2 has no cross-lane shift of a vector pair, so its packed layout (4x4 and 3x3 maps: two
// vectors, five taps) copies the input channels packed into the scratch and loads every tap
// masked at its offset (Target::stationary_packed_loads). The small-map model's pattern convs
// after the first (20 -> 18 at 4x4, no activation; 18 -> 17 at 3x3, ReLU6) take it unsplit; a
// deeper one's (64 -> 72 at 4x4, BN and ReLU6; 72 -> 50 at 3x3) split by input channels at the
// default threading, each thread copying its channels. The first convs are unpruned: nine taps
// do not fit. Every op threaded, then the default on NaN-filled memory at 1-3 threads; without it
// (PCONV_STATIONARY_PACKED_LOADS=0) the 4x4 layer takes rows.
TEST(DeployRun, StationaryPackedLoadsAvx2) {
  ModelFile deep;
  {
    Graph& g = deep.graph;
    int x = g.input("in", 40, 4, 4);
    x = g.relu("r1", g.conv("c1", x, conv(64, 3, 1)));
    x = g.relu6("r2", g.batch_norm("b2", g.conv("c2", x, conv(72, 3, 1))));
    x = g.max_pool("p1", x, PoolAttrs{2, 1, 0});  // 3x3
    pooled_head(deep, g.relu("r3", g.conv("c3", x, conv(50, 3, 1))), 7, 41);
  }
  for (const auto& [name, m, layers, split] :
       {std::tuple<std::string, ModelFile, std::vector<std::string>, bool>{
            "packed-small", small_map_model(40), {"c2", "r3"}, false},
        {"packed-deep", deep, {"r2", "r3"}, true}}) {
    SCOPED_TRACE(name);
    check_target(m, name, "avx2");
    const std::string dir = work_dir(name + "-kind");
    const CompileResult c = compile_in(m, name, "avx2", dir);
    std::map<std::string, nlohmann::json> layer = layers_by_name(c);
    expect_layers(layer, layers,
                  {{"kind", "sparse_stationary"},
                   {"layout", "packed_loads"},
                   {"threads_split", split ? "input channels" : "filters"}});
    check_poisoned_thread_counts(m, c, dir, 43);
    setenv("PCONV_STATIONARY_PACKED_LOADS", "0", 1);
    const CompileResult off = compile_in(m, name, "avx2", work_dir(name + "-off"));
    unsetenv("PCONV_STATIONARY_PACKED_LOADS");
    EXPECT_EQ(layers_by_name(off)[layers[0]]["layout"], "rows");
  }
}

// With 12 patterns (the 4 SCPs and 8 more centre-holding 4-tap masks) the layers' taps include
// corners, whose shifts cross rows: on AVX-512 in the packed 4x4 and 3x3 maps and the rows
// layout's bands (29x29, 14x14); on AVX2 (rows only) the shifted rows above and below a band
// are loads one float off too. Against both oracles.
TEST(DeployRun, StationaryCornerTapsAvx512AndAvx2) {
  for (const std::string target : {"avx512", "avx2"})
    for (const auto& [model, m] :
         {std::pair<std::string, ModelFile>{"corner-small", small_map_model(10, 12)},
          {"corner-rows", block_model(11, 12)}}) {
      if (target == "avx512" && !host_has_avx512()) continue;
      const std::string name = model + "-" + target;
      SCOPED_TRACE(name);
      check_target(m, name, target);
      const CompileResult c = compile_in(m, name, target, work_dir(name + "-kind"));
      int stationary = 0;
      for (const auto& L : c.gen.layers)
        if (L["kind"] == "sparse_stationary") {
          ++stationary;
          EXPECT_GT(L["tap_shifts"], 5) << L["name"];  // more than the centre and 4 neighbours
        }
      // On AVX2 the 14x14 maps' rows (two vectors) and their six sideways taps leave no room
      // for a band: only 29x29, in segments of one vector, takes the form there.
      EXPECT_GE(stationary, target == "avx2" && model == "corner-rows" ? 1 : 2);
    }
}

// The stationary channel loops prefetch the channel 2 ahead (Target::stationary_prefetch): on
// AVX-512 and AVX2 (whose sideways taps are loads one float off), in every loop of each layout,
// each float the loop loads from channel c lies in a line it prefetches for channel c + 2 (ic + 2
// planes), and every prefetched line holds one of them. In the packed loops, where the generated
// source names the plane's origin, the prefetched offsets must also be line starts there (the
// arena's slots are line-aligned).
TEST(DeployCodegen, StationaryLoopsPrefetchTheLinesTheyLoadTwoChannelsAhead) {
  const std::regex ic_re(R"(const float\* ic = (?:in \+ (\d+) \+ )?\w* ?\+? ?\(long\)c \* (\d+);)");
  const std::regex pf_re(R"(const float\* pf = c \+ (\d+) < \w+ \? ic \+ (\d+) : ic;)");
  const std::regex pre_re(R"(_mm_prefetch\(\(const char\*\)\(pf \+ (-?\d+)\))");
  const std::regex load_re(
      R"((?:_mm512_mask(?:z)?_loadu_ps\((?:\w+, )?|pc_maskload8\()(0x[0-9A-F]+), ic \+ (-?\d+)\))");
  SynthOptions vgg;  // its 4x4 layers split by channels: planes of 480 floats from float 7
  vgg.conn_rate = 8.8;
  for (const auto& [model, m] : {std::pair<std::string, ModelFile>{"pf-rows", block_model(12)},
                                 {"pf-small", small_map_model(13)},
                                 {"pf-vgg16c", synth_model(vgg)}})
    for (const char* target : {"avx512", "avx2"}) {
      const std::string name = model + "-" + target;
      SCOPED_TRACE(name);
      std::istringstream src(generated_source(m, name, target));
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

// And each band function prefetches (AVX-512, AVX2), at channel c, the output lines of filter c of
// its job (Target::stationary_out_prefetch): for whole rows and for row segments, the offsets it
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
  const std::regex st_re(R"((?:_mm512_mask_storeu_ps|pc_maskstore8)\(ob \+ (\d+),)");
  const ModelFile wide = two_conv_model(5, 10, 83, 72, 120, 70);  // 72 channels in: segments
  for (const auto& [model, m] :
       {std::pair<std::string, ModelFile>{"po-rows", block_model(14)}, {"po-segments", wide}})
    for (const char* target : {"avx512", "avx2"}) {
      const std::string name = model + "-" + target;
      SCOPED_TRACE(name);
      std::istringstream src(generated_source(m, name, target));
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

TEST(DeployRun, StationarySplitByChannelsAvx512AndAvx2) {
  for (const std::string target : {"avx512", "avx2"}) {
    if (target == "avx512" && !host_has_avx512()) continue;
    SCOPED_TRACE(target);
    const ModelFile m = split_model(12);
    const std::string dir = work_dir("split-" + target);
    const CompileResult c = compile_in(m, "split", target, dir);
    std::map<std::string, nlohmann::json> layer = layers_by_name(c);
    EXPECT_EQ(layer["r1"]["kind"], "sparse");
    expect_layers(layer, {"r2", "c3", "r4"},
                  {{"kind", "sparse_stationary"}, {"threads_split", "input channels"}});
    EXPECT_EQ(layer["r2"]["layout"], "rows");
    EXPECT_EQ(layer["r4"]["layout"], target == "avx512" ? "packed" : "rows");
    check_poisoned_thread_counts(m, c, dir, 40);
    const std::string src = read_text(dir + "/pconv_model.cpp");
    EXPECT_EQ(occurrences(src, "pc_zero_rows_k<90, 14, 14,"), 1u);  // c1 -> rows layout
    EXPECT_EQ(occurrences(src, "pc_zero_rows_k<97, 14, 14,"), 1u);  // r2 -> rows layout and the add
    EXPECT_EQ(occurrences(src, "pc_zero_border_k<97,"), 0u);  // c3 -> the add, the add -> a pool
  }
}

// Rows wider than Target::stationary_max_row_vecs take the stationary form in row segments where
// the reduction is long enough, 72 input channels at connectivity 2 (144 MACs an output): 150
// wide with the 4 SCPs (ReLU) and 100 wide with 12 patterns (corner taps, so the rows above and
// below are shifted too; no activation). On AVX-512 150 is 10 vectors, the last 6 lanes: 5
// segments of 2, the 3 inner ones one band function and one branch taking sg at run time, 10 rows
// in bands of 3 and a last one of 1; 100 is 7 vectors, the last 4 lanes: segments of 2, 2, 2 and
// 1 (the third, whose right neighbour is that ragged vector, a function of its own), bands of 2
// rows. On AVX2 segments are one vector: 19 at 150 wide, bands of 3 and 1; 13 at 100 wide, bands
// of 1 (six sideways taps); first, inner and last, as the loads one float off take the ragged
// neighbour's mask from the map. At 1, 2 and 3 threads on NaN-filled memory against both oracles;
// on AVX-512 the first conv (5 channels in) keeps the row kernel (AVX2: the channel-lanes form)
// and so does the last (lists of 2 kernels; AVX2 takes the stationary form whatever the list
// lengths).
TEST(DeployRun, StationaryRowSegmentsAvx512AndAvx2) {
  struct Case {
    std::string target;
    int patterns, segments, band_rows;
    size_t band_fns;
  };
  for (const Case& k : std::vector<Case>{{"avx512", 4, 5, 3, 6},
                                         {"avx512", 12, 4, 2, 4},
                                         {"avx2", 4, 19, 3, 6},
                                         {"avx2", 12, 13, 1, 3}}) {
    const int patterns = k.patterns;
    if (k.target == "avx512" && !host_has_avx512()) continue;
    SCOPED_TRACE(k.target + " " + std::to_string(patterns));
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
    const std::string dir = work_dir(name + "-" + k.target);
    const CompileResult c = compile_in(m, name, k.target, dir, 0);
    std::map<std::string, nlohmann::json> layer = layers_by_name(c);
    const std::string seg = patterns == 4 ? "r2" : "c2";
    EXPECT_EQ(layer["r1"]["kind"], k.target == "avx512" ? "sparse" : "dense_channel_lanes");
    EXPECT_EQ(layer[seg]["kind"], "sparse_stationary");
    EXPECT_EQ(layer[seg]["row_segments"], k.segments);
    EXPECT_EQ(layer[seg]["band_rows"], k.band_rows);
    EXPECT_EQ(layer["c3"]["kind"], k.target == "avx512" ? "sparse" : "sparse_stationary");
    const std::string src = read_text(dir + "/pconv_model.cpp");
    const size_t fns = occurrences(src, "static inline void L2_band");
    EXPECT_EQ(fns, k.band_fns);
    check_poisoned_thread_counts(m, c, dir, 60);
  }
}
