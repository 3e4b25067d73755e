#include "admm/config.h"

#include <algorithm>
#include <set>

#include "core/error.h"

namespace pconv::admm {

using nlohmann::json;

namespace {

// One library entry: a list of 4 positions [1,3,4,5] or a 3x3 0/1 grid [[0,1,0],[1,1,1],[0,0,0]].
Pattern parse_pattern(const json& v, const std::string& where) {
  PCONV_CHECK(v.is_array(), where, ": expected a list of positions or a 3x3 0/1 grid, got ",
              v.dump());
  if (!v.empty() && v[0].is_array()) {
    PCONV_CHECK(v.size() == 3, where, ": a grid has 3 rows, got ", v.size());
    std::vector<int> pos;
    for (size_t r = 0; r < 3; ++r) {
      PCONV_CHECK(v[r].is_array() && v[r].size() == 3, where, "[", r,
                  "]: a grid row has 3 entries, got ", v[r].dump());
      for (size_t c = 0; c < 3; ++c) {
        const json& x = v[r][c];
        PCONV_CHECK(x.is_number_integer() && (x.get<int>() == 0 || x.get<int>() == 1), where, "[",
                    r, "][", c, "]: expected 0 or 1, got ", x.dump());
        if (x.get<int>() == 1) pos.push_back(static_cast<int>(r * 3 + c));
      }
    }
    return Pattern::from_positions(pos, where);
  }
  std::vector<int> pos;
  for (size_t i = 0; i < v.size(); ++i) {
    PCONV_CHECK(v[i].is_number_integer(), where, "[", i, "]: expected a position 0..8, got ",
                v[i].dump());
    pos.push_back(v[i].get<int>());
  }
  return Pattern::from_positions(pos, where);
}

LibrarySpec parse_library(JsonReader& r) {
  const std::string where = r.where("library");
  const json& v = r.raw("library");
  LibrarySpec s;
  if (v.is_null()) return s;
  if (v.is_string()) {
    PCONV_CHECK(v.get<std::string>() == "scp4", where, ": \"", v.get<std::string>(),
                "\" is not a library (expected \"scp4\", {\"from_model\": K} or a list of "
                "patterns)");
    return s;
  }
  if (v.is_object()) {
    JsonReader o(v, r.path() + ".library");
    s.kind = LibrarySpec::Kind::FromModel;
    PCONV_CHECK(o.has("from_model"), where, ": expected {\"from_model\": K}");
    s.k = o.require_int("from_model", 1, 56);
    o.finish();
    return s;
  }
  PCONV_CHECK(v.is_array(), where,
              ": expected \"scp4\", {\"from_model\": K} or a list of patterns");
  std::vector<Pattern> ps;
  for (size_t i = 0; i < v.size(); ++i) ps.push_back(parse_pattern(v[i], cat(where, "[", i, "]")));
  s.kind = LibrarySpec::Kind::Explicit;
  s.explicit_ = PatternLibrary(std::move(ps), where);
  s.k = s.explicit_.size();
  return s;
}

AdmmParams parse_admm(JsonReader r) {
  AdmmParams a;
  a.rho = r.get_double("rho", a.rho, 0.0, 1e12);
  a.rho_factor = r.get_double("rho_factor", a.rho_factor, 1.0, 1e6);
  a.rho_every = r.get_int("rho_every", a.rho_every, 1);
  a.rho_per_step = r.get_enum("rho_unit", "epoch", {"epoch", "step"}) == "step";
  a.rho_max = r.get_double("rho_max", a.rho_max, 0.0, 1e300);
  PCONV_CHECK(a.rho <= a.rho_max, r.where("rho"), ": initial rho ", a.rho, " exceeds rho_max ",
              a.rho_max);
  a.update_every = r.get_int("update_every", a.update_every, 0);
  a.scale_u = r.get_bool("scale_u", a.scale_u);
  r.finish();
  return a;
}

bool pattern_prunable(const Node& n) {
  if (n.kind != OpKind::Conv) return false;
  const ConvAttrs& a = n.conv();
  return a.kernel_h == 3 && a.kernel_w == 3 && a.groups == 1;
}

}  // namespace

PruningConfig parse_pruning_config(JsonReader r) {
  PruningConfig c;
  c.where = r.where("");
  c.include = r.get_string_list("include", {});
  c.exclude = r.get_string_list("exclude", {});
  c.prune_first_conv = r.get_bool("prune_first_conv", false);
  c.rate = r.get_double("rate", 1.0, 1.0, 1e9);
  const json& lr = r.raw("layer_rates");
  if (!lr.is_null()) {
    PCONV_CHECK(lr.is_object(), r.where("layer_rates"),
                ": expected an object {\"layer\": rate}, got ", lr.dump());
    for (auto it = lr.begin(); it != lr.end(); ++it) {
      const std::string w = r.where("layer_rates") + "." + it.key();
      PCONV_CHECK(it->is_number(), w, ": expected a rate >= 1, got ", it->dump());
      PCONV_CHECK(it->get<double>() >= 1.0, w, ": rate ", it->get<double>(), " must be >= 1");
      c.layer_rates[it.key()] = it->get<double>();
    }
  }
  c.library = parse_library(r);
  c.granularity = granularity_from_name(
      r.get_enum("granularity", "pattern", {"pattern", "unstructured", "filter"}),
      r.where("granularity"));
  c.admm = parse_admm(r.object("admm"));
  r.finish();
  return c;
}

std::vector<std::string> select_layers(const Graph& g, const PruningConfig& cfg) {
  const bool pattern = cfg.granularity == Granularity::Pattern;
  std::vector<std::string> out;
  if (!cfg.include.empty()) {
    std::set<std::string> seen;
    for (size_t i = 0; i < cfg.include.size(); ++i) {
      const std::string& name = cfg.include[i];
      const std::string w = cat(cfg.where, ".include[", i, "]: layer \"", name, "\"");
      const int idx = g.find(name);
      PCONV_CHECK(idx >= 0, w, " is not in the graph");
      const Node& n = g.node(idx);
      PCONV_CHECK(n.kind == OpKind::Conv, w, " is a ", op_name(n.kind), ", not a conv");
      PCONV_CHECK(!pattern || pattern_prunable(n), w,
                  " cannot take patterns: needs a 3x3 conv with groups 1 (it is ",
                  n.conv().kernel_h, "x", n.conv().kernel_w, ", groups ", n.conv().groups, ")");
      PCONV_CHECK(seen.insert(name).second, w, " is listed twice");
      out.push_back(name);
    }
  } else {
    bool first = true;
    for (const Node& n : g.nodes()) {
      if (n.kind != OpKind::Conv) continue;
      const bool is_first = first;
      first = false;
      if (is_first && !cfg.prune_first_conv) continue;
      if (pattern_prunable(n)) out.push_back(n.name);
    }
  }
  for (size_t i = 0; i < cfg.exclude.size(); ++i) {
    const std::string& name = cfg.exclude[i];
    PCONV_CHECK(g.find(name) >= 0, cfg.where, ".exclude[", i, "]: layer \"", name,
                "\" is not in the graph");
    out.erase(std::remove(out.begin(), out.end(), name), out.end());
  }
  for (const auto& [name, rate] : cfg.layer_rates)
    PCONV_CHECK(std::find(out.begin(), out.end(), name) != out.end(), cfg.where, ".layer_rates.",
                name, ": layer is not pruned (",
                g.find(name) < 0 ? "not in the graph" : "not selected", ")");
  PCONV_CHECK(!out.empty(), cfg.where, ": no layer is selected for pruning");
  return out;
}

PruningPlan make_plan(const PruningConfig& cfg, const Graph& g, const ParamMap& params) {
  PruningPlan p;
  p.granularity = cfg.granularity;
  std::vector<const Tensor*> weights;
  for (const std::string& name : select_layers(g, cfg)) {
    const Node& n = g.node(g.find(name));
    LayerPlan lp;
    lp.name = name;
    lp.out = n.conv().out_channels;
    lp.in = g.node(n.inputs.at(0)).out.at(0) / n.conv().groups;
    lp.kh = n.conv().kernel_h;
    lp.kw = n.conv().kernel_w;
    auto it = cfg.layer_rates.find(name);
    lp.rate = it != cfg.layer_rates.end() ? it->second : cfg.rate;
    auto w = params.find(param_key(name, ParamRole::Weight));
    PCONV_CHECK(w != params.end(), "layer ", name, ": no weight in the parameters");
    PCONV_CHECK(w->second.shape() == (Shape{lp.out, lp.in, lp.kh, lp.kw}), "layer ", name,
                ": weight ", shape_str(w->second.shape()), " does not match the graph's ",
                shape_str({lp.out, lp.in, lp.kh, lp.kw}));
    weights.push_back(&w->second);
    p.layers.push_back(lp);
  }
  if (p.granularity != Granularity::Pattern) {
    p.library_source = "none";
    return p;
  }
  switch (cfg.library.kind) {
    case LibrarySpec::Kind::Scp4:
      p.library = scp4_library();
      p.library_source = "scp4";
      break;
    case LibrarySpec::Kind::Explicit:
      p.library = cfg.library.explicit_;
      p.library_source = "explicit";
      break;
    case LibrarySpec::Kind::FromModel: {
      LibraryFromWeights r = library_from_weights(weights, cfg.library.k);
      p.library = r.library;
      p.library_source = cat("from_model:", cfg.library.k);
      for (const PatternVote& v : r.votes)
        p.library_votes.push_back({{"pattern", v.pattern.positions()}, {"count", v.count}});
      break;
    }
  }
  return p;
}

json plan_to_json(const PruningPlan& p) {
  json layers = json::array();
  for (const LayerPlan& l : p.layers)
    layers.push_back({{"name", l.name},
                      {"out", l.out},
                      {"in", l.in},
                      {"kh", l.kh},
                      {"kw", l.kw},
                      {"rate", l.rate}});
  return {{"granularity", granularity_name(p.granularity)},
          {"library", p.library.masks()},
          {"library_source", p.library_source},
          {"library_votes", p.library_votes},
          {"layers", layers}};
}

PruningPlan plan_from_json(const json& j, const std::string& where) {
  try {
    PruningPlan p;
    p.granularity = granularity_from_name(j.at("granularity").get<std::string>(), where);
    const auto masks = j.at("library").get<std::vector<uint16_t>>();
    if (!masks.empty()) p.library = PatternLibrary::from_masks(masks, where + ".library");
    p.library_source = j.at("library_source").get<std::string>();
    p.library_votes = j.value("library_votes", json::array());
    for (const json& l : j.at("layers")) {
      LayerPlan lp;
      lp.name = l.at("name").get<std::string>();
      lp.out = l.at("out").get<int64_t>();
      lp.in = l.at("in").get<int64_t>();
      lp.kh = l.at("kh").get<int>();
      lp.kw = l.at("kw").get<int>();
      lp.rate = l.at("rate").get<double>();
      p.layers.push_back(lp);
    }
    PCONV_CHECK(p.granularity != Granularity::Pattern || !p.library.empty(), where,
                ": pattern plan without a library");
    return p;
  } catch (const json::exception& e) {
    throw Error(cat(where, ": malformed pruning plan: ", e.what()));
  }
}

}  // namespace pconv::admm
