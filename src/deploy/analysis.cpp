// Reports of the layerwise information extraction, and weight layouts for non-pattern layers.
#include <algorithm>
#include <iomanip>
#include <sstream>

#include "deploy/ir.h"

namespace pconv::deploy {

namespace {

nlohmann::json mask_positions(uint16_t m) {
  nlohmann::json a = nlohmann::json::array();
  for (int t = 0; t < 16; ++t)
    if (m >> t & 1) a.push_back(t);
  return a;
}

const char* conv_kind_name(ConvKind k) {
  switch (k) {
    case ConvKind::Sparse:
      return "sparse";
    case ConvKind::SparseStrided:
      return "sparse_strided";
    case ConvKind::Generic:
      return "generic";
  }
  return "?";
}

// Kernels per thread under the generated code's static cyclic schedule (filter p -> thread p % T).
std::vector<int64_t> thread_load(const ConvPlan& P, int threads) {
  std::vector<int64_t> load(static_cast<size_t>(threads), 0);
  for (size_t p = 0; p < P.filter_order.size(); ++p)
    load[p % static_cast<size_t>(threads)] +=
        P.kernels_per_filter[static_cast<size_t>(P.filter_order[p])];
  return load;
}

// The weight bytes a conv takes in weights.bin's terms: the packed records, but for the convs
// every target stores dense (ConvKind::Generic: strided 1x1, generic), whose records (a channel
// word per weight for a 1x1) would overstate them.
int64_t stored_bytes(const Op& op) {
  return conv_kind(op) == ConvKind::Generic ? op.plan.dense_bytes : op.plan.packed_bytes();
}

}  // namespace

nlohmann::json analysis_json(const DeployModel& dm) {
  nlohmann::json layers = nlohmann::json::array();
  int64_t packed = 0, dense = 0, nz = 0, dm_macs = 0;
  for (const Op& op : dm.ops) {
    if (op.type != OpType::Conv) continue;
    const ConvPlan& P = op.plan;
    nlohmann::json L;
    L["name"] = op.name;
    L["source"] = op.source;
    L["shape"] = {{"in", {op.in_c, op.in_h, op.in_w}},
                  {"out", {op.c, op.h, op.w}},
                  {"k", op.k},
                  {"stride", op.stride},
                  {"pad", op.pad},
                  {"groups", op.groups}};
    L["kind"] = conv_kind_name(conv_kind(op));
    L["pruned"] = P.pruned;
    nlohmann::json pats = nlohmann::json::array();
    const size_t M = P.masks.size();
    for (size_t m = 0; m < M; ++m) {
      int64_t n = 0;
      for (size_t p = 0; p < P.filter_order.size(); ++p) n += P.counts[p * M + m];
      pats.push_back(
          {{"mask", P.masks[m]}, {"positions", mask_positions(P.masks[m])}, {"kernels", n}});
    }
    L["patterns"] = pats;
    L["kept_kernels"] = P.kept_kernels;
    L["total_kernels"] = P.total_kernels;
    L["connectivity_rate"] =
        P.kept_kernels ? static_cast<double>(P.total_kernels) / static_cast<double>(P.kept_kernels)
                       : 0.0;
    const auto mm = std::minmax_element(P.kernels_per_filter.begin(), P.kernels_per_filter.end());
    L["kernels_per_filter"] = {
        {"min", *mm.first}, {"max", *mm.second}, {"by_filter", P.kernels_per_filter}};
    L["filter_order"] = P.filter_order;
    L["permuted_output"] = !op.perm.empty();
    L["thread_kernels_2"] = thread_load(P, 2);
    L["nonzero_macs"] = P.nonzero_macs;
    L["dense_macs"] = P.dense_macs;
    L["packed_bytes"] = stored_bytes(op);
    L["dense_bytes"] = P.dense_bytes;
    layers.push_back(L);
    packed += stored_bytes(op);
    dense += P.dense_bytes;
    nz += P.nonzero_macs;
    dm_macs += P.dense_macs;
  }
  nlohmann::json lib = nlohmann::json::array();
  for (uint16_t m : dm.library) lib.push_back(mask_positions(m));
  return {{"model", dm.model_name},
          {"library", lib},
          {"conv_layers", layers},
          {"total",
           {{"packed_bytes", packed},
            {"dense_bytes", dense},
            {"nonzero_macs", nz},
            {"dense_macs", dm_macs}}}};
}

std::string analysis_table(const DeployModel& dm) {
  std::ostringstream os;
  os << std::left << std::setw(16) << "layer" << std::setw(20) << "in->out" << std::setw(6) << "pat"
     << std::setw(18) << "kept/total" << std::setw(10) << "k/filter" << std::setw(22)
     << "packed/dense KiB"
     << "nz MMAC\n";
  int64_t packed = 0, dense = 0, nz = 0;
  for (const Op& op : dm.ops) {
    if (op.type != OpType::Conv) continue;
    const ConvPlan& P = op.plan;
    const auto mm = std::minmax_element(P.kernels_per_filter.begin(), P.kernels_per_filter.end());
    std::ostringstream io, kt, kf, pd;
    io << op.in_c << "x" << op.in_h << "->" << op.c << "x" << op.h;
    kt << P.kept_kernels << "/" << P.total_kernels;
    kf << *mm.first << "-" << *mm.second;
    pd << stored_bytes(op) / 1024 << "/" << P.dense_bytes / 1024;
    os << std::left << std::setw(16) << op.name.substr(0, 15) << std::setw(20) << io.str()
       << std::setw(6) << P.masks.size() << std::setw(18) << kt.str() << std::setw(10) << kf.str()
       << std::setw(22) << pd.str() << std::fixed << std::setprecision(1)
       << static_cast<double>(P.nonzero_macs) / 1e6 << "\n";
    packed += stored_bytes(op);
    dense += P.dense_bytes;
    nz += P.nonzero_macs;
  }
  os << "total packed " << packed / 1024 << " KiB vs dense " << dense / 1024 << " KiB ("
     << std::setprecision(2)
     << (packed ? static_cast<double>(dense) / static_cast<double>(packed) : 0.0) << "x smaller), "
     << std::setprecision(1) << static_cast<double>(nz) / 1e6 << " M non-zero MACs\n";
  return os.str();
}

std::vector<float> linear_packed_weight(const DeployModel& dm, const Op& op) {
  const Op& src = dm.ops[static_cast<size_t>(op.inputs[0])];
  const std::vector<int> pos = position_of(src);
  const int64_t HW = static_cast<int64_t>(src.h) * src.w, in = src.c * HW;
  std::vector<float> w(op.weight.size());
  for (int o = 0; o < op.c; ++o)
    for (int c = 0; c < src.c; ++c)
      for (int64_t j = 0; j < HW; ++j)
        w[static_cast<size_t>(o * in + pos[static_cast<size_t>(c)] * HW + j)] =
            op.weight[static_cast<size_t>(o * in + c * HW + j)];
  return w;
}

std::vector<float> generic_conv_weight(const DeployModel& dm, const Op& op) {
  // Only identity output order is used for generic convs (plan keeps it), so only the input
  // positions move, and only for groups == 1.
  const Op& src = dm.ops[static_cast<size_t>(op.inputs[0])];
  const std::vector<int> pos = position_of(src);
  const std::vector<int> ord = channel_order(op);
  const int Ig = op.in_c / op.groups, KK = op.k * op.k;
  std::vector<float> w(op.weight.size());
  for (int p = 0; p < op.c; ++p) {
    const int o = ord[static_cast<size_t>(p)];
    for (int i = 0; i < Ig; ++i) {
      const int ip = op.groups == 1 ? pos[static_cast<size_t>(i)] : i;
      for (int t = 0; t < KK; ++t)
        w[(static_cast<size_t>(p) * Ig + ip) * KK + t] =
            op.weight[(static_cast<size_t>(o) * Ig + i) * KK + t];
    }
  }
  return w;
}

}  // namespace pconv::deploy
