// Euclidean projections onto the pruning constraint sets: pure functions on one conv weight
// (O, I, 3, 3) (or any (O, ...) tensor for the unstructured/filter baselines).
//
// Tie-breaking is deterministic everywhere: between patterns of equal energy the lower library
// id wins; between kernels (weights, filters) of equal score the lower flat index is kept.
// Non-finite weights throw (a NaN has no place in a top-k).
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "admm/pattern.h"
#include "core/tensor.h"

namespace pconv::admm {

// Kernels kept by connectivity pruning of `units` kernels at rate r >= 1: ceil(units / r), at
// least 1. A relative slack of 1e-9 keeps decimal rates (64 / 6.4) from rounding up by one.
int64_t kernel_budget(int64_t units, double rate);

// Per kernel (row-major o*I+i), the id of the library pattern holding the most energy.
std::vector<int8_t> best_pattern_ids(const Tensor& w, const PatternLibrary& lib);

// The joint pattern + connectivity decision: per kernel the pattern id, or -1 when removed.
// Scores each kernel by its best pattern's energy and keeps the top kernel_budget(O*I, rate).
std::vector<int8_t> joint_pattern_ids(const Tensor& w, const PatternLibrary& lib, double rate);

// Zeroes, in place, every position outside each kernel's pattern and every kernel with id -1.
void apply_pattern_ids(Tensor& w, const std::vector<int8_t>& ids, const PatternLibrary& lib);

// Each kernel keeps its best library pattern (rate 1).
Tensor project_pattern(const Tensor& w, const PatternLibrary& lib);
// Keeps the kernel_budget(O*I, rate) kernels with the most energy, dense.
Tensor project_connectivity(const Tensor& w, double rate);
// Pattern and connectivity at once (exact projection onto the intersection).
Tensor project_joint(const Tensor& w, const PatternLibrary& lib, double rate);
// Keeps the kernel_budget(numel, rate) weights of largest magnitude.
Tensor project_unstructured(const Tensor& w, double rate);
// Keeps the kernel_budget(O, rate) output filters of most energy.
Tensor project_filter(const Tensor& w, double rate);

// Which constraint set ADMM projects onto (the paper's Fig. 4 compares the three).
enum class Granularity { Pattern, Unstructured, Filter };
const char* granularity_name(Granularity g);  // "pattern", "unstructured", "filter"
Granularity granularity_from_name(const std::string& s, const std::string& where);

// A projection plus its discrete decision, one entry per unit: per kernel the pattern id or -1
// (pattern), per weight 1/0 (unstructured), per filter 1/0 (filter). ADMM compares decisions
// between Z updates to report how many units changed.
struct Projected {
  Tensor w;
  std::vector<int8_t> decision;
};
Projected project(const Tensor& w, Granularity g, const PatternLibrary& lib, double rate);

}  // namespace pconv::admm
