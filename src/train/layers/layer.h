// Internal to src/train: one oneDNN-backed layer per graph node, compiled for one batch size.
//
// The contract between a Layer and the Net that drives it (see docs/trainer-internals.md):
//  1. init_forward(src descs): creates the forward_training primitive descriptor(s) with
//     format_tag::any where oneDNN may choose, and returns the dst desc it picked.
//  2. bind_forward(src, dst): the Net hands over the memories (dst may alias src[k] when the Net
//     decided the op runs in place); the layer creates primitives and any private reorders.
//  3. bind_backward(diff_dst, diff_src): diff_dst has the dst desc, diff_src[i] has the desc of
//     src[i] (an empty memory means input i needs no gradient). diff_src[i] may alias diff_dst
//     when the Net decided the backward runs in place. Backward primitives are hinted by the
//     forward descriptor, as in oneDNN's cnn_training_f32 example.
//  4. forward()/backward() execute. backward() overwrites diff_src and this layer's grads.
#pragma once

#include <cstdint>
#include <memory>
#include <oneapi/dnnl/dnnl.hpp>
#include <string>
#include <unordered_map>
#include <vector>

#include "core/error.h"
#include "core/graph.h"

namespace pconv::train {

using dnnl::memory;
using Args = std::unordered_map<int, memory>;

// Shared by every layer of a Net.
struct Context {
  dnnl::engine eng{dnnl::engine::kind::cpu, 0};
  dnnl::stream strm{eng};
  ParamMap* params = nullptr;
  ParamMap* grads = nullptr;
  uint64_t param_version = 0;  // bumped by Net::params_changed()
  memory scratchpad;           // user-mode scratchpad shared by all primitives (grown on demand)

  dnnl::primitive_attr attr() const {
    dnnl::primitive_attr a;
    a.set_scratchpad_mode(dnnl::scratchpad_mode::user);
    return a;
  }
  // Grows the shared scratchpad to fit `pd`.
  void reserve_scratchpad(const dnnl::primitive_desc_base& pd);
  // Runs a primitive created with attr(), passing the shared scratchpad.
  void exec(const dnnl::primitive& p, Args& args);
  Tensor& param(const std::string& key);
  Tensor& grad(const std::string& key);
};

// A memory that must equal `want`: either `have` itself (same desc) or a private buffer filled
// by a reorder. Built once; run() executes the reorder when one is needed.
class Converted {
 public:
  Converted() = default;
  Converted(Context& ctx, const memory& have, const memory::desc& want);
  const memory& mem() const { return out_; }
  bool needed() const { return static_cast<bool>(reorder_); }
  void run(Context& ctx);

 private:
  memory in_, out_;
  dnnl::reorder reorder_;
};

// The reverse of Converted: a primitive writes work() in its chosen desc, run() reorders the
// result into `target` when the descs differ (otherwise work() is target itself).
class Delivered {
 public:
  Delivered() = default;
  Delivered(Context& ctx, const memory::desc& have, const memory& target);
  const memory& work() const { return work_; }
  void run(Context& ctx);

 private:
  memory work_, target_;
  dnnl::reorder reorder_;
};

// A plain-layout parameter (a Tensor in the ParamMap) seen in a primitive's chosen layout.
// Re-reordered only when Context::param_version changed since the last refresh().
class PlainParam {
 public:
  PlainParam() = default;
  PlainParam(Context& ctx, const std::string& key, const memory::desc& plain,
             const memory::desc& want);
  const memory& refresh(Context& ctx);  // returns the memory in the wanted layout

 private:
  std::string key_;
  memory plain_, out_;
  dnnl::reorder reorder_;
  uint64_t version_ = ~uint64_t{0};
};

// A gradient computed in a primitive's chosen layout and delivered into the plain grads Tensor.
class PlainGrad {
 public:
  PlainGrad() = default;
  PlainGrad(Context& ctx, const std::string& key, const memory::desc& plain,
            const memory::desc& have);
  const memory& target(Context& ctx);  // where the primitive writes; call before executing
  void deliver(Context& ctx);          // reorder to plain if needed; call after

 private:
  std::string key_;
  memory plain_, work_;
  dnnl::reorder reorder_;
};

class Layer {
 public:
  Layer(Context& ctx, const Node& node) : ctx_(ctx), node_(node) {}
  virtual ~Layer() = default;
  Layer(const Layer&) = delete;
  Layer& operator=(const Layer&) = delete;

  virtual memory::desc init_forward(const std::vector<memory::desc>& src, int64_t batch) = 0;
  virtual void bind_forward(const std::vector<memory>& src, const memory& dst) = 0;
  virtual void bind_backward(const memory& diff_dst, const std::vector<memory>& diff_src) = 0;
  virtual void forward(bool training) = 0;
  virtual void backward() = 0;

  // What backward reads, so the Net knows which buffers an in-place op may overwrite.
  virtual bool backward_reads_src() const { return true; }
  virtual bool backward_reads_dst() const { return false; }
  // Whether the forward may write dst over src[0] / the backward diff_src[0] over diff_dst.
  virtual bool can_forward_in_place() const { return false; }
  virtual bool can_backward_in_place() const { return false; }

  const Node& node() const { return node_; }

 protected:
  // "layer conv3 (conv): <what>" for errors.
  std::string where() const { return cat("layer ", node_.name, " (", op_name(node_.kind), ")"); }

  Context& ctx_;
  const Node& node_;
};

// Factories, one per file in this folder. `fuse_relu`: the layer also applies the following ReLU
// (BN: oneDNN's fuse_norm_relu with a workspace for the backward; Add: an eltwise post-op).
std::unique_ptr<Layer> make_conv(Context& ctx, const Node& n);
std::unique_ptr<Layer> make_batch_norm(Context& ctx, const Node& n, bool fuse_relu);
std::unique_ptr<Layer> make_eltwise(Context& ctx, const Node& n);  // ReLU, ReLU6
std::unique_ptr<Layer> make_pool(Context& ctx, const Node& n);     // max, avg, global avg
std::unique_ptr<Layer> make_linear(Context& ctx, const Node& n);
std::unique_ptr<Layer> make_add(Context& ctx, const Node& n, bool fuse_relu);

// Helpers shared by the layer files.
memory::dims to_dims(const Shape& s);
memory::desc plain_desc(const memory::dims& dims);  // nc / nchw / goihw / x by rank
// Executes a reorder; small ones on a single thread (no OpenMP barrier).
void run_reorder(const dnnl::reorder& r, const dnnl::stream& s, memory& from, memory& to);
// padding_r that makes oneDNN's output size equal `out` (PyTorch's floor rule).
int64_t pad_right(int64_t in, int64_t k, int64_t s, int64_t pl, int64_t out);

}  // namespace pconv::train
