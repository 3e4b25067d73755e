#include "train/loss.h"

#include <algorithm>
#include <cmath>

#include "core/error.h"

namespace pconv {
namespace {

void check(const Tensor& logits, const std::vector<int32_t>& labels, const char* who) {
  PCONV_CHECK(logits.rank() == 2, who, ": logits must be {N, classes}, got ",
              shape_str(logits.shape()));
  PCONV_CHECK(static_cast<int64_t>(labels.size()) == logits.dim(0), who, ": ", labels.size(),
              " labels for ", logits.dim(0), " samples");
  const int64_t c = logits.dim(1);
  for (size_t i = 0; i < labels.size(); ++i)
    PCONV_CHECK(labels[i] >= 0 && labels[i] < c, who, ": label ", labels[i], " of sample ", i,
                " is outside [0, ", c, ")");
}

// Row-wise softmax of z / t into p (doubles: the KL below subtracts nearly equal logs).
void tempered_softmax(const float* z, int64_t c, double t, std::vector<double>& p) {
  p.resize(static_cast<size_t>(c));
  const double mx = *std::max_element(z, z + c) / t;
  double sum = 0;
  for (int64_t j = 0; j < c; ++j) sum += p[j] = std::exp(z[j] / t - mx);
  for (double& v : p) v /= sum;
}

}  // namespace

float softmax_cross_entropy(const Tensor& logits, const std::vector<int32_t>& labels,
                            float smoothing, Tensor* dlogits) {
  check(logits, labels, "softmax_cross_entropy");
  PCONV_CHECK(smoothing >= 0.f && smoothing < 1.f, "softmax_cross_entropy: smoothing ", smoothing,
              " is outside [0, 1)");
  const int64_t n = logits.dim(0), c = logits.dim(1);
  if (dlogits && dlogits->shape() != logits.shape()) *dlogits = Tensor(logits.shape());
  const double off = smoothing / static_cast<double>(c);
  const double on = 1.0 - smoothing + off;
  double total = 0;
  for (int64_t i = 0; i < n; ++i) {
    const float* z = logits.data() + i * c;
    const float mx = *std::max_element(z, z + c);
    double sum = 0;
    for (int64_t j = 0; j < c; ++j) sum += std::exp(static_cast<double>(z[j] - mx));
    const double lse = std::log(sum) + mx;  // log-sum-exp
    // -sum_j t_j log p_j = lse - sum_j t_j z_j, with sum_j t_j = 1.
    double tz = 0;
    for (int64_t j = 0; j < c; ++j) tz += (j == labels[i] ? on : off) * z[j];
    total += lse - tz;
    if (dlogits) {
      float* g = dlogits->data() + i * c;
      for (int64_t j = 0; j < c; ++j) {
        const double pj = std::exp(static_cast<double>(z[j]) - lse);
        g[j] = static_cast<float>((pj - (j == labels[i] ? on : off)) / static_cast<double>(n));
      }
    }
  }
  return static_cast<float>(total / static_cast<double>(n));
}

float distillation_kl(const Tensor& student, const Tensor& teacher, float temperature,
                      Tensor* dlogits) {
  PCONV_CHECK(student.rank() == 2 && student.shape() == teacher.shape(),
              "distillation_kl: student logits ", shape_str(student.shape()),
              " and teacher logits ", shape_str(teacher.shape()), " must both be {N, classes}");
  PCONV_CHECK(temperature > 0.f, "distillation_kl: temperature ", temperature, " must be > 0");
  const int64_t n = student.dim(0), c = student.dim(1);
  if (dlogits && dlogits->shape() != student.shape()) *dlogits = Tensor(student.shape());
  const double t = temperature;
  std::vector<double> ps, pt;
  double total = 0;
  for (int64_t i = 0; i < n; ++i) {
    tempered_softmax(student.data() + i * c, c, t, ps);
    tempered_softmax(teacher.data() + i * c, c, t, pt);
    for (int64_t j = 0; j < c; ++j)
      if (pt[j] > 0) total += pt[j] * (std::log(pt[j]) - std::log(std::max(ps[j], 1e-300)));
    if (dlogits) {
      float* g = dlogits->data() + i * c;
      for (int64_t j = 0; j < c; ++j)
        g[j] = static_cast<float>(t * (ps[j] - pt[j]) / static_cast<double>(n));
    }
  }
  return static_cast<float>(t * t * total / static_cast<double>(n));
}

int64_t count_topk(const Tensor& logits, const std::vector<int32_t>& labels, int k) {
  check(logits, labels, "count_topk");
  PCONV_CHECK(k >= 1, "count_topk: k must be >= 1, got ", k);
  const int64_t n = logits.dim(0), c = logits.dim(1);
  int64_t hits = 0;
  for (int64_t i = 0; i < n; ++i) {
    const float* z = logits.data() + i * c;
    const float t = z[labels[i]];
    int higher = 0;
    for (int64_t j = 0; j < c; ++j) higher += z[j] > t;
    hits += higher < k;
  }
  return hits;
}

}  // namespace pconv
