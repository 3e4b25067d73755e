// conv2d over oneDNN: any kernel, stride, padding, groups (depthwise = groups == channels).
#include <algorithm>
#include <cstdlib>
#include <cstring>

#include "train/layers/layer.h"

namespace pconv::train {
namespace {

using dnnl::algorithm;
using dnnl::prop_kind;
using tag = memory::format_tag;
constexpr auto f32 = memory::data_type::f32;

// Winograd F(4x4, 3x3) (oneDNN's jit_wino_4x3) for 3x3 stride-1 dense convs with at least 64
// input and output channels on maps of at least 4x4: measured on VGG-16-CIFAR's layers at batch
// 128 it takes 0.5-0.75x the direct time in all three passes; with 3 or 16 input channels or 2x2
// maps it is 1.7-7x slower (docs/trainer-internals.md). PCONV_CONV_ALGO=direct|winograd forces one
// for experiments.
algorithm choose_algorithm(const ConvAttrs& a, int64_t ic, int64_t oh, int64_t ow) {
  if (const char* e = std::getenv("PCONV_CONV_ALGO")) {
    if (std::strcmp(e, "direct") == 0) return algorithm::convolution_direct;
    if (std::strcmp(e, "winograd") == 0) return algorithm::convolution_winograd;
  }
  const bool wino = a.kernel_h == 3 && a.kernel_w == 3 && a.stride_h == 1 && a.stride_w == 1 &&
                    a.groups == 1 && ic >= 64 && a.out_channels >= 64 && oh >= 4 && ow >= 4;
  return wino ? algorithm::convolution_winograd : algorithm::convolution_direct;
}

class ConvLayer final : public Layer {
 public:
  using Layer::Layer;

  memory::desc init_forward(const std::vector<memory::desc>& src, int64_t batch) override {
    PCONV_CHECK(src.size() == 1 && src[0].dims().size() == 4, where(),
                ": needs one {N,C,H,W} input");
    const ConvAttrs& a = node_.conv();
    const auto d = src[0].dims();
    const int64_t ic = d[1], ih = d[2], iw = d[3];
    const int64_t oc = a.out_channels, g = a.groups;
    PCONV_CHECK(g >= 1 && ic % g == 0 && oc % g == 0, where(), ": groups ", g,
                " must divide in_channels ", ic, " and out_channels ", oc);
    const int64_t oh = node_.out.at(1), ow = node_.out.at(2);
    wdims_ = g > 1 ? memory::dims{g, oc / g, ic / g, a.kernel_h, a.kernel_w}
                   : memory::dims{oc, ic, a.kernel_h, a.kernel_w};
    strides_ = {a.stride_h, a.stride_w};
    pl_ = {a.pad_h, a.pad_w};
    pr_ = {pad_right(ih, a.kernel_h, a.stride_h, a.pad_h, oh),
           pad_right(iw, a.kernel_w, a.stride_w, a.pad_w, ow)};
    src_any_ = memory::desc({batch, ic, ih, iw}, f32, tag::any);
    dst_any_ = memory::desc({batch, oc, oh, ow}, f32, tag::any);
    w_any_ = memory::desc(wdims_, f32, tag::any);
    b_any_ = a.bias ? memory::desc({oc}, f32, tag::any) : memory::desc();
    alg_ = choose_algorithm(a, ic, oh, ow);
    try {
      if (alg_ == algorithm::convolution_winograd) {
        try {
          fwd_pd_ = make_fwd_pd();
        } catch (const dnnl::error&) {  // not available for this problem or CPU
          alg_ = algorithm::convolution_direct;
        }
      }
      if (alg_ == algorithm::convolution_direct) fwd_pd_ = make_fwd_pd();
    } catch (const dnnl::error& e) {
      throw Error(cat(where(), ": oneDNN rejects the convolution (", e.what(), ")"));
    }
    ctx_.reserve_scratchpad(fwd_pd_);
    return fwd_pd_.dst_desc();
  }

  dnnl::convolution_forward::primitive_desc make_fwd_pd() const {
    dnnl::convolution_forward::desc desc(dnnl::prop_kind::forward_training, alg_, src_any_, w_any_,
                                         b_any_, dst_any_, strides_, pl_, pr_);
    return dnnl::convolution_forward::primitive_desc(desc, ctx_.attr(), ctx_.eng);
  }

