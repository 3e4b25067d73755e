#include "admm/mask.h"

#include "admm/projection.h"
#include "core/error.h"

namespace pconv::admm {

int64_t LayerMask::kept() const {
  int64_t n = 0;
  for (int8_t v : ids) n += v >= 0;
  return n;
}

std::vector<int64_t> LayerMask::histogram(int k) const {
  std::vector<int64_t> h(static_cast<size_t>(k), 0);
  for (int8_t v : ids)
    if (v >= 0 && v < k) ++h[static_cast<size_t>(v)];
  return h;
}

PruningState PatternMask::to_state(const nlohmann::json& info) const {
  PruningState st;
  st.library = library.masks();
  for (const auto& [name, lm] : layers) st.layer_ids[name] = lm.ids;
  st.info = info;
  return st;
}

PatternMask PatternMask::from_state(const PruningState& st, const Graph& g,
                                    const std::string& where) {
  PatternMask m;
  m.library = PatternLibrary::from_masks(st.library, where + ": /pruning/library");
  for (const auto& [name, ids] : st.layer_ids) {
    const std::string lw = cat(where, ": layer ", name);
    const int idx = g.find(name);
    PCONV_CHECK(idx >= 0, lw, ": no such layer in the graph");
    const Node& n = g.node(idx);
    PCONV_CHECK(n.kind == OpKind::Conv, lw, ": is a ", op_name(n.kind), ", not a conv");
    const ConvAttrs& a = n.conv();
    PCONV_CHECK(a.kernel_h == 3 && a.kernel_w == 3 && a.groups == 1, lw,
                ": pattern masks need a 3x3 conv with groups 1 (got ", a.kernel_h, "x", a.kernel_w,
                ", groups ", a.groups, ")");
    LayerMask lm;
    lm.out = a.out_channels;
    lm.in = g.node(n.inputs.at(0)).out.at(0);
    PCONV_CHECK(static_cast<int64_t>(ids.size()) == lm.out * lm.in, lw, ": ", ids.size(),
                " pattern ids for ", lm.out, "x", lm.in, " kernels");
    for (size_t j = 0; j < ids.size(); ++j)
      PCONV_CHECK(ids[j] >= -1 && ids[j] < m.library.size(), lw, ": kernel (", j / lm.in, ", ",
                  j % lm.in, ") has pattern id ", int(ids[j]), ", outside -1..",
                  m.library.size() - 1);
    lm.ids = ids;
    m.layers[name] = std::move(lm);
  }
  return m;
}

void apply_mask(const PatternMask& m, ParamMap& params) {
  for (const auto& [name, lm] : m.layers) {
    auto it = params.find(param_key(name, ParamRole::Weight));
    PCONV_CHECK(it != params.end(), "layer ", name, ": no weight to mask");
    const Tensor& w = it->second;
    PCONV_CHECK(w.rank() == 4 && w.dim(0) == lm.out && w.dim(1) == lm.in, "layer ", name,
                ": weight ", shape_str(w.shape()), " does not match the mask's ", lm.out, "x",
                lm.in, " kernels");
    apply_pattern_ids(it->second, lm.ids, m.library);
  }
}

}  // namespace pconv::admm
