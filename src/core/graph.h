// The model graph: a list of nodes in topological order, each naming its inputs by index.
// Shapes are per sample ({C,H,W} for maps, {F} after flatten/linear); the batch is not part of it.
// Parameters live outside the graph in a ParamMap keyed "<layer>/<role>" (see param_key).
#pragma once

#include <map>
#include <nlohmann/json.hpp>
#include <string>
#include <variant>
#include <vector>

#include "core/error.h"
#include "core/tensor.h"

namespace pconv {

enum class OpKind {
  Input,
  Conv,       // any kernel, stride, padding, groups (depthwise when groups == in == out)
  BatchNorm,  // per channel, affine
  ReLU,
  ReLU6,
  MaxPool,
  AvgPool,        // excludes padding from the divisor
  GlobalAvgPool,  // {C,H,W} -> {C,1,1}
  Flatten,        // {C,H,W} -> {C*H*W}
  Linear,         // {F} -> {out_features}
  Add,            // elementwise sum of two inputs of one shape (residual)
};

const char* op_name(OpKind k);  // "conv", "batch_norm", ... as in the JSON
OpKind op_from_name(const std::string& s, const std::string& where);

struct ConvAttrs {
  int out_channels = 0;
  int kernel_h = 3, kernel_w = 3;
  int stride_h = 1, stride_w = 1;
  int pad_h = 1, pad_w = 1;
  int groups = 1;
  bool bias = false;
};
struct PoolAttrs {
  int kernel = 2, stride = 2, pad = 0;
};
struct LinearAttrs {
  int out_features = 0;
  bool bias = true;
};
struct BatchNormAttrs {
  float eps = 1e-5f;
  float momentum = 0.1f;  // running = (1 - momentum) * running + momentum * batch (PyTorch's rule)
};

using NodeAttrs = std::variant<std::monostate, ConvAttrs, PoolAttrs, LinearAttrs, BatchNormAttrs>;

struct Node {
  std::string name;
  OpKind kind = OpKind::Input;
  std::vector<int> inputs;  // indices of earlier nodes
  NodeAttrs attrs;
  Shape out;  // per-sample output shape

  const ConvAttrs& conv() const { return std::get<ConvAttrs>(attrs); }
  const PoolAttrs& pool() const { return std::get<PoolAttrs>(attrs); }
  const LinearAttrs& linear() const { return std::get<LinearAttrs>(attrs); }
  const BatchNormAttrs& bn() const { return std::get<BatchNormAttrs>(attrs); }
};

enum class ParamRole { Weight, Bias, Gamma, Beta, RunningMean, RunningVar };
const char* role_name(
    ParamRole r);  // "weight", "bias", "gamma", "beta", "running_mean", "running_var"
std::string param_key(const std::string& layer, ParamRole r);  // "conv1/weight"

struct ParamSpec {
  std::string key;    // "<layer>/<role>"
  std::string layer;  // node name
  ParamRole role;
  Shape shape;     // conv weight OIHW with I = in/groups; linear weight {out, in}
  bool trainable;  // false for BN running statistics
};

using ParamMap = std::map<std::string, Tensor>;

class Graph {
 public:
  // Builders: each validates its input and returns the new node's index.
  int input(const std::string& name, int c, int h, int w);
  int conv(const std::string& name, int x, const ConvAttrs& a);
  int batch_norm(const std::string& name, int x, const BatchNormAttrs& a = {});
  int relu(const std::string& name, int x);
  int relu6(const std::string& name, int x);
  int max_pool(const std::string& name, int x, const PoolAttrs& a);
  int avg_pool(const std::string& name, int x, const PoolAttrs& a);
  int global_avg_pool(const std::string& name, int x);
  int flatten(const std::string& name, int x);
  int linear(const std::string& name, int x, const LinearAttrs& a);
  int add(const std::string& name, int a, int b);

  const std::vector<Node>& nodes() const { return nodes_; }
  const Node& node(int i) const { return nodes_.at(static_cast<size_t>(i)); }
  int size() const { return static_cast<int>(nodes_.size()); }
  int find(const std::string& name) const;   // -1 when absent
  int output() const { return size() - 1; }  // the last node is the output (logits)
  const Shape& input_shape() const;
  int num_classes() const;  // elements of the output

  std::vector<ParamSpec> params() const;
  int64_t macs() const;             // multiply-accumulates per sample
  int64_t layer_macs(int i) const;  // of one node (conv and linear; else 0)
  std::string summary() const;      // human-readable table

  nlohmann::json to_json() const;
  // `where` names the source in errors ("model.h5:/graph", "config.json:$.model.graph").
  static Graph from_json(const nlohmann::json& j, const std::string& where);

 private:
  int push(Node n);
  const Node& in(int x, const std::string& who) const;
  std::vector<Node> nodes_;
};

// Kaiming-normal (fan_out, ReLU) for conv, PyTorch's default uniform for linear, BN gamma 1,
// beta 0, running mean 0, var 1, biases 0. Deterministic in `seed`.
ParamMap init_params(const Graph& g, uint64_t seed);

// Checks that every ParamSpec of `g` is present in `p` with its shape; names the first mismatch.
void check_params(const Graph& g, const ParamMap& p, const std::string& where);

}  // namespace pconv