  void bind_forward(const std::vector<memory>& src, const memory& dst) override {
    src_ = Converted(ctx_, src[0], fwd_pd_.src_desc());
    w_ = PlainParam(ctx_, node_.name + "/weight", plain_desc(wdims_), fwd_pd_.weights_desc());
    if (node_.conv().bias)
      b_ = PlainParam(ctx_, node_.name + "/bias", plain_desc({node_.conv().out_channels}),
                      fwd_pd_.bias_desc());
    dst_ = dst;
    fwd_ = dnnl::convolution_forward(fwd_pd_);
  }

  void forward(bool) override {
    src_.run(ctx_);
    Args args{
        {DNNL_ARG_SRC, src_.mem()}, {DNNL_ARG_WEIGHTS, w_.refresh(ctx_)}, {DNNL_ARG_DST, dst_}};
    if (node_.conv().bias) args[DNNL_ARG_BIAS] = b_.refresh(ctx_);
    ctx_.exec(fwd_, args);
  }

  void bind_backward(const memory& diff_dst, const std::vector<memory>& diff_src) override {
    gemm_bw_ = node_.conv().groups == 1 && dst_any_.dims()[2] * dst_any_.dims()[3] <= 4 &&
               !std::getenv("PCONV_CONV_ALGO");
    if (gemm_bw_) {
      bw_src_ = Converted(ctx_, src_.mem(), memory::desc(src_any_.dims(), f32, tag::nhwc));
      bw_ddst_ = Converted(ctx_, diff_dst, memory::desc(dst_any_.dims(), f32, tag::nhwc));
      taps_.assign(static_cast<size_t>(numel(Shape(wdims_.begin(), wdims_.end()))), 0.f);
    } else {
      bind_backward_weights(diff_dst);
    }
    has_bd_ = !diff_src.empty() && static_cast<bool>(diff_src[0]);
    if (!has_bd_) return;
    dnnl::convolution_backward_data::desc ddesc(alg_, src_any_, w_any_, dst_any_, strides_, pl_,
                                                pr_);
    bd_pd_ = dnnl::convolution_backward_data::primitive_desc(ddesc, ctx_.attr(), ctx_.eng, fwd_pd_);
    ctx_.reserve_scratchpad(bd_pd_);
    bd_ddst_shared_ = bd_pd_.diff_dst_desc() == bw_ddst_.mem().get_desc();
    bd_ddst_ = bd_ddst_shared_ ? bw_ddst_ : Converted(ctx_, diff_dst, bd_pd_.diff_dst_desc());
    bd_w_shared_ = bd_pd_.weights_desc() == fwd_pd_.weights_desc();
    if (!bd_w_shared_)
      bd_w_ = PlainParam(ctx_, node_.name + "/weight", plain_desc(wdims_), bd_pd_.weights_desc());
    bd_dsrc_ = Delivered(ctx_, bd_pd_.diff_src_desc(), diff_src[0]);
    bd_ = dnnl::convolution_backward_data(bd_pd_);
  }

  void bind_backward_weights(const memory& diff_dst) {
    const bool bias = node_.conv().bias;
    dnnl::convolution_backward_weights::desc wdesc(alg_, src_any_, w_any_, b_any_, dst_any_,
                                                   strides_, pl_, pr_);
    bw_pd_ =
        dnnl::convolution_backward_weights::primitive_desc(wdesc, ctx_.attr(), ctx_.eng, fwd_pd_);
    ctx_.reserve_scratchpad(bw_pd_);
    bw_src_ = Converted(ctx_, src_.mem(), bw_pd_.src_desc());
    bw_ddst_ = Converted(ctx_, diff_dst, bw_pd_.diff_dst_desc());
    dw_ = PlainGrad(ctx_, node_.name + "/weight", plain_desc(wdims_), bw_pd_.diff_weights_desc());
    if (bias)
      db_ = PlainGrad(ctx_, node_.name + "/bias", plain_desc({node_.conv().out_channels}),
                      bw_pd_.diff_bias_desc());
    bw_ = dnnl::convolution_backward_weights(bw_pd_);
  }

