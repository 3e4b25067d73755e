// The OpenCL dialect of the generator: one specialised OpenCL C kernel per pattern conv (masks,
// shapes, strides and offsets baked in as constants), the fixed kernels of opencl_ops.cl for every
// other layer, and the launch list that the host runtime (opencl_host.cpp) replays. The memory
// plan, weight file and filter order are the core's (make_plan, plan_convs); only the kernel text
// and the host side differ from the C dialect.
//
// Schedule of a pattern conv: work-item (t, p) computes a tile of R output rows x T columns of
// filter position p in private registers. Per kept kernel it loads each input value the tile
// needs once and feeds every tap and output row that uses it (load redundancy elimination): a
// 3x3 pattern over a 2x4 tile loads at most 4 rows x 6 values for 4 taps x 8 outputs. Work-groups
// are tiles of neighbouring filter positions, which the IR's filter kernel reorder made similar,
// so the work-items of a group run loops of equal trip counts (balanced, little divergence).
#include "deploy/opencl_codegen.h"

#include <algorithm>
#include <climits>
#include <set>
#include <sstream>

#include "core/error.h"

namespace pconv::deploy {

namespace {

// Work-items per work-group: 64 is a multiple of every GPU's SIMD width (NVIDIA 32, Adreno 64/128
// fibers per wave at full occupancy pairs, Mali 4-16) and below every device's maximum.
constexpr int kWorkGroup = 64;
// Columns per work-item tile; rows = the target's accumulator budget / columns (opencl: 8 / 4 = 2
// rows). A 2x4 tile of a 3x3 pattern reads 4 rows x 6 values for 32 FMAs, where a 1x8 tile reads
// 3 x 10 for the same work; 8 accumulators + 6 row values + 4 weights stay well inside the 64+
// registers a GPU work-item has at full occupancy.
constexpr int kTileCols = 4;

int64_t round_up(int64_t x, int64_t m) {
  return (x + m - 1) / m * m;
}

ClArg I(int64_t v) {
  return {ClArg::Int, v};
}
const ClArg kArena{ClArg::Arena, 0}, kWeights{ClArg::Weights, 0}, kTables{ClArg::Tables, 0};

struct View {
  int64_t o = 0, ps = 1, rs = 1;  // element (0, 0, 0), plane and row strides
  int c = 0, h = 1, w = 1;
};

class Emitter {
 public:
  Emitter(const DeployModel& dm, const Target& t, const Plan& P, GenResult& res)
      : dm_(dm), t_(t), P_(P), res_(res), users_(dm.ops.size()) {
    for (size_t j = 0; j < dm.ops.size(); ++j)
      for (int x : dm.ops[j].inputs) users_[static_cast<size_t>(src_of(x))].push_back(j);
  }

  ClHostPlan run(std::ostream& cl) {
    ClHostPlan hp;
    PCONV_CHECK(P_.arena_floats < INT_MAX && static_cast<int64_t>(P_.words.size()) < INT_MAX,
                "model \"", dm_.model_name,
                "\": target opencl: arena or weights exceed 2^31 floats (int indexing)");
    hp.arena_floats = P_.arena_floats;
    hp.weight_words = P_.words.size();
    hp.weight_sum = weight_checksum(P_.words);
    std::vector<ClLaunch>& L = hp.launches;
    const View vin = view(0);
    hp.input_floats = static_cast<int64_t>(vin.c) * vin.h * vin.w;
    L.push_back(ew(
        "pc_put", "input", hp.input_floats,
        {{ClArg::Input, 0}, kArena, I(vin.o), I(vin.ps), I(vin.rs), I(vin.c), I(vin.h), I(vin.w)}));
    border(0, L);
    for (size_t i = 1; i < dm_.ops.size(); ++i) {
      const Op& op = dm_.ops[i];
      if (op.type == OpType::Flatten) continue;
      const size_t first = L.size();
      emit_op(cl, i, L);
      border(i, L);
      for (size_t l = first; l < L.size(); ++l)
        L[l].layer = static_cast<int>(hp.layer_names.size());
      hp.layer_names.push_back(op.name);
      hp.layer_ops.push_back(static_cast<int>(i));
    }
    const View vo = view(dm_.output);
    hp.output_floats = static_cast<int64_t>(vo.c) * vo.h * vo.w;
    const size_t os = static_cast<size_t>(src_of(dm_.output));
    if (P_.geom[os].flat) {
      hp.output_arena_offset = vo.o;
    } else {
      L.push_back(
          ew("pc_get", "output", hp.output_floats,
             {kArena, {ClArg::Output, 0}, I(vo.o), I(vo.ps), I(vo.rs), I(vo.c), I(vo.h), I(vo.w)}));
    }
    hp.tables = tables_;
    return hp;
  }

