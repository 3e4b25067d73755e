// Shared by the train layer/net tests: finite-difference gradient checks through pconv::Net.
#pragma once

#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <random>
#include <string>

#include "core/graph.h"
#include "train/net.h"

namespace pconv::testing {

inline Tensor random_tensor(Shape s, uint64_t seed, float lo = -1.f, float hi = 1.f) {
  Tensor t(std::move(s));
  std::mt19937_64 rng(seed);
  std::uniform_real_distribution<float> d(lo, hi);
  for (int64_t i = 0; i < t.size(); ++i) t[i] = d(rng);
  return t;
}

// L = sum_i r_i * logits_i, accumulated in double.
inline double weighted_sum(const Tensor& y, const Tensor& r) {
  double s = 0;
  for (int64_t i = 0; i < y.size(); ++i) s += static_cast<double>(y[i]) * r[i];
  return s;
}

struct GradCheckOptions {
  double h = 1e-3;         // central-difference step on each parameter
  double rtol = 1e-2;      // relative to the larger of the two estimates
  double atol_rel = 2e-3;  // absolute slack, relative to the RMS of the parameter's gradient
  int max_elems = 24;      // per parameter: all elements when fewer, else a spread sample
};

// Backward of `net` for L above against central differences of L, for every trainable
// parameter of `g`. Forward in training mode (batch statistics) both ways.
inline void check_param_grads(const Graph& g, ParamMap& params, const Tensor& x, uint64_t seed,
                              const GradCheckOptions& o = {}) {
  Net net(g, params);
  const Tensor& y0 = net.forward(x, true);
  const Tensor r = random_tensor(y0.shape(), seed);
  net.backward(r);
  for (const ParamSpec& s : g.params()) {
    if (!s.trainable) continue;
    const Tensor analytic = net.grads().at(s.key);
    Tensor& p = params.at(s.key);
    const double rms = std::sqrt(sum_squares(analytic.data(), analytic.size()) / analytic.size());
    const int64_t n = p.size();
    const int64_t step = std::max<int64_t>(1, n / o.max_elems);
    for (int64_t e = 0; e < n; e += step) {
      const float keep = p[e];
      p[e] = static_cast<float>(keep + o.h);
      net.params_changed();
      const double lp = weighted_sum(net.forward(x, true), r);
      p[e] = static_cast<float>(keep - o.h);
      net.params_changed();
      const double lm = weighted_sum(net.forward(x, true), r);
      p[e] = keep;
      net.params_changed();
      // The step actually taken in float, not the nominal one.
      const double hp = static_cast<float>(keep + o.h) - static_cast<double>(keep);
      const double hm = static_cast<double>(keep) - static_cast<float>(keep - o.h);
      const double fd = (lp - lm) / (hp + hm);
      const double an = analytic[e];
      const double tol = o.rtol * std::max(std::fabs(fd), std::fabs(an)) + o.atol_rel * rms + 1e-6;
      EXPECT_NEAR(an, fd, tol) << "layer gradient " << s.key << "[" << e << "] of "
                               << shape_str(s.shape) << " (seed " << seed << ")";
    }
  }
}

}  // namespace pconv::testing
