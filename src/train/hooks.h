// How pruning (src/admm) plugs into the training loop without the trainer knowing about patterns.
// The loop calls these at fixed points of every step and epoch; the default does nothing (dense).
#pragma once

#include <cstdint>
#include <nlohmann/json.hpp>

#include "core/graph.h"
#include "core/model_file.h"

namespace pconv {

class TrainHooks {
 public:
  virtual ~TrainHooks() = default;

  // Once before the first step of a stage (after a resume, after load_state).
  virtual void on_stage_begin(ParamMap& params) {}
  // After backward, before the optimizer: add penalty gradients (ADMM's rho*(W - Z + U)) and/or
  // mask gradients. Returns the penalty's loss value for logging (0 when none).
  virtual double adjust_grads(const ParamMap& params, ParamMap& grads) { return 0.0; }
  // After each optimizer step (`step` counts completed steps in the stage): re-apply masks to
  // weights and momentum, update Z and U every N steps, ...
  virtual void after_step(int64_t step, ParamMap& params, ParamMap& momentum) {}
  // After each epoch's evaluation; may add fields to the epoch's metrics record.
  virtual void on_epoch_end(int epoch, ParamMap& params, nlohmann::json& metrics) {}
  // Checkpointing: write/read state into TrainState::tensors and ::extra (own key prefix).
  virtual void save_state(TrainState& st) const {}
  virtual void load_state(const TrainState& st) {}
};

}  // namespace pconv
