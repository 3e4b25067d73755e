// Each oneDNN layer: forward against naive loops, backward (data and weights) against central
// finite differences. Backward data of a layer is checked through the weight gradient of a conv
// placed before it; kinks (ReLU at 0, ReLU6 at 0 and 6, max-pool ties) are kept away from the
// data by choosing a seed whose pre-activations clear the kink by a margin far larger than any
// perturbation can move them.
#include <gtest/gtest.h>
#include <omp.h>

#include <cmath>
#include <limits>
#include <vector>

#include "test_layers_util.h"

namespace pconv {
namespace {

// Tiny shapes: one thread keeps these fast on a loaded 2-core machine (OpenMP barriers stall when
// another process holds the second core). test_net runs multi-threaded.
const int kOneThread = (omp_set_num_threads(1), 1);

using testing::check_param_grads;
using testing::random_tensor;

ParamMap random_params(const Graph& g, uint64_t seed, float scale = 1.f) {
  ParamMap p = init_params(g, seed);
  uint64_t s = seed * 7919;
  for (const ParamSpec& spec : g.params()) {
    if (spec.role == ParamRole::Weight || spec.role == ParamRole::Bias) {
      p[spec.key] = random_tensor(spec.shape, ++s, -scale, scale);
    } else if (spec.role == ParamRole::Gamma) {
      p[spec.key] = random_tensor(spec.shape, ++s, 0.5f, 1.5f);
    } else if (spec.role == ParamRole::Beta) {
      p[spec.key] = random_tensor(spec.shape, ++s, -0.5f, 0.5f);
    }
  }
  return p;
}

// ---------------------------------------------------------------------------------------------
// Convolution forward vs a naive loop.

struct ConvCase {
  int ic, oc, ih, iw, kh, kw, sh, sw, ph, pw, groups;
  bool bias;

