#include "admm/pattern.h"

#include <algorithm>
#include <bitset>
#include <set>

#include "core/error.h"

namespace pconv::admm {

std::vector<int> Pattern::positions() const {
  std::vector<int> p;
  for (int i = 0; i < kKernelSize; ++i)
    if (has(i)) p.push_back(i);
  return p;
}

std::string Pattern::str() const {
  std::string s = "{";
  for (int p : positions()) s += (s.size() > 1 ? "," : "") + std::to_string(p);
  return s + "}";
}

std::string Pattern::grid() const {
  std::string s;
  for (int r = 0; r < 3; ++r) {
    for (int c = 0; c < 3; ++c) s += has(r * 3 + c) ? '1' : '0';
    if (r < 2) s += '\n';
  }
  return s;
}

Pattern Pattern::from_mask(uint32_t mask, const std::string& where) {
  PCONV_CHECK(mask < (1u << kKernelSize), where, ": pattern mask ", mask,
              " has bits outside the 9 positions of a 3x3 kernel");
  const int bits = static_cast<int>(std::bitset<32>(mask).count());
  PCONV_CHECK(bits == kPatternSize, where, ": a pattern keeps exactly ", kPatternSize,
              " of 9 positions, this one keeps ", bits);
  return Pattern{static_cast<uint16_t>(mask)};
}

Pattern Pattern::from_positions(const std::vector<int>& pos, const std::string& where) {
  uint32_t mask = 0;
  for (int p : pos) {
    PCONV_CHECK(p >= 0 && p < kKernelSize, where, ": position ", p,
                " is outside 0..8 (index r*3+c of a 3x3 kernel)");
    PCONV_CHECK(!(mask & (1u << p)), where, ": position ", p, " is listed twice");
    mask |= 1u << p;
  }
  return from_mask(mask, where);
}

PatternLibrary::PatternLibrary(std::vector<Pattern> patterns, const std::string& where)
    : patterns_(std::move(patterns)) {
  PCONV_CHECK(!patterns_.empty(), where, ": the pattern library is empty (need at least 1)");
  PCONV_CHECK(patterns_.size() <= 127, where, ": ", patterns_.size(),
              " patterns, at most 127 fit an int8 pattern id");
  std::set<uint16_t> seen;
  for (size_t i = 0; i < patterns_.size(); ++i) {
    Pattern::from_mask(patterns_[i].mask, cat(where, "[", i, "]"));
    PCONV_CHECK(seen.insert(patterns_[i].mask).second, where, "[", i, "]: pattern ",
                patterns_[i].str(), " appears twice");
  }
}

PatternLibrary PatternLibrary::from_masks(const std::vector<uint16_t>& masks,
                                          const std::string& where) {
  std::vector<Pattern> ps;
  for (size_t i = 0; i < masks.size(); ++i)
    ps.push_back(Pattern::from_mask(masks[i], cat(where, "[", i, "]")));
  return PatternLibrary(std::move(ps), where);
}

std::vector<uint16_t> PatternLibrary::masks() const {
  std::vector<uint16_t> m;
  for (const Pattern& p : patterns_) m.push_back(p.mask);
  return m;
}

int PatternLibrary::find(Pattern p) const {
  for (size_t i = 0; i < patterns_.size(); ++i)
    if (patterns_[i] == p) return static_cast<int>(i);
  return -1;
}

std::string PatternLibrary::str() const {
  std::string s = "[";
  for (size_t i = 0; i < patterns_.size(); ++i) s += (i ? ", " : "") + patterns_[i].str();
  return s + "]";
}

PatternLibrary scp4_library() {
  const std::string w = "scp4";
  return PatternLibrary(
      {Pattern::from_positions({1, 3, 4, 5}, w), Pattern::from_positions({1, 3, 4, 7}, w),
       Pattern::from_positions({3, 4, 5, 7}, w), Pattern::from_positions({1, 4, 5, 7}, w)},
      w);
}

std::vector<Pattern> centre_patterns() {
  std::vector<Pattern> out;
  for (uint32_t m = 0; m < (1u << kKernelSize); ++m)
    if ((m & (1u << kCentre)) && std::bitset<32>(m).count() == kPatternSize)
      out.push_back(Pattern{static_cast<uint16_t>(m)});
  return out;
}

double pattern_energy(const float* k, Pattern p) {
  double e = 0;
  for (int i = 0; i < kKernelSize; ++i)
    if (p.has(i)) e += static_cast<double>(k[i]) * k[i];
  return e;
}

Pattern best_centre_pattern(const float* k) {
  int order[8], n = 0;
  for (int i = 0; i < kKernelSize; ++i)
    if (i != kCentre) order[n++] = i;
  // Stable: equal magnitudes keep ascending position order.
  std::stable_sort(order, order + 8, [&](int a, int b) {
    return static_cast<double>(k[a]) * k[a] > static_cast<double>(k[b]) * k[b];
  });
  uint16_t mask = 1u << kCentre;
  for (int i = 0; i < 3; ++i) mask |= static_cast<uint16_t>(1u << order[i]);
  return Pattern{mask};
}

LibraryFromWeights library_from_weights(const std::vector<const Tensor*>& weights, int k) {
  const std::vector<Pattern> all = centre_patterns();
  PCONV_CHECK(k >= 1 && k <= static_cast<int>(all.size()), "library from_model: K = ", k,
              " is outside 1..", all.size(), " (the centre-containing 4-position patterns)");
  std::vector<int64_t> count(1u << kKernelSize, 0);
  LibraryFromWeights r;
  for (const Tensor* w : weights) {
    PCONV_CHECK(w->rank() == 4 && w->dim(2) == 3 && w->dim(3) == 3, "library from_model: weight ",
                shape_str(w->shape()), " is not (O, I, 3, 3)");
    const int64_t kernels = w->dim(0) * w->dim(1);
    for (int64_t j = 0; j < kernels; ++j) {
      const float* kp = w->data() + j * kKernelSize;
      if (sum_squares(kp, kKernelSize) == 0.0) continue;  // removed kernels abstain
      ++count[best_centre_pattern(kp).mask];
      ++r.kernels;
    }
  }
  for (const Pattern& p : all) r.votes.push_back({p, count[p.mask]});
  std::stable_sort(r.votes.begin(), r.votes.end(),
                   [](const PatternVote& a, const PatternVote& b) { return a.count > b.count; });
  std::vector<Pattern> chosen;
  for (int i = 0; i < k; ++i) chosen.push_back(r.votes[static_cast<size_t>(i)].pattern);
  r.library = PatternLibrary(std::move(chosen), "library from_model");
  return r;
}

}  // namespace pconv::admm
