// The .h5 model / checkpoint file (schema in docs/model-format.md):
//   /graph                 attribute "json": the graph as JSON
//   /params/<layer>/<role> float32 datasets (weights, biases, BN statistics)
//   /pruning/library       K x 9 uint8 (1 = kept position, index r*3+c)
//   /pruning/layers/<layer> O x I int8 (pattern id, -1 = removed kernel); attribute "info" (JSON)
//   /train                 attributes stage, epoch, step, rng, metrics (JSON), extra (JSON);
//   /train/state/<key...>  float32 datasets: optimizer and ADMM state (momentum, Z, U, ...)
//   /meta                  attribute "json": free-form provenance (command, commit, dataset)
// Writes go to "<path>.tmp" then rename(), so a crash never leaves a torn file.
#pragma once

#include <cstdint>
#include <map>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <vector>

#include "core/graph.h"

namespace pconv {

struct PruningState {
  std::vector<uint16_t> library;                         // 9-bit masks, bit r*3+c
  std::map<std::string, std::vector<int8_t>> layer_ids;  // per layer O*I, row-major, -1 = removed
  nlohmann::json info = nlohmann::json::object();        // method, rates, per-layer notes
  bool empty() const { return library.empty() && layer_ids.empty() && info.empty(); }
};

struct TrainState {
  std::string stage;                                 // "pretrain", "admm", "prune", "retrain"
  int epoch = 0;                                     // epochs completed in this stage
  int64_t step = 0;                                  // optimizer steps completed in this stage
  std::string rng;                                   // serialized std::mt19937_64 (operator<<)
  nlohmann::json metrics = nlohmann::json::array();  // one object per finished epoch
  nlohmann::json extra = nlohmann::json::object();   // module state that is not a tensor (rho, ...)
  std::map<std::string, Tensor> tensors;  // "optim/momentum/conv1/weight", "admm/Z/conv2", ...
};

struct ModelFile {
  Graph graph;
  ParamMap params;
  PruningState pruning;
  std::optional<TrainState> train;
  nlohmann::json meta = nlohmann::json::object();
};

void save_model(const std::string& path, const ModelFile& m);
// Throws pconv::Error naming the file and the object for a missing, truncated or malformed file.
ModelFile load_model(const std::string& path);

}  // namespace pconv
