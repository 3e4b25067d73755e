#include <omp.h>

#include "train/layers/layer.h"

namespace pconv::train {
// Small reorders (weights, biases, logits) run on one thread: an OpenMP parallel region costs a
// barrier, which dominates a copy of a few thousand floats and stalls badly when another process
// holds a core. 64 KiB of floats copy in a few microseconds.
void run_reorder(const dnnl::reorder& r, const dnnl::stream& s, memory& from, memory& to) {
  if (to.get_desc().get_size() <= (size_t{64} << 10)) {
    const int keep = omp_get_max_threads();
    omp_set_num_threads(1);
    r.execute(s, from, to);
    omp_set_num_threads(keep);
  } else {
    r.execute(s, from, to);
  }
}

void Context::reserve_scratchpad(const dnnl::primitive_desc_base& pd) {
  const size_t need = pd.scratchpad_desc().get_size();
  const size_t have = scratchpad ? scratchpad.get_desc().get_size() : 0;
  if (need > have) {
    scratchpad = memory(memory::desc({static_cast<memory::dim>(need)}, memory::data_type::u8,
                                     memory::format_tag::x),
                        eng);
  }
}

void Context::exec(const dnnl::primitive& p, Args& args) {
  if (scratchpad) args[DNNL_ARG_SCRATCHPAD] = scratchpad;
  p.execute(strm, args);
}

Tensor& Context::param(const std::string& key) {
  auto it = params->find(key);
  PCONV_CHECK(it != params->end(), "parameter ", key, " is missing from the ParamMap");
  return it->second;
}

Tensor& Context::grad(const std::string& key) {
  auto it = grads->find(key);
  PCONV_CHECK(it != grads->end(), "gradient ", key, " was never allocated");
  return it->second;
}

Converted::Converted(Context& ctx, const memory& have, const memory::desc& want) : in_(have) {
  if (have.get_desc() == want) {
    out_ = have;
  } else {
    out_ = memory(want, ctx.eng);
    reorder_ = dnnl::reorder(have, out_);
  }
}

void Converted::run(Context& ctx) {
  if (reorder_) run_reorder(reorder_, ctx.strm, in_, out_);
}

Delivered::Delivered(Context& ctx, const memory::desc& have, const memory& target)
    : target_(target) {
  if (have == target.get_desc()) {
    work_ = target;
  } else {
    work_ = memory(have, ctx.eng);
    reorder_ = dnnl::reorder(work_, target_);
  }
}

void Delivered::run(Context& ctx) {
  if (reorder_) run_reorder(reorder_, ctx.strm, work_, target_);
}

PlainParam::PlainParam(Context& ctx, const std::string& key, const memory::desc& plain,
                       const memory::desc& want)
    : key_(key), plain_(plain, ctx.eng, ctx.param(key).data()) {
  PCONV_CHECK(static_cast<int64_t>(plain.get_size()) == ctx.param(key).size() * 4, "parameter ",
              key, " has ", ctx.param(key).size(), " elements, the layer expects ",
              plain.get_size() / 4);
  if (plain == want) {
    out_ = plain_;
  } else {
    out_ = memory(want, ctx.eng);
    reorder_ = dnnl::reorder(plain_, out_);
  }
}

const memory& PlainParam::refresh(Context& ctx) {
  // The Tensor may have been reassigned (new buffer): always re-point the plain view.
  plain_.set_data_handle(ctx.param(key_).data());
  if (reorder_ && version_ != ctx.param_version) {
    run_reorder(reorder_, ctx.strm, plain_, out_);
    version_ = ctx.param_version;
  }
  return out_;
}

PlainGrad::PlainGrad(Context& ctx, const std::string& key, const memory::desc& plain,
                     const memory::desc& have)
    : key_(key), plain_(plain, ctx.eng, ctx.grad(key).data()) {
  if (plain == have) {
    work_ = plain_;
  } else {
    work_ = memory(have, ctx.eng);
    reorder_ = dnnl::reorder(work_, plain_);
  }
}

const memory& PlainGrad::target(Context& ctx) {
  plain_.set_data_handle(ctx.grad(key_).data());
  return work_;
}

void PlainGrad::deliver(Context& ctx) {
  if (reorder_) run_reorder(reorder_, ctx.strm, work_, plain_);
}

memory::dims to_dims(const Shape& s) {
  return memory::dims(s.begin(), s.end());
}

memory::desc plain_desc(const memory::dims& dims) {
  using tag = memory::format_tag;
  switch (dims.size()) {
    case 1:
      return {dims, memory::data_type::f32, tag::x};
    case 2:
      return {dims, memory::data_type::f32, tag::nc};
    case 3:
      return {dims, memory::data_type::f32, tag::ncw};
    case 4:
      return {dims, memory::data_type::f32, tag::nchw};
    case 5:
      return {dims, memory::data_type::f32, tag::goihw};
    default:
      throw Error(cat("no plain layout for a rank-", dims.size(), " tensor"));
  }
}

int64_t pad_right(int64_t in, int64_t k, int64_t s, int64_t pl, int64_t out) {
  return (out - 1) * s + k - in - pl;
}

}  // namespace pconv::train
