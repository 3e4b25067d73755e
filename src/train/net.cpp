// Net: a Graph compiled to oneDNN layers (src/train/layers), one Plan per batch size.
//
// Memory plan (docs/trainer-internals.md has the long form):
//  - values: one buffer per node output, except views (Flatten, a ReLU fused into its BN or Add)
//  and
//    in-place ops (ReLU/ReLU6/Add writing over an input nobody else reads, forward or backward);
//  - gradients: one buffer per "gradient class". Views, in-place backward ops (eltwise, BN) and
//    the identity backward of Add share their output's gradient buffer with their input where the
//    input has a single consumer; a value read by several consumers gets the first contribution
//    written directly and the others added (oneDNN binary add, in place). Add's contribution to
//    such a value is deferred until the value's gradient is needed, and an Add's gradient class is
//    then frozen: no later op may write into it in place.
#include "train/net.h"

#include <functional>
#include <map>
#include <numeric>

#include "core/error.h"
#include "train/layers/layer.h"

namespace pconv {

using dnnl::memory;
using train::Args;
using train::Layer;

namespace {

struct UnionFind {
  std::vector<int> p;
  explicit UnionFind(int n) : p(static_cast<size_t>(n)) { std::iota(p.begin(), p.end(), 0); }
  int find(int x) { return p[x] == x ? x : p[x] = find(p[x]); }
  void unite(int keep, int other) { p[find(other)] = find(keep); }
};

}  // namespace

struct Plan {
  int64_t batch = 0;
  std::vector<std::unique_ptr<Layer>> layers;  // per node; null for Input and views
  std::vector<memory> value;                   // per node
  std::vector<int> vroot;                      // node whose buffer holds this value
  memory user_in, user_logits;
  dnnl::reorder in_reorder, out_reorder;
  Tensor logits;

  bool bwd_built = false;
  std::vector<memory> grad;  // per node (empty where no gradient is needed)
  memory user_dlogits;
  dnnl::reorder dlogits_reorder;
  std::vector<std::function<void()>> bwd_steps;
  memory scratch_buf;
};

struct Net::Impl {
  Graph g;
  ParamMap& params;
  ParamMap grads;
  train::Context ctx;
  std::vector<std::vector<int>> consumers;  // per node: consuming nodes (one entry per edge)
  std::vector<int> fused_relu;              // per BN/Add node: the ReLU it absorbs, else -1
  std::vector<bool> is_view;                // Flatten, and ReLUs absorbed by a BN or Add
  std::vector<bool> need_grad;
  std::map<int64_t, std::unique_ptr<Plan>> plans;
  Plan* last = nullptr;
  bool last_training = false;

  Impl(const Graph& graph, ParamMap& p) : g(graph), params(p) {
    ctx.params = &params;
    ctx.grads = &grads;
    check_params(g, params, "Net");
    for (const ParamSpec& s : g.params())
      if (s.trainable) grads.emplace(s.key, Tensor(s.shape));
    const int n = g.size();
    PCONV_CHECK(n >= 2 && g.node(0).kind == OpKind::Input, "Net: node 0 must be the input");
    consumers.assign(n, {});
    fused_relu.assign(n, -1);
    is_view.assign(n, false);
    need_grad.assign(n, false);
    for (int i = 0; i < n; ++i) {
      const Node& nd = g.node(i);
      for (int in : nd.inputs) consumers[in].push_back(i);
      PCONV_CHECK(i == 0 || nd.kind != OpKind::Input, "Net: layer ", nd.name, " is a second input");
    }
    for (int i = 0; i < n; ++i) {
      const Node& nd = g.node(i);
      if (nd.kind == OpKind::Flatten) is_view[i] = true;
      if ((nd.kind == OpKind::BatchNorm || nd.kind == OpKind::Add) && consumers[i].size() == 1 &&
          g.node(consumers[i][0]).kind == OpKind::ReLU) {
        const int r = consumers[i][0];
        // Add's fused ReLU backward writes its gradient class in place; that class must not be
        // one a later Add freezes, i.e. the ReLU's output must not be a later Add's (or
        // Flatten's) only input.
        const bool risky =
            consumers[r].size() == 1 && (g.node(consumers[r][0]).kind == OpKind::Add ||
                                         g.node(consumers[r][0]).kind == OpKind::Flatten);
        if (nd.kind == OpKind::BatchNorm || !risky) {
          fused_relu[i] = r;
          is_view[r] = true;
        }
      }
      bool has_params =
          nd.kind == OpKind::Conv || nd.kind == OpKind::Linear || nd.kind == OpKind::BatchNorm;
      bool any = has_params;
      for (int in : nd.inputs) any = any || need_grad[in];
      need_grad[i] = i != 0 && any;
    }
  }

