// ADMM hooks against the bugs public reimplementations carry: Z and U that never update, a plain
// norm where the squared norm belongs, a rho that never grows; plus exact resume from a
// checkpoint.
#include <gtest/gtest.h>

#include <cmath>
#include <cstdio>
#include <random>

#include "admm/admm_hooks.h"
#include "core/architectures.h"
#include "core/error.h"
#include "core/model_file.h"

namespace pconv::admm {
namespace {

using nlohmann::json;

void randomize(Tensor& t, std::mt19937_64& rng, float scale = 1.f) {
  std::normal_distribution<float> d(0.f, scale);
  for (int64_t j = 0; j < t.size(); ++j) t[j] = d(rng);
}

// One 2x3 layer "c", scp4, rate 2 (3 of 6 kernels kept).
PruningPlan tiny_plan(double rate = 2.0) {
  PruningPlan p;
  p.library = scp4_library();
  p.library_source = "scp4";
  p.layers.push_back(LayerPlan{"c", 2, 3, 3, 3, rate});
  return p;
}

struct Tiny {
  ParamMap params, grads, momentum;
  Tiny(uint64_t seed) {
    std::mt19937_64 rng(seed);
    params["c/weight"] = Tensor({2, 3, 3, 3});
    randomize(params["c/weight"], rng);
    grads["c/weight"] = Tensor({2, 3, 3, 3}, 0.f);
  }
  Tensor& w() { return params["c/weight"]; }
};

void expect_equal(const Tensor& a, const Tensor& b, const std::string& what) {
  ASSERT_EQ(a.shape(), b.shape()) << what;
  for (int64_t j = 0; j < a.size(); ++j) ASSERT_EQ(a[j], b[j]) << what << " index " << j;
}

TEST(AdmmHooks, InitialisesZToProjectionAndUToZero) {
  Tiny t(1);
  AdmmHooks h(tiny_plan(), AdmmParams{});
  h.on_stage_begin(t.params);
  expect_equal(h.z("c"), project_joint(t.w(), scp4_library(), 2.0), "Z0");
  expect_equal(h.u("c"), Tensor({2, 3, 3, 3}, 0.f), "U0");
}

TEST(AdmmHooks, ZAndUReallyUpdateAndUAccumulates) {
  Tiny t(2);
  AdmmParams ap;
  ap.update_every = 1;
  AdmmHooks h(tiny_plan(), ap);
  h.on_stage_begin(t.params);
  std::mt19937_64 rng(3);
  Tensor u_prev = h.u("c");
  for (int step = 1; step <= 3; ++step) {
    randomize(t.w(), rng);  // stands in for an SGD step
    const Tensor z_before = h.z("c");
    // Expected Z and U from the definition, computed here independently.
    Tensor wu = t.w();
    for (int64_t j = 0; j < wu.size(); ++j) wu[j] += u_prev[j];
    const Tensor z_want = project_joint(wu, scp4_library(), 2.0);
    h.after_step(step, t.params, t.momentum);
    expect_equal(h.z("c"), z_want, cat("Z after step ", step));
    bool z_moved = false;
    for (int64_t j = 0; j < z_want.size(); ++j) z_moved |= z_before[j] != h.z("c")[j];
    EXPECT_TRUE(z_moved) << "Z did not change at step " << step;
    double u_norm = 0;
    for (int64_t j = 0; j < wu.size(); ++j) {
      const float want = u_prev[j] + (t.w()[j] - z_want[j]);
      ASSERT_EQ(h.u("c")[j], want) << "U at step " << step << " index " << j;
      u_norm += double(want) * want;
    }
    EXPECT_GT(u_norm, 0.0) << "U stayed zero";
    u_prev = h.u("c");
  }
  EXPECT_EQ(h.z_updates(), 3);
}

TEST(AdmmHooks, UpdateIntervalInStepsAndPerEpoch) {
  Tiny t(4);
  AdmmParams ap;
  ap.update_every = 3;
  AdmmHooks h(tiny_plan(), ap);
  h.on_stage_begin(t.params);
  for (int s = 1; s <= 7; ++s) h.after_step(s, t.params, t.momentum);
  EXPECT_EQ(h.z_updates(), 2);  // steps 3 and 6
  json m;
  h.on_epoch_end(0, t.params, m);
  EXPECT_EQ(h.z_updates(), 2);  // not per epoch when update_every > 0

  AdmmHooks e(tiny_plan(), AdmmParams{});  // update_every 0: once per epoch
  e.on_stage_begin(t.params);
  for (int s = 1; s <= 7; ++s) e.after_step(s, t.params, t.momentum);
  EXPECT_EQ(e.z_updates(), 0);
  e.on_epoch_end(0, t.params, m);
  EXPECT_EQ(e.z_updates(), 1);
}

TEST(AdmmHooks, PenaltyIsHalfRhoSquaredNormAndGradientMatchesFiniteDifferences) {
  Tiny t(5);
  AdmmParams ap;
  ap.rho = 0.37;
  ap.update_every = 1;
  AdmmHooks h(tiny_plan(), ap);
  h.on_stage_begin(t.params);
  std::mt19937_64 rng(6);
  randomize(t.w(), rng);
  h.after_step(1, t.params, t.momentum);  // U != 0 from here on
  randomize(t.w(), rng);

  const double loss = h.adjust_grads(t.params, t.grads);  // grads were 0: now the penalty's
  double sq = 0;
  for (int64_t j = 0; j < t.w().size(); ++j) {
    const double d = double(t.w()[j]) - h.z("c")[j] + h.u("c")[j];
    sq += d * d;
    EXPECT_NEAR(t.grads["c/weight"][j], 0.37 * d, 1e-6) << "gradient is not rho*(W-Z+U) at " << j;
  }
  EXPECT_NEAR(loss, 0.5 * 0.37 * sq, 1e-9 * (1 + loss)) << "penalty is not rho/2 ||.||^2";
  EXPECT_NEAR(h.penalty(t.params), loss, 1e-6 * (1 + loss));
  // The returned loss and the added gradient are consistent: central differences of the loss.
  const float hstep = 1e-2f;
  for (int64_t j = 0; j < t.w().size(); j += 5) {
    const float w0 = t.w()[j];
    t.w()[j] = w0 + hstep;
    const double lp = h.penalty(t.params);
    t.w()[j] = w0 - hstep;
    const double lm = h.penalty(t.params);
    t.w()[j] = w0;
    const double fd = (lp - lm) / (double(w0 + hstep) - double(w0 - hstep));
    EXPECT_NEAR(t.grads["c/weight"][j], fd, 1e-4 * (1 + std::fabs(fd))) << "index " << j;
  }
}

TEST(AdmmHooks, AdjustGradsAddsToTheLossGradient) {
  Tiny t(7);
  AdmmHooks h(tiny_plan(), AdmmParams{});
  h.on_stage_begin(t.params);
  t.grads["c/weight"].fill(1.5f);
  h.adjust_grads(t.params, t.grads);
  for (int64_t j = 0; j < t.w().size(); ++j)
    EXPECT_NEAR(t.grads["c/weight"][j], 1.5f + 1e-3f * (t.w()[j] - h.z("c")[j]), 1e-6);
}

TEST(AdmmHooks, RhoGrowsPerEpochScheduleUpToTheCap) {
  Tiny t(8);
  AdmmParams ap;
  ap.rho = 0.01;
  ap.rho_factor = 2.0;
  ap.rho_every = 2;
  ap.rho_max = 0.05;
  AdmmHooks h(tiny_plan(), ap);
  h.on_stage_begin(t.params);
  const double want[] = {0.01, 0.02, 0.02, 0.04, 0.04, 0.05, 0.05};
  for (int e = 0; e < 7; ++e) {
    json m;
    EXPECT_DOUBLE_EQ(h.rho(), e == 0 ? 0.01 : want[e - 1]) << "before epoch " << e;
    h.on_epoch_end(e, t.params, m);
    EXPECT_DOUBLE_EQ(m["admm"]["rho"].get<double>(), e == 0 ? 0.01 : want[e - 1]);
    EXPECT_DOUBLE_EQ(h.rho(), want[e]) << "after epoch " << e;
  }
}

TEST(AdmmHooks, RhoGrowsPerStepSchedule) {
  Tiny t(9);
  AdmmParams ap;
  ap.rho = 1.0;
  ap.rho_factor = 1.5;
  ap.rho_every = 3;
  ap.rho_per_step = true;
  AdmmHooks h(tiny_plan(), ap);
  h.on_stage_begin(t.params);
  for (int s = 1; s <= 7; ++s) h.after_step(s, t.params, t.momentum);
  EXPECT_DOUBLE_EQ(h.rho(), 1.5 * 1.5);  // steps 3 and 6
  json m;
  h.on_epoch_end(0, t.params, m);
  EXPECT_DOUBLE_EQ(h.rho(), 2.25);  // not per epoch
}

TEST(AdmmHooks, ScaleUKeepsTheUnscaledDual) {
  Tiny t(10);
  AdmmParams ap;
  ap.rho = 0.1;
  ap.rho_factor = 4.0;
  ap.scale_u = true;
  AdmmHooks h(tiny_plan(), ap);
  h.on_stage_begin(t.params);
  std::mt19937_64 rng(11);
  randomize(t.w(), rng);
  json m;
  h.on_epoch_end(0, t.params, m);  // Z/U update, then rho 0.1 -> 0.4 and U /= 4
  Tensor wu = t.w();
  const Tensor z = h.z("c");
  for (int64_t j = 0; j < wu.size(); ++j)
    EXPECT_FLOAT_EQ(h.u("c")[j], (t.w()[j] - z[j]) * 0.25f) << j;
}

TEST(AdmmHooks, EpochMetricsResidualAndChangedFraction) {
  // 1x2 kernels, rate 1: kernel 0 moves from pattern 0 to pattern 2, kernel 1 stays.
  PruningPlan p = tiny_plan(1.0);
  p.layers[0].out = 1;
  p.layers[0].in = 2;
  ParamMap params, mom;
  Tensor w({1, 2, 3, 3}, 0.f);
  w[1] = 3, w[3] = 3, w[5] = 3, w[4] = 1;                                   // kernel 0: {1,3,4,5}
  w[9 + 1] = 2, w[9 + 4] = 2, w[9 + 5] = 2, w[9 + 7] = 2, w[9 + 0] = 0.5f;  // kernel 1: {1,4,5,7}
  params["c/weight"] = w;
  AdmmHooks h(p, AdmmParams{});
  h.on_stage_begin(params);
  Tensor& cw = params["c/weight"];
  cw[1] = 0, cw[7] = 30;  // kernel 0 now prefers {3,4,5,7}
  json m;
  h.on_epoch_end(0, params, m);
  EXPECT_DOUBLE_EQ(m["admm"]["layers"]["c"]["changed"].get<double>(), 0.5);
  double num = 0;
  for (int64_t j = 0; j < cw.size(); ++j) num += std::pow(double(cw[j]) - h.z("c")[j], 2);
  const double want = std::sqrt(num / sum_squares(cw.data(), cw.size()));
  EXPECT_NEAR(m["admm"]["layers"]["c"]["residual"].get<double>(), want, 1e-12);
  EXPECT_GT(want, 0.0);
  EXPECT_EQ(m["admm"]["z_updates"].get<int64_t>(), 1);
}

TEST(AdmmHooks, StateRoundTripThroughModelFileResumesExactly) {
  const Graph g = build_architecture("resnet20", {});
  ParamMap params = init_params(g, 12);
  PruningConfig cfg;
  cfg.rate = 3.0;
  const PruningPlan plan = make_plan(cfg, g, params);
  AdmmParams ap;
  ap.rho = 0.01;
  ap.rho_factor = 1.3;
  ap.update_every = 2;
  ParamMap mom;
  std::mt19937_64 rng(13);
  auto perturb = [&](ParamMap& p, std::mt19937_64& r) {
    for (const LayerPlan& l : plan.layers) {
      Tensor& w = p[l.name + "/weight"];
      std::normal_distribution<float> d(0.f, 0.01f);
      for (int64_t j = 0; j < w.size(); ++j) w[j] += d(r);
    }
  };
  AdmmHooks a(plan, ap);
  a.on_stage_begin(params);
  json m;
  for (int s = 1; s <= 5; ++s) perturb(params, rng), a.after_step(s, params, mom);
  a.on_epoch_end(0, params, m);

  ModelFile f;
  f.graph = g;
  f.params = params;
  f.train = TrainState{};
  f.train->stage = "admm";
  a.save_state(*f.train);
  const std::string path = cat(PCONV_BINARY_DIR, "/admm_state_test.h5");
  save_model(path, f);
  const ModelFile back = load_model(path);
  std::remove(path.c_str());
  ASSERT_TRUE(back.train.has_value());
  ASSERT_TRUE(plan_from_state(*back.train).has_value());
  EXPECT_EQ(plan_to_json(*plan_from_state(*back.train)), plan_to_json(plan));

  AdmmHooks b(plan, ap);
  b.load_state(*back.train);
  ParamMap params_b = back.params;
  b.on_stage_begin(params_b);  // must not re-initialise a loaded state
  EXPECT_EQ(b.rho(), a.rho());
  EXPECT_EQ(b.z_updates(), a.z_updates());
  for (const LayerPlan& l : plan.layers) {
    expect_equal(b.z(l.name), a.z(l.name), "Z " + l.name);
    expect_equal(b.u(l.name), a.u(l.name), "U " + l.name);
  }
  // Continue both identically: bit-identical results.
  std::mt19937_64 ra(14), rb(14);
  json ma, mb;
  for (int s = 6; s <= 9; ++s) {
    perturb(params, ra), a.after_step(s, params, mom);
    perturb(params_b, rb), b.after_step(s, params_b, mom);
  }
  a.on_epoch_end(1, params, ma);
  b.on_epoch_end(1, params_b, mb);
  EXPECT_EQ(ma, mb);
  for (const LayerPlan& l : plan.layers) {
    expect_equal(b.z(l.name), a.z(l.name), "Z after resume " + l.name);
    expect_equal(b.u(l.name), a.u(l.name), "U after resume " + l.name);
  }
}

TEST(AdmmHooks, LoadStateRejectsADifferentPlan) {
  Tiny t(15);
  AdmmHooks a(tiny_plan(2.0), AdmmParams{});
  a.on_stage_begin(t.params);
  TrainState st;
  a.save_state(st);
  AdmmHooks b(tiny_plan(3.0), AdmmParams{});
  EXPECT_THROW(b.load_state(st), Error);
  TrainState empty;
  EXPECT_THROW(b.load_state(empty), Error);
}

}  // namespace
}  // namespace pconv::admm
