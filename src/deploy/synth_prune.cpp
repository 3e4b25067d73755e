// The joint pattern + connectivity projection used by pconv-synth (swap for src/admm's).
#include <algorithm>
#include <cmath>
#include <numeric>

#include "core/error.h"
#include "deploy/synth.h"

namespace pconv::deploy {

std::vector<uint16_t> synth_library(int patterns) {
  PCONV_CHECK(patterns >= 1 && patterns <= 56, "pattern count ", patterns, " outside 1..56");
  // SCPs: centre (4) plus three of its four neighbours (1, 3, 5, 7).
  std::vector<uint16_t> lib = {0x3a /*1,3,4,5*/, 0x9a /*1,3,4,7*/, 0xb8 /*3,4,5,7*/,
                               0xb2 /*1,4,5,7*/};
  for (uint16_t m = 0; m < 512 && static_cast<int>(lib.size()) < patterns; ++m)
    if (__builtin_popcount(m) == 4 && (m & 0x10) &&
        std::find(lib.begin(), lib.end(), m) == lib.end())
      lib.push_back(m);
  lib.resize(static_cast<size_t>(patterns));
  return lib;
}

std::vector<int8_t> joint_project(Tensor& w, const std::vector<uint16_t>& lib, double rate) {
  PCONV_CHECK(w.rank() == 4 && w.dim(2) == 3 && w.dim(3) == 3,
              "joint projection needs OIx3x3, got ", shape_str(w.shape()));
  PCONV_CHECK(rate >= 1.0, "connectivity rate ", rate, " below 1");
  const int64_t n = w.dim(0) * w.dim(1);
  std::vector<int8_t> ids(static_cast<size_t>(n), -1);
  std::vector<double> score(static_cast<size_t>(n));
  for (int64_t k = 0; k < n; ++k) {
    const float* q = w.data() + k * 9;
    double best = -1;
    for (size_t p = 0; p < lib.size(); ++p) {
      double e = 0;
      for (int t = 0; t < 9; ++t)
        if (lib[p] >> t & 1) e += static_cast<double>(q[t]) * q[t];
      if (e > best) best = e, ids[static_cast<size_t>(k)] = static_cast<int8_t>(p);
    }
    score[static_cast<size_t>(k)] = best;
  }
  const int64_t keep =
      std::max<int64_t>(1, static_cast<int64_t>(std::ceil(static_cast<double>(n) / rate - 1e-9)));
  std::vector<int64_t> order(static_cast<size_t>(n));
  std::iota(order.begin(), order.end(), 0);
  std::stable_sort(order.begin(), order.end(), [&](int64_t a, int64_t b) {
    return score[static_cast<size_t>(a)] > score[static_cast<size_t>(b)];
  });
  for (int64_t r = keep; r < n; ++r) ids[static_cast<size_t>(order[static_cast<size_t>(r)])] = -1;
  for (int64_t k = 0; k < n; ++k) {
    const uint16_t m =
        ids[static_cast<size_t>(k)] < 0 ? 0 : lib[static_cast<size_t>(ids[static_cast<size_t>(k)])];
    for (int t = 0; t < 9; ++t)
      if (!(m >> t & 1)) w[k * 9 + t] = 0.f;
  }
  return ids;
}

}  // namespace pconv::deploy
