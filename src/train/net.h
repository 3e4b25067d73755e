// A graph compiled to oneDNN primitives for training and inference (forward, backward data,
// backward weights), following oneDNN's cnn_training_f32 recipe. Parameters stay in plain layouts
// (OIHW, {out,in}) in the caller's ParamMap so optimizers, pruning and file I/O never see oneDNN
// formats; activations live in whatever layout the primitives pick and are reordered only at the edges.
#pragma once

#include <memory>

#include "core/graph.h"

namespace pconv {

class Net {
 public:
  // `params` is referenced, not copied: it must outlive the Net. BN running statistics in it are
  // updated in place by training forwards.
  Net(const Graph& g, ParamMap& params);
  ~Net();
  Net(const Net&) = delete;
  Net& operator=(const Net&) = delete;

  // input: {N, C, H, W} plain NCHW. Returns logits {N, classes}. Primitives are cached per batch
  // size, so a smaller last batch costs one extra setup, not one per step.
  const Tensor& forward(const Tensor& input, bool training);
  // dlogits: {N, classes} for the last training forward. Overwrites grads() (not accumulated).
  void backward(const Tensor& dlogits);
  // Gradients of every trainable parameter, same keys and shapes as the ParamMap.
  ParamMap& grads();
  // Must be called after the caller changes parameter values (optimizer step, pruning, loading)
  // before the next forward, so weights reordered into oneDNN layouts are refreshed.
  void params_changed();

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace pconv