  std::unique_ptr<Layer> make_layer(int i) {
    const Node& nd = g.node(i);
    switch (nd.kind) {
      case OpKind::Conv:
        return train::make_conv(ctx, nd);
      case OpKind::BatchNorm:
        return train::make_batch_norm(ctx, nd, fused_relu[i] >= 0);
      case OpKind::ReLU:
      case OpKind::ReLU6:
        return train::make_eltwise(ctx, nd);
      case OpKind::MaxPool:
      case OpKind::AvgPool:
      case OpKind::GlobalAvgPool:
        return train::make_pool(ctx, nd);
      case OpKind::Linear:
        return train::make_linear(ctx, nd);
      case OpKind::Add:
        return train::make_add(ctx, nd, fused_relu[i] >= 0);
      default:
        throw Error(cat("Net: layer ", nd.name, " has unsupported op ", op_name(nd.kind)));
    }
  }

  // May node `n` overwrite the buffer holding value `i`? Only when nothing else reads that
  // buffer, now or in the backward.
  bool can_overwrite(const Plan& p, int i, int n) const {
    const int root = p.vroot[i];
    if (root == 0) return false;  // the input copy is read by the first layer's backward
    int edges = 0;
    for (int v = 1; v < n; ++v) {
      if (p.vroot[v] != root) continue;
      if (p.layers[v] && p.layers[v]->backward_reads_dst()) return false;
      for (int c : consumers[v]) {
        if (p.vroot[c] == root && is_view[c]) continue;  // a view of the same buffer
        if (c != n) return false;
        ++edges;
      }
    }
    return edges == 1;
  }

  std::unique_ptr<Plan> build_forward(int64_t batch) {
    auto p = std::make_unique<Plan>();
    p->batch = batch;
    const int n = g.size();
    p->layers.resize(n);
    p->value.resize(n);
    p->vroot.assign(n, -1);
    const Shape& is = g.input_shape();
    PCONV_CHECK(is.size() == 3, "Net: input shape must be {C,H,W}, got ", shape_str(is));
    const memory::dims in_dims{batch, is[0], is[1], is[2]};
    p->value[0] = memory(train::plain_desc(in_dims), ctx.eng);
    p->vroot[0] = 0;
    p->user_in = memory(train::plain_desc(in_dims), ctx.eng, nullptr);
    p->in_reorder = dnnl::reorder(p->user_in, p->value[0]);
    for (int i = 1; i < n; ++i) {
      const Node& nd = g.node(i);
      if (is_view[i]) {
        p->value[i] = p->value[nd.inputs[0]];
        p->vroot[i] = p->vroot[nd.inputs[0]];
        continue;
      }
      p->layers[i] = make_layer(i);
      std::vector<memory::desc> sd;
      std::vector<memory> sm;
      for (int in : nd.inputs) {
        sd.push_back(p->value[in].get_desc());
        sm.push_back(p->value[in]);
      }
      const memory::desc dd = p->layers[i]->init_forward(sd, batch);
      if (p->layers[i]->can_forward_in_place()) {
        for (int in : nd.inputs) {
          if (p->value[in].get_desc() == dd && can_overwrite(*p, in, i)) {
            p->value[i] = p->value[in];
            p->vroot[i] = p->vroot[in];
            break;
          }
        }
      }
      if (!p->value[i]) {
        p->value[i] = memory(dd, ctx.eng);
        p->vroot[i] = i;
      }
      p->layers[i]->bind_forward(sm, p->value[i]);
    }
    const int out = g.output();
    const memory::dims od = p->value[out].get_desc().dims();
    p->logits = Tensor({batch, static_cast<int64_t>(g.num_classes())});
    PCONV_CHECK(numel(Shape(od.begin(), od.end())) == p->logits.size(), "Net: output of ",
                g.node(out).name, " has ", numel(Shape(od.begin(), od.end())) / batch,
                " elements per sample, expected ", g.num_classes());
    p->user_logits = memory(train::plain_desc(od), ctx.eng, p->logits.data());
    p->out_reorder = dnnl::reorder(p->value[out], p->user_logits);
    return p;
  }

