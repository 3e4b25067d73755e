#include "core/graph.h"

#include <cmath>
#include <cstdio>
#include <random>
#include <sstream>

#include "core/error.h"

namespace pconv {

using nlohmann::json;

namespace {
struct OpInfo {
  OpKind kind;
  const char* name;
};
constexpr OpInfo kOps[] = {
    {OpKind::Input, "input"},
    {OpKind::Conv, "conv"},
    {OpKind::BatchNorm, "batch_norm"},
    {OpKind::ReLU, "relu"},
    {OpKind::ReLU6, "relu6"},
    {OpKind::MaxPool, "max_pool"},
    {OpKind::AvgPool, "avg_pool"},
    {OpKind::GlobalAvgPool, "global_avg_pool"},
    {OpKind::Flatten, "flatten"},
    {OpKind::Linear, "linear"},
    {OpKind::Add, "add"},
};

int out_dim(int64_t in, int k, int s, int p) {
  return static_cast<int>((in + 2 * p - k) / s + 1);
}
}  // namespace

const char* op_name(OpKind k) {
  for (const auto& o : kOps)
    if (o.kind == k) return o.name;
  return "?";
}

OpKind op_from_name(const std::string& s, const std::string& where) {
  for (const auto& o : kOps)
    if (s == o.name) return o.kind;
  std::string list;
  for (const auto& o : kOps) list += std::string(list.empty() ? "" : ", ") + o.name;
  throw Error(cat(where, ": unknown op \"", s, "\" (known: ", list, ")"));
}

const char* role_name(ParamRole r) {
  switch (r) {
    case ParamRole::Weight:
      return "weight";
    case ParamRole::Bias:
      return "bias";
    case ParamRole::Gamma:
      return "gamma";
    case ParamRole::Beta:
      return "beta";
    case ParamRole::RunningMean:
      return "running_mean";
    case ParamRole::RunningVar:
      return "running_var";
  }
  return "?";
}

std::string param_key(const std::string& layer, ParamRole r) {
  return layer + "/" + role_name(r);
}

// ---- builders ------------------------------------------------------------------------------

int Graph::push(Node n) {
  PCONV_CHECK(!n.name.empty(), "graph: a node needs a name");
  PCONV_CHECK(n.name.find('/') == std::string::npos, "graph: node name \"", n.name,
              "\" must not contain '/'");
  PCONV_CHECK(find(n.name) < 0, "graph: duplicate node name \"", n.name, "\"");
  nodes_.push_back(std::move(n));
  return size() - 1;
}

const Node& Graph::in(int x, const std::string& who) const {
  PCONV_CHECK(x >= 0 && x < size(), "graph: node \"", who, "\" refers to input #", x,
              " which does not exist (", size(), " nodes so far)");
  return nodes_[static_cast<size_t>(x)];
}

int Graph::input(const std::string& name, int c, int h, int w) {
  PCONV_CHECK(nodes_.empty(), "graph: input \"", name, "\" must be the first node");
  PCONV_CHECK(c > 0 && h > 0 && w > 0, "graph: input \"", name, "\" has a non-positive shape");
  Node n;
  n.name = name;
  n.kind = OpKind::Input;
  n.out = {c, h, w};
  return push(std::move(n));
}

int Graph::conv(const std::string& name, int x, const ConvAttrs& a) {
  const Node& src = in(x, name);
  PCONV_CHECK(src.out.size() == 3, "conv \"", name, "\": input \"", src.name,
              "\" is not a {C,H,W} map");
  const int64_t c = src.out[0];
  PCONV_CHECK(a.out_channels > 0 && a.kernel_h > 0 && a.kernel_w > 0 && a.stride_h > 0 &&
                  a.stride_w > 0 && a.pad_h >= 0 && a.pad_w >= 0 && a.groups > 0,
              "conv \"", name, "\": non-positive size, stride or groups, or negative padding");
  PCONV_CHECK(c % a.groups == 0 && a.out_channels % a.groups == 0, "conv \"", name, "\": groups ",
              a.groups, " must divide input channels ", c, " and output channels ", a.out_channels);
  int ho = out_dim(src.out[1], a.kernel_h, a.stride_h, a.pad_h);
  int wo = out_dim(src.out[2], a.kernel_w, a.stride_w, a.pad_w);
  PCONV_CHECK(ho > 0 && wo > 0, "conv \"", name, "\": kernel larger than its padded input ",
              shape_str(src.out));
  Node n;
  n.name = name;
  n.kind = OpKind::Conv;
  n.inputs = {x};
  n.attrs = a;
  n.out = {a.out_channels, ho, wo};
  return push(std::move(n));
}

int Graph::batch_norm(const std::string& name, int x, const BatchNormAttrs& a) {
  const Node& src = in(x, name);
  PCONV_CHECK(src.out.size() == 3, "batch_norm \"", name, "\": input is not a {C,H,W} map");
  PCONV_CHECK(a.eps > 0 && a.momentum >= 0 && a.momentum <= 1, "batch_norm \"", name,
              "\": eps must be > 0 and momentum in [0, 1]");
  Node n;
  n.name = name;
  n.kind = OpKind::BatchNorm;
  n.inputs = {x};
  n.attrs = a;
  n.out = src.out;
  return push(std::move(n));
}

int Graph::relu(const std::string& name, int x) {
  Node n;
  n.name = name;
  n.kind = OpKind::ReLU;
  n.inputs = {x};
  n.out = in(x, name).out;
  return push(std::move(n));
}

int Graph::relu6(const std::string& name, int x) {
  Node n;
  n.name = name;
  n.kind = OpKind::ReLU6;
  n.inputs = {x};
  n.out = in(x, name).out;
  return push(std::move(n));
}

static Node pool_node(const std::string& name, const Node& src, int x, OpKind kind,
                      const PoolAttrs& a) {
  PCONV_CHECK(src.out.size() == 3, op_name(kind), " \"", name, "\": input is not a {C,H,W} map");
  PCONV_CHECK(a.kernel > 0 && a.stride > 0 && a.pad >= 0 && a.pad * 2 <= a.kernel, op_name(kind),
              " \"", name, "\": bad kernel/stride/pad");
  int ho = out_dim(src.out[1], a.kernel, a.stride, a.pad);
  int wo = out_dim(src.out[2], a.kernel, a.stride, a.pad);
  PCONV_CHECK(ho > 0 && wo > 0, op_name(kind), " \"", name, "\": window larger than input ",
              shape_str(src.out));
  Node n;
  n.name = name;
  n.kind = kind;
  n.inputs = {x};
  n.attrs = a;
  n.out = {src.out[0], ho, wo};
  return n;
}

int Graph::max_pool(const std::string& name, int x, const PoolAttrs& a) {
  return push(pool_node(name, in(x, name), x, OpKind::MaxPool, a));
}

int Graph::avg_pool(const std::string& name, int x, const PoolAttrs& a) {
  return push(pool_node(name, in(x, name), x, OpKind::AvgPool, a));
}

int Graph::global_avg_pool(const std::string& name, int x) {
  const Node& src = in(x, name);
  PCONV_CHECK(src.out.size() == 3, "global_avg_pool \"", name, "\": input is not a {C,H,W} map");
  Node n;
  n.name = name;
  n.kind = OpKind::GlobalAvgPool;
  n.inputs = {x};
  n.out = {src.out[0], 1, 1};
  return push(std::move(n));
}

int Graph::flatten(const std::string& name, int x) {
  Node n;
  n.name = name;
  n.kind = OpKind::Flatten;
  n.inputs = {x};
  n.out = {numel(in(x, name).out)};
  return push(std::move(n));
}

int Graph::linear(const std::string& name, int x, const LinearAttrs& a) {
  const Node& src = in(x, name);
  PCONV_CHECK(src.out.size() == 1, "linear \"", name, "\": input \"", src.name,
              "\" must be flat (add a flatten node), got ", shape_str(src.out));
  PCONV_CHECK(a.out_features > 0, "linear \"", name, "\": out_features must be > 0");
  Node n;
  n.name = name;
  n.kind = OpKind::Linear;
  n.inputs = {x};
  n.attrs = a;
  n.out = {a.out_features};
  return push(std::move(n));
}

int Graph::add(const std::string& name, int a, int b) {
  const Node& na = in(a, name);
  const Node& nb = in(b, name);
  PCONV_CHECK(na.out == nb.out, "add \"", name, "\": input shapes differ: \"", na.name, "\" ",
              shape_str(na.out), " vs \"", nb.name, "\" ", shape_str(nb.out));
  Node n;
  n.name = name;
  n.kind = OpKind::Add;
  n.inputs = {a, b};
  n.out = na.out;
  return push(std::move(n));
}

// ---- queries -------------------------------------------------------------------------------

int Graph::find(const std::string& name) const {
  for (int i = 0; i < size(); ++i)
    if (nodes_[static_cast<size_t>(i)].name == name) return i;
  return -1;
}

const Shape& Graph::input_shape() const {
  PCONV_CHECK(!nodes_.empty(), "graph is empty");
  return nodes_[0].out;
}

int Graph::num_classes() const {
  PCONV_CHECK(!nodes_.empty(), "graph is empty");
  return static_cast<int>(numel(nodes_.back().out));
}

std::vector<ParamSpec> Graph::params() const {
  std::vector<ParamSpec> out;
  auto add = [&](const Node& n, ParamRole r, Shape s, bool trainable) {
    out.push_back({param_key(n.name, r), n.name, r, std::move(s), trainable});
  };
  for (const Node& n : nodes_) {
    if (n.kind == OpKind::Conv) {
      const ConvAttrs& a = n.conv();
      int64_t cin = node(n.inputs[0]).out[0];
      add(n, ParamRole::Weight, {a.out_channels, cin / a.groups, a.kernel_h, a.kernel_w}, true);
      if (a.bias) add(n, ParamRole::Bias, {a.out_channels}, true);
    } else if (n.kind == OpKind::Linear) {
      add(n, ParamRole::Weight, {n.linear().out_features, node(n.inputs[0]).out[0]}, true);
      if (n.linear().bias) add(n, ParamRole::Bias, {n.linear().out_features}, true);
    } else if (n.kind == OpKind::BatchNorm) {
      int64_t c = n.out[0];
      add(n, ParamRole::Gamma, {c}, true);
      add(n, ParamRole::Beta, {c}, true);
      add(n, ParamRole::RunningMean, {c}, false);
      add(n, ParamRole::RunningVar, {c}, false);
    }
  }
  return out;
}

int64_t Graph::layer_macs(int i) const {
  const Node& n = node(i);
  if (n.kind == OpKind::Conv) {
    const ConvAttrs& a = n.conv();
    int64_t cin = node(n.inputs[0]).out[0];
    return n.out[0] * n.out[1] * n.out[2] * (cin / a.groups) * a.kernel_h * a.kernel_w;
  }
  if (n.kind == OpKind::Linear) return n.out[0] * node(n.inputs[0]).out[0];
  return 0;
}

int64_t Graph::macs() const {
  int64_t s = 0;
  for (int i = 0; i < size(); ++i) s += layer_macs(i);
  return s;
}

std::string Graph::summary() const {
  std::ostringstream os;
  char line[256];
  std::snprintf(line, sizeof line, "%-28s %-16s %-18s %12s %14s\n", "layer", "op", "output",
                "params", "MACs");
  os << line;
  std::map<std::string, int64_t> pcount;
  for (const ParamSpec& p : params())
    if (p.trainable) pcount[p.layer] += numel(p.shape);
  int64_t total_p = 0;
  for (int i = 0; i < size(); ++i) {
    const Node& n = node(i);
    int64_t pc = pcount.count(n.name) ? pcount[n.name] : 0;
    total_p += pc;
    std::snprintf(line, sizeof line, "%-28s %-16s %-18s %12lld %14lld\n", n.name.c_str(),
                  op_name(n.kind), shape_str(n.out).c_str(), static_cast<long long>(pc),
                  static_cast<long long>(layer_macs(i)));
    os << line;
  }
  std::snprintf(line, sizeof line, "total: %lld parameters, %.2f M MACs per sample\n",
                static_cast<long long>(total_p), static_cast<double>(macs()) / 1e6);
  os << line;
  return os.str();
}

// ---- JSON ----------------------------------------------------------------------------------

json Graph::to_json() const {
  json nodes = json::array();
  for (const Node& n : nodes_) {
    json j;
    j["name"] = n.name;
    j["op"] = op_name(n.kind);
    json ins = json::array();
    for (int x : n.inputs) ins.push_back(node(x).name);
    if (n.kind == OpKind::Input) {
      j["shape"] = n.out;
    } else {
      j["inputs"] = ins;
    }
    if (n.kind == OpKind::Conv) {
      const ConvAttrs& a = n.conv();
      j["out_channels"] = a.out_channels;
      j["kernel"] = {a.kernel_h, a.kernel_w};
      j["stride"] = {a.stride_h, a.stride_w};
      j["pad"] = {a.pad_h, a.pad_w};
      j["groups"] = a.groups;
      j["bias"] = a.bias;
    } else if (n.kind == OpKind::MaxPool || n.kind == OpKind::AvgPool) {
      j["kernel"] = n.pool().kernel;
      j["stride"] = n.pool().stride;
      j["pad"] = n.pool().pad;
    } else if (n.kind == OpKind::Linear) {
      j["out_features"] = n.linear().out_features;
      j["bias"] = n.linear().bias;
    } else if (n.kind == OpKind::BatchNorm) {
      j["eps"] = n.bn().eps;
      j["momentum"] = n.bn().momentum;
    }
    nodes.push_back(j);
  }
  return json{{"format", "pconv-graph"}, {"version", 1}, {"nodes", nodes}};
}

namespace {
// Reads an int or an [h, w] pair.
std::pair<int, int> pair_of(const json& j, const std::string& where) {
  if (j.is_number_integer()) return {j.get<int>(), j.get<int>()};
  PCONV_CHECK(j.is_array() && j.size() == 2 && j[0].is_number_integer() && j[1].is_number_integer(),
              where, ": expected an integer or [h, w], got ", j.dump());
  return {j[0].get<int>(), j[1].get<int>()};
}
}  // namespace

Graph Graph::from_json(const json& j, const std::string& where) {
  PCONV_CHECK(j.is_object() && j.contains("nodes") && j["nodes"].is_array(), where,
              ": expected an object with a \"nodes\" list");
  Graph g;
  const json& nodes = j["nodes"];
  for (size_t i = 0; i < nodes.size(); ++i) {
    const json& n = nodes[i];
    std::string at = cat(where, ".nodes[", i, "]");
    PCONV_CHECK(n.is_object(), at, ": expected an object");
    PCONV_CHECK(n.contains("name") && n["name"].is_string(), at, ": missing string \"name\"");
    PCONV_CHECK(n.contains("op") && n["op"].is_string(), at, ": missing string \"op\"");
    std::string name = n["name"].get<std::string>();
    at += " (\"" + name + "\")";
    OpKind kind = op_from_name(n["op"].get<std::string>(), at + ".op");
    auto get_int = [&](const char* key, int def) {
      if (!n.contains(key)) return def;
      PCONV_CHECK(n[key].is_number_integer(), at, ".", key, ": expected an integer");
      return n[key].get<int>();
    };
    auto get_bool = [&](const char* key, bool def) {
      if (!n.contains(key)) return def;
      PCONV_CHECK(n[key].is_boolean(), at, ".", key, ": expected true or false");
      return n[key].get<bool>();
    };
    std::vector<int> ins;
    if (kind != OpKind::Input) {
      PCONV_CHECK(n.contains("inputs") && n["inputs"].is_array(), at, ": missing \"inputs\" list");
      for (const json& s : n["inputs"]) {
        PCONV_CHECK(s.is_string(), at, ".inputs: expected node names");
        int x = g.find(s.get<std::string>());
        PCONV_CHECK(x >= 0, at, ".inputs: unknown or later node \"", s.get<std::string>(), "\"");
        ins.push_back(x);
      }
      size_t want = kind == OpKind::Add ? 2 : 1;
      PCONV_CHECK(ins.size() == want, at, ": op ", op_name(kind), " takes ", want,
                  " input(s), got ", ins.size());
    }
    try {
      switch (kind) {
        case OpKind::Input: {
          PCONV_CHECK(n.contains("shape") && n["shape"].is_array() && n["shape"].size() == 3, at,
                      ": input needs \"shape\": [C, H, W]");
          auto s = n["shape"].get<std::vector<int>>();
          g.input(name, s[0], s[1], s[2]);
          break;
        }
        case OpKind::Conv: {
          ConvAttrs a;
          a.out_channels = get_int("out_channels", 0);
          auto k = pair_of(n.value("kernel", json(3)), at + ".kernel");
          auto s = pair_of(n.value("stride", json(1)), at + ".stride");
          auto p = pair_of(n.value("pad", json(0)), at + ".pad");
          a.kernel_h = k.first, a.kernel_w = k.second;
          a.stride_h = s.first, a.stride_w = s.second;
          a.pad_h = p.first, a.pad_w = p.second;
          a.groups = get_int("groups", 1);
          a.bias = get_bool("bias", false);
          g.conv(name, ins[0], a);
          break;
        }
        case OpKind::BatchNorm: {
          BatchNormAttrs a;
          if (n.contains("eps")) a.eps = n["eps"].get<float>();
          if (n.contains("momentum")) a.momentum = n["momentum"].get<float>();
          g.batch_norm(name, ins[0], a);
          break;
        }
        case OpKind::ReLU:
          g.relu(name, ins[0]);
          break;
        case OpKind::ReLU6:
          g.relu6(name, ins[0]);
          break;
        case OpKind::MaxPool:
        case OpKind::AvgPool: {
          PoolAttrs a;
          a.kernel = get_int("kernel", 2);
          a.stride = get_int("stride", a.kernel);
          a.pad = get_int("pad", 0);
          kind == OpKind::MaxPool ? g.max_pool(name, ins[0], a) : g.avg_pool(name, ins[0], a);
          break;
        }
        case OpKind::GlobalAvgPool:
          g.global_avg_pool(name, ins[0]);
          break;
        case OpKind::Flatten:
          g.flatten(name, ins[0]);
          break;
        case OpKind::Linear: {
          LinearAttrs a;
          a.out_features = get_int("out_features", 0);
          a.bias = get_bool("bias", true);
          g.linear(name, ins[0], a);
          break;
        }
        case OpKind::Add:
          g.add(name, ins[0], ins[1]);
          break;
      }
    } catch (const nlohmann::json::exception& e) {
      throw Error(cat(at, ": ", e.what()));
    } catch (const Error& e) {
      std::string msg = e.what();
      if (msg.rfind(where, 0) == 0) throw;
      throw Error(cat(at, ": ", msg));
    }
  }
  PCONV_CHECK(g.size() > 0, where, ": graph has no nodes");
  return g;
}

// ---- parameters ----------------------------------------------------------------------------

ParamMap init_params(const Graph& g, uint64_t seed) {
  ParamMap p;
  std::mt19937_64 rng(seed);
  for (const ParamSpec& s : g.params()) {
    Tensor t(s.shape);
    const Node& n = g.node(g.find(s.layer));
    switch (s.role) {
      case ParamRole::Weight:
        if (n.kind == OpKind::Conv) {
          // Kaiming normal, fan_out, gain sqrt(2): torchvision's ResNet/VGG initialisation.
          double fan_out = static_cast<double>(s.shape[0] * s.shape[2] * s.shape[3]);
          std::normal_distribution<float> d(0.f, static_cast<float>(std::sqrt(2.0 / fan_out)));
          for (int64_t i = 0; i < t.size(); ++i) t[i] = d(rng);
        } else {
          float b = static_cast<float>(1.0 / std::sqrt(static_cast<double>(s.shape[1])));
          std::uniform_real_distribution<float> d(-b, b);
          for (int64_t i = 0; i < t.size(); ++i) t[i] = d(rng);
        }
        break;
      case ParamRole::Bias:
        if (n.kind == OpKind::Linear) {
          float b =
              static_cast<float>(1.0 / std::sqrt(static_cast<double>(g.node(n.inputs[0]).out[0])));
          std::uniform_real_distribution<float> d(-b, b);
          for (int64_t i = 0; i < t.size(); ++i) t[i] = d(rng);
        }
        break;
      case ParamRole::Gamma:
      case ParamRole::RunningVar:
        t.fill(1.f);
        break;
      case ParamRole::Beta:
      case ParamRole::RunningMean:
        break;
    }
    p.emplace(s.key, std::move(t));
  }
  return p;
}

void check_params(const Graph& g, const ParamMap& p, const std::string& where) {
  for (const ParamSpec& s : g.params()) {
    auto it = p.find(s.key);
    PCONV_CHECK(it != p.end(), where, ": parameter \"", s.key, "\" is missing");
    PCONV_CHECK(it->second.shape() == s.shape, where, ": parameter \"", s.key, "\" has shape ",
                shape_str(it->second.shape()), ", the graph needs ", shape_str(s.shape));
  }
}

}  // namespace pconv
