// A pconv-train config: the model, the data, training defaults, the pruning section and the list
// of stages to run. Parsed once into typed structs; every error names the file and JSON path.
// Keys are documented in docs/user-guide.md.
#pragma once

#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <vector>

#include "admm/config.h"
#include "core/architectures.h"
#include "data/data_config.h"
#include "train/trainer.h"

namespace pconv {

struct ModelConfig {
  std::string arch;          // a built-in architecture, or empty with `graph` or `init`
  ArchOptions arch_options;  // num_classes defaults to the data set's classes
  nlohmann::json graph;      // an explicit graph (Graph::to_json form)
  std::string init;          // a .h5 to start from (its graph and weights)
};

enum class StageKind { Pretrain, Admm, Prune, Retrain };
const char* stage_kind_name(StageKind k);

struct StageConfig {
  StageKind kind = StageKind::Pretrain;
  std::string name;      // folder name inside the run ("1-pretrain" by default)
  TrainLoopConfig loop;  // epochs, optimizer, schedule, batch... (unused by prune)
};

struct RunConfig {
  std::string file;     // the config's path (for messages)
  std::string name;     // run name
  std::string run_dir;  // default runs/<name>
  uint64_t seed = 0;
  int threads = 0;  // 0 = every core
  ModelConfig model;
  data::DataConfig data;
  std::optional<admm::PruningConfig> pruning;
  std::vector<StageConfig> stages;
  nlohmann::json raw;  // the config as given (after --set overrides), saved in the run
};

RunConfig parse_run_config(const nlohmann::json& j, const std::string& file);
RunConfig load_run_config(const std::string& path, const std::vector<std::string>& overrides);

// "--set train.optimizer.lr=0.05": sets a JSON path; the value parses as JSON when it can
// (numbers, true/false, lists), else is taken as a string. "stages.1.epochs=3" indexes lists.
void apply_override(nlohmann::json& j, const std::string& assignment);

}  // namespace pconv
