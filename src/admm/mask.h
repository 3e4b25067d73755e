// A pattern mask is a type: per pruned layer, one pattern id per kernel (int8, -1 = removed),
// plus the library the ids refer to. Converts to and from core's PruningState (the .h5 form).
#pragma once

#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include "admm/pattern.h"
#include "core/graph.h"
#include "core/model_file.h"

namespace pconv::admm {

struct LayerMask {
  int64_t out = 0, in = 0;  // O and I of the (O, I, 3, 3) weight
  std::vector<int8_t> ids;  // O*I, row-major (o*I + i); -1 = removed kernel

  int8_t id(int64_t o, int64_t i) const { return ids[static_cast<size_t>(o * in + i)]; }
  int64_t kept() const;                         // kernels with id >= 0
  std::vector<int64_t> histogram(int k) const;  // kernels per pattern id 0..k-1
};

struct PatternMask {
  PatternLibrary library;
  std::map<std::string, LayerMask> layers;

  // The .h5 form; `info` is stored as given.
  PruningState to_state(const nlohmann::json& info) const;
  // Validates against the graph: each layer exists, is a 3x3 conv with groups 1, its id array
  // has O*I entries and every id is -1 or a library index. Errors name `where` and the layer.
  static PatternMask from_state(const PruningState& st, const Graph& g, const std::string& where);
};

// Zeroes every weight the mask removes (in place); throws naming the layer on a shape mismatch.
void apply_mask(const PatternMask& m, ParamMap& params);

}  // namespace pconv::admm
