// The channel-lanes form of dense 3x3 convs with few input channels (an image's first conv): its
// test, its weights and its emitter. See use_channel_lanes in codegen_internal.h.
#include <cstring>
#include <ostream>
#include <string>
#include <vector>

#include "deploy/codegen_internal.h"

namespace pconv::deploy {

bool use_channel_lanes(const Op& op, const Target& t) {
  if (t.transpose.empty() || op.type != OpType::Conv || conv_kind(op) != ConvKind::Sparse ||
      op.k != 3 || op.groups != 1 || op.in_c > t.lanes_max_in_c || t.lanes_max_in_c <= 0 ||
      op.c % t.vec != 0 || op.plan.masks.size() != 1)
    return false;
  // Dense: every filter keeps every channel with all 9 taps, so a weight vector over filters has
  // no holes.
  return popcount9(op.plan.masks[0]) == 9 && op.plan.kept_kernels == int64_t{op.c} * op.in_c;
}

bool lanes_zero_border(const Op& op, const Geom& go, const Target& t) {
  return use_channel_lanes(op, t) && op.w % t.vec == 0 && go.rs % t.vec == 0 &&
         go.org == go.rs + t.vec && go.rs >= op.w + 2 * t.vec;
}

std::vector<float> channel_lane_weights(const Op& op, const Target& t) {
  const int V = t.vec, K2 = op.k * op.k;
  std::vector<float> w(static_cast<size_t>(op.c) * op.in_c * K2, 0.0f);
  for (int p = 0; p < op.c; ++p) {  // positions: the reorder is folded in like the row kernel's
    const uint32_t* r = op.plan.words.data() + op.plan.filter_offset[static_cast<size_t>(p)];
    for (int n = op.plan.counts[static_cast<size_t>(p)]; n > 0; --n, r += K2 + 1)
      for (int j = 0; j < K2; ++j) {
        float v;
        std::memcpy(&v, &r[1 + j], 4);
        // [filter block][channel][tap][lane = filter in the block]
        w[((static_cast<size_t>(p / V) * op.in_c + r[0]) * K2 + j) * V + p % V] = v;
      }
  }
  return w;
}

namespace {

// One tile: V pixels of row y x the V filters of one block, in V accumulators (lane = filter).
// Each input pixel is broadcast from memory into its FMA (no shifts), then the tile is transposed
// so each vector holds one filter's V pixels, and stored to its plane.
void emit_lane_tile(std::ostream& os, const Target& t, const Op& op, const Geom& gi, const Geom& go,
                    const std::string& name, int pixels) {
  const int V = t.vec;
  const std::vector<Tap> taps = mask_taps(op.plan.masks[0], op.k);
  os << "static inline void " << name
     << "(const float* PC_RESTRICT ip, float* PC_RESTRICT op, const float* PC_RESTRICT w, "
     << t.vtype << " b) {\n";
  os << "  " << t.vtype << " a[" << V << "];\n";
  for (int p = 0; p < V; ++p) os << "  a[" << p << "] = b;\n";
  for (int ci = 0; ci < op.in_c; ++ci)
    for (const Tap& tp : taps) {
      os << "  {\n    const " << t.vtype << " wv = "
         << spell(t.loadu, {cat("w + ", (ci * static_cast<int>(taps.size()) + tp.j) * V)}) << ";\n";
      for (int p = 0; p < V; ++p) {
        const int64_t off = ci * gi.ps + tp.dy * gi.rs + tp.dx + p;
        os << "    a[" << p << "] = "
           << spell(t.fma, {"wv", spell(t.set1, {cat("ip[", off, "]")}), cat("a[", p, "]")})
           << ";\n";
      }
      os << "  }\n";
    }
  os << "  " << spell(t.transpose, {"a"}) << ";\n";
  const bool staged = pixels < V && t.mask_storeu.empty();  // a ragged tile without masks
  if (staged) os << "  alignas(64) float s[" << V << "];\n";
  for (int f = 0; f < V; ++f) {
    const std::string v = vec_act(t, op.act, cat("a[", f, "]"));
    const std::string at = cat("op + ", static_cast<int64_t>(f) * go.ps);
    if (staged)
      os << "  " << spell(t.store, {"s", v}) << ";\n  std::memcpy(" << at << ", s, " << pixels * 4
         << ");\n";
    else
      os << "  "
         << (pixels == V ? spell(t.store, {at, v})
                         : spell(t.mask_storeu, {at, hex_mask((1u << pixels) - 1), v}))
         << ";\n";
  }
  os << "}\n\n";
}

}  // namespace

void emit_channel_lanes(std::ostream& os, const Target& t, const DeployModel& dm, const Plan& P,
                        size_t i, GenResult& res) {
  const Op& op = dm.ops[i];
  const Geom& gi = P.geom[static_cast<size_t>(op.inputs[0])];
  const Geom& go = P.geom[i];
  const int V = t.vec, NB = op.c / V, XT = op.w / V, TR = op.w % V;
  const std::string fn = cat("L", i);
  if (XT > 0) emit_lane_tile(os, t, op, gi, go, fn + "_tile", V);
  if (TR > 0) emit_lane_tile(os, t, op, gi, go, fn + "_tail", TR);
  os << "// " << op.source << ": dense " << op.k << "x" << op.k
     << " s1, lanes over output channels, " << op.in_c << "x" << op.in_h << "x" << op.in_w << " -> "
     << op.c << "x" << op.h << "x" << op.w << ", " << NB << " blocks of " << V << " filters\n";
  os << "static void " << fn
     << "(const float* PC_RESTRICT in, float* PC_RESTRICT out, const uint32_t* PC_RESTRICT wts) "
        "{\n";
  os << "  PC_OMP_FOR\n  for (int y = 0; y < " << op.h << "; ++y)\n";
  os << "    for (int fb = 0; fb < " << NB << "; ++fb) {\n";
  os << "      const float* PC_RESTRICT w = pc_fp(wts + " << P.woff[i] << ") + fb * "
     << op.in_c * op.k * op.k * V << ";\n";
  os << "      const " << t.vtype
     << " b = " << spell(t.loadu, {cat("pc_fp(wts + ", P.boff[i], ") + fb * ", V)}) << ";\n";
  os << "      const float* ip = in + " << gi.org << " + (long)y * " << gi.rs << ";\n";
  os << "      float* op = out + (long)fb * " << static_cast<int64_t>(V) * go.ps << " + " << go.org
     << " + (long)y * " << go.rs << ";\n";
  if (XT > 0)
    os << "      for (int x0 = 0; x0 < " << XT * V << "; x0 += " << V << ") " << fn
       << "_tile(ip + x0, op + x0, w, b);\n";
  if (TR > 0)
    os << "      " << fn << "_tail(ip + " << XT * V << ", op + " << XT * V << ", w, b);\n";
  if (lanes_zero_border(op, go, t)) {
    // The border of the rows just written, in the same pass: their left and right margins, and
    // the rows above the first and below the last. Those lines are then written while the
    // FMAs run instead of in a pass of their own (VGG-16/32's first conv: 37 -> 26 us with the
    // pass dropped).
    const std::string z = t.zero;
    os << "      for (int f = 0; f < " << V << "; ++f) {\n";
    os << "        float* of = op + (long)f * " << go.ps << ";\n";
    os << "        " << spell(t.store, {cat("of - ", V), z}) << ";\n";
    for (int64_t x = op.w; x < go.rs - V; x += V)  // the right margin (and any row padding)
      os << "        " << spell(t.store, {cat("of + ", x), z}) << ";\n";
    for (const auto& [cond, row] : {std::pair<std::string, int64_t>{"y == 0", -go.rs - V},
                                    {cat("y == ", op.h - 1), go.rs - V}}) {
      os << "        if (" << cond << ")\n";
      os << "          for (int x = 0; x < " << go.rs << "; x += " << V << ") "
         << spell(t.store, {cat("of + ", row, " + x"), z}) << ";\n";
    }
    os << "      }\n";
  }
  os << "    }\n}\n\n";
  res.layers.push_back({{"op", i},
                        {"name", op.name},
                        {"function", fn},
                        {"kind", "dense_channel_lanes"},
                        {"writes_border", lanes_zero_border(op, go, t)},
                        {"filter_blocks", NB},
                        {"vec", V}});
}

}  // namespace pconv::deploy