 private:
  const DeployModel& dm_;
  const Target& t_;
  const Plan& P_;
  GenResult& res_;
  std::vector<std::vector<size_t>> users_;
  std::vector<int32_t> tables_;  // ClHostPlan::tables

  int src_of(int x) const { return through_flattens(dm_, x); }
  View view(int x) const {
    const size_t s = static_cast<size_t>(src_of(x));
    const Geom& g = P_.geom[s];
    View v;
    v.o = P_.slot_off[static_cast<size_t>(P_.slot[s])] + g.org;
    v.ps = g.ps;
    v.rs = g.rs;
    v.c = g.c;
    v.h = g.flat ? 1 : g.h;
    v.w = g.flat ? 1 : g.w;
    return v;
  }
  static ClLaunch ew(const std::string& k, const std::string& layer, int64_t n,
                     std::vector<ClArg> args) {
    ClLaunch l;
    l.kernel = k;
    l.what = layer;
    l.dims = 1;
    l.global[0] = round_up(std::max<int64_t>(n, 1), kWorkGroup);
    l.local[0] = kWorkGroup;
    l.args = std::move(args);
    return l;
  }

  // Pattern kernels read the border of their input as padding; arena slots are reused, so the
  // border of every tensor that one reads is zeroed after it is written.
  void border(size_t i, std::vector<ClLaunch>& L) const {
    const Geom& g = P_.geom[i];
    if (g.flat) return;
    bool need = false;
    for (size_t u : users_[i]) {
      const Op& c = dm_.ops[u];
      need |= c.type == OpType::Conv && conv_kind(c) != ConvKind::Generic;
    }
    if (!need) return;
    const int64_t base = P_.slot_off[static_cast<size_t>(P_.slot[i])];
    L.push_back(ew("pc_zero_border", dm_.ops[i].name + " (border)", g.c * g.ps,
                   {kArena, I(base), I(g.c), I(g.h), I(g.w), I(g.ps), I(g.rs), I(g.org % g.rs)}));
  }

