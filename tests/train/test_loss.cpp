// Softmax cross-entropy (with label smoothing), the distillation term, and top-k counting.
#include <gtest/gtest.h>

#include <cmath>

#include "core/error.h"
#include "train/loss.h"

namespace pconv {
namespace {

TEST(SoftmaxCrossEntropy, MatchesHandComputedValues) {
  Tensor z({2, 3});
  const float v[] = {1.f, 2.f, 3.f, 0.f, 0.f, 0.f};
  std::copy(v, v + 6, z.data());
  const std::vector<int32_t> y{2, 0};
  const double lse0 = std::log(std::exp(1.0) + std::exp(2.0) + std::exp(3.0));
  const double want = ((lse0 - 3.0) + std::log(3.0)) / 2.0;
  Tensor dz;
  EXPECT_NEAR(softmax_cross_entropy(z, y, 0.f, &dz), want, 1e-6);
  ASSERT_EQ(dz.shape(), z.shape());
  EXPECT_NEAR(dz[0], std::exp(1.0 - lse0) / 2, 1e-7);
  EXPECT_NEAR(dz[2], (std::exp(3.0 - lse0) - 1) / 2, 1e-7);
  EXPECT_NEAR(dz[3], (1.0 / 3 - 1) / 2, 1e-7);
  EXPECT_NEAR(dz[4], (1.0 / 3) / 2, 1e-7);
  // Smoothing s over C classes: target s/C off the label, 1 - s + s/C on it.
  const double s = 0.1, on = 1 - s + s / 3, off = s / 3;
  const double want_s = ((lse0 - (on * 3 + off * 1 + off * 2)) + std::log(3.0)) / 2.0;
  EXPECT_NEAR(softmax_cross_entropy(z, y, 0.1f, &dz), want_s, 1e-6);
  EXPECT_NEAR(dz[2], (std::exp(3.0 - lse0) - on) / 2, 1e-7);
  EXPECT_NEAR(dz[1], (std::exp(2.0 - lse0) - off) / 2, 1e-7);
}

TEST(SoftmaxCrossEntropy, GradientMatchesFiniteDifferencesAndIsStableForLargeLogits) {
  Tensor z({3, 5});
  for (int64_t i = 0; i < z.size(); ++i)
    z[i] = static_cast<float>(std::sin(1.7 * i) * 3 + (i == 4 ? 500 : 0));
  const std::vector<int32_t> y{4, 1, 3};
  Tensor dz;
  const float l = softmax_cross_entropy(z, y, 0.2f, &dz);
  EXPECT_TRUE(std::isfinite(l));
  for (int64_t i = 0; i < z.size(); ++i) {
    Tensor zp = z, zm = z;
    const float h = 1e-2f;
    zp[i] += h;
    zm[i] -= h;
    const double fd = (double(softmax_cross_entropy(zp, y, 0.2f, nullptr)) -
                       softmax_cross_entropy(zm, y, 0.2f, nullptr)) /
                      (double(zp[i]) - zm[i]);
    EXPECT_NEAR(dz[i], fd, 2e-3) << "element " << i;
  }
  // Each row of the gradient sums to zero (softmax and target both sum to one).
  for (int r = 0; r < 3; ++r) {
    double s = 0;
    for (int c = 0; c < 5; ++c) s += dz[r * 5 + c];
    EXPECT_NEAR(s, 0.0, 1e-7);
  }
}

TEST(SoftmaxCrossEntropy, RejectsBadLabelsAndShapes) {
  Tensor z({2, 3});
  EXPECT_THROW(softmax_cross_entropy(z, {0, 3}, 0.f, nullptr), Error);
  EXPECT_THROW(softmax_cross_entropy(z, {0, -1}, 0.f, nullptr), Error);
  EXPECT_THROW(softmax_cross_entropy(z, {0}, 0.f, nullptr), Error);
  EXPECT_THROW(softmax_cross_entropy(z, {0, 1}, 1.f, nullptr), Error);
  EXPECT_THROW(softmax_cross_entropy(Tensor({6}), {0}, 0.f, nullptr), Error);
}

TEST(DistillationKl, MatchesHandComputedValuesAndVanishesWhenStudentEqualsTeacher) {
  Tensor s({1, 2}), t({1, 2});
  s[0] = 0.f, s[1] = 2.f;
  t[0] = 2.f, t[1] = 0.f;
  // T = 2: student probs softmax(0, 1), teacher softmax(1, 0).
  const double e = std::exp(1.0), qs0 = 1 / (1 + e), qs1 = e / (1 + e);
  const double qt0 = qs1, qt1 = qs0;
  const double kl = qt0 * std::log(qt0 / qs0) + qt1 * std::log(qt1 / qs1);
  Tensor d;
  EXPECT_NEAR(distillation_kl(s, t, 2.f, &d), 4 * kl, 1e-6);
  EXPECT_NEAR(d[0], 2 * (qs0 - qt0), 1e-6);
  EXPECT_NEAR(d[1], 2 * (qs1 - qt1), 1e-6);
  EXPECT_NEAR(distillation_kl(t, t, 2.f, &d), 0.0, 1e-7);
  EXPECT_NEAR(d[0], 0.0, 1e-7);
  EXPECT_NEAR(d[1], 0.0, 1e-7);
}

TEST(DistillationKl, GradientMatchesFiniteDifferencesAtSeveralTemperatures) {
  Tensor s({3, 5}), t({3, 5});
  for (int64_t i = 0; i < s.size(); ++i) {
    s[i] = static_cast<float>(std::sin(1.3 * i) * 4 + (i == 7 ? 300 : 0));
    t[i] = static_cast<float>(std::cos(0.7 * i) * 5);
  }
  for (float temp : {1.f, 4.f, 10.f}) {
    Tensor d;
    EXPECT_TRUE(std::isfinite(distillation_kl(s, t, temp, &d)));
    for (int64_t i = 0; i < s.size(); ++i) {
      Tensor sp = s, sm = s;
      const float h = 1e-2f;
      sp[i] += h;
      sm[i] -= h;
      const double fd =
          (double(distillation_kl(sp, t, temp, nullptr)) - distillation_kl(sm, t, temp, nullptr)) /
          (double(sp[i]) - sm[i]);
      EXPECT_NEAR(d[i], fd, 2e-3) << "T " << temp << " element " << i;
    }
  }
}

TEST(DistillationKl, RejectsMismatchedShapesAndBadTemperatures) {
  EXPECT_THROW(distillation_kl(Tensor({2, 3}), Tensor({2, 4}), 4.f, nullptr), Error);
  EXPECT_THROW(distillation_kl(Tensor({6}), Tensor({6}), 4.f, nullptr), Error);
  EXPECT_THROW(distillation_kl(Tensor({2, 3}), Tensor({2, 3}), 0.f, nullptr), Error);
}

TEST(TopK, CountsLabelsAmongTheLargest) {
  Tensor z({3, 4});
  const float v[] = {0.1f, 0.9f, 0.5f, 0.2f,  // order 1,2,3,0
                     3.f,  1.f,  2.f,  0.f,   // order 0,2,1,3
                     1.f,  1.f,  0.f,  0.f};  // tie between 0 and 1
  std::copy(v, v + 12, z.data());
  EXPECT_EQ(count_top1(z, {1, 0, 1}), 3);  // a tied label counts
  EXPECT_EQ(count_top1(z, {2, 2, 2}), 0);
  EXPECT_EQ(count_topk(z, {2, 2, 2}, 2), 2);
  EXPECT_EQ(count_topk(z, {0, 3, 3}, 3), 1);  // row 2: a tie with class 2 counts
  EXPECT_EQ(count_topk(z, {0, 3, 3}, 4), 3);
  EXPECT_THROW(count_topk(z, {0, 0, 0}, 0), Error);
}

}  // namespace
}  // namespace pconv
