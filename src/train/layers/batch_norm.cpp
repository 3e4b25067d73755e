// Batch normalization over oneDNN. Training: batch statistics, and the running statistics updated
// with PyTorch's rule (running = (1 - m) * running + m * batch, the variance unbiased by
// n / (n - 1)). Inference: the running statistics. Optionally fused with the following ReLU
// (fuse_norm_relu; the training forward keeps a bit mask workspace for the backward).
#include <cmath>

#include "train/layers/layer.h"

namespace pconv::train {
namespace {

using dnnl::prop_kind;
using flags = dnnl::normalization_flags;

class BatchNormLayer final : public Layer {
 public:
  BatchNormLayer(Context& ctx, const Node& n, bool fuse_relu)
      : Layer(ctx, n), fuse_relu_(fuse_relu) {}

  memory::desc init_forward(const std::vector<memory::desc>& src, int64_t batch) override {
    PCONV_CHECK(src.size() == 1 && src[0].dims().size() >= 2, where(),
                ": needs one {N,C,...} input");
    const auto d = src[0].dims();
    channels_ = d[1];
    count_ = 1;
    for (size_t i = 0; i < d.size(); ++i) count_ *= (i == 1 ? 1 : d[i]);
    flags_ = flags::use_scale | flags::use_shift;
    if (fuse_relu_) flags_ = flags_ | flags::fuse_norm_relu;
    const float eps = node_.bn().eps;
    fwd_pd_ = dnnl::batch_normalization_forward::primitive_desc(
        {prop_kind::forward_training, src[0], eps, flags_}, ctx_.attr(), ctx_.eng);
    inf_pd_ = dnnl::batch_normalization_forward::primitive_desc(
        {prop_kind::forward_inference, src[0], eps, flags_ | flags::use_global_stats}, ctx_.attr(),
        ctx_.eng);
    ctx_.reserve_scratchpad(fwd_pd_);
    ctx_.reserve_scratchpad(inf_pd_);
    return fwd_pd_.dst_desc();
  }

  void bind_forward(const std::vector<memory>& src, const memory& dst) override {
    src_ = src[0];
    dst_ = dst;
    mean_ = memory(fwd_pd_.mean_desc(), ctx_.eng);
    var_ = memory(fwd_pd_.variance_desc(), ctx_.eng);
    if (fuse_relu_) ws_ = memory(fwd_pd_.workspace_desc(), ctx_.eng);
    const memory::desc c = plain_desc({channels_});
    scale_ = memory(c, ctx_.eng, nullptr);
    shift_ = memory(c, ctx_.eng, nullptr);
    rmean_ = memory(c, ctx_.eng, nullptr);
    rvar_ = memory(c, ctx_.eng, nullptr);
    for (const char* role : {"gamma", "beta", "running_mean", "running_var"}) {
      const Tensor& t = ctx_.param(node_.name + "/" + role);
      PCONV_CHECK(t.size() == channels_, where(), ": ", role, " has ", t.size(), " elements for ",
                  channels_, " channels");
    }
    fwd_ = dnnl::batch_normalization_forward(fwd_pd_);
    inf_ = dnnl::batch_normalization_forward(inf_pd_);
  }