  void emit_op(std::ostream& cl, size_t i, std::vector<ClLaunch>& L) {
    const Op& op = dm_.ops[i];
    const View vi = view(op.inputs[0]), vo = view(static_cast<int>(i));
    const int64_t n = static_cast<int64_t>(vo.c) * vo.h * vo.w;
    const std::string& who = op.source.empty() ? op.name : op.source;
    const int64_t act = op.act == Act::None ? 0 : op.act == Act::ReLU ? 1 : 2;
    switch (op.type) {
      case OpType::Conv:
        if (conv_kind(op) != ConvKind::Generic) {
          L.push_back(pattern_conv(cl, i));
        } else {
          L.push_back(
              ew("pc_conv_generic", who, n,
                 {kArena,    kWeights,     I(vi.o),       I(vi.ps),      I(vi.rs), I(vi.c),
                  I(vi.h),   I(vi.w),      I(vo.o),       I(vo.ps),      I(vo.rs), I(vo.c),
                  I(vo.h),   I(vo.w),      I(P_.woff[i]), I(P_.boff[i]), I(op.k),  I(op.stride),
                  I(op.pad), I(op.groups), I(act)}));
          res_.layers.push_back({{"op", i}, {"name", op.name}, {"kind", "generic_conv"}});
        }
        break;
      case OpType::MaxPool:
      case OpType::AvgPool:
        L.push_back(ew("pc_pool", who, n,
                       {kArena, I(vi.o), I(vi.ps), I(vi.rs), I(vi.h), I(vi.w), I(vo.o), I(vo.ps),
                        I(vo.rs), I(vo.c), I(vo.h), I(vo.w), I(op.pool_k), I(op.pool_stride),
                        I(op.pool_pad), I(op.type == OpType::MaxPool ? 1 : 0)}));
        break;
      case OpType::GlobalAvgPool:
        L.push_back(ew("pc_gap", who, vi.c,
                       {kArena, I(vi.o), I(vi.ps), I(vi.rs), I(vi.c), I(vi.h), I(vi.w), I(vo.o)}));
        break;
      case OpType::Linear:
        L.push_back(ew("pc_linear", who, op.c,
                       {kArena, kWeights, I(vi.o), I(vi.ps), I(vi.rs), I(vi.c), I(vi.h), I(vi.w),
                        I(vo.o), I(op.c), I(P_.woff[i]), I(P_.boff[i]), I(act)}));
        break;
      case OpType::Add: {
        const View vb = view(op.inputs[1]);
        PCONV_CHECK(vb.ps == vo.ps && vb.rs == vo.rs && vi.ps == vo.ps && vi.rs == vo.rs,
                    "layer \"", op.name,
                    "\": target opencl: add of tensors with different layouts");
        L.push_back(ew("pc_add", who, n,
                       {kArena, I(vi.o), I(vb.o), I(vo.o), I(vo.ps), I(vo.rs), I(vo.c), I(vo.h),
                        I(vo.w), I(act)}));
        break;
      }
      case OpType::Affine:
        L.push_back(ew("pc_affine", who, n,
                       {kArena, kWeights, I(vi.o), I(vo.o), I(vo.ps), I(vo.rs), I(vo.c), I(vo.h),
                        I(vo.w), I(P_.woff[i]), I(P_.boff[i]), I(act)}));
        break;
      case OpType::Activation:
        L.push_back(
            ew("pc_activation", who, n,
               {kArena, I(vi.o), I(vo.o), I(vo.ps), I(vo.rs), I(vo.c), I(vo.h), I(vo.w), I(act)}));
        break;
      default:
        throw Error(
            cat("layer \"", op.name, "\": target opencl: no emitter for ", op_type_name(op.type)));
    }
  }

