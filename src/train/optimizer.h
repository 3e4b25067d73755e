// SGD with momentum, Nesterov and decoupled choice of weight decay per parameter, with PyTorch's
// update rule so hyper-parameters carry over: g = grad + wd*w; buf = m*buf + g;
// step = nesterov ? g + m*buf : buf; w -= lr*step.
#pragma once

#include "core/graph.h"
#include "core/json_reader.h"

namespace pconv {

struct SgdConfig {
  double lr = 0.1;  // peak learning rate (the schedule scales it)
  double momentum = 0.9;
  bool nesterov = true;
  double weight_decay = 5e-4;
  bool decay_bn_and_bias = false;  // false: no weight decay on BN gamma/beta and biases
};
SgdConfig parse_sgd_config(JsonReader& r, const SgdConfig& defaults);

class Sgd {
 public:
  Sgd(const Graph& g, const SgdConfig& cfg);
  // Updates every trainable parameter of `params` from `grads` at learning rate `lr`.
  void step(ParamMap& params, const ParamMap& grads, double lr);
  ParamMap& momentum() { return momentum_; }
  const ParamMap& momentum() const { return momentum_; }
  const SgdConfig& config() const { return cfg_; }

 private:
  struct Slot {
    std::string key;
    float decay;
  };
  SgdConfig cfg_;
  std::vector<Slot> slots_;
  ParamMap momentum_;
};

}  // namespace pconv