  void build_backward(Plan& p) {
    const int n = g.size();
    UnionFind uf(n);
    std::vector<bool> frozen(n, false);
    auto same_desc = [&](int a, int b) { return p.value[a].get_desc() == p.value[b].get_desc(); };
    // 1. Gradient classes, deciding in backward order.
    for (int i = n - 1; i >= 1; --i) {
      if (!need_grad[i]) continue;
      const Node& nd = g.node(i);
      if (is_view[i] || (p.layers[i] && p.layers[i]->can_backward_in_place())) {
        const int in = nd.inputs[0];
        const bool ok = need_grad[in] && consumers[in].size() == 1 && same_desc(in, i) &&
                        (is_view[i] || !frozen[uf.find(i)]);
        if (ok) {
          uf.unite(i, in);
        } else if (is_view[i]) {
          frozen[uf.find(i)] = true;  // deferred reader of this class
        }
      } else if (nd.kind == OpKind::Add) {
        // The fused ReLU's backward writes this class in place (guaranteed safe by the fusion
        // rule in the constructor; checked here).
        PCONV_CHECK(fused_relu[i] < 0 || !frozen[uf.find(i)], "Net: layer ", nd.name,
                    ": fused ReLU would overwrite a gradient still read elsewhere");
        for (int in : nd.inputs) {
          if (need_grad[in] && consumers[in].size() == 1 && same_desc(in, i)) uf.unite(i, in);
        }
        frozen[uf.find(i)] = true;
      }
    }
    // 2. One buffer per class.
    p.grad.assign(n, memory());
    std::vector<memory> class_mem(n);
    for (int i = 1; i < n; ++i) {
      if (!need_grad[i]) continue;
      const int r = uf.find(i);
      if (!class_mem[r]) class_mem[r] = memory(p.value[r].get_desc(), ctx.eng);
      p.grad[i] = class_mem[r];
    }
    // 3. The schedule.
    const int out = g.output();
    std::vector<bool> written(n, false);
    std::vector<std::vector<int>> deferred(n);  // value -> Add/view nodes whose gradient adds to it
    std::vector<memory> scratch;
    written[out] = true;
    auto add_into = [&](const memory& dst, const memory& src) {
      dnnl::binary::primitive_desc pd(
          {dnnl::algorithm::binary_add, dst.get_desc(), src.get_desc(), dst.get_desc()}, ctx.attr(),
          ctx.eng);
      ctx.reserve_scratchpad(pd);
      dnnl::binary prim(pd);
      p.bwd_steps.push_back([this, prim, dst, src] {
        Args a{{DNNL_ARG_SRC_0, dst}, {DNNL_ARG_SRC_1, src}, {DNNL_ARG_DST, dst}};
        ctx.exec(prim, a);
      });
    };
    for (int i = n - 1; i >= 1; --i) {
      if (!need_grad[i]) continue;
      const Node& nd = g.node(i);
      for (int d : deferred[i]) {
        if (!written[i]) {
          dnnl::reorder r(p.grad[d], p.grad[i]);
          memory a = p.grad[d], b = p.grad[i];
          p.bwd_steps.push_back([this, r, a, b]() mutable { r.execute(ctx.strm, a, b); });
          written[i] = true;
        } else {
          add_into(p.grad[i], p.grad[d]);
        }
      }
      PCONV_CHECK(written[i], "Net: the output does not depend on layer ", nd.name);
      if (nd.kind == OpKind::Add) {  // the fused ReLU's backward, in place, before the routing
        Layer* layer = p.layers[i].get();
        layer->bind_backward(p.grad[i], {});
        if (fused_relu[i] >= 0) {
          p.bwd_steps.push_back([layer] { layer->backward(); });
        }
      }
      if (!p.layers[i] || nd.kind == OpKind::Add) {  // views and Add: identity backward
        for (int in : nd.inputs) {
          if (!need_grad[in]) continue;
          if (uf.find(in) == uf.find(i)) {
            written[in] = true;
          } else {
            deferred[in].push_back(i);
          }
        }
        continue;
      }
      std::vector<memory> dsrc;
      std::vector<std::pair<int, memory>> accumulate;
      for (int in : nd.inputs) {
        if (!need_grad[in]) {
          dsrc.emplace_back();
        } else if (uf.find(in) == uf.find(i)) {
          dsrc.push_back(p.grad[i]);
          written[in] = true;
        } else if (!written[in]) {
          dsrc.push_back(p.grad[in]);
          written[in] = true;
        } else {
          memory s(p.grad[in].get_desc(), ctx.eng, DNNL_MEMORY_NONE);
          scratch.push_back(s);
          dsrc.push_back(s);
          accumulate.emplace_back(in, s);
        }
      }
      Layer* layer = p.layers[i].get();
      layer->bind_backward(p.grad[i], dsrc);
      p.bwd_steps.push_back([layer] { layer->backward(); });
      for (auto& [in, s] : accumulate) add_into(p.grad[in], s);
    }
    size_t most = 0;
    for (const memory& s : scratch) most = std::max(most, s.get_desc().get_size());
    if (most) {
      p.scratch_buf = memory(memory::desc({static_cast<memory::dim>(most)}, memory::data_type::u8,
                                          memory::format_tag::x),
                             ctx.eng);
      for (memory& s : scratch) s.set_data_handle(p.scratch_buf.get_data_handle());
    }
    p.user_dlogits = memory(p.user_logits.get_desc(), ctx.eng, nullptr);
    p.dlogits_reorder = dnnl::reorder(p.user_dlogits, p.grad[out]);
    p.bwd_built = true;
  }
};

Net::Net(const Graph& g, ParamMap& params) : impl_(std::make_unique<Impl>(g, params)) {}
Net::~Net() = default;

const Tensor& Net::forward(const Tensor& input, bool training) {
  Impl& m = *impl_;
  const Shape& is = m.g.input_shape();
  PCONV_CHECK(input.rank() == 4 && input.dim(1) == is[0] && input.dim(2) == is[1] &&
                  input.dim(3) == is[2] && input.dim(0) > 0,
              "Net::forward: input ", shape_str(input.shape()), " does not match {N, ", is[0], ", ",
              is[1], ", ", is[2], "}");
  const int64_t batch = input.dim(0);
  auto it = m.plans.find(batch);
  if (it == m.plans.end()) it = m.plans.emplace(batch, m.build_forward(batch)).first;
  Plan& p = *it->second;
  p.user_in.set_data_handle(const_cast<float*>(input.data()));
  p.in_reorder.execute(m.ctx.strm, p.user_in, p.value[0]);
  for (auto& l : p.layers)
    if (l) l->forward(training);
  p.user_logits.set_data_handle(p.logits.data());
  train::run_reorder(p.out_reorder, m.ctx.strm, p.value[m.g.output()], p.user_logits);
  m.ctx.strm.wait();
  m.last = &p;
  m.last_training = training;
  return p.logits;
}

void Net::backward(const Tensor& dlogits) {
  Impl& m = *impl_;
  PCONV_CHECK(m.last && m.last_training, "Net::backward: needs a training forward first");
  Plan& p = *m.last;
  PCONV_CHECK(dlogits.shape() == p.logits.shape(), "Net::backward: dlogits ",
              shape_str(dlogits.shape()), " does not match the logits ",
              shape_str(p.logits.shape()));
  if (!p.bwd_built) m.build_backward(p);
  p.user_dlogits.set_data_handle(const_cast<float*>(dlogits.data()));
  train::run_reorder(p.dlogits_reorder, m.ctx.strm, p.user_dlogits, p.grad[m.g.output()]);
  for (auto& s : p.bwd_steps) s();
  m.ctx.strm.wait();
}

ParamMap& Net::grads() {
  return impl_->grads;
}

void Net::params_changed() {
  ++impl_->ctx.param_version;
}

}  // namespace pconv