  void forward(bool training) override {
    scale_.set_data_handle(ctx_.param(node_.name + "/gamma").data());
    shift_.set_data_handle(ctx_.param(node_.name + "/beta").data());
    float* rm = ctx_.param(node_.name + "/running_mean").data();
    float* rv = ctx_.param(node_.name + "/running_var").data();
    if (!training) {
      rmean_.set_data_handle(rm);
      rvar_.set_data_handle(rv);
      Args args{{DNNL_ARG_SRC, src_},       {DNNL_ARG_DST, dst_},     {DNNL_ARG_MEAN, rmean_},
                {DNNL_ARG_VARIANCE, rvar_}, {DNNL_ARG_SCALE, scale_}, {DNNL_ARG_SHIFT, shift_}};
      ctx_.exec(inf_, args);
      return;
    }
    Args args{{DNNL_ARG_SRC, src_},      {DNNL_ARG_DST, dst_},     {DNNL_ARG_MEAN, mean_},
              {DNNL_ARG_VARIANCE, var_}, {DNNL_ARG_SCALE, scale_}, {DNNL_ARG_SHIFT, shift_}};
    if (fuse_relu_) args[DNNL_ARG_WORKSPACE] = ws_;
    ctx_.exec(fwd_, args);
    const float m = node_.bn().momentum;
    const double unbias =
        count_ > 1 ? static_cast<double>(count_) / static_cast<double>(count_ - 1) : 1.0;
    const float* bm = static_cast<const float*>(mean_.get_data_handle());
    const float* bv = static_cast<const float*>(var_.get_data_handle());
    for (int64_t c = 0; c < channels_; ++c) {
      rm[c] = (1.f - m) * rm[c] + m * bm[c];
      rv[c] = (1.f - m) * rv[c] + m * static_cast<float>(bv[c] * unbias);
    }
  }

  void bind_backward(const memory& diff_dst, const std::vector<memory>& diff_src) override {
    bwd_pd_ = dnnl::batch_normalization_backward::primitive_desc(
        {prop_kind::backward, diff_dst.get_desc(), src_.get_desc(), node_.bn().eps, flags_},
        ctx_.attr(), ctx_.eng, fwd_pd_);
    ctx_.reserve_scratchpad(bwd_pd_);
    ddst_ = Converted(ctx_, diff_dst, bwd_pd_.diff_dst_desc());
    // The gradients of gamma and beta are always needed; a diff_src nobody wants goes to scratch.
    const memory target =
        !diff_src.empty() && diff_src[0] ? diff_src[0] : memory(src_.get_desc(), ctx_.eng);
    dsrc_ = Delivered(ctx_, bwd_pd_.diff_src_desc(), target);
    dscale_ = memory(plain_desc({channels_}), ctx_.eng, nullptr);
    dshift_ = memory(plain_desc({channels_}), ctx_.eng, nullptr);
    bwd_ = dnnl::batch_normalization_backward(bwd_pd_);
  }

  void backward() override {
    ddst_.run(ctx_);
    dscale_.set_data_handle(ctx_.grad(node_.name + "/gamma").data());
    dshift_.set_data_handle(ctx_.grad(node_.name + "/beta").data());
    Args args{{DNNL_ARG_SRC, src_},
              {DNNL_ARG_MEAN, mean_},
              {DNNL_ARG_VARIANCE, var_},
              {DNNL_ARG_DIFF_DST, ddst_.mem()},
              {DNNL_ARG_SCALE, scale_},
              {DNNL_ARG_SHIFT, shift_},
              {DNNL_ARG_DIFF_SRC, dsrc_.work()},
              {DNNL_ARG_DIFF_SCALE, dscale_},
              {DNNL_ARG_DIFF_SHIFT, dshift_}};
    if (fuse_relu_) args[DNNL_ARG_WORKSPACE] = ws_;
    ctx_.exec(bwd_, args);
    dsrc_.run(ctx_);
  }

  bool backward_reads_src() const override { return true; }
  bool can_backward_in_place() const override { return true; }

 private:
  bool fuse_relu_;
  int64_t channels_ = 0, count_ = 0;
  flags flags_{};
  dnnl::batch_normalization_forward::primitive_desc fwd_pd_, inf_pd_;
  dnnl::batch_normalization_forward fwd_, inf_;
  memory src_, dst_, mean_, var_, ws_, scale_, shift_, rmean_, rvar_;
  dnnl::batch_normalization_backward::primitive_desc bwd_pd_;
  dnnl::batch_normalization_backward bwd_;
  Converted ddst_;
  Delivered dsrc_;
  memory dscale_, dshift_;
};

}  // namespace

std::unique_ptr<Layer> make_batch_norm(Context& ctx, const Node& n, bool fuse_relu) {
  return std::make_unique<BatchNormLayer>(ctx, n, fuse_relu);
}

}  // namespace pconv::train
