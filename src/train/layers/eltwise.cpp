// ReLU and ReLU6 over oneDNN's *_use_dst_for_bwd algorithms: the backward reads dst, not src, so
// both passes may run in place (dst over src, diff_src over diff_dst).
#include "train/layers/layer.h"

namespace pconv::train {
namespace {

using dnnl::algorithm;
using dnnl::prop_kind;

class EltwiseLayer final : public Layer {
 public:
  EltwiseLayer(Context& ctx, const Node& n) : Layer(ctx, n) {
    if (n.kind == OpKind::ReLU) {
      alg_ = algorithm::eltwise_relu_use_dst_for_bwd;
    } else if (n.kind == OpKind::ReLU6) {
      alg_ = algorithm::eltwise_clip_v2_use_dst_for_bwd;
      beta_ = 6.f;
    } else {
      throw Error(cat(where(), ": not an elementwise op"));
    }
  }

  memory::desc init_forward(const std::vector<memory::desc>& src, int64_t) override {
    PCONV_CHECK(src.size() == 1, where(), ": needs one input");
    fwd_pd_ = dnnl::eltwise_forward::primitive_desc(
        {prop_kind::forward_training, alg_, src[0], alpha_, beta_}, ctx_.attr(), ctx_.eng);
    ctx_.reserve_scratchpad(fwd_pd_);
    return fwd_pd_.dst_desc();
  }

  void bind_forward(const std::vector<memory>& src, const memory& dst) override {
    src_ = src[0];
    dst_ = dst;
    fwd_ = dnnl::eltwise_forward(fwd_pd_);
  }

  void forward(bool) override {
    Args args{{DNNL_ARG_SRC, src_}, {DNNL_ARG_DST, dst_}};
    ctx_.exec(fwd_, args);
  }

  void bind_backward(const memory& diff_dst, const std::vector<memory>& diff_src) override {
    has_bwd_ = !diff_src.empty() && static_cast<bool>(diff_src[0]);
    if (!has_bwd_) return;
    bwd_pd_ = dnnl::eltwise_backward::primitive_desc(
        {alg_, diff_dst.get_desc(), dst_.get_desc(), alpha_, beta_}, ctx_.attr(), ctx_.eng,
        fwd_pd_);
    ctx_.reserve_scratchpad(bwd_pd_);
    ddst_ = diff_dst;
    dsrc_ = Delivered(ctx_, bwd_pd_.diff_src_desc(), diff_src[0]);
    bwd_ = dnnl::eltwise_backward(bwd_pd_);
  }

  void backward() override {
    if (!has_bwd_) return;
    Args args{{DNNL_ARG_DST, dst_}, {DNNL_ARG_DIFF_DST, ddst_}, {DNNL_ARG_DIFF_SRC, dsrc_.work()}};
    ctx_.exec(bwd_, args);
    dsrc_.run(ctx_);
  }

  bool backward_reads_src() const override { return false; }
  bool backward_reads_dst() const override { return true; }
  bool can_forward_in_place() const override { return true; }
  bool can_backward_in_place() const override { return true; }

 private:
  algorithm alg_{};
  float alpha_ = 0.f, beta_ = 0.f;
  bool has_bwd_ = false;
  dnnl::eltwise_forward::primitive_desc fwd_pd_;
  dnnl::eltwise_forward fwd_;
  dnnl::eltwise_backward::primitive_desc bwd_pd_;
  dnnl::eltwise_backward bwd_;
  memory src_, dst_, ddst_;
  Delivered dsrc_;
};

}  // namespace

std::unique_ptr<Layer> make_eltwise(Context& ctx, const Node& n) {
  return std::make_unique<EltwiseLayer>(ctx, n);
}

}  // namespace pconv::train
