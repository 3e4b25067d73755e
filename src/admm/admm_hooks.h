// ADMM (ADMM-NN, Ren et al. 2019) as training hooks. Per pruned layer W, with Z = Proj(W), U = 0
// at the start:
//   W-step  (the trainer's SGD) on loss(W) + rho/2 * ||W - Z + U||^2    (squared Frobenius norm)
//           adjust_grads adds rho * (W - Z + U) to dL/dW and returns the penalty value;
//   Z-step  Z <- Proj(W + U)                 every `update_every` steps (0: at each epoch's end);
//   U-step  U <- U + W - Z                   right after each Z-step;
//   rho     rho <- min(rho * rho_factor, rho_max) every `rho_every` epochs (or steps).
#pragma once

#include <map>
#include <optional>
#include <string>
#include <vector>

#include "admm/config.h"
#include "train/hooks.h"

namespace pconv::admm {

class AdmmHooks : public TrainHooks {
 public:
  AdmmHooks(PruningPlan plan, AdmmParams params);

  // Z = Proj(W), U = 0 (skipped when load_state restored a state).
  void on_stage_begin(ParamMap& params) override;
  double adjust_grads(const ParamMap& params, ParamMap& grads) override;
  void after_step(int64_t step, ParamMap& params, ParamMap& momentum) override;
  // Z/U update when per-epoch, then metrics["admm"] = {rho, residual_max, layers: {name:
  // {residual: ||W-Z||/||W||, changed: fraction of units whose decision moved at the last Z
  // update, z_updates}}}, then rho grows when per-epoch.
  void on_epoch_end(int epoch, ParamMap& params, nlohmann::json& metrics) override;
  // tensors "admm/Z/<layer>", "admm/U/<layer>", "admm/D/<layer>" (last decisions, as float);
  // extra["admm"] = {rho, epochs, z_updates, changed, plan}.
  void save_state(TrainState& st) const override;
  void load_state(const TrainState& st) override;

  // The pieces, public for tests and tools.
  void update_zu(const ParamMap& params);        // one Z-step and U-step, all layers
  double penalty(const ParamMap& params) const;  // sum rho/2 ||W - Z + U||^2
  double residual(const std::string& layer, const ParamMap& params) const;  // ||W-Z||/||W||
  double rho() const { return rho_; }
  int64_t z_updates() const { return z_updates_; }
  const Tensor& z(const std::string& layer) const { return state(layer).z; }
  const Tensor& u(const std::string& layer) const { return state(layer).u; }
  double changed(const std::string& layer) const { return state(layer).changed; }
  const PruningPlan& plan() const { return plan_; }
  bool initialised() const { return initialised_; }

 private:
  struct LayerState {
    Tensor z, u;
    std::vector<int8_t> decision;  // of the current Z
    double changed = 0;            // fraction of units whose decision moved at the last update
  };
  const LayerState& state(const std::string& layer) const;
  void grow_rho();
  Projected proj(const LayerPlan& l, const Tensor& w) const;

  PruningPlan plan_;
  AdmmParams p_;
  double rho_;
  int64_t epochs_ = 0;     // epochs completed in this stage
  int64_t z_updates_ = 0;  // Z-steps done (including none for the initial projection)
  bool initialised_ = false;
  std::map<std::string, LayerState> layers_;
};

// The ADMM plan stored by AdmmHooks::save_state, for the prune stage to project with the same
// library and rates ADMM used; nullopt when the state holds no ADMM section.
std::optional<PruningPlan> plan_from_state(const TrainState& st);

}  // namespace pconv::admm
