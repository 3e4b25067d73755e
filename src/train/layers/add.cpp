// Residual add (oneDNN binary_add), optionally fused with the following ReLU (an eltwise post-op:
// one pass instead of two). Its backward is the identity on both inputs, which the Net routes
// itself (aliasing or accumulating); backward() only applies the fused ReLU's backward, in place
// on the output gradient, using dst (oneDNN's relu_use_dst_for_bwd).
#include "train/layers/layer.h"

namespace pconv::train {
namespace {

class AddLayer final : public Layer {
 public:
  AddLayer(Context& ctx, const Node& n, bool fuse_relu) : Layer(ctx, n), fuse_relu_(fuse_relu) {}

  memory::desc init_forward(const std::vector<memory::desc>& src, int64_t) override {
    PCONV_CHECK(src.size() == 2, where(), ": needs two inputs");
    PCONV_CHECK(src[0].dims() == src[1].dims(), where(), ": input shapes differ");
    src_desc_ = src;
    return src[0];  // either input may become src0 (in place); they get the same desc below
  }

  void bind_forward(const std::vector<memory>& src, const memory& dst) override {
    // oneDNN's binary runs in place only over src0: put the input dst aliases first.
    const bool swap = dst.get_data_handle() == src[1].get_data_handle();
    const memory& a = swap ? src[1] : src[0];
    const memory& b = swap ? src[0] : src[1];
    src0_ = a;
    src1_ = Converted(ctx_, b, a.get_desc());
    dst_ = dst;
    dnnl::primitive_attr attr = ctx_.attr();
    if (fuse_relu_) {
      dnnl::post_ops po;
      po.append_eltwise(1.f, dnnl::algorithm::eltwise_relu, 0.f, 0.f);
      attr.set_post_ops(po);
    }
    pd_ = dnnl::binary::primitive_desc(
        {dnnl::algorithm::binary_add, a.get_desc(), a.get_desc(), dst.get_desc()}, attr, ctx_.eng);
    ctx_.reserve_scratchpad(pd_);
    prim_ = dnnl::binary(pd_);
  }

  void forward(bool) override {
    src1_.run(ctx_);
    Args args{{DNNL_ARG_SRC_0, src0_}, {DNNL_ARG_SRC_1, src1_.mem()}, {DNNL_ARG_DST, dst_}};
    ctx_.exec(prim_, args);
  }

  void bind_backward(const memory& diff_dst, const std::vector<memory>&) override {
    if (!fuse_relu_) return;
    const auto alg = dnnl::algorithm::eltwise_relu_use_dst_for_bwd;
    const memory::desc d = dst_.get_desc();
    dnnl::eltwise_forward::primitive_desc hint(
        {dnnl::prop_kind::forward_training, alg, d, 0.f, 0.f}, ctx_.eng);
    relu_bwd_pd_ = dnnl::eltwise_backward::primitive_desc({alg, diff_dst.get_desc(), d, 0.f, 0.f},
                                                          ctx_.attr(), ctx_.eng, hint);
    ctx_.reserve_scratchpad(relu_bwd_pd_);
    PCONV_CHECK(relu_bwd_pd_.diff_src_desc() == diff_dst.get_desc(), where(),
                ": fused ReLU backward wants another layout");
    ddst_ = diff_dst;
    relu_bwd_ = dnnl::eltwise_backward(relu_bwd_pd_);
  }

  void backward() override {
    if (!fuse_relu_) return;
    Args args{{DNNL_ARG_DST, dst_}, {DNNL_ARG_DIFF_DST, ddst_}, {DNNL_ARG_DIFF_SRC, ddst_}};
    ctx_.exec(relu_bwd_, args);
  }

  bool backward_reads_src() const override { return false; }
  bool backward_reads_dst() const override { return fuse_relu_; }
  // oneDNN 2.6's jit binary gives wrong results in place (dst == src0) with an eltwise post-op
  // (checked: 344 of 800 outputs left negative), so the fused variant writes a fresh buffer; it
  // still saves the separate ReLU pass.
  bool can_forward_in_place() const override { return !fuse_relu_; }

 private:
  bool fuse_relu_;
  std::vector<memory::desc> src_desc_;
  dnnl::eltwise_backward::primitive_desc relu_bwd_pd_;
  dnnl::eltwise_backward relu_bwd_;
  memory ddst_;
  dnnl::binary::primitive_desc pd_;
  dnnl::binary prim_;
  memory src0_, dst_;
  Converted src1_;
};

}  // namespace

std::unique_ptr<Layer> make_add(Context& ctx, const Node& n, bool fuse_relu) {
  return std::make_unique<AddLayer>(ctx, n, fuse_relu);
}

}  // namespace pconv::train