  // A tile of R rows x T columns at stride S: accumulators in registers over every kept kernel;
  // per mask a branch-free loop over (channel, taps) records; per input row, each input value the
  // tile's taps need is loaded once.
  void tile(std::ostream& os, const Op& op, const View& vi, const View& vo, int S, int R, int T,
            const std::string& ind) {
    const int M = static_cast<int>(op.plan.masks.size()), pad = (op.k - 1) / 2;
    auto acc = [](int r, int x) { return cat("acc", r, "_", x); };
    for (int r = 0; r < R; ++r)
      for (int x = 0; x < T; ++x) os << ind << "float " << acc(r, x) << " = bias;\n";
    os << ind << "__global const uint* r = rec;\n";
    for (int m = 0; m < M; ++m) {
      const std::vector<Tap> taps = mask_taps(op.plan.masks[static_cast<size_t>(m)], op.k);
      const int nt = static_cast<int>(taps.size());
      ++res_.pattern_kernels;
      os << ind << "// pattern " << m << ": mask 0x" << std::hex
         << op.plan.masks[static_cast<size_t>(m)] << std::dec << ", " << nt << " taps\n";
      os << ind << "for (int n = cnt[" << m << "]; n > 0; --n, r += " << nt + 1 << ") {\n";
      const std::string in2 = ind + "  ", in3 = in2 + "  ";
      os << in2 << "__global const float* ic = in + (int)r[0] * " << vi.ps << ";\n";
      for (const Tap& tp : taps)
        os << in2 << "const float w" << tp.j << " = "
           << spell(t_.bits2f, {cat("r[", tp.j + 1, "]")}) << ";\n";
      // Output row rr reads input row S * rr + dy, column S * x + dx.
      for (int iy = -pad; iy <= S * (R - 1) + pad; ++iy) {
        std::vector<std::pair<Tap, int>> use;  // tap, output row
        for (const Tap& tp : taps) {
          const int d = iy - tp.dy;
          if (d >= 0 && d % S == 0 && d / S < R) use.push_back({tp, d / S});
        }
        if (use.empty()) continue;
        std::set<int> cols;
        for (const auto& u : use)
          for (int x = 0; x < T; ++x) cols.insert(S * x + u.first.dx);
        auto a = [&](int col) { return cat("a", col + pad); };
        os << in2 << "{\n";
        for (int col : cols)
          os << in3 << "const float " << a(col) << " = ic[" << iy * vi.rs + col << "];\n";
        for (int x = 0; x < T; ++x)
          for (const auto& u : use) {
            const std::string ac = acc(u.second, x);
            os << in3 << ac << " = "
               << spell(t_.fma, {a(S * x + u.first.dx), cat("w", u.first.j), ac}) << ";\n";
          }
        os << in2 << "}\n";
      }
      os << ind << "}\n";
    }
    for (int r = 0; r < R; ++r)
      for (int x = 0; x < T; ++x) {
        const std::string v = vec_act(t_, op.act, acc(r, x));
        os << ind << "out[" << r * vo.rs + x << "] = " << v << ";\n";
      }
  }

