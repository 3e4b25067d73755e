// The code generator: one core over the deploy IR, parameterised by a Target (target.h).
// Writes into an output folder: pconv_model.h (C API), pconv_model.cpp (layers; for opencl
// pconv_model.cl + a host runtime), pconv_ops.h (non-pattern layers), runner.cpp,
// CMakeLists.txt and weights.bin (packed weights).
#pragma once

#include <cstdint>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "deploy/ir.h"
#include "deploy/target.h"

namespace pconv::deploy {

// Activation layout shared by generator and tests: per channel a plane of (h + 2) rows of
// `rs` floats, the interior (0,0) at `org` (one zero row above and below, a zero margin of one
// vector left and at least one vector right, rows padded to the vector width so every row starts
// aligned). Flat tensors (linear / global-pool outputs) are dense: rs = ps = 1, org = 0.
struct Geom {
  int c = 0, h = 1, w = 1;
  int64_t rs = 1, ps = 1, org = 0;
  bool flat = false;
  int64_t floats() const { return flat ? c : c * ps; }
};

struct GenResult {
  std::vector<std::string> files;  // paths written
  int64_t weight_words = 0;
  int64_t arena_floats = 0;
  int pattern_kernels = 0;  // pattern loop bodies emitted (one per tile variant x mask)
  nlohmann::json layers = nlohmann::json::array();  // per op: function, kind, tile, slot
  // Ops that run on the calling thread (below Target::min_parallel_work), by name.
  nlohmann::json one_thread_ops = nlohmann::json::array();
};

GenResult generate(const DeployModel& dm, const Target& t, const std::string& out_dir);

}  // namespace pconv::deploy