  ConvAttrs attrs() const {
    ConvAttrs a;
    a.out_channels = oc;
    a.kernel_h = kh;
    a.kernel_w = kw;
    a.stride_h = sh;
    a.stride_w = sw;
    a.pad_h = ph;
    a.pad_w = pw;
    a.groups = groups;
    a.bias = bias;
    return a;
  }
};

std::string conv_case_str(const ConvCase& c) {
  return cat("mb3ic", c.ic, "oc", c.oc, "ih", c.ih, "iw", c.iw, "kh", c.kh, "kw", c.kw, "sh", c.sh,
             "sw", c.sw, "ph", c.ph, "pw", c.pw, "g", c.groups, c.bias ? "_bias" : "");
}

class ConvForward : public ::testing::TestWithParam<ConvCase> {};

TEST_P(ConvForward, MatchesNaiveLoop) {
  const ConvCase c = GetParam();
  Graph g;
  int x = g.input("in", c.ic, c.ih, c.iw);
  const ConvAttrs a = c.attrs();
  g.conv("conv", x, a);
  ParamMap p = random_params(g, 11);
  const int n = 3;
  const Tensor in = random_tensor({n, c.ic, c.ih, c.iw}, 12);
  Net net(g, p);
  const Tensor y = net.forward(in, false);
  const int oh = (c.ih + 2 * c.ph - c.kh) / c.sh + 1, ow = (c.iw + 2 * c.pw - c.kw) / c.sw + 1;
  ASSERT_EQ(y.shape(), (Shape{n, int64_t{c.oc} * oh * ow})) << conv_case_str(c);
  const Tensor& w = p.at("conv/weight");
  const int icg = c.ic / c.groups, ocg = c.oc / c.groups;
  const int reduction = icg * c.kh * c.kw;
  // Worst-case float error of a length-K dot product: about K * eps * sum |w x| (Higham's gamma_K).
  const double eps = std::numeric_limits<float>::epsilon();
  for (int b = 0; b < n; ++b)
    for (int o = 0; o < c.oc; ++o)
      for (int i = 0; i < oh; ++i)
        for (int j = 0; j < ow; ++j) {
          double acc = c.bias ? p.at("conv/bias")[o] : 0.0, mag = std::fabs(acc);
          const int grp = o / ocg;
          for (int ci = 0; ci < icg; ++ci)
            for (int u = 0; u < c.kh; ++u)
              for (int v = 0; v < c.kw; ++v) {
                const int yy = i * c.sh - c.ph + u, xx = j * c.sw - c.pw + v;
                if (yy < 0 || yy >= c.ih || xx < 0 || xx >= c.iw) continue;
                const double wv = w[((int64_t{o} * icg + ci) * c.kh + u) * c.kw + v];
                const double xv =
                    in[((int64_t{b} * c.ic + grp * icg + ci) * c.ih + yy) * c.iw + xx];
                acc += wv * xv;
                mag += std::fabs(wv * xv);
              }
          const double got = y[int64_t{b} * c.oc * oh * ow + (int64_t{o} * oh + i) * ow + j];
          const double tol = 2.0 * (reduction + 1) * eps * mag + 1e-7;
          ASSERT_NEAR(got, acc, tol)
              << conv_case_str(c) << " at n" << b << " o" << o << " y" << i << " x" << j;
        }
}

INSTANTIATE_TEST_SUITE_P(Shapes, ConvForward,
                         ::testing::Values(ConvCase{3, 8, 8, 8, 3, 3, 1, 1, 1, 1, 1, true},
                                           ConvCase{4, 6, 7, 10, 3, 3, 2, 2, 1, 1, 1, false},
                                           ConvCase{4, 4, 9, 9, 5, 5, 1, 1, 2, 2, 1, true},
                                           ConvCase{6, 4, 6, 11, 1, 3, 1, 1, 0, 1, 1, false},
                                           ConvCase{4, 6, 8, 8, 3, 3, 1, 1, 0, 0, 2, true},
                                           ConvCase{8, 8, 10, 7, 3, 3, 2, 2, 1, 1, 8, false},
                                           ConvCase{16, 32, 8, 8, 3, 3, 1, 1, 1, 1, 1, false},
                                           ConvCase{32, 32, 9, 6, 3, 3, 1, 1, 1, 1, 32, true},
                                           ConvCase{16, 16, 9, 9, 5, 5, 2, 2, 2, 2, 1, false},
                                           ConvCase{32, 64, 7, 7, 3, 3, 2, 1, 2, 0, 4, true},
                                           ConvCase{3, 5, 9, 9, 1, 1, 2, 2, 0, 0, 1, true},
                                           // Winograd (3x3, stride 1, >= 64 channels, >= 4x4).
                                           ConvCase{64, 64, 8, 8, 3, 3, 1, 1, 1, 1, 1, true},
                                           ConvCase{64, 80, 7, 9, 3, 3, 1, 1, 1, 1, 1, false}),
                         [](const ::testing::TestParamInfo<ConvCase>& i) {
                           return conv_case_str(i.param);
                         });

// ---------------------------------------------------------------------------------------------
// Convolution backward (data via the conv in front, weights and bias directly).

class ConvBackward : public ::testing::TestWithParam<ConvCase> {};

TEST_P(ConvBackward, MatchesFiniteDifferences) {
  const ConvCase c = GetParam();
  Graph g;
  int x = g.input("in", 3, c.ih, c.iw);
  ConvAttrs a0;
  a0.out_channels = c.ic;
  a0.bias = true;
  x = g.conv("conv0", x, a0);
  const ConvAttrs a = c.attrs();
  g.conv("conv1", x, a);
  ParamMap p = random_params(g, 21);
  SCOPED_TRACE(conv_case_str(c));
  check_param_grads(g, p, random_tensor({2, 3, c.ih, c.iw}, 22), 23, {1e-2, 1e-2, 2e-3, 24});
}

INSTANTIATE_TEST_SUITE_P(Shapes, ConvBackward,
                         ::testing::Values(ConvCase{4, 6, 7, 6, 3, 3, 1, 1, 1, 1, 1, true},
                                           ConvCase{4, 6, 7, 9, 3, 3, 2, 2, 1, 1, 1, false},
                                           ConvCase{4, 6, 6, 6, 3, 3, 1, 1, 0, 0, 2, true},
                                           ConvCase{8, 8, 6, 7, 3, 3, 2, 2, 1, 1, 8, true},
                                           ConvCase{4, 4, 6, 8, 1, 3, 1, 1, 0, 1, 1, false},
                                           ConvCase{4, 4, 7, 7, 5, 5, 1, 1, 2, 2, 1, false},
                                           ConvCase{16, 16, 5, 5, 3, 3, 1, 1, 1, 1, 1, true},
                                           ConvCase{64, 64, 6, 5, 3, 3, 1, 1, 1, 1, 1, true},
                                           // <= 4 output pixels: backward weights by GEMMs,
                                           // including taps that never see the input.
                                           ConvCase{16, 16, 2, 2, 3, 3, 1, 1, 1, 1, 1, true},
                                           ConvCase{8, 8, 4, 3, 3, 3, 2, 2, 1, 1, 1, false},
                                           ConvCase{4, 6, 3, 3, 3, 3, 1, 1, 0, 0, 1, true},
                                           ConvCase{4, 4, 2, 2, 5, 5, 1, 1, 2, 2, 1, true}),
                         [](const ::testing::TestParamInfo<ConvCase>& i) {
                           return conv_case_str(i.param);
                         });

// ---------------------------------------------------------------------------------------------
// Kinked ops: pick data whose pre-activations clear the kink by `margin`.

// Values of node `upto` (per sample, plain) for input x, by making it the output of a copy of g.
Tensor values_of(const Graph& g, int upto, ParamMap& p, const Tensor& x) {
  Graph h;
  for (int i = 0; i <= upto; ++i) {
    const Node& n = g.node(i);
    switch (n.kind) {
      case OpKind::Input:
        h.input(n.name, int(n.out[0]), int(n.out[1]), int(n.out[2]));
        break;
      case OpKind::Conv:
        h.conv(n.name, n.inputs[0], n.conv());
        break;
      case OpKind::BatchNorm:
        h.batch_norm(n.name, n.inputs[0], n.bn());
        break;
      case OpKind::Add:
        h.add(n.name, n.inputs[0], n.inputs[1]);
        break;
      default:
        ADD_FAILURE() << "values_of: unsupported " << op_name(n.kind);
    }
  }
  ParamMap q = p;
  Net net(h, q);
  return net.forward(x, true);
}

double min_distance(const Tensor& v, std::initializer_list<double> kinks) {
  double m = 1e30;
  for (int64_t i = 0; i < v.size(); ++i)
    for (double k : kinks) m = std::min(m, std::fabs(v[i] - k));
  return m;
}

struct Kinked {
  Graph g;
  int pre = 0;  // node whose values feed the kinked op
};

// Tries seeds until the pre-activation values clear `kinks` by `margin`, then runs the check.
void check_kinked(Kinked k, std::initializer_list<double> kinks, double margin, Shape in_shape,
                  float wscale = 1.f) {
  for (uint64_t seed = 1; seed < 200; ++seed) {
    ParamMap p = random_params(k.g, seed, wscale);
    const Tensor x = random_tensor(in_shape, seed + 1000);
    if (min_distance(values_of(k.g, k.pre, p, x), kinks) < margin) continue;
    check_param_grads(k.g, p, x, seed + 2000, {1e-3, 1e-2, 2e-3, 24});
    return;
  }
  FAIL() << "no seed kept the data " << margin << " away from the kinks";
}

TEST(Relu, StandaloneBackwardMatchesFiniteDifferences) {
  Kinked k;
  int x = k.g.input("in", 2, 5, 6);
  ConvAttrs a;
  a.out_channels = 4;
  a.bias = true;
  k.pre = k.g.conv("conv0", x, a);
  k.g.relu("relu", k.pre);
  check_kinked(k, {0.0}, 0.05, {2, 2, 5, 6});
}

TEST(Relu6, BackwardMatchesFiniteDifferencesAndClips) {
  Kinked k;
  int x = k.g.input("in", 2, 5, 6);
  ConvAttrs a;
  a.out_channels = 4;
  a.bias = true;
  k.pre = k.g.conv("conv0", x, a);
  k.g.relu6("relu6", k.pre);
  // Weights up to 3 in magnitude push some values past 6.
  check_kinked(k, {0.0, 6.0}, 0.05, {2, 2, 5, 6}, 3.f);
  ParamMap p = random_params(k.g, 5, 3.f);
  Net net(k.g, p);
  const Tensor y = net.forward(random_tensor({2, 2, 5, 6}, 6), false);
  float lo = 1e9f, hi = -1e9f;
  for (int64_t i = 0; i < y.size(); ++i) lo = std::min(lo, y[i]), hi = std::max(hi, y[i]);
  EXPECT_EQ(lo, 0.f);
  EXPECT_EQ(hi, 6.f);
}

TEST(BatchNormRelu, FusedBackwardMatchesFiniteDifferences) {
  Kinked k;
  int x = k.g.input("in", 2, 3, 3);
  ConvAttrs a;
  a.out_channels = 4;
  x = k.g.conv("conv0", x, a);
  k.pre = k.g.batch_norm("bn", x);
  k.g.relu("relu", k.pre);
  check_kinked(k, {0.0}, 0.02, {2, 2, 3, 3});
}

TEST(MaxPool, BackwardMatchesFiniteDifferences) {
  for (PoolAttrs pa : {PoolAttrs{2, 2, 0}, PoolAttrs{3, 2, 1}}) {
    SCOPED_TRACE(cat("kernel ", pa.kernel, " stride ", pa.stride, " pad ", pa.pad));
    // Max-pool kinks are ties inside a window: check the gap between the best two.
    for (uint64_t seed = 1;; ++seed) {
      ASSERT_LT(seed, 300u) << "no seed without near-ties";
      Graph g;
      int x = g.input("in", 2, 7, 6);
      ConvAttrs a;
      a.out_channels = 3;
      a.bias = true;
      const int pre = g.conv("conv0", x, a);
      g.max_pool("pool", pre, pa);
      ParamMap p = random_params(g, seed);
      const Tensor in = random_tensor({2, 2, 7, 6}, seed + 1000);
      const Tensor v = values_of(g, pre, p, in);  // {2, 3*7*6}
      double gap = 1e30;
      const int oh = (7 + 2 * pa.pad - pa.kernel) / pa.stride + 1,
                ow = (6 + 2 * pa.pad - pa.kernel) / pa.stride + 1;
      for (int b = 0; b < 6; ++b)
        for (int i = 0; i < oh; ++i)
          for (int j = 0; j < ow; ++j) {
            double best = -1e30, second = -1e30;
            for (int u = 0; u < pa.kernel; ++u)
              for (int w = 0; w < pa.kernel; ++w) {
                const int yy = i * pa.stride - pa.pad + u, xx = j * pa.stride - pa.pad + w;
                if (yy < 0 || yy >= 7 || xx < 0 || xx >= 6) continue;
                const double val = v[(int64_t{b} * 7 + yy) * 6 + xx];
                if (val > best)
                  second = best, best = val;
                else if (val > second)
                  second = val;
              }
            gap = std::min(gap, best - second);
          }
      if (gap < 0.03) continue;
      check_param_grads(g, p, in, seed + 2000, {1e-3, 1e-2, 2e-3, 24});
      break;
    }
  }
}

// ---------------------------------------------------------------------------------------------
// Smooth ops.

TEST(AvgPool, ExcludesPaddingAndBackwardMatchesFiniteDifferences) {
  Graph g;
  int x = g.input("in", 2, 7, 6);
  ConvAttrs a;
  a.out_channels = 3;
  x = g.conv("conv0", x, a);
  g.avg_pool("pool", x, PoolAttrs{3, 2, 1});
  ParamMap p = random_params(g, 31);
  check_param_grads(g, p, random_tensor({2, 2, 7, 6}, 32), 33, {1e-2, 1e-2, 2e-3, 24});

  // Forward against a naive average over the in-bounds taps only.
  Graph h;
  h.avg_pool("pool", h.input("in", 2, 7, 6), PoolAttrs{3, 2, 1});
  ParamMap none;
  Net net(h, none);
  const Tensor in = random_tensor({1, 2, 7, 6}, 34);
  const Tensor y = net.forward(in, false);
  const int oh = 4, ow = 3;
  ASSERT_EQ(y.size(), 2 * oh * ow);
  for (int c = 0; c < 2; ++c)
    for (int i = 0; i < oh; ++i)
      for (int j = 0; j < ow; ++j) {
        double s = 0;
        int cnt = 0;
        for (int u = 0; u < 3; ++u)
          for (int w = 0; w < 3; ++w) {
            const int yy = i * 2 - 1 + u, xx = j * 2 - 1 + w;
            if (yy < 0 || yy >= 7 || xx < 0 || xx >= 6) continue;
            s += in[(c * 7 + yy) * 6 + xx];
            ++cnt;
          }
        EXPECT_NEAR(y[(c * oh + i) * ow + j], s / cnt, 1e-6) << "c" << c << " y" << i << " x" << j;
      }
}

TEST(GlobalAvgPoolLinear, BackwardMatchesFiniteDifferences) {
  Graph g;
  int x = g.input("in", 2, 5, 7);
  ConvAttrs a;
  a.out_channels = 6;
  x = g.conv("conv0", x, a);
  x = g.global_avg_pool("gap", x);
  x = g.flatten("flat", x);
  g.linear("fc", x, LinearAttrs{5, true});
  ParamMap p = random_params(g, 41);
  check_param_grads(g, p, random_tensor({3, 2, 5, 7}, 42), 43, {1e-2, 1e-2, 2e-3, 24});
}

TEST(Linear, FlattenedMapAndChainedBackwardMatchFiniteDifferences) {
  Graph g;
  int x = g.input("in", 2, 3, 4);
  ConvAttrs a;
  a.out_channels = 3;
  x = g.conv("conv0", x, a);
  x = g.flatten("flat", x);  // {36}: the linear reads the 4-D map directly
  x = g.linear("fc1", x, LinearAttrs{7, true});
  g.linear("fc2", x, LinearAttrs{4, false});  // 2-D input
  ParamMap p = random_params(g, 51);
  check_param_grads(g, p, random_tensor({3, 2, 3, 4}, 52), 53, {1e-2, 1e-2, 2e-3, 24});

  // Forward of the flattened layer: PyTorch's C,H,W flatten order against the {out,in} weight.
  Graph h;
  int y = h.input("in", 3, 2, 2);
  y = h.flatten("flat", y);
  h.linear("fc", y, LinearAttrs{2, true});
  ParamMap q = random_params(h, 54);
  Net net(h, q);
  const Tensor in = random_tensor({2, 3, 2, 2}, 55);
  const Tensor out = net.forward(in, false);
  for (int b = 0; b < 2; ++b)
    for (int o = 0; o < 2; ++o) {
      double s = q.at("fc/bias")[o];
      for (int i = 0; i < 12; ++i) s += double(q.at("fc/weight")[o * 12 + i]) * in[b * 12 + i];
      EXPECT_NEAR(out[b * 2 + o], s, 1e-5);
    }
}

TEST(BatchNorm, BackwardMatchesFiniteDifferences) {
  Graph g;
  int x = g.input("in", 2, 4, 5);
  ConvAttrs a;
  a.out_channels = 4;
  x = g.conv("conv0", x, a);
  g.batch_norm("bn", x);
  ParamMap p = random_params(g, 61);
  check_param_grads(g, p, random_tensor({3, 2, 4, 5}, 62), 63, {1e-2, 1e-2, 2e-3, 24});
}

TEST(BatchNorm, RunningStatsFollowPyTorchAndInferenceUsesThem) {
  Graph g;
  BatchNormAttrs ba;
  ba.momentum = 0.25f;
  ba.eps = 1e-3f;
  g.batch_norm("bn", g.input("in", 3, 4, 5), ba);
  ParamMap p = random_params(g, 71);
  p["bn/running_mean"] = Tensor({3}, 0.5f);
  p["bn/running_var"] = Tensor({3}, 2.f);
  const int n = 4, hw = 20;
  const Tensor x = random_tensor({n, 3, 4, 5}, 72, -2.f, 3.f);
  Net net(g, p);
  const Tensor yt = net.forward(x, true);
  for (int c = 0; c < 3; ++c) {
    double s = 0, ss = 0;
    for (int b = 0; b < n; ++b)
      for (int i = 0; i < hw; ++i) s += x[(b * 3 + c) * hw + i];
    const double mean = s / (n * hw);
    for (int b = 0; b < n; ++b)
      for (int i = 0; i < hw; ++i) ss += std::pow(x[(b * 3 + c) * hw + i] - mean, 2);
    const double var_b = ss / (n * hw), var_u = ss / (n * hw - 1);
    EXPECT_NEAR(p.at("bn/running_mean")[c], 0.75 * 0.5 + 0.25 * mean, 1e-5) << "channel " << c;
    EXPECT_NEAR(p.at("bn/running_var")[c], 0.75 * 2.0 + 0.25 * var_u, 1e-5) << "channel " << c;
    // Training output: batch statistics with the biased variance.
    for (int b = 0; b < n; ++b)
      for (int i = 0; i < hw; ++i) {
        const int64_t k = (b * 3 + c) * hw + i;
        const double want =
            (x[k] - mean) / std::sqrt(var_b + 1e-3) * p.at("bn/gamma")[c] + p.at("bn/beta")[c];
        ASSERT_NEAR(yt[k], want, 1e-4) << "training output, channel " << c;
      }
  }
  // Inference: the running statistics now in the ParamMap.
  const Tensor yi = net.forward(x, false);
  for (int c = 0; c < 3; ++c)
    for (int b = 0; b < n; ++b)
      for (int i = 0; i < hw; ++i) {
        const int64_t k = (b * 3 + c) * hw + i;
        const double want = (x[k] - p.at("bn/running_mean")[c]) /
                                std::sqrt(p.at("bn/running_var")[c] + 1e-3) * p.at("bn/gamma")[c] +
                            p.at("bn/beta")[c];
        ASSERT_NEAR(yi[k], want, 1e-4) << "inference output, channel " << c;
      }
  // An inference forward leaves the running statistics alone.
  const float rm = p.at("bn/running_mean")[0];
  net.forward(x, false);
  EXPECT_EQ(p.at("bn/running_mean")[0], rm);
}

TEST(Add, BranchesAndSharedInputBackwardMatchFiniteDifferences) {
  // x0 feeds conv1 and the add (a gradient summed from two consumers), the add's other input
  // is a single-consumer branch.
  Graph g;
  int x = g.input("in", 2, 5, 5);
  ConvAttrs a;
  a.out_channels = 4;
  a.bias = true;
  const int x0 = g.conv("conv0", x, a);
  const int b1 = g.conv("conv1", x0, a);
  const int s = g.add("add", b1, x0);
  const int c2 = g.conv("conv2", s, a);
  const int s2 = g.add("add2", c2, c2);  // one value feeding both inputs
  g.add("add3", s2, x0);                 // x0 read a third time
  ParamMap p = random_params(g, 81);
  check_param_grads(g, p, random_tensor({2, 2, 5, 5}, 82), 83, {1e-2, 1e-2, 2e-3, 24});
}

TEST(Layers, ErrorsNameTheLayer) {
  Graph g;
  int x = g.input("in", 2, 5, 5);
  ConvAttrs a;
  a.out_channels = 4;
  g.conv("conv0", x, a);
  ParamMap p = init_params(g, 1);
  p["conv0/weight"] = Tensor({4, 2, 3, 2});
  try {
    Net net(g, p);
    net.forward(Tensor({1, 2, 5, 5}), false);
    FAIL() << "a wrong weight shape was accepted";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("conv0/weight"), std::string::npos) << e.what();
  }
}

}  // namespace
}  // namespace pconv

namespace pconv {
namespace {

TEST(AddRelu, FusedForwardClampsAndBackwardMatchesFiniteDifferences) {
  Graph g;
  int x = g.input("in", 2, 5, 5);
  ConvAttrs a;
  a.out_channels = 4;
  a.bias = true;
  const int c0 = g.conv("conv0", x, a);
  const int c1 = g.conv("conv1", x, a);
  const int s = g.add("add", c0, c1);
  g.relu("relu", s);  // fused into the add
  ParamMap p = random_params(g, 91);
  Net net(g, p);
  const Tensor y = net.forward(random_tensor({2, 2, 5, 5}, 92), false);
  int zeros = 0;
  for (int64_t i = 0; i < y.size(); ++i) {
    ASSERT_GE(y[i], 0.f) << i;
    zeros += y[i] == 0.f;
  }
  EXPECT_GT(zeros, 10);

  Kinked k;
  k.g = g;
  k.pre = s;
  check_kinked(k, {0.0}, 0.02, {2, 2, 5, 5});
}

}  // namespace
}  // namespace pconv
