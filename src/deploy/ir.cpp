#include "deploy/ir.h"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <iomanip>
#include <numeric>
#include <sstream>

#include "core/error.h"

namespace pconv::deploy {

const char* op_type_name(OpType t) {
  switch (t) {
    case OpType::Input:
      return "input";
    case OpType::Conv:
      return "conv";
    case OpType::MaxPool:
      return "max_pool";
    case OpType::AvgPool:
      return "avg_pool";
    case OpType::GlobalAvgPool:
      return "global_avg_pool";
    case OpType::Linear:
      return "linear";
    case OpType::Add:
      return "add";
    case OpType::Affine:
      return "affine";
    case OpType::Activation:
      return "activation";
    case OpType::Flatten:
      return "flatten";
  }
  return "?";
}

int popcount9(uint16_t m) {
  return __builtin_popcount(static_cast<unsigned>(m));
}

int through_flattens(const DeployModel& dm, int x) {
  while (dm.ops[static_cast<size_t>(x)].type == OpType::Flatten)
    x = dm.ops[static_cast<size_t>(x)].inputs[0];
  return x;
}

ConvKind conv_kind(const Op& op) {
  if (op.groups == 1 || op.groups == op.in_c) {
    if (op.stride == 1 && (op.k == 1 || op.k == 3) && op.pad == (op.k - 1) / 2)
      return ConvKind::Sparse;
    if (op.stride == 2 && op.k == 3 && op.pad == 1) return ConvKind::SparseStrided;
  }
  return ConvKind::Generic;
}

namespace {

const Tensor& param(const ModelFile& m, const std::string& layer, ParamRole r,
                    const std::string& where) {
  auto it = m.params.find(param_key(layer, r));
  PCONV_CHECK(it != m.params.end(), where, ": layer \"", layer, "\": parameter \"",
              param_key(layer, r), "\" is missing");
  return it->second;
}

void set_map_shape(Op& op, const Shape& s, const std::string& where) {
  if (s.size() == 3) {
    op.c = static_cast<int>(s[0]);
    op.h = static_cast<int>(s[1]);
    op.w = static_cast<int>(s[2]);
  } else if (s.size() == 1) {
    op.c = static_cast<int>(s[0]);
    op.h = op.w = 1;
  } else {
    throw Error(cat(where, ": layer \"", op.name, "\": unsupported output shape ", shape_str(s)));
  }
}

// Constraint check of one pruned layer: kept non-zeros inside the kernel's pattern, removed
// kernels all zero, ids within the library.
void check_pruned(const Op& op, const std::vector<int8_t>& ids, const std::vector<uint16_t>& lib,
                  const std::string& where) {
  const int O = op.c, I = op.in_c / op.groups;
  PCONV_CHECK(op.k == 3, where, ": layer \"", op.name,
              "\": pattern pruning needs 3x3 kernels, got ", op.k, "x", op.k);
  PCONV_CHECK(static_cast<int64_t>(ids.size()) == static_cast<int64_t>(O) * I, where, ": layer \"",
              op.name, "\": pruning ids hold ", ids.size(), " entries, expected O*I = ", O * I);
  for (int o = 0; o < O; ++o)
    for (int i = 0; i < I; ++i) {
      const int id = ids[static_cast<size_t>(o) * I + i];
      PCONV_CHECK(id >= -1 && id < static_cast<int>(lib.size()), where, ": layer \"", op.name,
                  "\": kernel (", o, ", ", i, ") has pattern id ", id, " outside the library of ",
                  lib.size());
      const uint16_t mask = id < 0 ? 0 : lib[static_cast<size_t>(id)];
      const float* w = &op.weight[(static_cast<size_t>(o) * I + i) * 9];
      for (int t = 0; t < 9; ++t)
        PCONV_CHECK(w[t] == 0.f || (mask >> t & 1), where, ": layer \"", op.name, "\": kernel (", o,
                    ", ", i, ") ",
                    id < 0 ? "is removed (id -1) but holds a non-zero weight"
                           : "holds a non-zero weight outside its pattern",
                    " at position ", t, " (value ", w[t], ")");
    }
}

}  // namespace

DeployModel lower(const ModelFile& m, const std::string& where) {
  const Graph& g = m.graph;
  DeployModel dm;
  dm.library = m.pruning.library;
  for (uint16_t mask : dm.library)
    PCONV_CHECK(mask > 0 && mask < 512, where, ": pruning library holds an invalid mask ", mask);
  std::vector<int> graph_users(static_cast<size_t>(g.size()), 0);
  for (const Node& n : g.nodes())
    for (int x : n.inputs) graph_users[static_cast<size_t>(x)]++;
  std::vector<int> node_op(static_cast<size_t>(g.size()), -1);
  std::vector<int> op_last_node;  // graph node whose value an op currently produces
  for (const auto& kv : m.pruning.layer_ids) {
    const int i = g.find(kv.first);
    PCONV_CHECK(i >= 0 && g.node(i).kind == OpKind::Conv, where, ": pruning names layer \"",
                kv.first, "\" which is not a conv of the graph");
  }

  auto push = [&](Op op, int node) {
    dm.ops.push_back(std::move(op));
    op_last_node.push_back(node);
    node_op[static_cast<size_t>(node)] = static_cast<int>(dm.ops.size()) - 1;
  };
  for (int ni = 0; ni < g.size(); ++ni) {
    const Node& n = g.node(ni);
    Op op;
    op.name = n.name;
    op.source = n.name;
    for (int x : n.inputs) op.inputs.push_back(node_op[static_cast<size_t>(x)]);
    const int in0 = op.inputs.empty() ? -1 : op.inputs[0];
    // May the value of op `p` absorb this node (it is its only consumer)?
    auto fusable = [&](int p) {
      return p >= 0 && graph_users[static_cast<size_t>(op_last_node[static_cast<size_t>(p)])] == 1;
    };
    switch (n.kind) {
      case OpKind::Input:
        PCONV_CHECK(ni == 0, where, ": input node \"", n.name, "\" must be the first node");
        op.type = OpType::Input;
        set_map_shape(op, n.out, where);
        push(std::move(op), ni);
        break;
      case OpKind::Conv: {
        const ConvAttrs& a = n.conv();
        const Op& src = dm.ops[static_cast<size_t>(in0)];
        PCONV_CHECK(src.type != OpType::Flatten && src.type != OpType::Linear, where, ": layer \"",
                    n.name, "\": a conv over a flat tensor is not supported");
        PCONV_CHECK(a.kernel_h == a.kernel_w && a.stride_h == a.stride_w && a.pad_h == a.pad_w,
                    where, ": layer \"", n.name,
                    "\": only square kernels, strides and paddings are supported");
        op.type = OpType::Conv;
        set_map_shape(op, n.out, where);
        op.in_c = src.c;
        op.in_h = src.h;
        op.in_w = src.w;
        op.k = a.kernel_h;
        op.stride = a.stride_h;
        op.pad = a.pad_h;
        op.groups = a.groups;
        const Tensor& w = param(m, n.name, ParamRole::Weight, where);
        op.weight.assign(w.data(), w.data() + w.size());
        op.bias.assign(static_cast<size_t>(op.c), 0.f);
        if (a.bias) {
          const Tensor& b = param(m, n.name, ParamRole::Bias, where);
          op.bias.assign(b.data(), b.data() + b.size());
        }
        auto it = m.pruning.layer_ids.find(n.name);
        if (it != m.pruning.layer_ids.end()) {
          check_pruned(op, it->second, m.pruning.library, where);
          op.ids = it->second;
        }
        push(std::move(op), ni);
        break;
      }
      case OpKind::BatchNorm: {
        const float eps = n.bn().eps;
        const Tensor& ga = param(m, n.name, ParamRole::Gamma, where);
        const Tensor& be = param(m, n.name, ParamRole::Beta, where);
        const Tensor& mu = param(m, n.name, ParamRole::RunningMean, where);
        const Tensor& var = param(m, n.name, ParamRole::RunningVar, where);
        const int C = static_cast<int>(ga.size());
        std::vector<float> s(static_cast<size_t>(C)), t(static_cast<size_t>(C));
        for (int c = 0; c < C; ++c) {
          PCONV_CHECK(var[c] >= 0.f, where, ": layer \"", n.name, "\": negative running_var at ",
                      c);
          s[static_cast<size_t>(c)] = ga[c] / std::sqrt(var[c] + eps);
          t[static_cast<size_t>(c)] = be[c] - mu[c] * s[static_cast<size_t>(c)];
        }
        Op* p = &dm.ops[static_cast<size_t>(in0)];
        if (p->type == OpType::Conv && p->act == Act::None && fusable(in0)) {
          // Fold: W'[o] = s[o] W[o], b'[o] = s[o] b[o] + t[o]. Zeros stay exactly zero.
          const size_t per = p->weight.size() / static_cast<size_t>(p->c);
          for (int o = 0; o < p->c; ++o) {
            for (size_t j = 0; j < per; ++j) p->weight[o * per + j] *= s[static_cast<size_t>(o)];
            p->bias[static_cast<size_t>(o)] =
                p->bias[static_cast<size_t>(o)] * s[static_cast<size_t>(o)] +
                t[static_cast<size_t>(o)];
          }
          p->source += "+" + n.name;
          p->name = n.name;
          op_last_node[static_cast<size_t>(in0)] = ni;
          node_op[static_cast<size_t>(ni)] = in0;
        } else {
          op.type = OpType::Affine;
          set_map_shape(op, n.out, where);
          op.scale = s;
          op.shift = t;
          push(std::move(op), ni);
        }
        break;
      }
      case OpKind::ReLU:
      case OpKind::ReLU6: {
        const Act act = n.kind == OpKind::ReLU ? Act::ReLU : Act::ReLU6;
        Op* p = &dm.ops[static_cast<size_t>(in0)];
        const bool can = p->type == OpType::Conv || p->type == OpType::Linear ||
                         p->type == OpType::Add || p->type == OpType::Affine;
        if (can && p->act == Act::None && fusable(in0)) {
          p->act = act;
          p->source += "+" + n.name;
          p->name = n.name;
          op_last_node[static_cast<size_t>(in0)] = ni;
          node_op[static_cast<size_t>(ni)] = in0;
        } else {
          op.type = OpType::Activation;
          op.act = act;
          set_map_shape(op, n.out, where);
          push(std::move(op), ni);
        }
        break;
      }
      case OpKind::MaxPool:
      case OpKind::AvgPool:
        op.type = n.kind == OpKind::MaxPool ? OpType::MaxPool : OpType::AvgPool;
        set_map_shape(op, n.out, where);
        op.pool_k = n.pool().kernel;
        op.pool_stride = n.pool().stride;
        op.pool_pad = n.pool().pad;
        op.in_c = dm.ops[static_cast<size_t>(in0)].c;
        op.in_h = dm.ops[static_cast<size_t>(in0)].h;
        op.in_w = dm.ops[static_cast<size_t>(in0)].w;
        push(std::move(op), ni);
        break;
      case OpKind::GlobalAvgPool:
        op.type = OpType::GlobalAvgPool;
        set_map_shape(op, n.out, where);
        op.in_h = dm.ops[static_cast<size_t>(in0)].h;
        op.in_w = dm.ops[static_cast<size_t>(in0)].w;
        op.h = op.w = 1;
        push(std::move(op), ni);
        break;
      case OpKind::Flatten: {
        const Op& src = dm.ops[static_cast<size_t>(in0)];
        op.type = OpType::Flatten;  // a view: keeps the producer's c, h, w
        op.c = src.c;
        op.h = src.h;
        op.w = src.w;
        push(std::move(op), ni);
        break;
      }
      case OpKind::Linear: {
        const Op& src = dm.ops[static_cast<size_t>(in0)];
        op.type = OpType::Linear;
        op.c = n.linear().out_features;
        op.h = op.w = 1;
        op.in_c = src.c;
        op.in_h = src.h;
        op.in_w = src.w;
        const Tensor& w = param(m, n.name, ParamRole::Weight, where);
        PCONV_CHECK(w.size() == static_cast<int64_t>(op.c) * src.c * src.h * src.w, where,
                    ": layer \"", n.name, "\": weight ", shape_str(w.shape()),
                    " does not match input features ", src.c * src.h * src.w);
        op.weight.assign(w.data(), w.data() + w.size());
        op.bias.assign(static_cast<size_t>(op.c), 0.f);
        if (n.linear().bias) {
          const Tensor& b = param(m, n.name, ParamRole::Bias, where);
          op.bias.assign(b.data(), b.data() + b.size());
        }
        push(std::move(op), ni);
        break;
      }
      case OpKind::Add:
        PCONV_CHECK(op.inputs.size() == 2, where, ": layer \"", n.name, "\": add needs 2 inputs");
        op.type = OpType::Add;
        set_map_shape(op, n.out, where);
        push(std::move(op), ni);
        break;
    }
  }
  dm.output = node_op[static_cast<size_t>(g.output())];
  PCONV_CHECK(dm.ops[static_cast<size_t>(dm.output)].type != OpType::Flatten, where,
              ": the graph must end in a computing layer, not a flatten");
  dm.users.assign(dm.ops.size(), {});
  for (size_t i = 0; i < dm.ops.size(); ++i)
    for (int x : dm.ops[i].inputs) dm.users[static_cast<size_t>(x)].push_back(static_cast<int>(i));
  return dm;
}

std::vector<int> channel_order(const Op& op) {
  if (!op.perm.empty()) return op.perm;
  std::vector<int> id(static_cast<size_t>(op.c));
  std::iota(id.begin(), id.end(), 0);
  return id;
}

std::vector<int> position_of(const Op& src) {
  std::vector<int> pos(static_cast<size_t>(src.c));
  const std::vector<int> ord = channel_order(src);
  for (int p = 0; p < src.c; ++p) pos[static_cast<size_t>(ord[static_cast<size_t>(p)])] = p;
  return pos;
}

namespace {

// May op i's output channels be permuted? Only when every path to a consumer ends in a conv or
// linear (which absorb the permutation in their packed indices) through channel-wise ops. A
// residual add, or the model output, keeps the identity order (documented in docs/deploy.md).
bool can_permute(const DeployModel& dm, int i) {
  if (i == dm.output) return false;
  for (int u : dm.users[static_cast<size_t>(i)]) {
    const Op& op = dm.ops[static_cast<size_t>(u)];
    switch (op.type) {
      case OpType::Conv:
        if (op.groups != 1 && conv_kind(op) == ConvKind::Generic) return false;
        break;
      case OpType::Linear:
        break;
      case OpType::MaxPool:
      case OpType::AvgPool:
      case OpType::GlobalAvgPool:
      case OpType::Affine:
      case OpType::Activation:
      case OpType::Flatten:
        if (!can_permute(dm, u)) return false;
        break;
      default:
        return false;
    }
  }
  return true;
}

}  // namespace

// Extraction, reorder and packing of one conv (`ids` empty = dense layer).
static void plan_one(DeployModel& dm, int index, const std::vector<int8_t>& ids, bool reorder) {
  Op& op = dm.ops[static_cast<size_t>(index)];
  ConvPlan& P = op.plan;
  const Op& src = dm.ops[static_cast<size_t>(op.inputs[0])];
  const std::vector<int> pos = position_of(src);
  const int O = op.c, Ig = op.in_c / op.groups, Og = O / op.groups, K = op.k, KK = K * K;
  const uint16_t full = static_cast<uint16_t>((1u << KK) - 1u);
  P.pruned = !ids.empty();
  P.total_kernels = static_cast<int64_t>(O) * Ig;
  P.dense_bytes = (static_cast<int64_t>(O) * Ig * KK + O) * 4;
  P.dense_macs = static_cast<int64_t>(O) * Ig * KK * op.h * op.w;
  std::vector<std::vector<PackedKernel>> filt(static_cast<size_t>(O));
  for (int o = 0; o < O; ++o) {
    const int grp = o / Og;
    for (int i = 0; i < Ig; ++i) {
      uint16_t mask = full;
      if (P.pruned) {
        const int id = ids[static_cast<size_t>(o) * Ig + i];
        if (id < 0) continue;
        mask = dm.library[static_cast<size_t>(id)];
      }
      PackedKernel pk;
      pk.in_pos = pos[static_cast<size_t>(grp * Ig + i)];
      pk.mask = mask;
      const float* w = &op.weight[(static_cast<size_t>(o) * Ig + i) * KK];
      for (int t = 0; t < KK; ++t)
        if (mask >> t & 1) pk.w.push_back(w[t]);
      filt[static_cast<size_t>(o)].push_back(std::move(pk));
    }
  }
  // Distinct masks, sorted; each filter's kernels grouped by mask, then by input position.
  P.masks.clear();
  for (const auto& f : filt)
    for (const auto& k : f) P.masks.push_back(k.mask);
  std::sort(P.masks.begin(), P.masks.end());
  P.masks.erase(std::unique(P.masks.begin(), P.masks.end()), P.masks.end());
  const int M = static_cast<int>(P.masks.size());
  auto mask_index = [&](uint16_t mk) {
    return static_cast<int>(std::lower_bound(P.masks.begin(), P.masks.end(), mk) - P.masks.begin());
  };
  P.kernels_per_filter.assign(static_cast<size_t>(O), 0);
  P.kept_kernels = 0;
  P.nonzero_macs = 0;
  std::vector<std::vector<int>> cnt(static_cast<size_t>(O),
                                    std::vector<int>(static_cast<size_t>(M), 0));
  for (int o = 0; o < O; ++o) {
    auto& f = filt[static_cast<size_t>(o)];
    std::sort(f.begin(), f.end(), [&](const PackedKernel& a, const PackedKernel& b) {
      const int ma = mask_index(a.mask), mb = mask_index(b.mask);
      return ma != mb ? ma < mb : a.in_pos < b.in_pos;
    });
    for (const auto& k : f) {
      cnt[static_cast<size_t>(o)][static_cast<size_t>(mask_index(k.mask))]++;
      P.nonzero_macs += static_cast<int64_t>(k.w.size()) * op.h * op.w;
    }
    P.kernels_per_filter[static_cast<size_t>(o)] = static_cast<int>(f.size());
    P.kept_kernels += static_cast<int64_t>(f.size());
  }
  // Filter reorder: heaviest filters first, equal profiles adjacent; the static cyclic thread
  // schedule of the generated code then hands each thread a near-equal share.
  P.filter_order.resize(static_cast<size_t>(O));
  std::iota(P.filter_order.begin(), P.filter_order.end(), 0);
  if (reorder && op.groups == 1 && can_permute(dm, index)) {
    std::stable_sort(P.filter_order.begin(), P.filter_order.end(), [&](int a, int b) {
      const auto& fa = filt[static_cast<size_t>(a)];
      const auto& fb = filt[static_cast<size_t>(b)];
      if (fa.size() != fb.size()) return fa.size() > fb.size();
      return cnt[static_cast<size_t>(a)] > cnt[static_cast<size_t>(b)];
    });
    bool ident = true;
    for (int p = 0; p < O; ++p) ident = ident && P.filter_order[static_cast<size_t>(p)] == p;
    if (!ident) op.perm = P.filter_order;
  }
  // Packing.
  P.words.clear();
  P.filter_offset.clear();
  P.counts.assign(static_cast<size_t>(O) * M, 0);
  P.bias.resize(static_cast<size_t>(O));
  for (int p = 0; p < O; ++p) {
    const int o = P.filter_order[static_cast<size_t>(p)];
    P.filter_offset.push_back(static_cast<int64_t>(P.words.size()));
    P.bias[static_cast<size_t>(p)] = op.bias[static_cast<size_t>(o)];
    for (int mi = 0; mi < M; ++mi)
      P.counts[static_cast<size_t>(p) * M + mi] =
          cnt[static_cast<size_t>(o)][static_cast<size_t>(mi)];
    for (const auto& k : filt[static_cast<size_t>(o)]) {
      P.words.push_back(static_cast<uint32_t>(k.in_pos));
      for (float v : k.w) {
        uint32_t u;
        std::memcpy(&u, &v, 4);
        P.words.push_back(u);
      }
    }
  }
}

void plan_convs(DeployModel& dm, const PlanOptions& opt) {
  for (size_t i = 0; i < dm.ops.size(); ++i) {
    Op& op = dm.ops[i];
    switch (op.type) {
      case OpType::Conv: {
        plan_one(dm, static_cast<int>(i), op.ids, opt.reorder_filters);
        break;
      }
      case OpType::MaxPool:
      case OpType::AvgPool:
      case OpType::GlobalAvgPool:
      case OpType::Affine:
      case OpType::Activation:
      case OpType::Flatten:
        op.perm = dm.ops[static_cast<size_t>(op.inputs[0])].perm;
        break;
      case OpType::Add:
        for (int x : op.inputs)
          PCONV_CHECK(dm.ops[static_cast<size_t>(x)].perm.empty(), "layer \"", op.name,
                      "\": internal error: a residual add met a permuted input");
        break;
      default:
        break;
    }
  }
}

}  // namespace pconv::deploy
