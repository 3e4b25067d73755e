#include "train/optimizer.h"

namespace pconv {

SgdConfig parse_sgd_config(JsonReader& r, const SgdConfig& d) {
  SgdConfig c;
  c.lr = r.get_double("lr", d.lr, 0.0, 100.0);
  c.momentum = r.get_double("momentum", d.momentum, 0.0, 0.9999);
  c.nesterov = r.get_bool("nesterov", d.nesterov);
  c.weight_decay = r.get_double("weight_decay", d.weight_decay, 0.0, 1.0);
  c.decay_bn_and_bias = r.get_bool("decay_bn_and_bias", d.decay_bn_and_bias);
  PCONV_CHECK(!c.nesterov || c.momentum > 0, r.where("nesterov"), ": Nesterov needs momentum > 0");
  return c;
}

Sgd::Sgd(const Graph& g, const SgdConfig& cfg) : cfg_(cfg) {
  for (const ParamSpec& s : g.params()) {
    if (!s.trainable) continue;
    bool decays = s.role == ParamRole::Weight || cfg.decay_bn_and_bias;
    slots_.push_back({s.key, decays ? static_cast<float>(cfg.weight_decay) : 0.f});
    momentum_.emplace(s.key, Tensor(s.shape));
  }
}

void Sgd::step(ParamMap& params, const ParamMap& grads, double lr_d) {
  const float lr = static_cast<float>(lr_d), m = static_cast<float>(cfg_.momentum);
  const bool nesterov = cfg_.nesterov;
  for (const Slot& s : slots_) {
    Tensor& w = params.at(s.key);
    const Tensor& g = grads.at(s.key);
    Tensor& buf = momentum_.at(s.key);
    PCONV_CHECK(g.size() == w.size(), "sgd: gradient of ", s.key, " has ", g.size(),
                " elements, the parameter ", w.size());
    float* pw = w.data();
    const float* pg = g.data();
    float* pb = buf.data();
    const float wd = s.decay;
    const int64_t n = w.size();
#pragma omp parallel for simd schedule(static) if (n > 32768)
    for (int64_t i = 0; i < n; ++i) {
      float gi = pg[i] + wd * pw[i];
      float b = m * pb[i] + gi;
      pb[i] = b;
      pw[i] -= lr * (nesterov ? gi + m * b : b);
    }
  }
}

}  // namespace pconv
