// Hard pruning (W <- Proj(W), masks fixed), masked retraining hooks, and the verification of
// every constraint from the weights themselves.
#pragma once

#include <map>
#include <string>
#include <vector>

#include "admm/config.h"
#include "admm/mask.h"
#include "core/model_file.h"
#include "train/hooks.h"

namespace pconv::admm {

// Projects every planned layer's weight in place and returns the pruning state to save with the
// model. Pattern granularity: library + per-layer ids. Unstructured / filter: no library or ids;
// info["per_layer"] records each layer's rate and budget (the masks are the weights' zeros).
// info = {method: "admm", granularity, library_source, per_layer: {name: {rate, units, budget}}}
// ("per_layer", not "layers": core's model file owns info["layers"]).
PruningState hard_prune(const Graph& g, ParamMap& params, const PruningPlan& plan);

// Masked retraining: after every optimizer step the weights and momentum at removed positions are
// exactly 0, and adjust_grads zeroes the gradient there too.
class MaskedHooks : public TrainHooks {
 public:
  // From a saved pruning state: pattern ids when the state has a library, otherwise (unstructured
  // / filter) the zeros of the listed layers' current weights in `params`.
  MaskedHooks(const Graph& g, const PruningState& st, const ParamMap& params);

  void on_stage_begin(ParamMap& params) override;  // applies the masks once
  double adjust_grads(const ParamMap& params, ParamMap& grads) override;
  void after_step(int64_t step, ParamMap& params, ParamMap& momentum) override;

  // Per layer weight key, 1 = position may be non-zero.
  const std::map<std::string, std::vector<uint8_t>>& keep() const { return keep_; }

 private:
  void mask(ParamMap& m, bool required) const;
  std::map<std::string, std::vector<uint8_t>> keep_;  // by weight key "<layer>/weight"
};

struct Violation {
  std::string layer;  // empty for model-wide problems (the library)
  std::string what;
};

struct VerifyReport {
  std::vector<Violation> violations;
  int layers_checked = 0;
  bool ok() const { return violations.empty(); }
  std::string str() const;  // one line per violation: "layer conv3: ..."
};

// Checks, from the weights: the library is valid; every pruned layer exists, is a 3x3 conv with
// groups 1 and has O*I ids within -1..K-1; every kept kernel's non-zeros lie inside its pattern;
// every removed kernel is all zero; exactly the recorded budget of kernels is kept. Unstructured /
// filter states: the non-zero weights (filters) do not exceed the recorded budget. Lists every
// violation (at most 20 kernels named per layer), never throws for a bad model.
VerifyReport verify(const Graph& g, const ParamMap& params, const PruningState& st);

}  // namespace pconv::admm
