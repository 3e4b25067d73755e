// Small models shared by the deploy tests of every target, and the runner's command line.
#pragma once

#include <cstdint>
#include <string>

#include "core/model_file.h"
#include "deploy/synth.h"

namespace pconv::deploy {

// The runner a compile built in dir, on that folder's weights, with args after them.
inline std::string runner_command(const std::string& dir, const std::string& args) {
  return dir + "/build/runner " + dir + "/weights.bin " + args;
}

// How many times `what` occurs in s (generated sources, runner output).
inline size_t occurrences(const std::string& s, const std::string& what) {
  size_t n = 0;
  for (size_t p = s.find(what); p != std::string::npos; p = s.find(what, p + 1)) ++n;
  return n;
}

// A k x k conv with "same" padding.
inline ConvAttrs conv(int out, int k, int stride, int groups = 1) {
  ConvAttrs a;
  a.out_channels = out;
  a.kernel_h = a.kernel_w = k;
  a.stride_h = a.stride_w = stride;
  a.pad_h = a.pad_w = (k - 1) / 2;
  a.groups = groups;
  return a;
}

// The classifier head most test models end with (global average pool, flatten, a linear of
// `classes`) on x, then the weights: initialised from `seed`, BN randomised from seed + 1, the
// pattern convs pruned to `patterns` patterns at connectivity `rate` (the first conv dense).
inline void pooled_head(ModelFile& m, int x, int classes, uint64_t seed, int patterns = 4,
                        double rate = 2.0) {
  Graph& g = m.graph;
  x = g.flatten("f", g.global_avg_pool("gap", x));
  g.linear("fc", x, LinearAttrs{classes, true});
  m.params = init_params(g, seed);
  randomize_bn(m, seed + 1);
  prune_model(m, patterns, rate, false);
}

// A map wider than two AVX-512 vectors with a ragged end (33), a residual add, stride 2 to
// 5x17, a global pool; pruned to the 4 SCPs at connectivity 3.1.
inline ModelFile wide_residual_model(uint64_t seed) {
  ModelFile m;
  Graph& g = m.graph;
  int x = g.input("in", 5, 9, 33);
  x = g.relu("r1", g.batch_norm("b1", g.conv("c1", x, conv(24, 3, 1))));
  int y = g.relu("r2", g.batch_norm("b2", g.conv("c2", x, conv(24, 3, 1))));
  y = g.batch_norm("b3", g.conv("c3", y, conv(24, 3, 1)));
  x = g.relu("r3", g.add("add", x, y));
  x = g.relu("r4", g.conv("c4", x, conv(40, 3, 2)));
  pooled_head(m, x, 10, seed, 4, 3.1);
  return m;
}

// in -> conv c1 + ReLU (r1) -> conv c2 + ReLU (r2) -> global average pool -> linear of 4, the
// convs pruned to the 4 SCPs at connectivity 2.
inline ModelFile two_conv_model(int in_c, int h, int w, int c1, int c2, uint64_t seed) {
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

// Made for the filter-block kernel (AVX-512) and used by the stationary form's tests: a 3-channel
// first conv, then 29x29 from 130 channels (rows of two AVX-512 vectors, the second partly
// filled, or four AVX2 ones), 14x14 from 37 and from 45; filter counts that leave a short last
// block or group, ReLU6, no activation, ReLU; `patterns` patterns at connectivity 2.
inline ModelFile block_model(uint64_t seed, int patterns = 4) {
  ModelFile m;
  Graph& g = m.graph;
  int x = g.input("in", 3, 29, 29);
  x = g.relu("r1", g.conv("c1", x, conv(130, 3, 1)));
  x = g.relu6("r2", g.batch_norm("b2", g.conv("c2", x, conv(37, 3, 1))));  // 29x29, 130 in
  x = g.max_pool("p1", x, PoolAttrs{3, 2, 0});                             // 14x14
  x = g.conv("c3", x, conv(45, 3, 1));
  x = g.relu("r3", g.conv("c4", x, conv(19, 3, 1)));
  pooled_head(m, x, 5, seed, patterns);
  return m;
}

// Small maps (4x4, 3x3, 2x2) with each activation the small-map epilogue applies (ReLU6, none,
// ReLU); `patterns` patterns at connectivity 2.
inline ModelFile small_map_model(uint64_t seed, int patterns = 4) {
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

}  // namespace pconv::deploy
