// Residual add (oneDNN binary_add). Its backward is the identity on both inputs, so the Net
// routes the output gradient to the inputs itself (aliasing or accumulating); backward() is empty.
#include "train/layers/layer.h"

namespace pconv::train {
namespace {

class AddLayer final : public Layer {
 public:
  using Layer::Layer;

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
    pd_ = dnnl::binary::primitive_desc(
        {dnnl::algorithm::binary_add, a.get_desc(), a.get_desc(), dst.get_desc()}, ctx_.attr(),
        ctx_.eng);
    ctx_.reserve_scratchpad(pd_);
    prim_ = dnnl::binary(pd_);
  }

  void forward(bool) override {
    src1_.run(ctx_);
    Args args{{DNNL_ARG_SRC_0, src0_}, {DNNL_ARG_SRC_1, src1_.mem()}, {DNNL_ARG_DST, dst_}};
    ctx_.exec(prim_, args);
  }

  void bind_backward(const memory&, const std::vector<memory>&) override {}
  void backward() override {}

  bool backward_reads_src() const override { return false; }
  bool can_forward_in_place() const override { return true; }

 private:
  std::vector<memory::desc> src_desc_;
  dnnl::binary::primitive_desc pd_;
  dnnl::binary prim_;
  memory src0_, dst_;
  Converted src1_;
};

}  // namespace

std::unique_ptr<Layer> make_add(Context& ctx, const Node& n) {
  return std::make_unique<AddLayer>(ctx, n);
}

}  // namespace pconv::train
