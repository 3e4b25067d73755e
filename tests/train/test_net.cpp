// The whole executor: graph-level gradients against finite differences of the real loss,
// overfitting a small batch with plain SGD, batch-size changes, and the built-in architectures.
#include <gtest/gtest.h>
#include <omp.h>

#include <cmath>
#include <random>

#include "core/architectures.h"
#include "test_layers_util.h"
#include "train/loss.h"

namespace pconv {
namespace {

using testing::random_tensor;

// One thread by default: these are tiny problems, and OpenMP barriers stall when other processes
// hold the cores. BatchSizeChangesReuseOrBuildPlans runs on two threads (batch 128).
const int kOneThread = (omp_set_num_threads(1), 1);

struct Threads {
  explicit Threads(int n) : keep(omp_get_max_threads()) { omp_set_num_threads(n); }
  ~Threads() { omp_set_num_threads(keep); }
  int keep;
};

// conv-bn-relu-pool, one residual block, a strided block with a 1x1 shortcut, gap, linear.
Graph tiny_resnet(int classes = 10) {
  Graph g;
  int x = g.input("in", 3, 8, 8);
  ConvAttrs c;
  c.out_channels = 8;
  x = g.conv("conv1", x, c);
  x = g.batch_norm("bn1", x);
  x = g.relu("relu1", x);
  x = g.max_pool("pool", x, PoolAttrs{2, 2, 0});
  int y = g.conv("b1c1", x, c);
  y = g.batch_norm("b1bn1", y);
  y = g.relu("b1r1", y);
  y = g.conv("b1c2", y, c);
  y = g.batch_norm("b1bn2", y);
  y = g.add("b1add", y, x);
  x = g.relu("b1out", y);
  ConvAttrs s = c;
  s.out_channels = 16;
  s.stride_h = s.stride_w = 2;
  y = g.conv("b2c1", x, s);
  y = g.batch_norm("b2bn1", y);
  y = g.relu("b2r1", y);
  ConvAttrs c2 = c;
  c2.out_channels = 16;
  y = g.conv("b2c2", y, c2);
  y = g.batch_norm("b2bn2", y);
  ConvAttrs sc;
  sc.out_channels = 16;
  sc.kernel_h = sc.kernel_w = 1;
  sc.pad_h = sc.pad_w = 0;
  sc.stride_h = sc.stride_w = 2;
  int z = g.conv("b2sc", x, sc);
  z = g.batch_norm("b2scbn", z);
  y = g.add("b2add", y, z);
  x = g.relu("b2out", y);
  x = g.global_avg_pool("gap", x);
  x = g.flatten("flat", x);
  g.linear("fc", x, LinearAttrs{classes, true});
  return g;
}

// MobileNet-like: ReLU6, depthwise conv, a residual add without ReLU, average pooling.
Graph tiny_mobile() {
  Graph g;
  int x = g.input("in", 3, 6, 6);
  ConvAttrs c;
  c.out_channels = 16;
  x = g.conv("stem", x, c);
  x = g.batch_norm("stem_bn", x);
  const int s = g.relu6("stem_r", x);
  ConvAttrs dw = c;
  dw.groups = 16;
  x = g.conv("dw", s, dw);
  x = g.batch_norm("dw_bn", x);
  x = g.relu6("dw_r", x);
  ConvAttrs pw;
  pw.out_channels = 16;
  pw.kernel_h = pw.kernel_w = 1;
  pw.pad_h = pw.pad_w = 0;
  x = g.conv("pw", x, pw);
  x = g.batch_norm("pw_bn", x);
  x = g.add("res", x, s);
  x = g.avg_pool("pool", x, PoolAttrs{2, 2, 0});
  x = g.flatten("flat", x);
  g.linear("fc", x, LinearAttrs{4, true});
  return g;
}

std::vector<int32_t> random_labels(int n, int classes, uint64_t seed) {
  std::mt19937_64 rng(seed);
  std::vector<int32_t> y(static_cast<size_t>(n));
  for (auto& v : y) v = static_cast<int32_t>(rng() % static_cast<uint64_t>(classes));
  return y;
}

// d(loss)/d(param) of the whole graph vs central differences of the loss itself (label smoothing
// on, so every logit carries gradient). Fixed seeds: the data are deterministic, and h is small
// enough that no ReLU or max-pool decision flips under these seeds (seed 200 of the mobile net
// puts a ReLU6 input within h of a kink and fails, as expected).
void check_graph(const Graph& g, int batch, uint64_t seed) {
  ParamMap p = init_params(g, seed);
  // BN affine parameters away from their defaults so their gradients are generic.
  for (const ParamSpec& s : g.params()) {
    if (s.role == ParamRole::Gamma) p[s.key] = random_tensor(s.shape, seed + 1, 0.5f, 1.5f);
    if (s.role == ParamRole::Beta) p[s.key] = random_tensor(s.shape, seed + 2, -0.3f, 0.3f);
  }
  const Shape& is = g.input_shape();
  const Tensor x = random_tensor({batch, is[0], is[1], is[2]}, seed + 3);
  const auto y = random_labels(batch, g.num_classes(), seed + 4);
  Net net(g, p);
  Tensor dz;
  softmax_cross_entropy(net.forward(x, true), y, 0.1f, &dz);
  net.backward(dz);
  int checked = 0;
  for (const ParamSpec& s : g.params()) {
    if (!s.trainable) continue;
    const Tensor an = net.grads().at(s.key);
    const double rms = std::sqrt(sum_squares(an.data(), an.size()) / an.size());
    EXPECT_GT(rms, 0.0) << s.key << " got no gradient";
    Tensor& w = p.at(s.key);
    const int64_t step = std::max<int64_t>(1, w.size() / 6);
    for (int64_t e = 0; e < w.size(); e += step) {
      const float keep = w[e];
      const double h = 5e-4;
      w[e] = static_cast<float>(keep + h);
      net.params_changed();
      const double lp = softmax_cross_entropy(net.forward(x, true), y, 0.1f, nullptr);
      w[e] = static_cast<float>(keep - h);
      net.params_changed();
      const double lm = softmax_cross_entropy(net.forward(x, true), y, 0.1f, nullptr);
      const double hh = double(static_cast<float>(keep + h)) - static_cast<float>(keep - h);
      w[e] = keep;
      net.params_changed();
      const double fd = (lp - lm) / hh;
      // The loss is a mean of O(1) terms computed in float: its rounding (~1e-7) over 2h gives
      // ~5e-5 absolute noise, covered by the absolute slack.
      EXPECT_NEAR(an[e], fd,
                  3e-2 * std::max(std::fabs(fd), std::fabs(double(an[e]))) + 0.05 * rms + 2e-4)
          << s.key << "[" << e << "] (seed " << seed << ")";
      ++checked;
    }
  }
  EXPECT_GT(checked, 40);
}

TEST(Net, TinyResNetGradientMatchesFiniteDifferencesOfTheLoss) {
  check_graph(tiny_resnet(), 4, 100);
}

TEST(Net, TinyMobileNetGradientMatchesFiniteDifferencesOfTheLoss) {
  check_graph(tiny_mobile(), 3, 201);
}

TEST(Net, OverfitsASmallRandomBatchWithPlainSgd) {
  const Graph g = tiny_resnet();
  ParamMap p = init_params(g, 5);
  const Tensor x = random_tensor({32, 3, 8, 8}, 6);
  const auto y = random_labels(32, 10, 7);
  Net net(g, p);
  ParamMap mom;
  for (auto& [k, t] : net.grads()) mom.emplace(k, Tensor(t.shape()));
  Tensor dz;
  float first = 0, loss = 0;
  int64_t hits = 0;
  int step = 0;
  for (; step < 300; ++step) {
    loss = softmax_cross_entropy(net.forward(x, true), y, 0.f, &dz);
    if (step == 0) first = loss;
    hits = count_top1(net.forward(x, true), y);
    if (hits == 32 && loss < 0.05f) break;
    net.backward(dz);  // backward of the last training forward (same x)
    for (auto& [k, gr] : net.grads()) {
      Tensor& w = p.at(k);
      Tensor& v = mom.at(k);
      for (int64_t i = 0; i < w.size(); ++i) {
        v[i] = 0.9f * v[i] + gr[i];
        w[i] -= 0.05f * v[i];
      }
    }
    net.params_changed();
  }
  EXPECT_EQ(hits, 32) << "after " << step << " steps, loss " << first << " -> " << loss;
  EXPECT_LT(loss, 0.1f * first);
  // The running statistics have caught up with the batch: inference agrees.
  for (int i = 0; i < 30; ++i) net.forward(x, true);
  EXPECT_EQ(count_top1(net.forward(x, false), y), 32);
}

TEST(Net, BatchSizeChangesReuseOrBuildPlans) {
  Threads two(2);
  const Graph g = tiny_resnet();
  ParamMap p = init_params(g, 9);
  const Tensor x128 = random_tensor({128, 3, 8, 8}, 10);
  Tensor x37({37, 3, 8, 8});
  std::copy(x128.data(), x128.data() + x37.size(), x37.data());
  const auto y128 = random_labels(128, 10, 11);
  const std::vector<int32_t> y37(y128.begin(), y128.begin() + 37);

  Net net(g, p);
  const Tensor inf128 = net.forward(x128, false);
  const Tensor inf37 = net.forward(x37, false);
  for (int64_t i = 0; i < inf37.size(); ++i) ASSERT_NEAR(inf37[i], inf128[i], 1e-4) << i;

  auto grads_of = [&](Net& n, const Tensor& x, const std::vector<int32_t>& y) {
    Tensor dz;
    softmax_cross_entropy(n.forward(x, true), y, 0.f, &dz);
    n.backward(dz);
    return n.grads();
  };
  // Training with 128, then 37, then 128 again against fresh nets of one batch size each.
  ParamMap p1 = p, p2 = p;
  Net fresh128(g, p1), fresh37(g, p2);
  const ParamMap want128 = grads_of(fresh128, x128, y128);
  const ParamMap want37 = grads_of(fresh37, x37, y37);
  const ParamMap a = grads_of(net, x128, y128);
  const ParamMap b = grads_of(net, x37, y37);
  const ParamMap c = grads_of(net, x128, y128);
  for (const auto& [k, t] : want128) {
    for (int64_t i = 0; i < t.size(); ++i) {
      ASSERT_NEAR(a.at(k)[i], t[i], 1e-5 + 1e-4 * std::fabs(t[i]))
          << k << "[" << i << "] batch 128";
      ASSERT_NEAR(c.at(k)[i], t[i], 1e-5 + 1e-4 * std::fabs(t[i]))
          << k << "[" << i << "] batch 128 again";
      ASSERT_NEAR(b.at(k)[i], want37.at(k)[i], 1e-5 + 1e-4 * std::fabs(want37.at(k)[i]))
          << k << "[" << i << "] batch 37";
    }
  }
}

TEST(Net, BuiltInArchitecturesRunForwardAndBackward) {
  for (const char* name : {"resnet20", "vgg16_cifar", "mobilenet_v2_cifar"}) {
    SCOPED_TRACE(name);
    const Graph g = build_architecture(name, {});
    ParamMap p = init_params(g, 1);
    Net net(g, p);
    const Tensor x = random_tensor({2, 3, 32, 32}, 2);
    Tensor dz;
    const float loss =
        softmax_cross_entropy(net.forward(x, true), random_labels(2, 10, 3), 0.f, &dz);
    EXPECT_TRUE(std::isfinite(loss));
    net.backward(dz);
    for (const auto& [k, t] : net.grads()) {
      const double n = norm2(t);
      EXPECT_TRUE(std::isfinite(n)) << k;
      EXPECT_GT(n, 0.0) << k << " got no gradient";
    }
  }
}

TEST(Net, ErrorsNameTheProblem) {
  const Graph g = tiny_resnet();
  ParamMap p = init_params(g, 1);
  Net net(g, p);
  try {
    net.backward(Tensor({2, 10}));
    FAIL() << "backward without a forward was accepted";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("training forward"), std::string::npos) << e.what();
  }
  try {
    net.forward(Tensor({2, 3, 9, 8}), true);
    FAIL() << "a wrong input shape was accepted";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("[2, 3, 9, 8]"), std::string::npos) << e.what();
  }
  net.forward(Tensor({2, 3, 8, 8}), false);
  EXPECT_THROW(net.backward(Tensor({2, 10})), Error);  // the last forward was inference
  ParamMap missing = p;
  missing.erase("b1c1/weight");
  EXPECT_THROW(Net(g, missing), Error);
}

}  // namespace
}  // namespace pconv
