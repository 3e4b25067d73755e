// Fully connected layer over oneDNN's inner product. A {N,C,H,W} input (a Flatten is a no-op
// view) is consumed directly with {O,C,H,W} weights, which in plain oihw are exactly the
// caller's {out, in} matrix with in = C*H*W in PyTorch's flatten order.
#include "train/layers/layer.h"

namespace pconv::train {
namespace {

using dnnl::prop_kind;
using tag = memory::format_tag;
constexpr auto f32 = memory::data_type::f32;

class LinearLayer final : public Layer {
 public:
  using Layer::Layer;

  memory::desc init_forward(const std::vector<memory::desc>& src, int64_t batch) override {
    PCONV_CHECK(src.size() == 1, where(), ": needs one input");
    const auto d = src[0].dims();
    PCONV_CHECK(d.size() == 2 || d.size() == 4, where(), ": input must be {N,F} or {N,C,H,W}");
    const int64_t out = node_.linear().out_features;
    int64_t in = 1;
    for (size_t i = 1; i < d.size(); ++i) in *= d[i];
    const Tensor& w = ctx_.param(node_.name + "/weight");
    PCONV_CHECK(w.rank() == 2 && w.dim(0) == out && w.dim(1) == in, where(), ": weight ",
                shape_str(w.shape()), " does not match {", out, ", ", in, "}");
    wdims_ = d.size() == 4 ? memory::dims{out, d[1], d[2], d[3]} : memory::dims{out, in};
    memory::dims sdims = d;
    sdims[0] = batch;
    src_any_ = memory::desc(sdims, f32, tag::any);
    w_any_ = memory::desc(wdims_, f32, tag::any);
    b_any_ = node_.linear().bias ? memory::desc({out}, f32, tag::any) : memory::desc();
    dst_any_ = memory::desc({batch, out}, f32, tag::any);
    fwd_pd_ = dnnl::inner_product_forward::primitive_desc(
        {prop_kind::forward_training, src_any_, w_any_, b_any_, dst_any_}, ctx_.attr(), ctx_.eng);
    ctx_.reserve_scratchpad(fwd_pd_);
    return fwd_pd_.dst_desc();
  }

  void bind_forward(const std::vector<memory>& src, const memory& dst) override {
    src_ = Converted(ctx_, src[0], fwd_pd_.src_desc());
    w_ = PlainParam(ctx_, node_.name + "/weight", plain_desc(wdims_), fwd_pd_.weights_desc());
    if (node_.linear().bias)
      b_ = PlainParam(ctx_, node_.name + "/bias", plain_desc({node_.linear().out_features}),
                      fwd_pd_.bias_desc());
    dst_ = dst;
    fwd_ = dnnl::inner_product_forward(fwd_pd_);
  }

  void forward(bool) override {
    src_.run(ctx_);
    Args args{
        {DNNL_ARG_SRC, src_.mem()}, {DNNL_ARG_WEIGHTS, w_.refresh(ctx_)}, {DNNL_ARG_DST, dst_}};
    if (node_.linear().bias) args[DNNL_ARG_BIAS] = b_.refresh(ctx_);
    ctx_.exec(fwd_, args);
  }

  void bind_backward(const memory& diff_dst, const std::vector<memory>& diff_src) override {
    const bool bias = node_.linear().bias;
    bw_pd_ = dnnl::inner_product_backward_weights::primitive_desc(
        {src_any_, w_any_, b_any_, dst_any_}, ctx_.attr(), ctx_.eng, fwd_pd_);
    ctx_.reserve_scratchpad(bw_pd_);
    bw_src_ = Converted(ctx_, src_.mem(), bw_pd_.src_desc());
    bw_ddst_ = Converted(ctx_, diff_dst, bw_pd_.diff_dst_desc());
    dw_ = PlainGrad(ctx_, node_.name + "/weight", plain_desc(wdims_), bw_pd_.diff_weights_desc());
    if (bias)
      db_ = PlainGrad(ctx_, node_.name + "/bias", plain_desc({node_.linear().out_features}),
                      bw_pd_.diff_bias_desc());
    bw_ = dnnl::inner_product_backward_weights(bw_pd_);
    has_bd_ = !diff_src.empty() && static_cast<bool>(diff_src[0]);
    if (!has_bd_) return;
    bd_pd_ = dnnl::inner_product_backward_data::primitive_desc({src_any_, w_any_, dst_any_},
                                                               ctx_.attr(), ctx_.eng, fwd_pd_);
    ctx_.reserve_scratchpad(bd_pd_);
    bd_ddst_ = Converted(ctx_, diff_dst, bd_pd_.diff_dst_desc());
    bd_w_ = PlainParam(ctx_, node_.name + "/weight", plain_desc(wdims_), bd_pd_.weights_desc());
    bd_dsrc_ = Delivered(ctx_, bd_pd_.diff_src_desc(), diff_src[0]);
    bd_ = dnnl::inner_product_backward_data(bd_pd_);
  }

  void backward() override {
    bw_ddst_.run(ctx_);
    bw_src_.run(ctx_);
    Args wargs{{DNNL_ARG_SRC, bw_src_.mem()},
               {DNNL_ARG_DIFF_DST, bw_ddst_.mem()},
               {DNNL_ARG_DIFF_WEIGHTS, dw_.target(ctx_)}};
    if (node_.linear().bias) wargs[DNNL_ARG_DIFF_BIAS] = db_.target(ctx_);
    ctx_.exec(bw_, wargs);
    dw_.deliver(ctx_);
    if (node_.linear().bias) db_.deliver(ctx_);
    if (!has_bd_) return;
    bd_ddst_.run(ctx_);
    Args dargs{{DNNL_ARG_DIFF_DST, bd_ddst_.mem()},
               {DNNL_ARG_WEIGHTS, bd_w_.refresh(ctx_)},
               {DNNL_ARG_DIFF_SRC, bd_dsrc_.work()}};
    ctx_.exec(bd_, dargs);
    bd_dsrc_.run(ctx_);
  }

 private:
  memory::dims wdims_;
  memory::desc src_any_, w_any_, b_any_, dst_any_;
  dnnl::inner_product_forward::primitive_desc fwd_pd_;
  dnnl::inner_product_forward fwd_;
  Converted src_;
  PlainParam w_, b_;
  memory dst_;
  dnnl::inner_product_backward_weights::primitive_desc bw_pd_;
  dnnl::inner_product_backward_weights bw_;
  Converted bw_src_, bw_ddst_;
  PlainGrad dw_, db_;
  bool has_bd_ = false;
  dnnl::inner_product_backward_data::primitive_desc bd_pd_;
  dnnl::inner_product_backward_data bd_;
  Converted bd_ddst_;
  PlainParam bd_w_;
  Delivered bd_dsrc_;
};

}  // namespace

std::unique_ptr<Layer> make_linear(Context& ctx, const Node& n) {
  return std::make_unique<LinearLayer>(ctx, n);
}

}  // namespace pconv::train
