#include <gtest/gtest.h>

#include <cmath>

#include "train/optimizer.h"
#include "train/schedule.h"

namespace pconv {
namespace {

Graph tiny_graph() {
  Graph g;
  int x = g.input("input", 2, 4, 4);
  ConvAttrs c;
  c.out_channels = 3;
  c.bias = true;
  x = g.conv("conv", x, c);
  x = g.batch_norm("bn", x);
  x = g.flatten("flat", x);
  g.linear("fc", x, LinearAttrs{2, true});
  return g;
}

// PyTorch's SGD, written out independently in double precision.
void reference_step(std::vector<double>& w, std::vector<double>& buf, const std::vector<double>& g,
                    double lr, double m, double wd, bool nesterov) {
  for (size_t i = 0; i < w.size(); ++i) {
    double gi = g[i] + wd * w[i];
    buf[i] = m * buf[i] + gi;
    w[i] -= lr * (nesterov ? gi + m * buf[i] : buf[i]);
  }
}

TEST(Sgd, MatchesPyTorchRuleAndSkipsDecayOnBnAndBias) {
  Graph g = tiny_graph();
  for (bool nesterov : {false, true}) {
    ParamMap p = init_params(g, 3);
    SgdConfig cfg;
    cfg.lr = 0.05;
    cfg.momentum = 0.9;
    cfg.nesterov = nesterov;
    cfg.weight_decay = 0.01;
    Sgd sgd(g, cfg);
    std::map<std::string, std::vector<double>> w, buf;
    for (const auto& [k, t] : p) {
      w[k].assign(t.data(), t.data() + t.size());
      buf[k].assign(static_cast<size_t>(t.size()), 0.0);
    }
    ParamMap grads;
    for (int step = 0; step < 4; ++step) {
      for (const ParamSpec& s : g.params()) {
        if (!s.trainable) continue;
        Tensor t(s.shape);
        for (int64_t i = 0; i < t.size(); ++i) t[i] = std::sin(0.7f * i + step + s.key.size());
        grads[s.key] = t;
        bool decays = s.role == ParamRole::Weight;
        std::vector<double> gd(t.data(), t.data() + t.size());
        reference_step(w[s.key], buf[s.key], gd, cfg.lr, cfg.momentum,
                       decays ? cfg.weight_decay : 0, nesterov);
      }
      sgd.step(p, grads, cfg.lr);
    }
    for (const ParamSpec& s : g.params()) {
      const Tensor& t = p.at(s.key);
      for (int64_t i = 0; i < t.size(); ++i)
        ASSERT_NEAR(t[i], w[s.key][static_cast<size_t>(i)], 1e-5) << s.key << "[" << i << "]";
    }
    // BN running statistics are not trainable and never move.
    EXPECT_EQ(p.at("bn/running_var")[0], 1.f);
  }
}

TEST(LrSchedule, OneCycleRisesThenAnneals) {
  ScheduleConfig c;
  c.kind = "onecycle";
  c.pct_start = 0.25;
  c.div_factor = 10;
  LrSchedule s(c, 0.4, 100, 4);  // 400 steps, peak at step 100
  EXPECT_NEAR(s.at(0), 0.04, 1e-12);
  EXPECT_NEAR(s.at(100), 0.4, 1e-12);
  EXPECT_LT(s.at(50), s.at(99));
  EXPECT_GT(s.at(150), s.at(300));
  EXPECT_NEAR(s.at(400), 0.0, 1e-12);
}

TEST(LrSchedule, StepCosineWarmup) {
  ScheduleConfig st;
  st.kind = "step";
  st.milestones = {2, 3};
  st.gamma = 0.1;
  LrSchedule s(st, 1.0, 10, 4);
  EXPECT_DOUBLE_EQ(s.at(19), 1.0);
  EXPECT_NEAR(s.at(20), 0.1, 1e-12);
  EXPECT_NEAR(s.at(35), 0.01, 1e-12);
  ScheduleConfig cs;
  cs.kind = "cosine";
  cs.warmup_epochs = 1;
  cs.min_lr_ratio = 0.1;
  LrSchedule c(cs, 1.0, 10, 11);
  EXPECT_NEAR(c.at(0), 0.1, 1e-12);  // warm-up: (step + 1) / warm-up steps
  EXPECT_NEAR(c.at(9), 1.0, 1e-12);
  EXPECT_NEAR(c.at(10), 1.0, 1e-12);   // cosine starts at the peak
  EXPECT_NEAR(c.at(60), 0.55, 1e-12);  // half way: (1 + 0.1) / 2
  EXPECT_NEAR(c.at(110), 0.1, 1e-12);
}

TEST(SgdConfig, ErrorsNameThePath) {
  nlohmann::json j = {{"lr", -1}};
  JsonReader r(j, "$.train.optimizer", "cfg.json");
  try {
    parse_sgd_config(r, SgdConfig{});
    FAIL();
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("cfg.json: $.train.optimizer.lr"), std::string::npos)
        << e.what();
  }
}

}  // namespace
}  // namespace pconv
