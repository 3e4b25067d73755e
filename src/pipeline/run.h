// Runs a config's stages in order inside its run folder, resuming where a previous invocation
// stopped. Layout of runs/<name>/ (docs/user-guide.md):
//   config.json                 the config as run
//   <stage>/checkpoint.h5       latest state of a stage in progress (weights, optimizer, ADMM)
//   <stage>/best.h5             best test accuracy of the stage
//   <stage>/final.h5            the stage's result; its presence marks the stage done
//   <stage>/metrics.jsonl       one JSON object per epoch
//   model.h5                    the result of the last finished stage
//   summary.json                per-stage figures
//   report.md, report/, tb/     charts, TensorBoard events (docs/reports.md)
#pragma once

#include <atomic>
#include <nlohmann/json.hpp>
#include <string>

#include "pipeline/run_config.h"

namespace pconv {

struct RunOptions {
  bool resume = false;                      // continue a run folder that holds checkpoints
  bool restart = false;                     // discard what the run folder holds and start over
  const std::atomic<bool>* stop = nullptr;  // set (by Ctrl-C) to checkpoint and stop
  bool report = true;  // write runs/<name>/report.md, tb/ events and inspect.json at the end
};

struct RunResult {
  bool finished = false;  // false: stopped on request, resumable
  nlohmann::json summary;
  std::string model_path;  // runs/<name>/model.h5
};

RunResult run_pipeline(const RunConfig& cfg, const RunOptions& opt);

}  // namespace pconv
