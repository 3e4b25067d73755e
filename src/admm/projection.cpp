#include "admm/projection.h"

#include <algorithm>
#include <cmath>
#include <numeric>

#include "core/error.h"

namespace pconv::admm {
namespace {

void check_3x3(const Tensor& w) {
  PCONV_CHECK(w.rank() == 4 && w.dim(2) == 3 && w.dim(3) == 3,
              "pattern projection needs a (O, I, 3, 3) weight, got ", shape_str(w.shape()));
}

// Indices of the `keep` largest scores; ties keep the lower index. Scores must be finite.
std::vector<char> top_k(const std::vector<double>& score, int64_t keep) {
  const int64_t n = static_cast<int64_t>(score.size());
  for (int64_t i = 0; i < n; ++i)
    PCONV_CHECK(std::isfinite(score[static_cast<size_t>(i)]),
                "projection: non-finite weight in unit ", i);
  std::vector<int64_t> idx(static_cast<size_t>(n));
  std::iota(idx.begin(), idx.end(), 0);
  auto before = [&](int64_t a, int64_t b) {
    const double sa = score[static_cast<size_t>(a)], sb = score[static_cast<size_t>(b)];
    return sa > sb || (sa == sb && a < b);
  };
  std::vector<char> kept(static_cast<size_t>(n), 0);
  if (keep >= n) {
    std::fill(kept.begin(), kept.end(), 1);
    return kept;
  }
  std::nth_element(idx.begin(), idx.begin() + keep, idx.end(), before);
  for (int64_t i = 0; i < keep; ++i) kept[static_cast<size_t>(idx[static_cast<size_t>(i)])] = 1;
  return kept;
}

// Best pattern id and its energy for one kernel.
std::pair<int, double> best_pattern(const float* k, const PatternLibrary& lib) {
  PCONV_CHECK(std::isfinite(sum_squares(k, kKernelSize)), "projection: non-finite weight");
  int best = 0;
  double be = -1;
  for (int p = 0; p < lib.size(); ++p) {
    const double e = pattern_energy(k, lib[p]);
    if (e > be) best = p, be = e;  // strict: ties keep the lower id
  }
  return {best, be};
}

}  // namespace

int64_t kernel_budget(int64_t units, double rate) {
  PCONV_CHECK(rate >= 1.0 && std::isfinite(rate), "pruning rate ", rate, " must be >= 1");
  PCONV_CHECK(units >= 1, "pruning: nothing to prune (", units, " units)");
  const double q = static_cast<double>(units) / rate;
  int64_t b = static_cast<int64_t>(std::ceil(q - 1e-9 * q));
  return std::clamp<int64_t>(b, 1, units);
}

std::vector<int8_t> best_pattern_ids(const Tensor& w, const PatternLibrary& lib) {
  check_3x3(w);
  PCONV_CHECK(!lib.empty(), "pattern projection with an empty library");
  const int64_t n = w.dim(0) * w.dim(1);
  std::vector<int8_t> ids(static_cast<size_t>(n));
  for (int64_t j = 0; j < n; ++j)
    ids[static_cast<size_t>(j)] =
        static_cast<int8_t>(best_pattern(w.data() + j * kKernelSize, lib).first);
  return ids;
}

std::vector<int8_t> joint_pattern_ids(const Tensor& w, const PatternLibrary& lib, double rate) {
  check_3x3(w);
  PCONV_CHECK(!lib.empty(), "pattern projection with an empty library");
  const int64_t n = w.dim(0) * w.dim(1);
  std::vector<int8_t> ids(static_cast<size_t>(n));
  std::vector<double> score(static_cast<size_t>(n));
  for (int64_t j = 0; j < n; ++j) {
    auto [id, e] = best_pattern(w.data() + j * kKernelSize, lib);
    ids[static_cast<size_t>(j)] = static_cast<int8_t>(id);
    score[static_cast<size_t>(j)] = e;
  }
  const std::vector<char> kept = top_k(score, kernel_budget(n, rate));
  for (int64_t j = 0; j < n; ++j)
    if (!kept[static_cast<size_t>(j)]) ids[static_cast<size_t>(j)] = -1;
  return ids;
}

void apply_pattern_ids(Tensor& w, const std::vector<int8_t>& ids, const PatternLibrary& lib) {
  check_3x3(w);
  const int64_t n = w.dim(0) * w.dim(1);
  PCONV_CHECK(static_cast<int64_t>(ids.size()) == n, "pattern ids: ", ids.size(), " entries for ",
              n, " kernels");
  for (int64_t j = 0; j < n; ++j) {
    const int id = ids[static_cast<size_t>(j)];
    PCONV_CHECK(id >= -1 && id < lib.size(), "pattern id ", id, " of kernel ", j,
                " is outside -1..", lib.size() - 1);
    float* k = w.data() + j * kKernelSize;
    for (int p = 0; p < kKernelSize; ++p)
      if (id < 0 || !lib[id].has(p)) k[p] = 0.f;
  }
}

Tensor project_pattern(const Tensor& w, const PatternLibrary& lib) {
  Tensor out = w;
  apply_pattern_ids(out, best_pattern_ids(w, lib), lib);
  return out;
}

Tensor project_joint(const Tensor& w, const PatternLibrary& lib, double rate) {
  Tensor out = w;
  apply_pattern_ids(out, joint_pattern_ids(w, lib, rate), lib);
  return out;
}

Tensor project_connectivity(const Tensor& w, double rate) {
  check_3x3(w);
  const int64_t n = w.dim(0) * w.dim(1);
  std::vector<double> score(static_cast<size_t>(n));
  for (int64_t j = 0; j < n; ++j)
    score[static_cast<size_t>(j)] = sum_squares(w.data() + j * kKernelSize, kKernelSize);
  const std::vector<char> kept = top_k(score, kernel_budget(n, rate));
  Tensor out = w;
  for (int64_t j = 0; j < n; ++j)
    if (!kept[static_cast<size_t>(j)])
      std::fill(out.data() + j * kKernelSize, out.data() + (j + 1) * kKernelSize, 0.f);
  return out;
}

namespace {

std::vector<char> unstructured_keep(const Tensor& w, double rate) {
  std::vector<double> score(static_cast<size_t>(w.size()));
  for (int64_t j = 0; j < w.size(); ++j) score[static_cast<size_t>(j)] = std::fabs(w[j]);
  return top_k(score, kernel_budget(w.size(), rate));
}

std::vector<char> filter_keep(const Tensor& w, double rate) {
  PCONV_CHECK(w.rank() >= 1 && w.dim(0) >= 1, "filter projection of an empty weight");
  const int64_t o = w.dim(0), per = w.size() / o;
  std::vector<double> score(static_cast<size_t>(o));
  for (int64_t f = 0; f < o; ++f)
    score[static_cast<size_t>(f)] = sum_squares(w.data() + f * per, per);
  return top_k(score, kernel_budget(o, rate));
}

}  // namespace

Tensor project_unstructured(const Tensor& w, double rate) {
  return project(w, Granularity::Unstructured, PatternLibrary(), rate).w;
}

Tensor project_filter(const Tensor& w, double rate) {
  return project(w, Granularity::Filter, PatternLibrary(), rate).w;
}

const char* granularity_name(Granularity g) {
  switch (g) {
    case Granularity::Pattern:
      return "pattern";
    case Granularity::Unstructured:
      return "unstructured";
    case Granularity::Filter:
      return "filter";
  }
  return "?";
}

Granularity granularity_from_name(const std::string& s, const std::string& where) {
  if (s == "pattern") return Granularity::Pattern;
  if (s == "unstructured") return Granularity::Unstructured;
  if (s == "filter") return Granularity::Filter;
  throw Error(cat(where, ": unknown granularity \"", s,
                  "\" (expected \"pattern\", \"unstructured\" or \"filter\")"));
}

Projected project(const Tensor& w, Granularity g, const PatternLibrary& lib, double rate) {
  Projected r;
  r.w = w;
  switch (g) {
    case Granularity::Pattern:
      r.decision = joint_pattern_ids(w, lib, rate);
      apply_pattern_ids(r.w, r.decision, lib);
      break;
    case Granularity::Unstructured: {
      const std::vector<char> kept = unstructured_keep(w, rate);
      r.decision.assign(kept.begin(), kept.end());
      for (int64_t j = 0; j < w.size(); ++j)
        if (!kept[static_cast<size_t>(j)]) r.w[j] = 0.f;
      break;
    }
    case Granularity::Filter: {
      const std::vector<char> kept = filter_keep(w, rate);
      r.decision.assign(kept.begin(), kept.end());
      const int64_t per = w.size() / w.dim(0);
      for (int64_t f = 0; f < w.dim(0); ++f)
        if (!kept[static_cast<size_t>(f)])
          std::fill(r.w.data() + f * per, r.w.data() + (f + 1) * per, 0.f);
      break;
    }
  }
  return r;
}

}  // namespace pconv::admm
