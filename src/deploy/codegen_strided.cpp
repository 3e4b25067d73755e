// Strided convs: stride-2 3x3 pattern convs (ResNet's down-sampling convs) and dense strided 1x1
// ones (its projection shortcuts). For the 3x3 ones the input is first split into its four
// phases (even/odd rows x even/odd columns, each a dense plane of the output's size plus one row
// and column), so every tap of every output pixel reads one phase at unit stride: a tile of R
// output rows x T vectors then keeps its accumulators in registers over all of a filter's
// kernels, as the stride-1 row kernel does. Where output rows are no whole number of vectors
// (flat), vectors run over the phase planes' pixels row after row and are stored scattered.
#include <algorithm>

#include "core/error.h"
#include "deploy/codegen_internal.h"

namespace pconv::deploy {

namespace {

// Output (y, x) reads input row 2y + dy (dy in -1..1) from phase row py = (dy == 0), row
// y + du of that phase (du = (dy == 1)); columns alike. Phase p = 2 * py + px holds input
// (2u + py - 1, 2v + px - 1) at (u, v).
struct PhaseTap {
  int phase, du, dv, j;
};

PhaseTap phase_tap(const Tap& tp) {
  const int py = tp.dy == 0 ? 1 : 0, px = tp.dx == 0 ? 1 : 0;
  return {2 * py + px, tp.dy == 1 ? 1 : 0, tp.dx == 1 ? 1 : 0, tp.j};
}

// Stores T vectors of accumulators (`acc`0, `acc`1, ..) activated to the pixels whose index from
// the plane's origin `e0` + lane is y * `row` + x, those with x < W and y < H only, at out + y * rs
// + x: through a buffer, one float at a time (the flat forms, whose vectors cross rows).
void emit_scatter_store(std::ostream& os, const Target& t, const Op& op, int T, int64_t row,
                        const std::string& e0, const std::string& acc, const std::string& out,
                        int64_t rs, const std::string& ind) {
  const int V = t.vec;
  os << ind << "{\n" << ind << "  alignas(64) float tmp[" << T * V << "];\n";
  for (int x = 0; x < T; ++x)
    os << ind << "  " << spell(t.store, {cat("tmp + ", x * V), vec_act(t, op.act, cat(acc, x))})
       << ";\n";
  os << ind << "  for (int j = 0; j < " << T * V << "; ++j) {\n";
  os << ind << "    const int e = " << e0 << " + j, y = e / " << row << ", x = e - y * " << row
     << ";\n";
  os << ind << "    if (x < " << op.w << " && y < " << op.h << ") " << out << "[(long)y * " << rs
     << " + x] = tmp[j];\n";
  os << ind << "  }\n" << ind << "}\n";
}

// One tile of R rows x T vectors at (y0, x0) of filter p (flat: one row of T vectors from phase
// index x0): accumulators from the bias, every kernel's taps from the phases (each phase vector
// loaded once for the rows and taps using it), activation, aligned stores (flat: scattered).
void emit_phase_tile(std::ostream& os, const Target& t, const Op& op, const Geom& go,
                     const StridedSchedule& s, int R, int T, const std::string& y0,
                     const std::string& x0, int* kernels) {
  const int V = t.vec;
  const int M = static_cast<int>(op.plan.masks.size());
  const std::string ind = "      ";
  os << "    {  // " << R << " x " << T << " at (" << y0 << ", " << x0 << ")\n";
  for (int r = 0; r < R; ++r)
    for (int x = 0; x < T; ++x)
      os << ind << t.vtype << " acc" << r << "_" << x << " = " << spell(t.set1, {"bias"}) << ";\n";
  os << ind << "const uint32_t* r = r0;\n";
  os << ind << "const float* qt = q + (" << y0 << ") * " << s.qw << " + (" << x0 << ");\n";
  for (int m = 0; m < M; ++m) {
    const std::vector<Tap> taps = mask_taps(op.plan.masks[static_cast<size_t>(m)], op.k);
    const int nt = static_cast<int>(taps.size());
    ++*kernels;
    os << ind << "// pattern " << m << ": mask 0x" << std::hex
       << op.plan.masks[static_cast<size_t>(m)] << std::dec << "\n";
    os << ind << "for (int n = cnt[" << m << "]; n > 0; --n, r += " << nt + 1 << ") {\n";
    const std::string in2 = ind + "  ";
    os << in2 << "const float* qc = qt + (long)r[0] * " << 4 * s.qp << ";\n";
    for (const Tap& tp : taps)
      os << in2 << "const " << t.vtype << " w" << tp.j << " = "
         << spell(t.set1, {spell(t.bits2f, {cat("r[", tp.j + 1, "]")})}) << ";\n";
    std::vector<PhaseTap> pts;
    for (const Tap& tp : taps) pts.push_back(phase_tap(tp));
    // Per phase row and column offset, one load per tile vector, every tap and row that uses it.
    for (int ph = 0; ph < 4; ++ph)
      for (int u = 0; u <= R; ++u)
        for (int dv = 0; dv <= 1; ++dv) {
          std::vector<PhaseTap> use;
          for (const PhaseTap& pt : pts)
            if (pt.phase == ph && pt.dv == dv && u - pt.du >= 0 && u - pt.du < R) use.push_back(pt);
          if (use.empty()) continue;
          for (int x = 0; x < T; ++x) {
            const std::string at =
                cat("qc + ", ph * s.qp + u * s.qw + static_cast<int64_t>(x) * V + dv);
            os << in2 << "{\n"
               << in2 << "  const " << t.vtype << " v = " << spell(t.loadu, {at}) << ";\n";
            for (const PhaseTap& pt : use) {
              const std::string a = cat("acc", u - pt.du, "_", x);
              os << in2 << "  " << a << " = " << spell(t.fma, {"v", cat("w", pt.j), a}) << ";\n";
            }
            os << in2 << "}\n";
          }
        }
    os << ind << "}\n";
  }
  if (s.flat) {
    emit_scatter_store(os, t, op, T, s.qw, x0, "acc0_", "ob", go.rs, ind);
  } else {
    os << ind << "float* out = ob + (" << y0 << ") * " << go.rs << " + (" << x0 << ");\n";
    emit_tile_store(os, t, op, go, R, T, ind);
  }
  os << "    }\n";
}

// The phase form: split, then per filter the tiles (full tiles in loops, the ragged last row
// block and column block as tiles of their own).
void emit_strided_phases(std::ostream& os, const Target& t, const Op& op, const Geom& gi,
                         const Geom& go, const StridedSchedule& s, const std::string& fn,
                         int64_t woff, int64_t boff, int* kernels) {
  const int V = t.vec;
  const int H = op.h, W = op.w, WV = s.flat ? 0 : W / V;
  os << "static void " << fn
     << "(const float* PC_RESTRICT in, float* PC_RESTRICT dst, const uint32_t* PC_RESTRICT wts, "
        "float* PC_RESTRICT q) {\n";
  // Input rows -1 .. 2H - 1 and columns -1 .. 2W - 1 at most: the zero border at the far end
  // (odd sizes) and the top and left; phase rows u = H of the even input rows and columns v = W of
  // the even columns are never read, so never written.
  os << "  PC_OMP_FOR\n  for (int c = 0; c < " << op.in_c << "; ++c) {\n";
  os << "    const float* ic = in + " << gi.org << " + (long)c * " << gi.ps << ";\n";
  os << "    float* qc = q + (long)c * " << 4 * s.qp << ";\n";
  for (int py = 0; py <= 1; ++py) {
    os << "    for (int u = 0; u < " << (py ? H : H + 1) << "; ++u) {  // input rows 2u"
       << (py ? "" : " - 1") << "\n";
    os << "      const float* ir = ic + (long)(2 * u" << (py ? "" : " - 1") << ") * " << gi.rs
       << ";\n";
    os << "      float* q0 = qc + " << 2 * py * s.qp << " + u * " << s.qw << ";\n";
    os << "      float* q1 = qc + " << (2 * py + 1) * s.qp << " + u * " << s.qw << ";\n";
    os << "      for (int v = 0; v <= " << W << "; ++v) q0[v] = ir[2 * v - 1];\n";
    os << "      for (int v = 0; v < " << W << "; ++v) q1[v] = ir[2 * v];\n";
    os << "    }\n";
  }
  os << "  }\n";
  os << "  PC_OMP_FOR_CYCLIC\n  for (int p = 0; p < " << op.c << "; ++p) {\n";
  os << "    const uint32_t* r0 = wts + " << woff << " + " << fn << "_off[p];\n";
  os << "    const int* cnt = " << fn << "_cnt + p * " << op.plan.masks.size() << ";\n";
  os << "    const float bias = pc_f(wts[" << boff << " + p]);\n";
  os << "    float* ob = dst + (long)p * " << go.ps << " + " << go.org << ";\n";
  const int TV = s.flat ? static_cast<int>(s.ev / V) : WV;  // vectors a tile row spans
  const int HR = s.flat ? 0 : H - H % s.R, WT = (TV - TV % s.T) * V;
  const int R2 = s.flat ? 0 : H % s.R, T2 = TV % s.T;
  auto row_block = [&](int R, const std::string& y0) {
    if (WT > 0) {
      os << "    for (int x0 = 0; x0 < " << WT << "; x0 += " << s.T * V << ")\n";
      emit_phase_tile(os, t, op, go, s, R, s.T, y0, "x0", kernels);
    }
    if (T2 > 0) emit_phase_tile(os, t, op, go, s, R, T2, y0, cat(WT), kernels);
  };
  if (HR > 0) {
    os << "    for (int y0 = 0; y0 < " << HR << "; y0 += " << s.R << ")\n    {\n";
    row_block(s.R, "y0");
    os << "    }\n";
  }
  if (R2 > 0) row_block(R2, cat(HR));
  if (s.flat) row_block(1, "0");
  os << "  }\n}\n\n";
}

}  // namespace

PointwiseSchedule pointwise_strided_schedule(const Op& op, const Target& t) {
  PointwiseSchedule s;
  const int V = t.vec;
  if (t.family == "opencl" || op.k != 1 || op.pad != 0 || op.groups != 1 || op.stride < 2) return s;
  s.ok = true;
  s.flat = op.w % V != 0;
  s.OB = std::min(4, op.c);
  s.np = (int64_t{op.h} * op.w + V - 1) / V * V;
  const int PV = static_cast<int>(s.np / V);  // pixel vectors
  for (int T = 1; T * s.OB <= t.acc_budget && T <= PV; ++T)
    if (PV % T == 0) s.T = T;
  return s;
}

// Dense 1x1 conv with stride S: the input pixels it reads gathered into the scratch as dense
// planes (channel, pixel), then tiles of OB filters x T pixel vectors, accumulators in registers
// over the channels; a vector of pixels lies in one output row where rows are whole vectors, and
// is scattered to the rows it covers otherwise (flat; the lanes past the map compute unused sums
// of what the plane's rounding holds).
void emit_pointwise_strided(std::ostream& os, const Target& t, const DeployModel& dm, const Plan& P,
                            size_t i, GenResult& res) {
  const Op& op = dm.ops[i];
  const Geom& gi = P.geom[static_cast<size_t>(op.inputs[0])];
  const Geom& go = P.geom[i];
  const PointwiseSchedule s = pointwise_strided_schedule(op, t);
  const int V = t.vec, C = op.in_c;
  const int64_t NP = s.np;  // pixels a gathered plane, rounded up to whole vectors
  const std::string fn = cat("L", i);
  os << "// " << op.source << ": dense 1x1 s" << op.stride << ", " << C << "x" << op.in_h << "x"
     << op.in_w << " -> " << op.c << "x" << op.h << "x" << op.w << ", tiles of " << s.OB
     << " filters x " << s.T << " vectors\n";
  os << "static void " << fn
     << "(const float* PC_RESTRICT in, float* PC_RESTRICT dst, const uint32_t* PC_RESTRICT wts, "
        "float* PC_RESTRICT q) {\n";
  os << "  PC_OMP_FOR\n  for (int c = 0; c < " << C << "; ++c) {\n";
  emit_dense_copy(os, gi, op.h, op.w, op.stride, "q", NP, "    ");
  os << "  }\n";
  os << "  const float* w = pc_fp(wts + " << P.woff[i] << ");\n";
  os << "  const float* b = pc_fp(wts + " << P.boff[i] << ");\n";
  const int blocks = (op.c + s.OB - 1) / s.OB, OB2 = op.c - (blocks - 1) * s.OB;
  os << "  PC_OMP_FOR\n  for (int ob = 0; ob < " << blocks << "; ++ob) {\n";
  os << "    const int o0 = ob * " << s.OB << ";\n";
  auto tile = [&](int OB, const std::string& ind) {
    os << ind << "for (int p0 = 0; p0 < " << NP << "; p0 += " << s.T * V << ") {\n";
    const std::string in2 = ind + "  ";
    for (int o = 0; o < OB; ++o)
      for (int x = 0; x < s.T; ++x)
        os << in2 << t.vtype << " acc" << o << "_" << x << " = "
           << spell(t.set1, {cat("b[o0 + ", o, "]")}) << ";\n";
    os << in2 << "for (int c = 0; c < " << C << "; ++c) {\n";
    os << in2 << "  const float* xc = q + (long)c * " << NP << " + p0;\n";
    for (int x = 0; x < s.T; ++x)
      os << in2 << "  const " << t.vtype << " v" << x << " = "
         << spell(t.loadu, {cat("xc + ", x * V)}) << ";\n";
    for (int o = 0; o < OB; ++o) {
      os << in2 << "  {\n"
         << in2 << "    const " << t.vtype
         << " wv = " << spell(t.set1, {cat("w[(long)(o0 + ", o, ") * ", C, " + c]")}) << ";\n";
      for (int x = 0; x < s.T; ++x) {
        const std::string a = cat("acc", o, "_", x);
        os << in2 << "    " << a << " = " << spell(t.fma, {cat("v", x), "wv", a}) << ";\n";
      }
      os << in2 << "  }\n";
    }
    os << in2 << "}\n";
    if (s.flat) {  // vectors cross rows
      for (int o = 0; o < OB; ++o)
        emit_scatter_store(os, t, op, s.T, op.w, "p0", cat("acc", o, "_"),
                           cat("(dst + (long)(o0 + ", o, ") * ", go.ps, " + ", go.org, ")"), go.rs,
                           in2);
      os << ind << "}\n";
      return;
    }
    for (int x = 0; x < s.T; ++x) {
      os << in2 << "{\n"
         << in2 << "  const int p = p0 + " << x * V << ", y = p / " << op.w << ", x = p % " << op.w
         << ";\n";
      for (int o = 0; o < OB; ++o)
        os << in2 << "  "
           << spell(t.store, {cat("dst + (long)(o0 + ", o, ") * ", go.ps, " + ", go.org, " + y * ",
                                  go.rs, " + x"),
                              vec_act(t, op.act, cat("acc", o, "_", x))})
           << ";\n";
      os << in2 << "}\n";
    }
    os << ind << "}\n";
  };
  if (OB2 == s.OB) {
    tile(s.OB, "    ");
  } else {
    os << "    if (ob < " << blocks - 1 << ") {\n";
    tile(s.OB, "      ");
    os << "    } else {\n";
    tile(OB2, "      ");
    os << "    }\n";
  }
  os << "  }\n}\n\n";
  res.layers.push_back({{"op", i},
                        {"name", op.name},
                        {"function", fn},
                        {"kind", "dense_1x1_strided"},
                        {"form", s.flat ? "gathered_flat" : "gathered"},
                        {"tile", {{"filters", s.OB}, {"vectors", s.T}}}});
}

StridedSchedule strided_schedule(const Op& op, const Target& t) {
  StridedSchedule s;
  const int V = t.vec;
  if (t.family == "opencl" || conv_kind(op) != ConvKind::SparseStrided) return s;
  s.ok = true;
  if (op.w % V != 0) {
    // Flat: vectors run over phase index u * qw + v, so a tap is one offset (du * qw + dv) for
    // every lane; the lanes at v = W and past the map compute what is never stored, and read
    // up to qw + 1 floats past the last vector: the planes get that much room.
    s.flat = true;
    s.qw = op.w + 1;
    s.ev = (int64_t{op.h} * s.qw + V - 1) / V * V;
    s.T = static_cast<int>(std::min<int64_t>(s.ev / V, t.acc_budget));
    s.qp = (s.ev + s.qw + 1 + V - 1) / V * V;
    return s;
  }
  const int WV = op.w / V;
  s.T = std::min({WV, t.max_tile_vecs, t.acc_budget});
  s.R = std::max(1, std::min(op.h, t.acc_budget / s.T));
  s.qw = (op.w + 1 + V - 1) / V * V;
  s.qp = int64_t{op.h + 1} * s.qw;
  return s;
}

int64_t strided_scratch_floats(const Op& op, const Target& t) {
  if (op.k == 1) {
    const PointwiseSchedule s = pointwise_strided_schedule(op, t);
    return s.ok ? int64_t{op.in_c} * s.np : 0;
  }
  const StridedSchedule s = strided_schedule(op, t);
  return s.ok ? int64_t{op.in_c} * 4 * s.qp : 0;
}

void emit_strided(std::ostream& os, const Target& t, const DeployModel& dm, const Plan& P, size_t i,
                  GenResult& res) {
  const Op& op = dm.ops[i];
  PCONV_CHECK(op.k == 3 && op.stride == 2 && op.pad == 1, "layer \"", op.name,
              "\": internal error: the strided pattern conv needs a 3x3 kernel, stride 2, pad 1");
  const Geom& gi = P.geom[static_cast<size_t>(op.inputs[0])];
  const Geom& go = P.geom[i];
  const int M = static_cast<int>(op.plan.masks.size());
  const std::string fn = cat("L", i);
  const StridedSchedule s = strided_schedule(op, t);
  PCONV_CHECK(s.ok, "layer \"", op.name, "\": internal error: no strided form for target ", t.name);
  std::vector<int64_t> offs(op.plan.filter_offset.begin(), op.plan.filter_offset.end());
  os << "static const int32_t " << fn << "_off[" << op.c << "] = {\n    " << array_lit(offs)
     << "};\n";
  os << "static const int " << fn << "_cnt[" << op.plan.counts.size() << "] = {\n    "
     << array_lit(op.plan.counts) << "};\n";
  os << "// " << op.source << ": sparse 3x3 s2 (input phases" << (s.flat ? ", flat" : "") << "), "
     << op.in_c << "x" << op.in_h << "x" << op.in_w << " -> " << op.c << "x" << op.h << "x" << op.w
     << ", " << M << " masks\n";
  emit_strided_phases(os, t, op, gi, go, s, fn, P.woff[i], P.boff[i], &res.pattern_kernels);
  res.layers.push_back({{"op", i},
                        {"name", op.name},
                        {"function", fn},
                        {"kind", "sparse_strided"},
                        {"masks", M},
                        {"form", s.flat ? "phases_flat" : "phases"},
                        {"tile", {{"rows", s.R}, {"vectors", s.T}}}});
}

}  // namespace pconv::deploy
