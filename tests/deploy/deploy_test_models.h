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
  x = g.global_avg_pool("gap", x);
  x = g.flatten("f", x);
  g.linear("fc", x, LinearAttrs{10, true});
  m.params = init_params(g, seed);
  randomize_bn(m, seed + 1);
  prune_model(m, 4, 3.1, false);
  return m;
}

}  // namespace pconv::deploy
