// Projections: hand-made kernels, then properties (optimal vs brute force, idempotent, exact
// structure, exact budget) on random tiny tensors. Failures print the seed that reproduces them.
#include <gtest/gtest.h>

#include <cmath>
#include <functional>
#include <limits>
#include <random>

#include "admm/pattern.h"
#include "admm/projection.h"
#include "core/error.h"

namespace pconv::admm {
namespace {

Tensor random_weight(int64_t o, int64_t i, uint64_t seed) {
  std::mt19937_64 rng(seed);
  std::normal_distribution<float> d(0.f, 1.f);
  Tensor w({o, i, 3, 3});
  for (int64_t j = 0; j < w.size(); ++j) w[j] = d(rng);
  return w;
}

double dist2(const Tensor& a, const Tensor& b) {
  double s = 0;
  for (int64_t j = 0; j < a.size(); ++j) s += (double(a[j]) - b[j]) * (double(a[j]) - b[j]);
  return s;
}

TEST(Pattern, Scp4IsThePapersFour) {
  const PatternLibrary lib = scp4_library();
  ASSERT_EQ(lib.size(), 4);
  EXPECT_EQ(lib[0].str(), "{1,3,4,5}");
  EXPECT_EQ(lib[1].str(), "{1,3,4,7}");
  EXPECT_EQ(lib[2].str(), "{3,4,5,7}");
  EXPECT_EQ(lib[3].str(), "{1,4,5,7}");
  for (const Pattern& p : lib.patterns()) EXPECT_TRUE(p.has(kCentre));
  EXPECT_EQ(lib[0].grid(), "010\n111\n000");
}

TEST(Pattern, LibraryValidation) {
  EXPECT_THROW(Pattern::from_positions({1, 3, 4}, "x"), Error);
  EXPECT_THROW(Pattern::from_positions({1, 3, 4, 9}, "x"), Error);
  EXPECT_THROW(Pattern::from_positions({1, 3, 4, 4}, "x"), Error);
  EXPECT_THROW(PatternLibrary({}, "x"), Error);
  const Pattern p = Pattern::from_positions({0, 1, 2, 4}, "x");
  try {
    PatternLibrary({p, p}, "$.pruning.library");
    FAIL() << "duplicate accepted";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("$.pruning.library[1]"), std::string::npos) << e.what();
  }
  EXPECT_THROW(PatternLibrary::from_masks({0x1FF}, "x"), Error);  // 9 bits
  EXPECT_EQ(centre_patterns().size(), 56u);
}

TEST(Pattern, LibraryFromWeightsVotesByEnergy) {
  // 3 kernels prefer {0,1,2,4}, 2 prefer {4,6,7,8}, 1 prefers {1,3,4,5}; one all-zero abstains.
  Tensor w({7, 1, 3, 3});
  auto set = [&](int k, std::vector<int> pos) {
    for (int p : pos) w[k * 9 + p] = 1.f + 0.1f * p;
  };
  for (int k = 0; k < 3; ++k) set(k, {0, 1, 2, 4});
  for (int k = 3; k < 5; ++k) set(k, {4, 6, 7, 8});
  set(5, {1, 3, 4, 5});
  const LibraryFromWeights r = library_from_weights({&w}, 2);
  EXPECT_EQ(r.kernels, 6);
  ASSERT_EQ(r.library.size(), 2);
  EXPECT_EQ(r.library[0].str(), "{0,1,2,4}");
  EXPECT_EQ(r.library[1].str(), "{4,6,7,8}");
  EXPECT_EQ(r.votes[0].count, 3);
  EXPECT_EQ(r.votes[1].count, 2);
  EXPECT_EQ(r.votes[2].count, 1);
  EXPECT_EQ(r.votes.size(), 56u);
  EXPECT_THROW(library_from_weights({&w}, 57), Error);
  EXPECT_THROW(library_from_weights({&w}, 0), Error);
}

TEST(Projection, BudgetIsCeil) {
  EXPECT_EQ(kernel_budget(64, 8.0), 8);
  EXPECT_EQ(kernel_budget(65, 8.0), 9);
  EXPECT_EQ(kernel_budget(64, 6.4), 10);  // 64/6.4 = 10 in decimal, must not become 11
  EXPECT_EQ(kernel_budget(4608, 8.8), 524);
  EXPECT_EQ(kernel_budget(3, 100.0), 1);
  EXPECT_EQ(kernel_budget(9, 1.0), 9);
  EXPECT_THROW(kernel_budget(9, 0.5), Error);
}

TEST(Projection, HandMadeKernel) {
  // One kernel: energy concentrated on {1,4,5,7} -> pattern id 3 of scp4.
  Tensor w({1, 1, 3, 3});
  const float v[9] = {0.5f, 2, 0.1f, 0.2f, 3, 2, 0.3f, 2, 0.4f};
  for (int j = 0; j < 9; ++j) w[j] = v[j];
  const Tensor p = project_pattern(w, scp4_library());
  const float want[9] = {0, 2, 0, 0, 3, 2, 0, 2, 0};
  for (int j = 0; j < 9; ++j) EXPECT_EQ(p[j], want[j]) << "position " << j;
  EXPECT_EQ(best_pattern_ids(w, scp4_library())[0], 3);
}

TEST(Projection, TiesAreDeterministic) {
  // All-equal kernels: every pattern ties (lowest id wins) and every kernel ties (lowest index).
  Tensor w({2, 3, 3, 3}, 1.f);
  const std::vector<int8_t> ids = joint_pattern_ids(w, scp4_library(), 3.0);
  EXPECT_EQ(ids, (std::vector<int8_t>{0, 0, -1, -1, -1, -1}));
}

TEST(Projection, ConnectivityKeepsHighestEnergyKernels) {
  Tensor w({2, 2, 3, 3});
  for (int k = 0; k < 4; ++k)
    for (int p = 0; p < 9; ++p) w[k * 9 + p] = float(k == 2 ? 5 : k == 0 ? 3 : 1);
  const Tensor c = project_connectivity(w, 2.0);
  for (int p = 0; p < 9; ++p) {
    EXPECT_EQ(c[0 * 9 + p], 3.f);
    EXPECT_EQ(c[1 * 9 + p], 0.f);
    EXPECT_EQ(c[2 * 9 + p], 5.f);
    EXPECT_EQ(c[3 * 9 + p], 0.f);
  }
}

// Brute-force Euclidean projection distance: every subset of exactly `budget` kernels, every
// pattern per kept kernel. (Keeping fewer is never closer: keeping adds non-negative energy.)
double brute_force_min_dist(const Tensor& w, const PatternLibrary& lib, int64_t budget) {
  const int64_t n = w.dim(0) * w.dim(1);
  double best = std::numeric_limits<double>::infinity();
  std::vector<int> choice(static_cast<size_t>(n));
  std::function<void(int64_t, int64_t, double)> rec = [&](int64_t j, int64_t kept, double d) {
    if (j == n) {
      if (kept == budget) best = std::min(best, d);
      return;
    }
    const float* k = w.data() + j * 9;
    // removed: the whole kernel's energy is lost
    rec(j + 1, kept, d + sum_squares(k, 9));
    if (kept < budget)
      for (int p = 0; p < lib.size(); ++p)
        rec(j + 1, kept + 1, d + sum_squares(k, 9) - pattern_energy(k, lib[p]));
  };
  rec(0, 0, 0.0);
  return best;
}

void check_structure(const Tensor& w, const Tensor& p, const PatternLibrary& lib, double rate,
                     const std::string& ctx) {
  const int64_t n = w.dim(0) * w.dim(1);
  int64_t kept = 0;
  for (int64_t j = 0; j < n; ++j) {
    uint16_t nz = 0;
    for (int q = 0; q < 9; ++q)
      if (p[j * 9 + q] != 0.f) nz |= uint16_t(1u << q);
    if (nz == 0) continue;
    ++kept;
    // Non-zeros lie within exactly one library pattern, and equal the original weights there.
    bool in_some = false;
    for (const Pattern& pat : lib.patterns()) in_some |= (nz & ~pat.mask) == 0;
    EXPECT_TRUE(in_some) << ctx << " kernel " << j << " non-zeros not within a library pattern";
    for (int q = 0; q < 9; ++q)
      if (p[j * 9 + q] != 0.f) {
        EXPECT_EQ(p[j * 9 + q], w[j * 9 + q]) << ctx;
      }
  }
  EXPECT_EQ(kept, kernel_budget(n, rate)) << ctx << " kept kernels != budget";
  // ids describe the same thing: exactly budget kept, pattern from the library
  const std::vector<int8_t> ids = joint_pattern_ids(w, lib, rate);
  int64_t kept_ids = 0;
  for (int64_t j = 0; j < n; ++j) {
    const int id = ids[static_cast<size_t>(j)];
    ASSERT_GE(id, -1) << ctx;
    ASSERT_LT(id, lib.size()) << ctx;
    if (id < 0) {
      for (int q = 0; q < 9; ++q) EXPECT_EQ(p[j * 9 + q], 0.f) << ctx << " removed kernel " << j;
    } else {
      ++kept_ids;
      for (int q = 0; q < 9; ++q)
        if (!lib[id].has(q)) {
          EXPECT_EQ(p[j * 9 + q], 0.f) << ctx << " kernel " << j;
        }
    }
  }
  EXPECT_EQ(kept_ids, kernel_budget(n, rate)) << ctx;
}

TEST(Projection, JointEqualsBruteForceOnTinyTensors) {
  const PatternLibrary lib = scp4_library();
  const uint64_t base = std::random_device{}();
  for (int trial = 0; trial < 60; ++trial) {
    const uint64_t seed = base + static_cast<uint64_t>(trial);
    const int64_t o = 2, i = 2 + trial % 2;  // 4 or 6 kernels
    const Tensor w = random_weight(o, i, seed);
    for (double rate : {1.0, 1.5, 2.0, 3.0, 4.0, 6.0}) {
      const std::string ctx = cat("seed=", seed, " O=", o, " I=", i, " rate=", rate);
      const int64_t budget = kernel_budget(o * i, rate);
      const Tensor p = project_joint(w, lib, rate);
      EXPECT_NEAR(dist2(w, p), brute_force_min_dist(w, lib, budget), 1e-9) << ctx;
      check_structure(w, p, lib, rate, ctx);
      // Idempotent, bit for bit.
      const Tensor pp = project_joint(p, lib, rate);
      for (int64_t j = 0; j < p.size(); ++j) ASSERT_EQ(pp[j], p[j]) << ctx << " index " << j;
      // Decision agrees with project().
      const Projected pr = project(w, Granularity::Pattern, lib, rate);
      EXPECT_EQ(pr.decision, joint_pattern_ids(w, lib, rate)) << ctx;
      for (int64_t j = 0; j < p.size(); ++j) ASSERT_EQ(pr.w[j], p[j]) << ctx;
    }
  }
}

TEST(Projection, JointOptimalWithLargerExplicitLibrary) {
  std::vector<Pattern> ps;
  for (const Pattern& p : centre_patterns())
    if (ps.size() < 8) ps.push_back(p);
  const PatternLibrary lib(ps, "test");
  const uint64_t base = std::random_device{}();
  for (int trial = 0; trial < 10; ++trial) {
    const uint64_t seed = base + static_cast<uint64_t>(trial);
    const Tensor w = random_weight(2, 2, seed);
    for (double rate : {1.0, 2.0, 4.0}) {
      const std::string ctx = cat("seed=", seed, " rate=", rate);
      const Tensor p = project_joint(w, lib, rate);
      EXPECT_NEAR(dist2(w, p), brute_force_min_dist(w, lib, kernel_budget(4, rate)), 1e-9) << ctx;
      check_structure(w, p, lib, rate, ctx);
    }
  }
}

TEST(Projection, UnstructuredAndFilterBudgetsAndIdempotence) {
  const uint64_t seed = std::random_device{}();
  const Tensor w = random_weight(8, 5, seed);
  for (double rate : {1.0, 2.5, 7.0}) {
    const std::string ctx = cat("seed=", seed, " rate=", rate);
    const Tensor u = project_unstructured(w, rate);
    int64_t nz = 0;
    float min_kept = INFINITY, max_dropped = 0;
    for (int64_t j = 0; j < u.size(); ++j) {
      if (u[j] != 0.f) {
        ++nz, min_kept = std::min(min_kept, std::fabs(w[j]));
      } else {
        max_dropped = std::max(max_dropped, std::fabs(w[j]));
      }
    }
    EXPECT_EQ(nz, kernel_budget(w.size(), rate)) << ctx;
    EXPECT_GE(min_kept, max_dropped) << ctx;
    const Tensor uu = project_unstructured(u, rate);
    for (int64_t j = 0; j < u.size(); ++j) ASSERT_EQ(uu[j], u[j]) << ctx;

    const Tensor f = project_filter(w, rate);
    int64_t filters = 0;
    for (int64_t o = 0; o < 8; ++o) filters += sum_squares(f.data() + o * 45, 45) > 0;
    EXPECT_EQ(filters, kernel_budget(8, rate)) << ctx;
    const Tensor ff = project_filter(f, rate);
    for (int64_t j = 0; j < f.size(); ++j) ASSERT_EQ(ff[j], f[j]) << ctx;
  }
}

TEST(Projection, RejectsBadInput) {
  Tensor w({2, 2, 3, 3}, 1.f);
  w[5] = NAN;
  EXPECT_THROW(project_joint(w, scp4_library(), 2.0), Error);
  EXPECT_THROW(project_joint(Tensor({2, 2, 5, 5}), scp4_library(), 2.0), Error);
  EXPECT_THROW(project_joint(Tensor({2, 2, 3, 3}), scp4_library(), 0.9), Error);
}

}  // namespace
}  // namespace pconv::admm