  ClLaunch pattern_conv(std::ostream& cl, size_t i) {
    const Op& op = dm_.ops[i];
    const View vi = view(op.inputs[0]), vo = view(static_cast<int>(i));
    const int S = op.stride, M = static_cast<int>(op.plan.masks.size());
    const int T = std::min(op.w, kTileCols);
    const int R = std::max(1, std::min(op.h, t_.acc_budget / T));
    const int TX = (op.w + T - 1) / T, TY = (op.h + R - 1) / R, TR = op.w % T, RR = op.h % R;
    const int64_t NT = static_cast<int64_t>(TX) * TY;
    const std::string fn = cat("L", i);
    std::vector<int64_t> offs(op.plan.filter_offset.begin(), op.plan.filter_offset.end());
    cl << "// " << op.source << ": sparse " << op.k << "x" << op.k << " s" << S << ", " << op.in_c
       << "x" << op.in_h << "x" << op.in_w << " -> " << op.c << "x" << op.h << "x" << op.w << ", "
       << M << " masks; work-item: " << R << " rows x " << T << " columns of one filter\n";
    const size_t off_at = tables_.size();
    for (int64_t o : offs) {
      PCONV_CHECK(o < INT_MAX, "model \"", dm_.model_name, "\": target opencl: ", op.source,
                  ": packed weights exceed 2^31 words (int indexing)");
      tables_.push_back(static_cast<int32_t>(o));
    }
    const size_t cnt_at = tables_.size();
    for (auto c : op.plan.counts) tables_.push_back(static_cast<int32_t>(c));
    cl << "__kernel void " << fn
       << "(__global float* restrict A, __global const uint* restrict W,\n"
       << "    __global const int* restrict Tb) {\n";
    cl << "  const int t = get_global_id(0), p = get_global_id(1);\n";
    cl << "  if (t >= " << NT << " || p >= " << op.c << ") return;\n";
    cl << "  const int y0 = (t / " << TX << ") * " << R << ", x0 = (t % " << TX << ") * " << T
       << ";\n";
    cl << "  __global const uint* rec = W + " << P_.woff[i] << " + Tb[" << off_at << " + p];\n";
    cl << "  __global const int* cnt = Tb + " << cnt_at << " + p * " << M << ";\n";
    cl << "  const float bias = " << spell(t_.bits2f, {cat("W[", P_.boff[i], " + p]")}) << ";\n";
    cl << "  __global const float* in = A + " << vi.o << " + " << S << " * (y0 * " << vi.rs
       << " + x0);\n";
    cl << "  __global float* out = A + " << vo.o << " + p * " << vo.ps << " + y0 * " << vo.rs
       << " + x0;\n";
    if (M == 0) cl << "  (void)cnt;\n  (void)rec;\n";
    // Tile variants: full, ragged right column, ragged bottom row, ragged corner.
    struct Var {
      int r, x;
      std::string cond;
    };
    std::vector<Var> vars = {{R, T, cat("y0 + ", R, " <= ", op.h, " && x0 + ", T, " <= ", op.w)}};
    if (TR) vars.push_back({R, TR, cat("y0 + ", R, " <= ", op.h)});
    if (RR) vars.push_back({RR, T, cat("x0 + ", T, " <= ", op.w)});
    if (RR && TR) vars.push_back({RR, TR, ""});
    for (size_t v = 0; v < vars.size(); ++v) {
      const bool last = v + 1 == vars.size();
      if (vars.size() == 1)
        cl << "  {\n";
      else if (v == 0)
        cl << "  if (" << vars[v].cond << ") {\n";
      else if (last && vars[v].cond.empty())
        cl << "  } else {\n";
      else
        cl << "  } else if (" << vars[v].cond << ") {\n";
      cl << "    // tile " << vars[v].r << "x" << vars[v].x << "\n";
      tile(cl, op, vi, vo, S, vars[v].r, vars[v].x, "    ");
    }
    cl << "  }\n}\n\n";
    // Work-groups: every tile of a filter before the next filter, up to kWorkGroup work-items.
    ClLaunch l;
    l.kernel = fn;
    l.what = op.source;
    l.dims = 2;
    l.local[0] = std::min<int64_t>(NT, kWorkGroup);
    l.local[1] = std::max<int64_t>(1, std::min<int64_t>(op.c, kWorkGroup / l.local[0]));
    l.global[0] = round_up(NT, l.local[0]);
    l.global[1] = round_up(op.c, l.local[1]);
    l.args = {kArena, kWeights, kTables};
    res_.layers.push_back({{"op", i},
                           {"name", op.name},
                           {"function", fn},
                           {"kind", S == 1 ? "sparse" : "sparse_strided"},
                           {"masks", M},
                           {"tile_rows", R},
                           {"tile_cols", T},
                           {"work_group", {l.local[0], l.local[1]}}});
    return l;
  }
};

}  // namespace

void generate_opencl(const DeployModel& dm, const Target& t, const Plan& P,
                     const std::string& out_dir, GenResult& res) {
  std::ostringstream cl;
  cl << header_comment("pconv_model.cl: the model's OpenCL C kernels.", "opencl_codegen.cpp", t, dm)
     << "\n"
     << opencl_ops_source() << "\n// ---- pattern convs of this model ----\n\n";
  Emitter e(dm, t, P, res);
  const ClHostPlan hp = e.run(cl);
  write_file(out_dir + "/pconv_model.cl", cl.str(), res);
  write_file(out_dir + "/pconv_model.cpp", opencl_host_source(t, dm, hp, cl.str()), res);
  write_file(out_dir + "/pconv_ops.h", ops_header(t, dm), res);
  write_file(out_dir + "/pconv_model.h", api_header(t, dm), res);
  write_file(out_dir + "/runner.cpp", runner_source(t, dm), res);
  write_file(out_dir + "/CMakeLists.txt", cmake_source(t, dm), res);
}

}  // namespace pconv::deploy
