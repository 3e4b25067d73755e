// Max pooling (workspace kept for the backward), average pooling excluding padding from the
// divisor, and global average pooling ({C,H,W} -> {C,1,1}) over oneDNN.
#include "train/layers/layer.h"

namespace pconv::train {
namespace {

using dnnl::algorithm;
using dnnl::prop_kind;
using tag = memory::format_tag;

class PoolLayer final : public Layer {
 public:
  using Layer::Layer;

  memory::desc init_forward(const std::vector<memory::desc>& src, int64_t batch) override {
    PCONV_CHECK(src.size() == 1 && src[0].dims().size() == 4, where(),
                ": needs one {N,C,H,W} input");
    const auto d = src[0].dims();
    const int64_t c = d[1], ih = d[2], iw = d[3];
    if (node_.kind == OpKind::GlobalAvgPool) {
      alg_ = algorithm::pooling_avg_exclude_padding;
      kernel_ = {ih, iw};
      strides_ = {ih, iw};
      pl_ = pr_ = {0, 0};
    } else {
      const PoolAttrs& a = node_.pool();
      alg_ = node_.kind == OpKind::MaxPool ? algorithm::pooling_max
                                           : algorithm::pooling_avg_exclude_padding;
      kernel_ = {a.kernel, a.kernel};
      strides_ = {a.stride, a.stride};
      pl_ = {a.pad, a.pad};
      pr_ = {pad_right(ih, a.kernel, a.stride, a.pad, node_.out.at(1)),
             pad_right(iw, a.kernel, a.stride, a.pad, node_.out.at(2))};
    }
    const int64_t oh = node_.out.at(1), ow = node_.out.at(2);
    PCONV_CHECK(node_.out.at(0) == c, where(), ": output channels ", node_.out.at(0), " != input ",
                c);
    try {
      fwd_pd_ = dnnl::pooling_forward::primitive_desc(
          {prop_kind::forward_training, alg_, src[0],
           memory::desc({batch, c, oh, ow}, memory::data_type::f32, tag::any), strides_, kernel_,
           pl_, pr_},
          ctx_.attr(), ctx_.eng);
    } catch (const dnnl::error& e) {
      throw Error(cat(where(), ": oneDNN rejects the pooling (", e.what(), ")"));
    }
    ctx_.reserve_scratchpad(fwd_pd_);
    return fwd_pd_.dst_desc();
  }

  void bind_forward(const std::vector<memory>& src, const memory& dst) override {
    src_ = src[0];
    dst_ = dst;
    if (alg_ == algorithm::pooling_max) ws_ = memory(fwd_pd_.workspace_desc(), ctx_.eng);
    fwd_ = dnnl::pooling_forward(fwd_pd_);
  }

  void forward(bool) override {
    Args args{{DNNL_ARG_SRC, src_}, {DNNL_ARG_DST, dst_}};
    if (ws_) args[DNNL_ARG_WORKSPACE] = ws_;
    ctx_.exec(fwd_, args);
  }

  void bind_backward(const memory& diff_dst, const std::vector<memory>& diff_src) override {
    has_bwd_ = !diff_src.empty() && static_cast<bool>(diff_src[0]);
    if (!has_bwd_) return;
    bwd_pd_ = dnnl::pooling_backward::primitive_desc(
        {alg_, src_.get_desc(), dst_.get_desc(), strides_, kernel_, pl_, pr_}, ctx_.attr(),
        ctx_.eng, fwd_pd_);
    ctx_.reserve_scratchpad(bwd_pd_);
    ddst_ = Converted(ctx_, diff_dst, bwd_pd_.diff_dst_desc());
    dsrc_ = Delivered(ctx_, bwd_pd_.diff_src_desc(), diff_src[0]);
    bwd_ = dnnl::pooling_backward(bwd_pd_);
  }

  void backward() override {
    if (!has_bwd_) return;
    ddst_.run(ctx_);
    Args args{{DNNL_ARG_DIFF_DST, ddst_.mem()}, {DNNL_ARG_DIFF_SRC, dsrc_.work()}};
    if (ws_) args[DNNL_ARG_WORKSPACE] = ws_;
    ctx_.exec(bwd_, args);
    dsrc_.run(ctx_);
  }

  bool backward_reads_src() const override { return false; }

 private:
  algorithm alg_{};
  memory::dims kernel_, strides_, pl_, pr_;
  bool has_bwd_ = false;
  dnnl::pooling_forward::primitive_desc fwd_pd_;
  dnnl::pooling_forward fwd_;
  dnnl::pooling_backward::primitive_desc bwd_pd_;
  dnnl::pooling_backward bwd_;
  memory src_, dst_, ws_;
  Converted ddst_;
  Delivered dsrc_;
};

}  // namespace

std::unique_ptr<Layer> make_pool(Context& ctx, const Node& n) {
  return std::make_unique<PoolLayer>(ctx, n);
}

}  // namespace pconv::train
