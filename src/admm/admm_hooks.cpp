#include "admm/admm_hooks.h"

#include <algorithm>
#include <cmath>

#include "core/error.h"
#include "core/log.h"

namespace pconv::admm {

using nlohmann::json;

namespace {

const Tensor& weight_of(const ParamMap& params, const std::string& layer) {
  auto it = params.find(param_key(layer, ParamRole::Weight));
  PCONV_CHECK(it != params.end(), "ADMM: layer ", layer, " has no weight");
  return it->second;
}

std::string key(const char* what, const std::string& layer) {
  return cat("admm/", what, "/", layer);
}

}  // namespace

AdmmHooks::AdmmHooks(PruningPlan plan, AdmmParams params)
    : plan_(std::move(plan)), p_(params), rho_(params.rho) {
  PCONV_CHECK(!plan_.layers.empty(), "ADMM: the plan prunes no layer");
  PCONV_CHECK(plan_.granularity != Granularity::Pattern || !plan_.library.empty(),
              "ADMM: pattern granularity needs a library");
}

const AdmmHooks::LayerState& AdmmHooks::state(const std::string& layer) const {
  auto it = layers_.find(layer);
  PCONV_CHECK(it != layers_.end(), "ADMM: no state for layer ", layer,
              initialised_ ? "" : " (not initialised: on_stage_begin or load_state first)");
  return it->second;
}

Projected AdmmHooks::proj(const LayerPlan& l, const Tensor& w) const {
  try {
    return project(w, plan_.granularity, plan_.library, l.rate);
  } catch (const Error& e) {
    throw Error(cat("ADMM: layer ", l.name, ": ", e.what()));
  }
}

void AdmmHooks::on_stage_begin(ParamMap& params) {
  if (initialised_) return;
  for (const LayerPlan& l : plan_.layers) {
    const Tensor& w = weight_of(params, l.name);
    PCONV_CHECK(w.shape() == (Shape{l.out, l.in, l.kh, l.kw}), "ADMM: layer ", l.name, ": weight ",
                shape_str(w.shape()), " does not match the plan's ",
                shape_str({l.out, l.in, l.kh, l.kw}));
    LayerState s;
    Projected pr = proj(l, w);
    s.z = std::move(pr.w);
    s.decision = std::move(pr.decision);
    s.u = Tensor(w.shape(), 0.f);
    layers_[l.name] = std::move(s);
  }
  initialised_ = true;
}

double AdmmHooks::adjust_grads(const ParamMap& params, ParamMap& grads) {
  PCONV_CHECK(initialised_, "ADMM: adjust_grads before on_stage_begin");
  double loss = 0;
  for (const LayerPlan& l : plan_.layers) {
    const Tensor& w = weight_of(params, l.name);
    auto g = grads.find(param_key(l.name, ParamRole::Weight));
    PCONV_CHECK(g != grads.end(), "ADMM: layer ", l.name, " has no gradient");
    const LayerState& s = layers_.at(l.name);
    float* gd = g->second.data();
    double sq = 0;
    for (int64_t j = 0; j < w.size(); ++j) {
      const double d = static_cast<double>(w[j]) - s.z[j] + s.u[j];
      gd[j] += static_cast<float>(rho_ * d);  // d/dW of rho/2 ||W - Z + U||^2
      sq += d * d;
    }
    loss += 0.5 * rho_ * sq;
  }
  return loss;
}

double AdmmHooks::penalty(const ParamMap& params) const {
  double loss = 0;
  for (const LayerPlan& l : plan_.layers) {
    const Tensor& w = weight_of(params, l.name);
    const LayerState& s = state(l.name);
    double sq = 0;
    for (int64_t j = 0; j < w.size(); ++j) {
      const double d = static_cast<double>(w[j]) - s.z[j] + s.u[j];
      sq += d * d;
    }
    loss += 0.5 * rho_ * sq;
  }
  return loss;
}

double AdmmHooks::residual(const std::string& layer, const ParamMap& params) const {
  const Tensor& w = weight_of(params, layer);
  const LayerState& s = state(layer);
  double num = 0;
  for (int64_t j = 0; j < w.size(); ++j) {
    const double d = static_cast<double>(w[j]) - s.z[j];
    num += d * d;
  }
  const double den = sum_squares(w.data(), w.size());
  return den > 0 ? std::sqrt(num / den) : 0.0;
}

void AdmmHooks::update_zu(const ParamMap& params) {
  PCONV_CHECK(initialised_, "ADMM: Z/U update before on_stage_begin");
  for (const LayerPlan& l : plan_.layers) {
    const Tensor& w = weight_of(params, l.name);
    LayerState& s = layers_.at(l.name);
    Tensor wu = w;
    for (int64_t j = 0; j < w.size(); ++j) wu[j] += s.u[j];
    Projected pr = proj(l, wu);  // Z <- Proj(W + U)
    int64_t moved = 0;
    for (size_t j = 0; j < pr.decision.size(); ++j) moved += pr.decision[j] != s.decision[j];
    s.changed = pr.decision.empty() ? 0.0 : double(moved) / double(pr.decision.size());
    s.z = std::move(pr.w);
    s.decision = std::move(pr.decision);
    for (int64_t j = 0; j < w.size(); ++j) s.u[j] += w[j] - s.z[j];  // U <- U + W - Z
  }
  ++z_updates_;
}

void AdmmHooks::grow_rho() {
  const double next = std::min(rho_ * p_.rho_factor, p_.rho_max);
  if (p_.scale_u && next != rho_) {
    const float f = static_cast<float>(rho_ / next);
    for (auto& [name, s] : layers_)
      for (int64_t j = 0; j < s.u.size(); ++j) s.u[j] *= f;
  }
  rho_ = next;
}

void AdmmHooks::after_step(int64_t step, ParamMap& params, ParamMap& momentum) {
  if (p_.update_every > 0 && step % p_.update_every == 0) update_zu(params);
  if (p_.rho_per_step && step % p_.rho_every == 0) grow_rho();
}

void AdmmHooks::on_epoch_end(int epoch, ParamMap& params, json& metrics) {
  if (p_.update_every == 0) update_zu(params);
  ++epochs_;
  json layers = json::object();
  double worst = 0;
  for (const LayerPlan& l : plan_.layers) {
    const double r = residual(l.name, params);
    worst = std::max(worst, r);
    layers[l.name] = {{"residual", r}, {"changed", layers_.at(l.name).changed}};
  }
  metrics["admm"] = {
      {"rho", rho_}, {"residual_max", worst}, {"z_updates", z_updates_}, {"layers", layers}};
  log_info("ADMM epoch ", epochs_, ": rho ", rho_, ", max ||W-Z||/||W|| ", worst);
  if (!p_.rho_per_step && epochs_ % p_.rho_every == 0) grow_rho();
}

void AdmmHooks::save_state(TrainState& st) const {
  PCONV_CHECK(initialised_, "ADMM: save_state before on_stage_begin");
  json changed = json::object();
  for (const auto& [name, s] : layers_) {
    st.tensors[key("Z", name)] = s.z;
    st.tensors[key("U", name)] = s.u;
    Tensor d({static_cast<int64_t>(s.decision.size())});
    for (size_t j = 0; j < s.decision.size(); ++j) d[static_cast<int64_t>(j)] = s.decision[j];
    st.tensors[key("D", name)] = std::move(d);
    changed[name] = s.changed;
  }
  st.extra["admm"] = {{"rho", rho_},
                      {"epochs", epochs_},
                      {"z_updates", z_updates_},
                      {"changed", changed},
                      {"plan", plan_to_json(plan_)}};
}

void AdmmHooks::load_state(const TrainState& st) {
  PCONV_CHECK(st.extra.contains("admm"), "ADMM: checkpoint has no extra[\"admm\"] state");
  const json& a = st.extra.at("admm");
  try {
    rho_ = a.at("rho").get<double>();
    epochs_ = a.at("epochs").get<int64_t>();
    z_updates_ = a.at("z_updates").get<int64_t>();
  } catch (const json::exception& e) {
    throw Error(cat("ADMM: checkpoint extra[\"admm\"] is malformed: ", e.what()));
  }
  const PruningPlan saved = plan_from_json(a.at("plan"), "checkpoint extra.admm.plan");
  PCONV_CHECK(plan_to_json(saved) == plan_to_json(plan_),
              "ADMM: the checkpoint's plan (layers, rates, library) differs from this run's; "
              "resume with the same pruning config");
  std::map<std::string, LayerState> loaded;
  for (const LayerPlan& l : plan_.layers) {
    auto find = [&](const char* what) -> const Tensor& {
      auto it = st.tensors.find(key(what, l.name));
      PCONV_CHECK(it != st.tensors.end(), "ADMM: checkpoint lacks ", key(what, l.name));
      return it->second;
    };
    LayerState s;
    s.z = find("Z");
    s.u = find("U");
    const Shape want{l.out, l.in, l.kh, l.kw};
    PCONV_CHECK(s.z.shape() == want && s.u.shape() == want, "ADMM: layer ", l.name,
                ": checkpoint Z/U shape ", shape_str(s.z.shape()), " != ", shape_str(want));
    const Tensor& d = find("D");
    s.decision.resize(static_cast<size_t>(d.size()));
    for (int64_t j = 0; j < d.size(); ++j)
      s.decision[static_cast<size_t>(j)] = static_cast<int8_t>(d[j]);
    s.changed = a.at("changed").value(l.name, 0.0);
    loaded[l.name] = std::move(s);
  }
  layers_ = std::move(loaded);
  initialised_ = true;
}

std::optional<PruningPlan> plan_from_state(const TrainState& st) {
  if (!st.extra.contains("admm") || !st.extra.at("admm").contains("plan")) return std::nullopt;
  return plan_from_json(st.extra.at("admm").at("plan"), "checkpoint extra.admm.plan");
}

}  // namespace pconv::admm
