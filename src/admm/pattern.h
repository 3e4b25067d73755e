// Kernel patterns: which 4 of the 9 positions of a 3x3 kernel keep their weights.
// Position index is r*3+c (centre = 4); a pattern is a 9-bit mask with exactly 4 bits set.
#pragma once

#include <cstdint>
#include <string>
#include <utility>
#include <vector>

#include "core/tensor.h"

namespace pconv::admm {

constexpr int kKernelSize = 9;   // 3x3
constexpr int kPatternSize = 4;  // non-zeros per kept kernel
constexpr int kCentre = 4;

struct Pattern {
  uint16_t mask = 0;  // bit r*3+c set = position kept

  bool has(int pos) const { return (mask >> pos) & 1u; }
  std::vector<int> positions() const;  // ascending
  std::string str() const;             // "{1,3,4,5}"
  std::string grid() const;            // "010\n111\n000"
  bool operator==(const Pattern& o) const { return mask == o.mask; }
  bool operator!=(const Pattern& o) const { return mask != o.mask; }

  // Validating constructors; `where` names the source in errors (a JSON path, a file).
  static Pattern from_mask(uint32_t mask, const std::string& where);
  static Pattern from_positions(const std::vector<int>& pos, const std::string& where);
};

// An ordered set of distinct patterns; the index is the pattern id stored per kernel (int8, so
// at most 127 patterns).
class PatternLibrary {
 public:
  PatternLibrary() = default;
  // Throws pconv::Error naming `where` when empty, too large, a pattern is invalid or repeated.
  PatternLibrary(std::vector<Pattern> patterns, const std::string& where);
  static PatternLibrary from_masks(const std::vector<uint16_t>& masks, const std::string& where);

  int size() const { return static_cast<int>(patterns_.size()); }
  bool empty() const { return patterns_.empty(); }
  const Pattern& operator[](int id) const { return patterns_.at(static_cast<size_t>(id)); }
  const std::vector<Pattern>& patterns() const { return patterns_; }
  std::vector<uint16_t> masks() const;
  int find(Pattern p) const;  // id, or -1
  std::string str() const;    // "[{1,3,4,5}, {1,3,4,7}, ...]"

 private:
  std::vector<Pattern> patterns_;
};

// The paper's four SCPs (eq. 12): the centre plus three of its four neighbours.
PatternLibrary scp4_library();

// The 56 four-position patterns that contain the centre, in ascending mask order.
std::vector<Pattern> centre_patterns();

// Energy (sum of squares, in double) of a 9-weight kernel on a pattern.
double pattern_energy(const float* kernel, Pattern p);

// Among the centre-containing patterns, the one with the most energy for this kernel
// (the centre plus the 3 other positions of largest |w|; ties go to the lower position index).
Pattern best_centre_pattern(const float* kernel);

struct PatternVote {
  Pattern pattern;
  int64_t count = 0;
};

struct LibraryFromWeights {
  PatternLibrary library;
  std::vector<PatternVote> votes;  // all 56 centre patterns, most frequent first
  int64_t kernels = 0;             // kernels that voted (all-zero kernels abstain)
};

// Each kernel of the given conv weights (O, I, 3, 3) votes for its best centre pattern; the K
// most frequent become the library (ties: lower mask first; patterns without votes fill up in
// mask order when fewer than K got any). Throws when K is outside 1..56 or a tensor is not 3x3.
LibraryFromWeights library_from_weights(const std::vector<const Tensor*>& weights, int k);

}  // namespace pconv::admm
