// The pruning report of a model file: per conv layer kernels / weights / MACs kept, connectivity
// rate and pattern histogram, totals, the verification of every constraint from the weights, and
// a PNG per pruned layer of the pattern id of every kernel. pconv-inspect is a thin main over it.
#pragma once

#include <cstdint>
#include <nlohmann/json.hpp>
#include <ostream>
#include <string>
#include <vector>

#include "admm/prune.h"
#include "core/model_file.h"

namespace pconv::admm {

struct LayerReport {
  std::string name;
  bool pruned = false;
  int64_t out = 0, in = 0, kh = 0, kw = 0;
  int64_t kernels_total = 0, kernels_kept = 0;  // kept: id >= 0 (patterns) or any non-zero
  double connectivity_rate = 1.0;               // kernels_total / kernels_kept
  std::vector<int64_t> pattern_hist;            // kernels per library id (pattern states)
  int64_t weights_total = 0,
          weights_kept = 0;               // kept: 4 per kept kernel (patterns), else non-zeros
  int64_t nonzero = 0;                    // non-zero weights actually stored
  int64_t macs_total = 0, macs_kept = 0;  // per sample; kept scales with weights kept
};

struct InspectReport {
  std::string granularity;  // "pattern", "unstructured", "filter" or "dense"
  std::vector<uint16_t> library;
  std::vector<LayerReport> layers;  // every conv, in graph order
  int64_t conv_weights_total = 0, conv_weights_kept = 0;
  int64_t macs_total = 0, macs_kept = 0;  // whole model (linear layers counted dense)
  double conv_compression = 1.0;          // conv_weights_total / conv_weights_kept
  double mac_reduction = 1.0;             // macs_total / macs_kept
  VerifyReport verification;

  nlohmann::json to_json() const;
  std::string table() const;
};

InspectReport inspect(const ModelFile& m);

// One PNG per pruned layer (pattern states): an O x I grid (row = output channel, column = input
// channel), each kernel's cell coloured by its pattern id, removed kernels black, with a legend
// (colour, the 3x3 pattern, id, count). Returns the written paths; creates `dir`.
std::vector<std::string> write_pattern_pngs(const ModelFile& m, const std::string& dir);

// pconv-inspect model.h5 [--json out.json] [--png-dir DIR]. Exit status: 0 every constraint
// holds, 1 violations (listed on err, each naming its layer), 2 usage or file errors.
int inspect_command(const std::vector<std::string>& args, std::ostream& out, std::ostream& err);

}  // namespace pconv::admm
