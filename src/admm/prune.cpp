#include "admm/prune.h"

#include "admm/projection.h"
#include "core/error.h"

namespace pconv::admm {

using nlohmann::json;

PruningState hard_prune(const Graph& g, ParamMap& params, const PruningPlan& plan) {
  PruningState st;
  json layers = json::object();
  for (const LayerPlan& l : plan.layers) {
    auto it = params.find(param_key(l.name, ParamRole::Weight));
    PCONV_CHECK(it != params.end(), "prune: layer ", l.name, " has no weight");
    Tensor& w = it->second;
    PCONV_CHECK(w.shape() == (Shape{l.out, l.in, l.kh, l.kw}), "prune: layer ", l.name, ": weight ",
                shape_str(w.shape()), " does not match the plan's ",
                shape_str({l.out, l.in, l.kh, l.kw}));
    Projected pr;
    try {
      pr = project(w, plan.granularity, plan.library, l.rate);
    } catch (const Error& e) {
      throw Error(cat("prune: layer ", l.name, ": ", e.what()));
    }
    w = std::move(pr.w);
    const int64_t units = plan.granularity == Granularity::Pattern  ? l.out * l.in
                          : plan.granularity == Granularity::Filter ? l.out
                                                                    : w.size();
    layers[l.name] = {{"rate", l.rate}, {"units", units}, {"budget", kernel_budget(units, l.rate)}};
    if (plan.granularity == Granularity::Pattern) st.layer_ids[l.name] = std::move(pr.decision);
  }
  if (plan.granularity == Granularity::Pattern) st.library = plan.library.masks();
  st.info = {{"method", "admm"},
             {"granularity", granularity_name(plan.granularity)},
             {"library_source", plan.library_source},
             {"per_layer", layers}};
  (void)g;
  return st;
}

MaskedHooks::MaskedHooks(const Graph& g, const PruningState& st, const ParamMap& params) {
  if (!st.library.empty()) {
    const PatternMask m = PatternMask::from_state(st, g, "masked retrain");
    for (const auto& [name, lm] : m.layers) {
      std::vector<uint8_t> keep(static_cast<size_t>(lm.out * lm.in * kKernelSize), 0);
      for (size_t j = 0; j < lm.ids.size(); ++j)
        if (lm.ids[j] >= 0)
          for (int p = 0; p < kKernelSize; ++p)
            keep[j * kKernelSize + static_cast<size_t>(p)] = m.library[lm.ids[j]].has(p);
      keep_[param_key(name, ParamRole::Weight)] = std::move(keep);
    }
    return;
  }
  PCONV_CHECK(st.info.contains("per_layer") && st.info.at("per_layer").is_object(),
              "masked retrain: the pruning state has neither a pattern library nor info.per_layer");
  for (auto it = st.info.at("per_layer").begin(); it != st.info.at("per_layer").end(); ++it) {
    const std::string k = param_key(it.key(), ParamRole::Weight);
    auto w = params.find(k);
    PCONV_CHECK(w != params.end(), "masked retrain: layer ", it.key(), " has no weight");
    std::vector<uint8_t> keep(static_cast<size_t>(w->second.size()));
    for (int64_t j = 0; j < w->second.size(); ++j)
      keep[static_cast<size_t>(j)] = w->second[j] != 0.f;
    keep_[k] = std::move(keep);
  }
}

void MaskedHooks::mask(ParamMap& m, bool required) const {
  for (const auto& [k, keep] : keep_) {
    auto it = m.find(k);
    if (it == m.end()) {
      PCONV_CHECK(!required, "masked retrain: ", k, " is missing");
      continue;
    }
    PCONV_CHECK(it->second.size() == static_cast<int64_t>(keep.size()), "masked retrain: ", k,
                " has ", it->second.size(), " elements, the mask ", keep.size());
    // Three passes over every pruned weight per step (gradients, weights, momentum): branch-free
    // so it vectorises, and split over the threads, else VGG-16's 14.7M weights cost ~8% of a step.
    float* d = it->second.data();
    const uint8_t* kp = keep.data();
    const int64_t n = static_cast<int64_t>(keep.size());
#pragma omp parallel for schedule(static)
    for (int64_t j = 0; j < n; ++j) d[j] = kp[j] ? d[j] : 0.f;
  }
}

void MaskedHooks::on_stage_begin(ParamMap& params) {
  mask(params, true);
}

double MaskedHooks::adjust_grads(const ParamMap& params, ParamMap& grads) {
  mask(grads, true);
  return 0.0;
}

void MaskedHooks::after_step(int64_t step, ParamMap& params, ParamMap& momentum) {
  mask(params, true);
  mask(momentum, false);  // plain SGD has no momentum buffers
}

std::string VerifyReport::str() const {
  std::string s;
  for (const Violation& v : violations)
    s += (v.layer.empty() ? std::string("model") : "layer " + v.layer) + ": " + v.what + "\n";
  return s;
}

namespace {

// The recorded budget of a layer, or -1 (and a violation) when none is recorded.
int64_t recorded_budget(const PruningState& st, const std::string& layer, VerifyReport& r) {
  const json& info = st.info;
  if (info.is_object() && info.contains("per_layer") && info["per_layer"].is_object() &&
      info["per_layer"].contains(layer) && info["per_layer"][layer].is_object() &&
      info["per_layer"][layer].contains("budget") &&
      info["per_layer"][layer]["budget"].is_number_integer())
    return info["per_layer"][layer]["budget"].get<int64_t>();
  r.violations.push_back({layer, "no kernel budget recorded in /pruning info.per_layer"});
  return -1;
}

void verify_pattern_layer(const Graph& g, const ParamMap& params, const PruningState& st,
                          const PatternLibrary& lib, const std::string& name,
                          const std::vector<int8_t>& ids, VerifyReport& r) {
  auto bad = [&](std::string what) { r.violations.push_back({name, std::move(what)}); };
  const int idx = g.find(name);
  if (idx < 0) return bad("not in the graph");
  const Node& n = g.node(idx);
  if (n.kind != OpKind::Conv) return bad(cat("is a ", op_name(n.kind), ", not a conv"));
  const ConvAttrs& a = n.conv();
  if (a.kernel_h != 3 || a.kernel_w != 3 || a.groups != 1)
    return bad(cat("pattern pruning needs a 3x3 conv with groups 1, it is ", a.kernel_h, "x",
                   a.kernel_w, " groups ", a.groups));
  auto it = params.find(param_key(name, ParamRole::Weight));
  if (it == params.end()) return bad("no weight");
  const Tensor& w = it->second;
  const int64_t out = w.dim(0), in = w.dim(1);
  if (static_cast<int64_t>(ids.size()) != out * in)
    return bad(cat(ids.size(), " pattern ids for ", out, "x", in, " kernels"));
  int64_t kept = 0, named = 0;
  auto kernel_bad = [&](int64_t j, std::string what) {
    if (named++ < 20) bad(cat("kernel (", j / in, ", ", j % in, ") ", what));
  };
  for (int64_t j = 0; j < out * in; ++j) {
    const int id = ids[static_cast<size_t>(j)];
    const float* k = w.data() + j * kKernelSize;
    if (id < -1 || id >= lib.size()) {
      kernel_bad(j, cat("has pattern id ", id, ", outside -1..", lib.size() - 1));
      continue;
    }
    if (id >= 0) ++kept;
    for (int p = 0; p < kKernelSize; ++p) {
      if (k[p] == 0.f) continue;
      if (id < 0) {
        kernel_bad(j, cat("is removed but holds ", k[p], " at position ", p));
        break;
      }
      if (!lib[id].has(p)) {
        kernel_bad(j, cat("has ", k[p], " at position ", p, ", outside its pattern ", lib[id].str(),
                          " (id ", id, ")"));
        break;
      }
    }
  }
  if (named > 20) bad(cat("... ", named - 20, " more kernel violations"));
  const int64_t budget = recorded_budget(st, name, r);
  if (budget >= 0 && kept != budget)
    bad(cat(kept, " kernels kept, the budget is exactly ", budget));
}

void verify_other_layer(const ParamMap& params, const std::string& name, bool filter,
                        int64_t budget, VerifyReport& r) {
  auto it = params.find(param_key(name, ParamRole::Weight));
  if (it == params.end()) return r.violations.push_back({name, "no weight"});
  const Tensor& w = it->second;
  int64_t used = 0;
  if (filter) {
    const int64_t per = w.size() / w.dim(0);
    for (int64_t f = 0; f < w.dim(0); ++f) used += sum_squares(w.data() + f * per, per) > 0;
  } else {
    for (int64_t j = 0; j < w.size(); ++j) used += w[j] != 0.f;
  }
  if (budget >= 0 && used > budget)
    r.violations.push_back(
        {name, cat(used, filter ? " non-zero filters" : " non-zero weights", ", budget ", budget)});
}

}  // namespace

VerifyReport verify(const Graph& g, const ParamMap& params, const PruningState& st) {
  VerifyReport r;
  if (st.empty() && !(st.info.is_object() && st.info.contains("per_layer"))) return r;  // dense
  const std::string gran =
      st.info.is_object() && st.info.contains("granularity") && st.info["granularity"].is_string()
          ? st.info["granularity"].get<std::string>()
          : "pattern";
  if (gran == "unstructured" || gran == "filter") {
    if (!st.info.contains("per_layer") || !st.info["per_layer"].is_object()) {
      r.violations.push_back({"", "info.per_layer is missing"});
      return r;
    }
    for (auto it = st.info["per_layer"].begin(); it != st.info["per_layer"].end(); ++it) {
      ++r.layers_checked;
      verify_other_layer(params, it.key(), gran == "filter", recorded_budget(st, it.key(), r), r);
    }
    return r;
  }
  PatternLibrary lib;
  try {
    lib = PatternLibrary::from_masks(st.library, "/pruning/library");
  } catch (const Error& e) {
    r.violations.push_back({"", e.what()});
    return r;
  }
  for (const auto& [name, ids] : st.layer_ids) {
    ++r.layers_checked;
    verify_pattern_layer(g, params, st, lib, name, ids, r);
  }
  return r;
}

}  // namespace pconv::admm
