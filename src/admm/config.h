// The "pruning" section of a config, parsed once into typed, validated structs, and the plan it
// resolves to against a concrete graph (which layers, at which rate, with which library).
#pragma once

#include <map>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "admm/pattern.h"
#include "admm/projection.h"
#include "core/graph.h"
#include "core/json_reader.h"

namespace pconv::admm {

// ADMM hyper-parameters (docs/pruning.md).
struct AdmmParams {
  double rho = 1e-3;          // initial rho
  double rho_factor = 1.1;    // rho *= rho_factor every rho_every units
  int rho_every = 1;          // how many epochs (or steps) between rho increases
  bool rho_per_step = false;  // "rho_unit": "epoch" (false) or "step" (true)
  double rho_max = 1e300;     // cap (none by default)
  int update_every = 0;       // Z/U update every N optimizer steps; 0 = once per epoch (at its end)
  bool scale_u = false;       // when rho grows by f, U /= f (keeps the unscaled dual rho*U fixed)
};

struct LibrarySpec {
  enum class Kind { Scp4, FromModel, Explicit };
  Kind kind = Kind::Scp4;
  int k = 4;                 // FromModel: how many patterns
  PatternLibrary explicit_;  // Explicit: the validated list
};

struct PruningConfig {
  std::vector<std::string> include;  // explicit layer list; empty = automatic selection
  std::vector<std::string> exclude;  // removed from the selection by name
  bool prune_first_conv = false;     // automatic selection skips the net's first conv unless true
  double rate = 1.0;                 // connectivity rate for every pruned layer (1 = pattern only)
  std::map<std::string, double> layer_rates;  // per-layer override
  LibrarySpec library;
  Granularity granularity = Granularity::Pattern;
  AdmmParams admm;
  std::string where = "$.pruning";  // JSON path (and file) of the section, for later errors
};

// Reads the "pruning" object (r is positioned on it, e.g. JsonReader(cfg["pruning"],
// "$.pruning", file)) and calls r.finish(): unknown keys are errors naming their JSON path.
PruningConfig parse_pruning_config(JsonReader r);

struct LayerPlan {
  std::string name;
  int64_t out = 0, in = 0;  // weight shape O, I (kernel kh x kw)
  int kh = 3, kw = 3;
  double rate = 1.0;  // connectivity rate (pattern) or weight/filter rate (others)
};

// Everything a projection needs, resolved against one graph and its weights.
struct PruningPlan {
  Granularity granularity = Granularity::Pattern;
  PatternLibrary library;                                  // empty unless granularity is pattern
  std::string library_source;                              // "scp4", "from_model:8", "explicit"
  nlohmann::json library_votes = nlohmann::json::array();  // from_model: [{pattern, count}, ...]
  std::vector<LayerPlan> layers;
};

// The pruned layers: default every 3x3 conv with groups == 1 but the first conv of the net;
// `include` replaces the default set; `exclude` removes names. Throws naming the config key and
// the layer for unknown names or layers the granularity cannot prune.
std::vector<std::string> select_layers(const Graph& g, const PruningConfig& cfg);

// Resolves the config: selects layers, applies rates, builds the library ("from_model" votes over
// the selected layers' current weights in `params`).
PruningPlan make_plan(const PruningConfig& cfg, const Graph& g, const ParamMap& params);

nlohmann::json plan_to_json(const PruningPlan& p);
PruningPlan plan_from_json(const nlohmann::json& j, const std::string& where);

}  // namespace pconv::admm