  // Backward weights on maps of at most 4 output pixels (VGG's 2x2 stage): oneDNN's direct kernel
  // runs at a fraction of its usual speed there, while the whole reduction is a handful of GEMMs:
  // for each tap (u, v) and each output pixel (y, x) whose input pixel is in bounds,
  // dW[:, :, u, v] += dY[:, :, y, x]^T X[:, :, y', x'], each an (out x N) (N x in) product.
  void backward_weights_gemm() {
    bw_ddst_.run(ctx_);
    bw_src_.run(ctx_);
    const ConvAttrs& a = node_.conv();
    const auto sd = src_any_.dims(), dd = dst_any_.dims();
    const int64_t n = sd[0], ic = sd[1], ih = sd[2], iw = sd[3];
    const int64_t oc = dd[1], oh = dd[2], ow = dd[3];
    const float* x = static_cast<const float*>(bw_src_.mem().get_data_handle());
    const float* dy = static_cast<const float*>(bw_ddst_.mem().get_data_handle());
    float* taps = taps_.data();  // [kh][kw][oc][ic]
    for (int u = 0; u < a.kernel_h; ++u)
      for (int v = 0; v < a.kernel_w; ++v) {
        float* t = taps + (int64_t{u} * a.kernel_w + v) * oc * ic;
        bool first = true;
        for (int64_t y = 0; y < oh; ++y)
          for (int64_t xx = 0; xx < ow; ++xx) {
            const int64_t yi = y * a.stride_h - a.pad_h + u, xi = xx * a.stride_w - a.pad_w + v;
            if (yi < 0 || yi >= ih || xi < 0 || xi >= iw) continue;
            dnnl::sgemm('T', 'N', oc, ic, n, 1.f, dy + (y * ow + xx) * oc, oh * ow * oc,
                        x + (yi * iw + xi) * ic, ih * iw * ic, first ? 0.f : 1.f, t, ic);
            first = false;
          }
        if (first) std::fill(t, t + oc * ic, 0.f);
      }
    Tensor& dw = ctx_.grad(node_.name + "/weight");
    const int64_t kk = int64_t{a.kernel_h} * a.kernel_w;
#pragma omp parallel for schedule(static)
    for (int64_t o = 0; o < oc; ++o)
      for (int64_t i = 0; i < ic; ++i)
        for (int64_t k = 0; k < kk; ++k) dw[(o * ic + i) * kk + k] = taps[(k * oc + o) * ic + i];
    if (a.bias) {
      Tensor& db = ctx_.grad(node_.name + "/bias");
      for (int64_t o = 0; o < oc; ++o) db[o] = 0.f;
      for (int64_t r = 0; r < n * oh * ow; ++r)
        for (int64_t o = 0; o < oc; ++o) db[o] += dy[r * oc + o];
    }
  }

  void backward() override {
    if (gemm_bw_) {
      backward_weights_gemm();
    } else {
      backward_weights();
    }
    if (!has_bd_) return;
    if (!bd_ddst_shared_) bd_ddst_.run(ctx_);
    Args dargs{{DNNL_ARG_DIFF_DST, bd_ddst_.mem()},
               {DNNL_ARG_WEIGHTS, bd_w_shared_ ? w_.refresh(ctx_) : bd_w_.refresh(ctx_)},
               {DNNL_ARG_DIFF_SRC, bd_dsrc_.work()}};
    ctx_.exec(bd_, dargs);
    bd_dsrc_.run(ctx_);
  }

  void backward_weights() {
    bw_ddst_.run(ctx_);
    bw_src_.run(ctx_);
    Args wargs{{DNNL_ARG_SRC, bw_src_.mem()},
               {DNNL_ARG_DIFF_DST, bw_ddst_.mem()},
               {DNNL_ARG_DIFF_WEIGHTS, dw_.target(ctx_)}};
    if (node_.conv().bias) wargs[DNNL_ARG_DIFF_BIAS] = db_.target(ctx_);
    ctx_.exec(bw_, wargs);
    dw_.deliver(ctx_);
    if (node_.conv().bias) db_.deliver(ctx_);
  }

 private:
  bool gemm_bw_ = false;
  std::vector<float> taps_;
  algorithm alg_ = algorithm::convolution_direct;
  memory::dims wdims_, strides_, pl_, pr_;
  memory::desc src_any_, dst_any_, w_any_, b_any_;
  dnnl::convolution_forward::primitive_desc fwd_pd_;
  dnnl::convolution_forward fwd_;
  Converted src_;
  PlainParam w_, b_;
  memory dst_;

  dnnl::convolution_backward_weights::primitive_desc bw_pd_;
  dnnl::convolution_backward_weights bw_;
  Converted bw_src_, bw_ddst_;
  PlainGrad dw_, db_;
  bool has_bd_ = false, bd_ddst_shared_ = false, bd_w_shared_ = false;
  dnnl::convolution_backward_data::primitive_desc bd_pd_;
  dnnl::convolution_backward_data bd_;
  Converted bd_ddst_;
  PlainParam bd_w_;
  Delivered bd_dsrc_;
};

}  // namespace

std::unique_ptr<Layer> make_conv(Context& ctx, const Node& n) {
  return std::make_unique<ConvLayer>(ctx, n);
}

}  // namespace pconv::train
