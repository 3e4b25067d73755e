// Generator core: memory planning, weight file layout and the emission of every layer, written
// once against the Target spellings. The OpenCL dialect (opencl_codegen.cpp) reuses the plan and
// the tile bodies and overrides only the function wrappers and the host side.
#include "deploy/codegen.h"

#include <algorithm>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <functional>
#include <sstream>

#include "core/error.h"
#include "deploy/codegen_internal.h"

namespace pconv::deploy {

namespace fs = std::filesystem;

std::string spell(const std::string& pat, const std::vector<std::string>& a) {
  std::string s;
  for (size_t i = 0; i < pat.size(); ++i) {
    if (pat[i] == '$' && i + 1 < pat.size() && pat[i + 1] >= '0' && pat[i + 1] <= '9') {
      s += a.at(static_cast<size_t>(pat[i + 1] - '0'));
      ++i;
    } else {
      s += pat[i];
    }
  }
  return s;
}

static int64_t round_up(int64_t x, int64_t m) {
  return (x + m - 1) / m * m;
}

Plan make_plan(const DeployModel& dm, const Target& t) {
  Plan P;
  const int V = t.vec;
  const size_t n = dm.ops.size();
  P.geom.resize(n);
  P.slot.assign(n, -1);
  P.woff.assign(n, -1);
  P.boff.assign(n, -1);
  for (size_t i = 0; i < n; ++i) {
    const Op& op = dm.ops[i];
    Geom& g = P.geom[i];
    if (op.type == OpType::Flatten) {
      g = P.geom[static_cast<size_t>(op.inputs[0])];
      continue;
    }
    g.c = op.c;
    g.h = op.h;
    g.w = op.w;
    bool flat = op.type == OpType::Linear || op.type == OpType::GlobalAvgPool;
    if (op.type == OpType::Activation || op.type == OpType::Affine || op.type == OpType::Add)
      flat = P.geom[static_cast<size_t>(op.inputs[0])].flat;
    g.flat = flat;
    if (!flat) {
      g.rs = V + round_up(op.w, V) + V;
      // Rows of a multiple of 1 KiB (224 floats + margins on AVX-512) put every fourth row of
      // every plane in the same L1 sets: one more vector spreads them (VGG-16/224's 224-wide
      // layer about 6% faster, docs/deploy.md).
      if (t.row_pad && V > 1 && g.rs * 4 % 1024 == 0) g.rs += V;
      g.ps = (op.h + 2) * g.rs;
      g.org = g.rs + V;
    }
  }
  // Maps that only scalar code touches (the small-map kernel's gathers and stores, pooling, the
  // classifier's reads) need no vector-aligned rows: a one-float margin instead of a vector keeps
  // the border every run re-zeroes small (a 4x4 map: 20 floats a channel instead of 272).
  {
    auto scalar_user = [&](size_t j, auto&& self) -> bool {
      const Op& r = dm.ops[j];
      switch (r.type) {
        case OpType::MaxPool:
        case OpType::AvgPool:
        case OpType::GlobalAvgPool:
        case OpType::Linear:
          return true;
        case OpType::Conv:
          return use_small_map(r, t);
        case OpType::Flatten:
          for (size_t k = j + 1; k < n; ++k)
            for (int x : dm.ops[k].inputs)
              if (static_cast<size_t>(x) == j && !self(k, self)) return false;
          return static_cast<size_t>(dm.output) != j;
        default:
          return false;
      }
    };
    for (size_t i = 1; i < n; ++i) {
      const Op& op = dm.ops[i];
      Geom& g = P.geom[i];
      const bool scalar_producer = op.type == OpType::MaxPool || op.type == OpType::AvgPool ||
                                   (op.type == OpType::Conv && use_small_map(op, t));
      if (g.flat || !scalar_producer || static_cast<size_t>(dm.output) == i) continue;
      bool scalar = true;
      for (size_t k = i + 1; k < n && scalar; ++k)
        for (int x : dm.ops[k].inputs)
          if (static_cast<size_t>(x) == i && !scalar_user(k, scalar_user)) scalar = false;
      if (!scalar) continue;
      g.rs = op.w + 2;
      g.ps = (op.h + 2) * g.rs;
      g.org = g.rs + 1;
    }
    for (size_t i = 0; i < n; ++i)  // a flatten shares its source's layout
      if (dm.ops[i].type == OpType::Flatten)
        P.geom[i] = P.geom[static_cast<size_t>(dm.ops[i].inputs[0])];
  }
  // The outputs of the ops split by channels: planes spaced so every such tensor spans the same
  // floats (channels x plane stride), so thread t's contiguous share of the channels lies in the
  // same share of its arena slot whatever the layer: a core then writes memory it wrote before.
  {
    int64_t span = 0, align = 16;
    for (size_t i = 0; i < n; ++i)
      if (channel_split_op(dm, i, t)) {
        span = std::max(span, int64_t{P.geom[i].c} * P.geom[i].ps);
        align = std::max(align, int64_t{P.geom[i].c} * 16);
      }
    span = round_up(span, align);
    for (size_t i = 0; i < n; ++i)
      if (channel_split_op(dm, i, t)) P.geom[i].ps = span / P.geom[i].c;
  }
  // Liveness: a value dies after its last reader (a flatten forwards its readers to its source).
  std::vector<int> last(n, -1);
  for (size_t i = 0; i < n; ++i)
    for (int x : dm.ops[i].inputs)
      last[static_cast<size_t>(through_flattens(dm, x))] = static_cast<int>(i);
  last[static_cast<size_t>(through_flattens(dm, dm.output))] = static_cast<int>(n);
  // Greedy slot reuse: best fit among free slots, slots grow to their largest tenant. Two
  // assignments: for several threads each memory class (memory_class) keeps to slots of its
  // own, so a core seldom writes lines the other holds; for one thread every tensor may take any
  // free slot, which keeps the slots few and warm (classes cost VGG-16/32 6% there).
  auto assign = [&](bool classes, std::vector<int>* slot, std::vector<int64_t>* slot_off) {
    std::vector<int64_t> slot_size;
    std::vector<int> slot_free_at;  // op index after which the slot is free again
    std::vector<int> slot_class;
    slot->assign(n, -1);
    for (size_t i = 0; i < n; ++i) {
      if (dm.ops[i].type == OpType::Flatten) continue;
      const int64_t need = round_up(P.geom[i].floats() + V, 16);
      const int cls = classes ? memory_class(dm, i, t) : 0;
      int best = -1;
      for (size_t s = 0; s < slot_size.size(); ++s) {
        if (slot_free_at[s] >= static_cast<int>(i)) continue;  // inputs of op i are still read
        if (slot_class[s] != cls) continue;
        if (best < 0 ||
            std::abs(slot_size[s] - need) < std::abs(slot_size[static_cast<size_t>(best)] - need))
          best = static_cast<int>(s);
      }
      if (best < 0) {
        best = static_cast<int>(slot_size.size());
        slot_size.push_back(0);
        slot_free_at.push_back(0);
        slot_class.push_back(cls);
      }
      slot_size[static_cast<size_t>(best)] = std::max(slot_size[static_cast<size_t>(best)], need);
      slot_free_at[static_cast<size_t>(best)] = std::max(last[i], static_cast<int>(i));
      (*slot)[i] = best;
    }
    int64_t end = 0;
    slot_off->clear();
    for (int64_t sz : slot_size) {
      slot_off->push_back(end);
      end += sz;
    }
    return end;
  };
  const int64_t off =
      std::max(assign(true, &P.slot, &P.slot_off), assign(false, &P.slot_one, &P.slot_off_one));
  // Scratch after the slots, shared by the threads: a linear over a mapped tensor gathers its
  // features here first, so the GEMV runs over one dense vector.
  int64_t scratch = 0;
  for (size_t i = 0; i < n; ++i)
    if (dm.ops[i].type == OpType::Linear) {
      const Geom& g = P.geom[static_cast<size_t>(dm.ops[i].inputs[0])];
      if (!g.flat) scratch = std::max<int64_t>(scratch, static_cast<int64_t>(g.c) * g.h * g.w);
    }
  // The strided convs' input phases or gathered pixels (codegen_strided.cpp) and the packed
  // copies of the stationary form without alignz take it too.
  for (size_t i = 0; i < n; ++i)
    if (dm.ops[i].type == OpType::Conv)
      scratch = std::max(
          {scratch, strided_scratch_floats(dm.ops[i], t), stationary_pack_floats(dm.ops[i], t)});
  P.scratch_off = off;
  P.arena_floats = off + round_up(scratch, 16);
  // The small-map kernels gather (channel, mask) -> (pixel, tap) vectors into a scratch of their
  // own per thread (pconv_create allocates one for each thread it may run on).
  // The stationary form keeps one group's accumulators there instead (split by channels: every
  // group's partial sums, for the other threads to add up).
  for (size_t i = 0; i < n; ++i)
    if (const StationarySchedule S = stationary_schedule(dm.ops[i], t); S.ok)
      P.gather_floats = std::max<int64_t>(P.gather_floats, S.scratch_floats);
    else if (use_small_map(dm.ops[i], t))
      P.gather_floats = std::max<int64_t>(
          P.gather_floats, round_up((static_cast<int64_t>(dm.ops[i].in_c) *
                                         static_cast<int64_t>(dm.ops[i].plan.masks.size()) +
                                     1) *
                                        small_map_lanes(dm.ops[i], t),  // + the zero vector
                                    16));
  // Weight sections, each 64-byte aligned.
  auto put = [&](const void* data, size_t words) {
    const int64_t at = static_cast<int64_t>(P.words.size());
    P.words.resize(static_cast<size_t>(round_up(at + static_cast<int64_t>(words), 16)), 0u);
    if (words) std::memcpy(&P.words[static_cast<size_t>(at)], data, words * 4);
    return at;
  };
  for (size_t i = 0; i < n; ++i) {
    const Op& op = dm.ops[i];
    if (op.type == OpType::Conv) {
      if (conv_kind(op) == ConvKind::Generic) {
        const std::vector<float> w = generic_conv_weight(dm, op);
        P.woff[i] = put(w.data(), w.size());
      } else if (use_channel_lanes(op, t)) {
        const std::vector<float> w = channel_lane_weights(op, t);
        P.woff[i] = put(w.data(), w.size());
      } else if (use_stationary(op, t)) {
        std::vector<int> counts;
        std::vector<int64_t> starts;
        const std::vector<uint32_t> w = stationary_records(op, t, &counts, &starts);
        P.woff[i] = put(w.data(), w.size());
      } else if (use_small_map(op, t)) {
        std::vector<int64_t> offsets;
        std::vector<int> counts;
        const std::vector<uint32_t> w = small_map_records(op, t, &offsets, &counts);
        P.woff[i] = put(w.data(), w.size());
      } else if (use_blocks(op, t)) {
        std::vector<int> counts;
        std::vector<int64_t> starts;
        const std::vector<uint32_t> w = block_records(op, P.geom[static_cast<size_t>(op.inputs[0])],
                                                      t, sparse_schedule(op, t), &counts, &starts);
        P.woff[i] = put(w.data(), w.size());
      } else {
        P.woff[i] = put(op.plan.words.data(), op.plan.words.size());
      }
      P.boff[i] = put(op.plan.bias.data(), op.plan.bias.size());
    } else if (op.type == OpType::Linear) {
      const std::vector<float> w = linear_packed_weight(dm, op);
      P.woff[i] = put(w.data(), w.size());
      P.boff[i] = put(op.bias.data(), op.bias.size());
    } else if (op.type == OpType::Affine) {
      const std::vector<int> ord = channel_order(dm.ops[static_cast<size_t>(op.inputs[0])]);
      std::vector<float> s, h;
      for (int p = 0; p < op.c; ++p) {
        s.push_back(op.scale[static_cast<size_t>(ord[static_cast<size_t>(p)])]);
        h.push_back(op.shift[static_cast<size_t>(ord[static_cast<size_t>(p)])]);
      }
      P.woff[i] = put(s.data(), s.size());
      P.boff[i] = put(h.data(), h.size());
    }
  }
  return P;
}

bool use_small_map(const Op& op, const Target& t) {
  if (t.bcast4.empty() || op.type != OpType::Conv || conv_kind(op) != ConvKind::Sparse ||
      op.k != 3 || op.h * op.w > t.small_map_pixels || op.plan.masks.empty())
    return false;
  for (uint16_t m : op.plan.masks)
    if (popcount9(m) != 4) return false;
  return true;
}

int small_map_lanes(const Op& op, const Target& t) {
  return static_cast<int>(round_up(static_cast<int64_t>(op.h) * op.w * 4, t.vec));
}

int small_map_unroll(const Op& op, const Target& t) {
  return std::max(1, std::min(4, t.acc_budget / (small_map_lanes(op, t) / t.vec)));
}

std::vector<uint32_t> small_map_records(const Op& op, const Target& t,
                                        std::vector<int64_t>* offsets, std::vector<int>* counts) {
  const int M = static_cast<int>(op.plan.masks.size()), L = small_map_lanes(op, t);
  const int U = small_map_unroll(op, t);
  const uint32_t zero_vector = static_cast<uint32_t>(int64_t{op.in_c} * M * L);
  std::vector<uint32_t> words;
  offsets->clear();
  counts->clear();
  for (int p = 0; p < op.c; ++p) {
    offsets->push_back(static_cast<int64_t>(words.size()));
    const uint32_t* r = op.plan.words.data() + op.plan.filter_offset[static_cast<size_t>(p)];
    int n = 0;
    for (int m = 0; m < M; ++m)
      for (int k = op.plan.counts[static_cast<size_t>(p) * M + m]; k > 0; --k, r += 5, ++n) {
        words.push_back(static_cast<uint32_t>((int64_t{r[0]} * M + m) * L));
        words.insert(words.end(), r + 1, r + 5);
      }
    for (; n % U; ++n) {
      words.push_back(zero_vector);
      words.insert(words.end(), 4, 0u);  // +0.0f
    }
    counts->push_back(n);
  }
  return words;
}

SparseSchedule sparse_schedule(const Op& op, const Target& t) {
  SparseSchedule s;
  const int nvec = static_cast<int>((op.w + t.vec - 1) / t.vec);
  s.T = std::min(nvec, t.max_tile_vecs);
  s.R = std::max(1, std::min(op.h, t.acc_budget / s.T));
  // Blocks pay where a filter's pass over its channels misses L1 the most: rows of one vector
  // (16x16, 14x14, 8x8 on AVX-512: 1.3-1.6x over per-filter tiles) and rows of two with many
  // channels (28x28x256+: 1.2x). Measured on wider rows and on 32x32x64 they lose 5-25% to the
  // tile loads and stores they add, and a handful of input channels fits L1 anyway.
  const bool pays = (nvec == 1 && op.in_c >= 16) || (nvec == 2 && op.in_c >= 128);
  if (t.block_acc_bytes > 0 && op.groups == 1 && pays) {
    // One vector per row and at most 16 rows: one tile covers the map (the acc budget binds only
    // registers, and blocked tiles live in L1 between records), so its margin rows are known
    // zeros and every input row is loaded once per record. Measured on 14x14: 0.8x the time.
    if (nvec == 1 && op.h <= 16) s.R = op.h;
    const int64_t tile_bytes = static_cast<int64_t>(s.R) * s.T * t.vec * 4;
    const int fmax = static_cast<int>(std::max<int64_t>(1, t.block_acc_bytes / tile_bytes));
    s.blocks = (op.c + fmax - 1) / fmax;
    s.F = (op.c + s.blocks - 1) / s.blocks;  // equal blocks
  }
  return s;
}

std::vector<uint32_t> block_records(const Op& op, const Geom& gi, const Target& t,
                                    const SparseSchedule& s, std::vector<int>* counts,
                                    std::vector<int64_t>* block_start) {
  const int M = static_cast<int>(op.plan.masks.size());
  struct Rec {
    int in_pos, f;
    const uint32_t* w;
  };
  std::vector<uint32_t> words;
  counts->assign(static_cast<size_t>(s.blocks) * M, 0);
  block_start->clear();
  for (int b = 0; b < s.blocks; ++b) {
    block_start->push_back(static_cast<int64_t>(words.size()));
    std::vector<std::vector<Rec>> per_mask(static_cast<size_t>(M));
    for (int f = 0; f < s.F && b * s.F + f < op.c; ++f) {
      const int p = b * s.F + f;
      const uint32_t* r = op.plan.words.data() + op.plan.filter_offset[static_cast<size_t>(p)];
      for (int m = 0; m < M; ++m) {
        const int nt = popcount9(op.plan.masks[static_cast<size_t>(m)]);
        for (int n = op.plan.counts[static_cast<size_t>(p) * M + m]; n > 0; --n, r += nt + 1)
          per_mask[static_cast<size_t>(m)].push_back({static_cast<int>(r[0]), f, r + 1});
      }
    }
    for (int m = 0; m < M; ++m) {
      auto& v = per_mask[static_cast<size_t>(m)];
      std::stable_sort(v.begin(), v.end(), [](const Rec& a, const Rec& c) {
        return a.in_pos != c.in_pos ? a.in_pos < c.in_pos : a.f < c.f;
      });
      const int nt = popcount9(op.plan.masks[static_cast<size_t>(m)]);
      for (const Rec& rc : v) {
        words.push_back(static_cast<uint32_t>(rc.in_pos * gi.ps));
        words.push_back(static_cast<uint32_t>(rc.f * s.R * s.T * t.vec));
        words.insert(words.end(), rc.w, rc.w + nt);
      }
      (*counts)[static_cast<size_t>(b) * M + m] = static_cast<int>(v.size());
    }
  }
  return words;
}

bool use_blocks(const Op& op, const Target& t) {
  return op.type == OpType::Conv && conv_kind(op) == ConvKind::Sparse && !use_small_map(op, t) &&
         !use_channel_lanes(op, t) && !use_stationary(op, t) && sparse_schedule(op, t).F > 0;
}

std::vector<Tap> mask_taps(uint16_t mask, int K) {
  std::vector<Tap> taps;
  const int pad = (K - 1) / 2;
  int j = 0;
  for (int b = 0; b < K * K; ++b)
    if (mask >> b & 1) taps.push_back({b / K - pad, b % K - pad, j++});
  return taps;
}

std::string header_comment(const std::string& what, const std::string& tmpl, const Target& t,
                           const DeployModel& dm) {
  return cat("// ", what, "\n// Generated by pconv-deploy (src/deploy/", tmpl, ") for target \"",
             t.name, "\", model \"", dm.model_name, "\". Do not edit.\n");
}

// The rows of one kept kernel over an R x T tile: `ic` points at the tile's input origin in the
// kernel's channel, w0.. hold its weights and acc<r>_<x> the tile. Each input vector is loaded once
// and feeds every tap and output row that uses it; neighbours come from valignd (row streaming).
// zero_l / zero_r: the vector left of / right of the tile is known to be the zero margin (the tile
// spans the whole row), so it is a constant instead of a load. zero_tb: the tile spans every row,
// so the rows above and below are the zero margins and their taps are left out.
void emit_kernel_rows(std::ostream& os, const Target& t, const Op& op, const Geom& gi,
                      const std::vector<Tap>& taps, int R, int T, const std::string& ind,
                      bool zero_l, bool zero_r, bool zero_tb) {
  const int V = t.vec;
  const int pad = (op.k - 1) / 2;
  for (int iy = -pad; iy < R + pad; ++iy) {
    if (zero_tb && (iy < 0 || iy >= R)) continue;  // margin rows: their taps add zeros
    // Taps reading input row iy: output row iy - dy.
    std::vector<Tap> use;
    for (const Tap& tp : taps)
      if (iy - tp.dy >= 0 && iy - tp.dy < R) use.push_back(tp);
    if (use.empty()) continue;
    bool need_l = false, need_r = false, need_c = false;
    for (const Tap& tp : use) {
      need_l |= tp.dx < 0;
      need_r |= tp.dx > 0;
      need_c |= tp.dx == 0;
    }
    const bool stream = !t.shl.empty();
    const int lo = (stream && need_l) ? -1 : 0, hi = (stream && need_r) ? T : T - 1;
    os << ind << "{\n";
    const std::string in3 = ind + "  ";
    auto row = [&](int64_t add) { return cat("ic + ", iy * gi.rs + add); };
    if (stream || need_c)
      for (int x = lo; x <= hi; ++x) {
        const bool zero = (x < 0 && zero_l) || (x >= T && zero_r);
        os << in3 << "const " << t.vtype << " a" << x + 1 << " = "
           << (zero ? t.zero : spell(t.load, {row(static_cast<int64_t>(x) * V)})) << ";\n";
      }
    for (int x = 0; x < T; ++x) {
      std::string L, Rv;
      if (need_l)
        L = stream ? spell(t.shl, {cat("a", x + 1), cat("a", x)})
                   : spell(t.loadu, {row(static_cast<int64_t>(x) * V - 1)});
      if (need_r)
        Rv = stream ? spell(t.shr, {cat("a", x + 1), cat("a", x + 2)})
                    : spell(t.loadu, {row(static_cast<int64_t>(x) * V + 1)});
      if (need_l) os << in3 << "const " << t.vtype << " l" << x << " = " << L << ";\n";
      if (need_r) os << in3 << "const " << t.vtype << " q" << x << " = " << Rv << ";\n";
      for (const Tap& tp : use) {
        const std::string v = tp.dx < 0 ? cat("l", x) : tp.dx > 0 ? cat("q", x) : cat("a", x + 1);
        const std::string a = cat("acc", iy - tp.dy, "_", x);
        os << in3 << a << " = " << spell(t.fma, {v, cat("w", tp.j), a}) << ";\n";
      }
    }
    os << ind << "}\n";
  }
}

// One row-streamed tile of R output rows x T vectors for one filter: accumulators stay in
// registers over every kept kernel; per mask a branch-free loop over (channel, taps) records in
// which each input vector is loaded once and feeds every tap and output row that uses it.
void emit_tile_body(std::ostream& os, const Target& t, const Op& op, const Geom& gi, const Geom& go,
                    int R, int T, const std::string& ind, int* kernels, bool whole_row) {
  const int M = static_cast<int>(op.plan.masks.size());
  auto acc = [](int r, int x) { return cat("acc", r, "_", x); };
  for (int r = 0; r < R; ++r)
    for (int x = 0; x < T; ++x)
      os << ind << t.vtype << " " << acc(r, x) << " = " << spell(t.set1, {"bias"}) << ";\n";
  for (int m = 0; m < M; ++m) {
    const std::vector<Tap> taps = mask_taps(op.plan.masks[static_cast<size_t>(m)], op.k);
    const int nt = static_cast<int>(taps.size());
    ++*kernels;
    os << ind << "// pattern " << m << ": mask 0x" << std::hex
       << op.plan.masks[static_cast<size_t>(m)] << std::dec << ", " << nt << " taps\n";
    os << ind << "for (int n = cnt[" << m << "]; n > 0; --n, r += " << nt + 1 << ") {\n";
    const std::string in2 = ind + "  ";
    os << in2 << "const float* ic = in + ("
       << "(long)r[0]) * " << gi.ps << ";\n";
    for (const Tap& tp : taps)
      os << in2 << "const " << t.vtype << " w" << tp.j << " = "
         << spell(t.set1, {spell(t.bits2f, {cat("r[", tp.j + 1, "]")})}) << ";\n";
    emit_kernel_rows(os, t, op, gi, taps, R, T, in2, whole_row, whole_row, false);
    os << ind << "}\n";
  }
  (void)go;
}

// A lane-mask literal for generated code.
std::string hex_mask(uint32_t m) {
  std::ostringstream s;
  s << "0x" << std::hex << std::uppercase << m;
  return s.str();
}

std::string vec_act(const Target& t, Act act, const std::string& v) {
  std::string a = v;
  if (act != Act::None) a = spell(t.max, {a, t.zero});
  if (act == Act::ReLU6) a = spell(t.min, {a, spell(t.set1, {"6.0f"})});
  return a;
}

void emit_tile_store(std::ostream& os, const Target& t, const Op& op, const Geom& go, int R, int T,
                     const std::string& ind) {
  const int V = t.vec;
  for (int r = 0; r < R; ++r)
    for (int x = 0; x < T; ++x) {
      const std::string a = vec_act(t, op.act, cat("acc", r, "_", x));
      os << ind << spell(t.store, {cat("out + ", r * go.rs + static_cast<int64_t>(x) * V), a})
         << ";\n";
    }
}

void emit_dense_copy(std::ostream& os, const Geom& gi, int H, int W, int S, const std::string& dst,
                     int64_t plane, const std::string& ind) {
  os << ind << "const float* ic = in + " << gi.org << " + (long)c * " << gi.ps << ";\n";
  os << ind << "float* dc = " << dst << " + (long)c * " << plane << ";\n";
  os << ind << "for (int y = 0; y < " << H << "; ++y)\n";
  os << ind << "  for (int x = 0; x < " << W << "; ++x) dc[y * " << W << " + x] = ic[(long)y * "
     << int64_t{S} * gi.rs << " + x" << (S > 1 ? cat(" * ", S) : "") << "];\n";
}

namespace {

const char* act_code(Act a) {
  return a == Act::None ? "0" : a == Act::ReLU ? "1" : "2";
}

std::string geom_lit(const Geom& g) {
  return cat("pc_geom{", g.c, ", ", g.h, ", ", g.w, ", ", g.rs, ", ", g.ps, ", ", g.org, ", ",
             g.flat ? 1 : 0, "}");
}

// What of op i's border its readers read as padding: nothing (pools, the packed stationary
// layout's masked loads and the other ops that read the interior only), the rows just above and
// below the interior (the stationary rows layout: its lane masks keep to the map's columns), or
// all of it (the row kernel, the strided and small-map convs' gathers).
enum class Border { None, Rows, Full };

Border border_need(const DeployModel& dm, size_t i, const Target& t) {
  Border need = Border::None;
  for (int k : dm.users[i]) {
    const Op& r = dm.ops[static_cast<size_t>(k)];
    Border b = Border::None;
    if (r.type == OpType::Flatten)
      b = border_need(dm, static_cast<size_t>(k), t);
    else if (r.type == OpType::Conv && conv_kind(r) != ConvKind::Generic) {
      const StationarySchedule S = stationary_schedule(r, t);
      b = !S.ok ? Border::Full : S.band ? Border::Rows : Border::None;
    }
    need = std::max(need, b);
  }
  return need;
}

// The border of a mapped tensor zeroed, as much of it as its readers need, with its geometry as
// constants: pc_zero_border_k, pc_zero_rows_k or nothing.
std::string zero_border_call(const Geom& g, const std::string& buf, Border need = Border::Full) {
  PCONV_CHECK(g.org / g.rs == 1 && g.org % g.rs + g.w <= g.rs && g.ps >= (g.h + 2) * g.rs,
              "internal: a mapped tensor's border does not fit its plane");
  if (need == Border::None) return "";
  return cat(need == Border::Rows ? "pc_zero_rows_k<" : "pc_zero_border_k<", g.c, ", ", g.h, ", ",
             g.w, ", ", g.rs, ", ", g.ps, ", ", g.org, ">(", buf, ")");
}

// Pooling: windows that all lie inside the map (no padding) take pc_pool_k, geometry constant.
std::string pool_call(const Op& op, const Geom& gi, const Geom& go, const std::string& in,
                      const std::string& out) {
  const int K = op.pool_k, S = op.pool_stride, max = op.type == OpType::MaxPool ? 1 : 0;
  const bool inside = op.pool_pad == 0 && (go.h - 1) * S + K <= gi.h &&
                      (go.w - 1) * S + K <= gi.w && !gi.flat && !go.flat;
  if (!inside)
    return cat("pc_pool(", in, ", ", geom_lit(gi), ", ", out, ", ", geom_lit(go), ", ", K, ", ", S,
               ", ", op.pool_pad, ", ", max, ")");
  return cat("pc_pool_k<", K, ", ", S, ", ", max, ", ", go.c, ", ", gi.rs, ", ", gi.ps, ", ",
             gi.org, ", ", go.h, ", ", go.w, ", ", go.rs, ", ", go.ps, ", ", go.org, ">(", in, ", ",
             out, ")");
}

// What analysis.json's "generated" layers list says of a row-streamed pattern conv.
nlohmann::json sparse_record(size_t op, const std::string& name, const std::string& fn, int masks,
                             int rows, int vecs, int band, int vec) {
  return {{"op", op},          {"name", name},      {"function", fn},
          {"kind", "sparse"},  {"masks", masks},    {"tile_rows", rows},
          {"tile_vecs", vecs}, {"band_rows", band}, {"vec", vec}};
}

// The filter-block form of the row kernel. Per band of rows, a job is (block of F filters, R-row
// group); per tile of the group the block's tiles start at the bias in an L1 buffer, then per mask
// one branch-free loop walks the block's records sorted by input channel: each record loads its
// filter's tile, runs the pattern's taps over the channel's rows (row streaming, as in
// emit_tile_body) and stores the tile back. Consecutive records mostly share a channel, so its
// rows come from L1; the accumulator loads and stores hit L1 too and cost far less than the L2
// misses of fetching the channel again for each filter (PERF-NOTES: the main loss).
void emit_sparse_blocked(std::ostream& os, const Target& t, const DeployModel& dm, const Plan& P,
                         size_t i, GenResult& res) {
  const Op& op = dm.ops[i];
  const Geom& gi = P.geom[static_cast<size_t>(op.inputs[0])];
  const Geom& go = P.geom[i];
  const int V = t.vec, M = static_cast<int>(op.plan.masks.size());
  const SparseSchedule S = sparse_schedule(op, t);
  const int R = S.R, T = S.T, F = S.F, NB = S.blocks;
  const int nvec = static_cast<int>((op.w + V - 1) / V);
  const int XT = nvec / T, TR = nvec % T, RR = op.h % R;
  const int64_t slot = static_cast<int64_t>(R) * T * V;  // floats of one filter's tile
  const std::string fn = cat("L", i);
  std::vector<int> counts;
  std::vector<int64_t> starts;
  block_records(op, gi, t, S, &counts, &starts);
  // Tiles of one row group, left to right: (x0 vector, vectors); the first and last border the
  // zero margins.
  std::vector<std::pair<int, int>> xs;
  for (int x = 0; x < XT; ++x) xs.push_back({x * T, T});
  if (TR) xs.push_back({XT * T, TR});
  auto variant = [&](int r, int x0, int x) {
    return cat(fn, "_tile_", r, "x", x, x0 == 0 ? "l" : "", x0 + x == nvec ? "r" : "");
  };
  std::vector<std::string> done;
  for (int r : {R, RR}) {
    if (r == 0) continue;
    for (auto [x0, x] : xs) {
      const std::string name = variant(r, x0, x);
      if (std::find(done.begin(), done.end(), name) != done.end()) continue;
      done.push_back(name);
      os << "static inline void " << name
         << "(const float* PC_RESTRICT in, float* PC_RESTRICT acc, const uint32_t* PC_RESTRICT r, "
            "const int* PC_RESTRICT cnt) {\n";
      for (int m = 0; m < M; ++m) {
        const std::vector<Tap> taps = mask_taps(op.plan.masks[static_cast<size_t>(m)], op.k);
        const int nt = static_cast<int>(taps.size());
        ++res.pattern_kernels;
        os << "  // pattern " << m << ": mask 0x" << std::hex
           << op.plan.masks[static_cast<size_t>(m)] << std::dec << ", " << nt << " taps\n";
        os << "  for (int n = cnt[" << m << "]; n > 0; --n, r += " << nt + 2 << ") {\n";
        os << "    const float* ic = in + r[0];\n";
        os << "    float* PC_RESTRICT ac = acc + r[1];\n";
        for (int rr = 0; rr < r; ++rr)
          for (int xx = 0; xx < x; ++xx)
            os << "    " << t.vtype << " acc" << rr << "_" << xx << " = "
               << spell(t.load, {cat("ac + ", (rr * T + xx) * V)}) << ";\n";
        for (const Tap& tp : taps)
          os << "    const " << t.vtype << " w" << tp.j << " = "
             << spell(t.set1, {spell(t.bits2f, {cat("r[", tp.j + 2, "]")})}) << ";\n";
        emit_kernel_rows(os, t, op, gi, taps, r, x, "    ", x0 == 0, x0 + x == nvec, r == op.h);
        for (int rr = 0; rr < r; ++rr)
          for (int xx = 0; xx < x; ++xx)
            os << "    "
               << spell(t.store, {cat("ac + ", (rr * T + xx) * V), cat("acc", rr, "_", xx)})
               << ";\n";
        os << "  }\n";
      }
      os << "}\n\n";
    }
  }
  os << "static const int32_t " << fn << "_start[" << NB << "] = {\n    " << array_lit(starts)
     << "};\n";
  os << "static const int " << fn << "_cnt[" << counts.size() << "] = {\n    " << array_lit(counts)
     << "};\n";
  const int64_t in_row_bytes = static_cast<int64_t>(op.in_c) * gi.rs * 4;
  int B = static_cast<int>(
      std::max<int64_t>(1, t.band_bytes / std::max<int64_t>(1, in_row_bytes) - (op.k - 1)));
  B = std::max(R, B / R * R);
  if (B >= op.h) B = op.h;
  os << "// " << op.source << ": sparse " << op.k << "x" << op.k << " s1, " << op.in_c << "x"
     << op.in_h << "x" << op.in_w << " -> " << op.c << "x" << op.h << "x" << op.w << ", " << M
     << " masks, tile " << R << " rows x " << T << " vectors of " << V << ", " << NB
     << " blocks of " << F << " filters\n";
  os << "static void " << fn
     << "(const float* PC_RESTRICT in, float* PC_RESTRICT out, const uint32_t* PC_RESTRICT wts) "
        "{\n";
  os << "  // bands of " << B << " rows: input band " << in_row_bytes * (B + op.k - 1) / 1024
     << " KiB; tile buffer " << F * slot * 4 / 1024 << " KiB\n";
  os << "  PC_OMP_PARALLEL\n  {\n";
  os << "    alignas(64) float acc[" << F * slot << "];\n";
  os << "    for (int b0 = 0; b0 < " << op.h << "; b0 += " << B << ") {\n";
  os << "      const int ny = ((b0 + " << B << " < " << op.h << " ? b0 + " << B << " : " << op.h
     << ") - b0 + " << R - 1 << ") / " << R << ";\n";
  os << "      PC_OMP_FOR_CYCLIC_IN\n      for (int j = 0; j < " << NB << " * ny; ++j) {\n";
  os << "        const int b = j % " << NB << ", y0 = b0 + j / " << NB << " * " << R << ";\n";
  os << "        const int p0 = b * " << F << ", nf = p0 + " << F << " <= " << op.c << " ? " << F
     << " : " << op.c << " - p0;\n";
  os << "        const uint32_t* r = wts + " << P.woff[i] << " + " << fn << "_start[b];\n";
  os << "        const int* cnt = " << fn << "_cnt + b * " << M << ";\n";
  os << "        const uint32_t* bias = wts + " << P.boff[i] << " + p0;\n";
  os << "        const float* ib = in + " << gi.org << " + (long)y0 * " << gi.rs << ";\n";
  os << "        float* ob = out + (long)p0 * " << go.ps << " + " << go.org << " + (long)y0 * "
     << go.rs << ";\n";
  auto group = [&](const std::string& ind, int r) {
    for (auto [x0, x] : xs) {
      os << ind << "for (int f = 0; f < nf; ++f) {\n";
      os << ind << "  const " << t.vtype << " b = " << spell(t.set1, {spell(t.bits2f, {"bias[f]"})})
         << ";\n";
      for (int rr = 0; rr < r; ++rr)
        for (int xx = 0; xx < x; ++xx)
          os << ind << "  "
             << spell(t.store, {cat("acc + f * ", slot, " + ", (rr * T + xx) * V), "b"}) << ";\n";
      os << ind << "}\n";
      os << ind << variant(r, x0, x) << "(ib + " << x0 * V << ", acc, r, cnt);\n";
      os << ind << "for (int f = 0; f < nf; ++f) {\n";
      for (int rr = 0; rr < r; ++rr)
        for (int xx = 0; xx < x; ++xx) {
          const std::string a = vec_act(
              t, op.act, spell(t.load, {cat("acc + f * ", slot, " + ", (rr * T + xx) * V)}));
          os << ind << "  "
             << spell(t.store,
                      {cat("ob + (long)f * ", go.ps, " + ", rr * go.rs + (x0 + xx) * V), a})
             << ";\n";
        }
      os << ind << "}\n";
    }
  };
  if (RR) {
    os << "        if (y0 + " << R << " <= " << op.h << ") {\n";
    group("          ", R);
    os << "        } else {\n";
    group("          ", RR);
    os << "        }\n";
  } else {
    group("        ", R);
  }
  os << "      }\n    }\n  }\n}\n\n";
  nlohmann::json rec = sparse_record(i, op.name, fn, M, R, T, B, V);
  rec["filter_block"] = F;
  res.layers.push_back(rec);
}

void emit_sparse(std::ostream& os, const Target& t, const DeployModel& dm, const Plan& P, size_t i,
                 GenResult& res) {
  const Op& op = dm.ops[i];
  if (use_blocks(op, t)) {
    emit_sparse_blocked(os, t, dm, P, i, res);
    return;
  }
  const Geom& gi = P.geom[static_cast<size_t>(op.inputs[0])];
  const Geom& go = P.geom[i];
  const int V = t.vec, M = static_cast<int>(op.plan.masks.size());
  const int nvec = static_cast<int>((op.w + V - 1) / V);
  const int T = std::min(nvec, t.max_tile_vecs);
  const int R = std::max(1, std::min(op.h, t.acc_budget / T));
  const int XT = nvec / T, TR = nvec % T, HB = op.h / R, RR = op.h % R;
  const std::string fn = cat("L", i);
  std::vector<std::pair<int, int>> variants = {{R, T}};
  if (TR) variants.push_back({R, TR});
  if (RR) variants.push_back({RR, T});
  if (RR && TR) variants.push_back({RR, TR});
  for (auto [r, x] : variants) {
    if ((r == R && HB == 0) || (x == T && XT == 0)) continue;
    os << "static inline void " << fn << "_tile_" << r << "x" << x
       << "(const float* PC_RESTRICT in, float* PC_RESTRICT out, const uint32_t* PC_RESTRICT r, "
          "const int* PC_RESTRICT cnt, float bias) {\n";
    // A tile as wide as the row has the zero margins as its neighbours.
    emit_tile_body(os, t, op, gi, go, r, x, "  ", &res.pattern_kernels, x == nvec);
    emit_tile_store(os, t, op, go, r, x, "  ");
    os << "}\n\n";
  }
  std::vector<int64_t> offs;
  for (int64_t o : op.plan.filter_offset) offs.push_back(o);
  os << "static const int32_t " << fn << "_off[" << op.c << "] = {\n    " << array_lit(offs)
     << "};\n";
  os << "static const int " << fn << "_cnt[" << op.plan.counts.size() << "] = {\n    "
     << array_lit(op.plan.counts) << "};\n";
  os << "// " << op.source << ": sparse " << op.k << "x" << op.k << " s1, " << op.in_c << "x"
     << op.in_h << "x" << op.in_w << " -> " << op.c << "x" << op.h << "x" << op.w << ", " << M
     << " masks, tile " << R << " rows x " << T << " vectors of " << V << "\n";
  // Row bands: every filter sweeps one band of B output rows before any moves on, so the band of
  // input rows (all channels, B + K - 1 rows) stays in L2 while every filter that needs a channel
  // reuses it, instead of each filter streaming the whole input from L3/memory. B is a multiple
  // of R, sized so the input band fits t.band_bytes. Threads take runs of bands where there are
  // enough (Target::row_split_min_bands), else the filters of each band in turn.
  const int64_t in_row_bytes = static_cast<int64_t>(op.in_c) * gi.rs * 4;
  int B = static_cast<int>(
      std::max<int64_t>(1, t.band_bytes / std::max<int64_t>(1, in_row_bytes) - (op.k - 1)));
  B = std::max(R, B / R * R);
  if (B >= op.h) B = op.h;
  os << "static void " << fn
     << "(const float* PC_RESTRICT in, float* PC_RESTRICT out, const uint32_t* PC_RESTRICT wts) "
        "{\n";
  os << "  // bands of " << B << " rows: input band " << in_row_bytes * (B + op.k - 1) / 1024
     << " KiB\n";
  const bool by_rows = t.row_split_min_bands > 0 && (op.h + B - 1) / B >= t.row_split_min_bands;
  os << (by_rows ? "  PC_OMP_FOR\n" : "  PC_OMP_PARALLEL\n") << "  for (int b0 = 0; b0 < " << op.h
     << "; b0 += " << B << ") {\n";
  os << "    const int b1 = b0 + " << B << " < " << op.h << " ? b0 + " << B << " : " << op.h
     << ";\n";
  if (!by_rows) os << "    PC_OMP_FOR_CYCLIC_IN\n";
  os << "    for (int p = 0; p < " << op.c << "; ++p) {\n";
  os << "      const uint32_t* r = wts + " << P.woff[i] << " + " << fn << "_off[p];\n";
  os << "      const int* cnt = " << fn << "_cnt + p * " << M << ";\n";
  os << "      const float bias = pc_f(wts[" << P.boff[i] << " + p]);\n";
  os << "      const float* ib = in + " << gi.org << ";\n";
  os << "      float* ob = out + (long)p * " << go.ps << " + " << go.org << ";\n";
  auto call = [&](const std::string& ind, int r, int x, const std::string& y0,
                  const std::string& x0) {
    os << ind << fn << "_tile_" << r << "x" << x << "(ib + " << y0 << " * " << gi.rs << " + " << x0
       << ", ob + " << y0 << " * " << go.rs << " + " << x0 << ", r, cnt, bias);\n";
  };
  auto rowblock = [&](const std::string& ind, int r, const std::string& y0) {
    if (XT > 0) {
      os << ind << "for (int x0 = 0; x0 < " << XT * T * V << "; x0 += " << T * V << ")\n";
      call(ind + "  ", r, T, y0, "x0");
    }
    if (TR) call(ind, r, TR, y0, cat(XT * T * V));
  };
  // Full R-row blocks inside the band; the layer's last RR rows (when H % R) as the remainder.
  if (HB > 0) {
    os << "      const int yend = b1 < " << HB * R << " ? b1 : " << HB * R << ";\n";
    os << "      for (int y0 = b0; y0 < yend; y0 += " << R << ") {\n";
    rowblock("        ", R, "y0");
    os << "      }\n";
  }
  if (RR) {
    os << "      if (b1 == " << op.h << ") {\n";
    rowblock("        ", RR, cat(HB * R));
    os << "      }\n";
  }
  os << "    }\n  }\n}\n\n";
  res.layers.push_back(sparse_record(i, op.name, fn, M, R, T, B, V));
}

// The small-map gather in vector code (Target::perm2z, 16 lanes): the (pixel, tap) lanes of one
// gathered vector, over every mask, lie within 32 floats of the channel's plane, so two masked
// loads of that window and one two-source permute per mask replace 16 scalar copies each.
// Returns false, writing nothing, where a window would be wider.
bool emit_small_map_gather_vec(std::ostream& os, const Target& t, const Op& op, const Geom& gi,
                               int L) {
  const int V = t.vec, nv = L / V, npx = op.h * op.w;
  if (t.perm2z.empty() || V != 16) return false;
  std::vector<std::vector<Tap>> taps;
  for (uint16_t m : op.plan.masks) taps.push_back(mask_taps(m, op.k));
  // Offset in the plane of lane l of vector j for one mask's taps; -1 for a padding lane.
  auto lane_offset = [&](int j, int l, const std::vector<Tap>& tm) -> int64_t {
    const int px = (j * V + l) / 4;
    if (px >= npx) return -1;
    for (const Tap& tp : tm)
      if (tp.j == l % 4) return (px / op.w + tp.dy) * gi.rs + px % op.w + tp.dx + gi.org;
    return -1;
  };
  std::vector<int64_t> lo(static_cast<size_t>(nv), INT64_MAX), hi(static_cast<size_t>(nv), -1);
  for (int j = 0; j < nv; ++j)
    for (const std::vector<Tap>& tm : taps)
      for (int l = 0; l < V; ++l)
        if (const int64_t o = lane_offset(j, l, tm); o >= 0) {
          lo[static_cast<size_t>(j)] = std::min(lo[static_cast<size_t>(j)], o);
          hi[static_cast<size_t>(j)] = std::max(hi[static_cast<size_t>(j)], o);
        }
  for (int j = 0; j < nv; ++j)
    if (hi[static_cast<size_t>(j)] - lo[static_cast<size_t>(j)] >= 2 * V) return false;
  for (int j = 0; j < nv; ++j) {
    const int64_t base = lo[static_cast<size_t>(j)] - gi.org;  // relative to ic, like the taps
    const int span = static_cast<int>(hi[static_cast<size_t>(j)] - lo[static_cast<size_t>(j)] + 1);
    os << "      {\n        const " << t.vtype << " w0 = "
       << spell(t.mask_loadu, {hex_mask((1u << std::min(span, V)) - 1), cat("ic + ", base)})
       << ";\n";
    os << "        const " << t.vtype << " w1 = "
       << (span > V
               ? spell(t.mask_loadu, {hex_mask((1u << (span - V)) - 1), cat("ic + ", base + V)})
               : std::string("w0"))
       << ";\n";
    for (size_t m = 0; m < taps.size(); ++m) {
      std::vector<int64_t> idx(static_cast<size_t>(V), 0);
      uint32_t valid = 0;
      for (int l = 0; l < V; ++l)
        if (const int64_t o = lane_offset(j, l, taps[m]); o >= 0) {
          idx[static_cast<size_t>(l)] = o - lo[static_cast<size_t>(j)];
          valid |= 1u << l;
        }
      os << "        "
         << spell(t.store, {cat("g + ", static_cast<int64_t>(m) * L + j * V),
                            spell(t.perm2z,
                                  {"w0", spell(t.idx16, {array_lit(idx)}), "w1", hex_mask(valid)})})
         << ";\n";
    }
    os << "      }\n";
  }
  return true;
}

// The small-map epilogue in vector code (Target::shuf, 16 lanes, at most 4 vectors): each
// pixel's 4 tap lanes summed by two rounds of in-lane shuffles and adds in the scalar loop's
// order ((l0 + l1) + (l2 + l3)), the pixels put in order by one permute, then bias, activation
// and one masked store per map row: the same floats as the scalar loop. False where it does not
// apply.
bool emit_small_map_epilogue_vec(std::ostream& os, const Target& t, const Op& op, const Geom& go,
                                 const std::vector<std::string>& sums, const std::string& bias,
                                 const std::string& in3) {
  const int V = t.vec;
  if (t.shuf.empty() || V != 16 || sums.size() > 4) return false;
  std::vector<std::string> s(4, t.zero);
  for (size_t v = 0; v < sums.size(); ++v) {
    os << in3 << "const " << t.vtype << " s" << v << " = " << sums[v] << ";\n";
    s[v] = cat("s", v);
  }
  auto pair_sums = [&](const std::string& a, const std::string& b) {
    return spell(t.add, {spell(t.shuf, {a, b, "0x88"}), spell(t.shuf, {a, b, "0xDD"})});
  };
  os << in3 << "const " << t.vtype << " u0 = " << pair_sums(s[0], s[1]) << ";\n";
  os << in3 << "const " << t.vtype << " u1 = " << pair_sums(s[2], s[3]) << ";\n";
  // Lane 4k + j of the second round holds pixel 4j + k.
  std::vector<int64_t> order(static_cast<size_t>(V));
  for (int q = 0; q < V; ++q) order[static_cast<size_t>(q)] = 4 * (q % 4) + q / 4;
  os << in3 << t.vtype << " o = "
     << spell(t.add, {spell(t.set1, {bias}),
                      spell(t.perm, {spell(t.idx16, {array_lit(order)}), pair_sums("u0", "u1")})})
     << ";\n";
  if (op.act != Act::None) os << in3 << "o = " << vec_act(t, op.act, "o") << ";\n";
  os << in3 << "float* ob = out + (long)p * " << go.ps << " + " << go.org << ";\n";
  for (int y = 0; y < op.h; ++y)
    os << in3
       << spell(t.mask_storeu, {cat("ob + ", int64_t{y} * (go.rs - op.w)),
                                hex_mask(((1u << op.w) - 1) << (y * op.w)), "o"})
       << ";\n";
  return true;
}

// The scalar epilogue: the lanes through memory, each pixel's 4 lanes summed one by one.
void emit_small_map_epilogue(std::ostream& os, const Target& t, const Op& op, const Geom& go,
                             const std::vector<std::string>& sums, const std::string& bias,
                             const std::string& in3) {
  const int V = t.vec;
  os << in3 << "alignas(64) float lanes[" << sums.size() * static_cast<size_t>(V) << "];\n";
  for (size_t v = 0; v < sums.size(); ++v)
    os << in3 << spell(t.store, {cat("lanes + ", v * static_cast<size_t>(V)), sums[v]}) << ";\n";
  os << in3 << "const float bias = " << bias << ";\n";
  os << in3 << "float* ob = out + (long)p * " << go.ps << " + " << go.org << ";\n";
  os << in3 << "for (int y = 0; y < " << op.h << "; ++y)\n";
  os << in3 << "  for (int x = 0; x < " << op.w << "; ++x) {\n";
  os << in3 << "    const float* l = lanes + (y * " << op.w << " + x) * 4;\n";
  os << in3 << "    ob[y * " << go.rs << " + x] = pc_act(bias + ((l[0] + l[1]) + (l[2] + l[3])), "
     << act_code(op.act) << ");\n";
  os << in3 << "  }\n";
}

// Maps of a few pixels (2x2, 4x4): vectorising along a row wastes most lanes, so the lanes hold
// (pixel, tap) pairs instead. Each input channel is first gathered once per mask into a vector of
// P*4 lanes (pixel-major, the mask's 4 taps innermost; zero padding comes from the borders); a kept
// kernel is then nv aligned loads, one 128-bit broadcast of its 4 weights (which repeat every 4
// lanes) and nv FMAs, with U interleaved accumulator sets hiding the FMA latency. A filter's
// kernels of all masks form one list (small_map_records: the mask is in the gathered offset), so
// its loop has one exit; per-mask loops of ~15 kernels mispredicted twice per mask. Per filter
// the lanes of each pixel are summed at the end. The gather and that sum are vector code where
// the target spells the permutes (AVX-512: the two functions above), scalar loops elsewhere.
void emit_small_map(std::ostream& os, const Target& t, const DeployModel& dm, const Plan& P,
                    size_t i, GenResult& res) {
  const Op& op = dm.ops[i];
  const Geom& gi = P.geom[static_cast<size_t>(op.inputs[0])];
  const Geom& go = P.geom[i];
  const int V = t.vec, M = static_cast<int>(op.plan.masks.size());
  const int L = small_map_lanes(op, t), nv = L / V, npx = op.h * op.w;
  const int U = small_map_unroll(op, t);
  const std::string fn = cat("L", i);
  std::vector<int64_t> offs;
  std::vector<int> counts;
  small_map_records(op, t, &offs, &counts);
  os << "static const int32_t " << fn << "_off[" << op.c << "] = {\n    " << array_lit(offs)
     << "};\n";
  os << "static const int " << fn << "_cnt[" << op.c << "] = {\n    " << array_lit(counts)
     << "};\n";
  std::vector<int64_t> work(1, 0);  // records before each filter, for the threads' shares
  for (int n : counts) work.push_back(work.back() + n);
  os << "static const int " << fn << "_work[" << work.size() << "] = {\n    " << array_lit(work)
     << "};\n";
  os << "// " << op.source << ": sparse 3x3 s1 small map (pixel x tap lanes), " << op.in_c << "x"
     << op.in_h << "x" << op.in_w << " -> " << op.c << "x" << op.h << "x" << op.w << ", " << M
     << " masks in one record list per filter, " << nv << " vectors per kernel, " << U
     << " accumulator sets\n";
  os << "static void " << fn
     << "(const float* PC_RESTRICT in, float* PC_RESTRICT out, const uint32_t* PC_RESTRICT wts, "
        "float* PC_RESTRICT gather) {\n";
  // Each thread gathers every channel into its own scratch, so the filter loop reads only what
  // this core wrote (docs/deploy.md, Threads); then the padding records' zero vector.
  os << "  PC_OMP_PARALLEL\n  {\n";
  os << "    float* PC_RESTRICT pk = gather + (long)pc_thread_num() * " << P.gather_floats << ";\n";
  os << "    for (int l = 0; l < " << L << "; ++l) pk[" << int64_t{op.in_c} * M * L
     << " + l] = 0.0f;\n";
  os << "    for (int c = 0; c < " << op.in_c << "; ++c) {\n";
  os << "      const float* ic = in + " << gi.org << " + (long)c * " << gi.ps << ";\n";
  os << "      float* g = pk + (long)c * " << M * L << ";\n";
  const bool vec_gather = emit_small_map_gather_vec(os, t, op, gi, L);
  for (int m = 0; m < M && !vec_gather; ++m) {
    const std::vector<Tap> taps = mask_taps(op.plan.masks[static_cast<size_t>(m)], op.k);
    os << "      for (int y = 0; y < " << op.h << "; ++y)\n        for (int x = 0; x < " << op.w
       << "; ++x) {\n";
    os << "          float* q = g + " << m * L << " + (y * " << op.w << " + x) * 4;\n";
    os << "          const float* s = ic + y * " << gi.rs << " + x;\n";
    for (const Tap& tp : taps)
      os << "          q[" << tp.j << "] = s[" << tp.dy * gi.rs + tp.dx << "];\n";
    os << "        }\n";
    if (L > npx * 4)
      os << "      for (int l = " << npx * 4 << "; l < " << L << "; ++l) g[" << m * L
         << " + l] = 0.0f;\n";
  }
  res.pattern_kernels += M;
  os << "    }\n";
  // Filters in contiguous shares of near-equal work (the reorder put the heaviest first), so
  // a thread's planes stay about those the border zeroing after it gives it.
  os << "    int p0, p1;\n    pc_split_work(" << fn << "_work, " << op.c
     << ", pc_num_threads(), pc_thread_num(), &p0, &p1);\n";
  os << "    for (int p = p0; p < p1; ++p) {\n";
  os << "      const uint32_t* r = wts + " << P.woff[i] << " + " << fn << "_off[p];\n";
  const std::string in3 = "      ";
  for (int u = 0; u < U; ++u)
    for (int v = 0; v < nv; ++v)
      os << in3 << t.vtype << " a" << u << "_" << v << " = " << t.zero << ";\n";
  os << in3 << "for (int n = " << fn << "_cnt[p]; n > 0; n -= " << U << ", r += " << U * 5
     << ") {\n";
  for (int u = 0; u < U; ++u) {
    os << in3 << "  {\n";
    os << in3 << "    const float* g = pk + r[" << u * 5 << "];\n";
    os << in3 << "    const " << t.vtype << " w = " << spell(t.bcast4, {cat("r + ", u * 5 + 1)})
       << ";\n";
    for (int v = 0; v < nv; ++v)
      os << in3 << "    a" << u << "_" << v << " = "
         << spell(t.fma, {spell(t.load, {cat("g + ", v * V)}), "w", cat("a", u, "_", v)}) << ";\n";
    os << in3 << "  }\n";
  }
  os << in3 << "}\n";
  std::vector<std::string> sums;
  for (int v = 0; v < nv; ++v) {
    std::string sum = cat("a0_", v);
    for (int u = 1; u < U; ++u) sum = spell(t.add, {sum, cat("a", u, "_", v)});
    sums.push_back(sum);
  }
  const std::string bias = cat("pc_f(wts[", P.boff[i], " + p])");
  const bool vec_epilogue = emit_small_map_epilogue_vec(os, t, op, go, sums, bias, in3);
  if (!vec_epilogue) emit_small_map_epilogue(os, t, op, go, sums, bias, in3);
  os << "    }\n  }\n}\n\n";
  res.layers.push_back({{"op", i},
                        {"name", op.name},
                        {"function", fn},
                        {"kind", "sparse_small_map"},
                        {"masks", M},
                        {"vectors_per_kernel", nv},
                        {"accumulator_sets", U},
                        {"vector_gather", vec_gather},
                        {"vector_epilogue", vec_epilogue}});
}

}  // namespace

std::string emit_model_source(const DeployModel& dm, const Target& t, const Plan& P,
                              GenResult& res) {
  std::ostringstream os;
  os << header_comment("pconv_model.cpp: the model's layers and the C API.", "codegen.cpp", t, dm);
  os << "#include \"pconv_model.h\"\n#include \"pconv_ops.h\"\n";
  if (!t.include.empty()) os << t.include << "\n";
  os << t.helpers << "\n";
  for (const Op& op : dm.ops)
    if (use_channel_lanes(op, t)) {
      os << t.transpose_def << "\n";
      break;
    }
  // Layers.
  std::vector<std::string> calls, layer_names;
  std::vector<int> layer_ops;
  auto threads_of = [&](size_t i) { return op_threads(dm, i, t); };
  const std::string input_threads = threads_of(0);
  std::string threads_now = input_threads;
  nlohmann::json serial_ops = nlohmann::json::array();
  for (size_t i = 1; i < dm.ops.size(); ++i) {
    const Op& op = dm.ops[i];
    if (op.type == OpType::Flatten) continue;
    auto buf = [&](int x) { return cat("B", through_flattens(dm, x)); };
    const std::string out = cat("B", i);
    const std::string gin = geom_lit(P.geom[static_cast<size_t>(op.inputs[0])]);
    const std::string gout = geom_lit(P.geom[i]);
    // The call of the layer function L<i> emitted for op i: input, output, weights, then `more`.
    auto layer_fn = [&](const std::string& more) {
      return cat("L", i, "(", buf(op.inputs[0]), ", ", out, ", W", more, ")");
    };
    const std::string arena_scratch = cat(", A + ", P.scratch_off);
    std::string call;
    switch (op.type) {
      case OpType::Conv:
        switch (conv_kind(op)) {
          case ConvKind::Sparse:
            if (use_channel_lanes(op, t)) {
              emit_channel_lanes(os, t, dm, P, i, res);
              call = layer_fn("");
            } else if (use_stationary(op, t) || use_small_map(op, t)) {
              if (use_stationary(op, t)) {
                emit_stationary(os, t, dm, P, i, res);
                call = layer_fn(", m->gather" + arena_scratch);
              } else {
                emit_small_map(os, t, dm, P, i, res);
                call = layer_fn(", m->gather");
              }
            } else {
              emit_sparse(os, t, dm, P, i, res);
              call = layer_fn("");
            }
            break;
          case ConvKind::SparseStrided:
            emit_strided(os, t, dm, P, i, res);
            call = layer_fn(arena_scratch);
            break;
          case ConvKind::Generic:
            if (pointwise_strided_schedule(op, t).ok) {
              emit_pointwise_strided(os, t, dm, P, i, res);
              call = layer_fn(arena_scratch);
              break;
            }
            call = cat("pc_conv_generic(", buf(op.inputs[0]), ", ", gin, ", ", out, ", ", gout,
                       ", pc_fp(W + ", P.woff[i], "), pc_fp(W + ", P.boff[i], "), ", op.k, ", ",
                       op.stride, ", ", op.pad, ", ", op.groups, ", ", act_code(op.act), ")");
            res.layers.push_back({{"op", i}, {"name", op.name}, {"kind", "generic_conv"}});
            break;
        }
        break;
      case OpType::MaxPool:
      case OpType::AvgPool:
        call = pool_call(op, P.geom[static_cast<size_t>(op.inputs[0])], P.geom[i],
                         buf(op.inputs[0]), out);
        break;
      case OpType::GlobalAvgPool:
        call = cat("pc_gap(", buf(op.inputs[0]), ", ", gin, ", ", out, ")");
        break;
      case OpType::Linear:
        call = cat("pc_linear(", buf(op.inputs[0]), ", ", gin, ", ", out, ", ", op.c,
                   ", pc_fp(W + ", P.woff[i], "), pc_fp(W + ", P.boff[i], "), ", act_code(op.act),
                   ", A + ", P.scratch_off, ")");
        break;
      case OpType::Add:
        call = cat("pc_add(", buf(op.inputs[0]), ", ", gin, ", ", buf(op.inputs[1]), ", ",
                   geom_lit(P.geom[static_cast<size_t>(op.inputs[1])]), ", ", out, ", ", gout, ", ",
                   act_code(op.act), ")");
        break;
      case OpType::Affine:
        call =
            cat("pc_affine(", buf(op.inputs[0]), ", ", gin, ", ", out, ", ", gout, ", pc_fp(W + ",
                P.woff[i], "), pc_fp(W + ", P.boff[i], "), ", act_code(op.act), ")");
        break;
      case OpType::Activation:
        call = cat("pc_act(", buf(op.inputs[0]), ", ", gin, ", ", out, ", ", gout, ", ",
                   act_code(op.act), ")");
        break;
      default:
        throw Error(
            cat("layer \"", op.name, "\": internal error: no emitter for ", op_type_name(op.type)));
    }
    const int k = static_cast<int>(layer_names.size());
    layer_names.push_back(op.name);
    layer_ops.push_back(static_cast<int>(i));
    if (threads_of(i) != threads_now) {
      threads_now = threads_of(i);
      calls.push_back(cat("  pc_set_threads(", threads_now, ");"));
    }
    if (threads_now == "1") serial_ops.push_back(op.name);
    calls.push_back("  PC_LAYER_BEGIN();");
    calls.push_back(cat("  ", call, ";  // ", op.source));
    if (const std::string z = P.geom[i].flat || lanes_zero_border(op, P.geom[i], t)
                                  ? ""
                                  : zero_border_call(P.geom[i], out, border_need(dm, i, t));
        !z.empty())
      calls.push_back(cat("  ", z, ";"));
    calls.push_back(cat("  PC_LAYER_END(", k, ");"));
  }
  const Geom& gin = P.geom[0];
  const Geom& gout = P.geom[static_cast<size_t>(dm.output)];
  os << "struct pconv_model {\n  float* arena;\n  uint32_t* weights;\n"
        "  float* gather;        // per-thread scratch (PC_GATHER_FLOATS each): small-map "
        "gathers, stationary accumulators\n"
        "  int gather_threads;   // threads it has room for: the thread count at create\n};\n\n";
  os << "static const unsigned long long PC_WEIGHT_WORDS = " << P.words.size() << "ULL;\n";
  os << "static const unsigned long long PC_WEIGHT_SUM = " << weight_checksum(P.words) << "ULL;\n";
  os << "static const unsigned long long PC_ARENA_FLOATS = " << P.arena_floats << "ULL;\n";
  os << "static const unsigned long long PC_GATHER_FLOATS = " << P.gather_floats << "ULL;\n\n";
  os << "void pconv_destroy(pconv_model* m) {\n  if (!m) return;\n  pc_free(m->arena);\n  "
        "pc_free(m->gather);\n  pc_free(m->weights);\n  delete m;\n}\n\n";
  os << "pconv_model* pconv_create(const char* weights_path) {\n"
        "  uint32_t* w = pc_load_weights(weights_path, PC_WEIGHT_WORDS, PC_WEIGHT_SUM);\n"
        "  if (!w) return 0;\n"
        "  pconv_model* m = new pconv_model;\n"
        "  m->weights = w;\n"
        "  m->arena = pc_alloc_zero(PC_ARENA_FLOATS);\n"
        "  m->gather_threads = pc_max_threads();\n"
        "  m->gather = pc_alloc_zero(PC_GATHER_FLOATS * (unsigned long long)m->gather_threads);\n"
        "  if (!m->arena || !m->gather) {\n"
        "    std::fprintf(stderr, \"pconv_create: out of memory\\n\");\n"
        "    pconv_destroy(m);\n"
        "    return 0;\n"
        "  }\n"
        "#ifdef PC_POISON\n"
        "  // A check (cmake -DPCONV_POISON=ON; pconv-deploy --verify builds so): NaN in every\n"
        "  // float that pconv_run reads before an op of the same run writes or zeroes it shows\n"
        "  // up in the logits.\n"
        "  std::fill_n(m->arena, PC_ARENA_FLOATS, std::nanf(\"\"));\n"
        "  std::fill_n(m->gather, PC_GATHER_FLOATS * (unsigned long long)m->gather_threads,\n"
        "              std::nanf(\"\"));\n"
        "#endif\n"
        "  return m;\n}\n\n";
  // Per-layer timing hook: compiled in with -DPC_LAYER_TIMES (cmake -DPCONV_LAYER_TIMES=ON), it
  // records each layer's wall time of the last pconv_run; otherwise it costs nothing. With
  // pconv_set_layer_repeat(n) each layer runs n times back to back (no op writes what it reads,
  // so every run gives the same output): the first time is the layer in the model, the last the
  // layer alone on the caches it left itself, as a benchmark of one primitive times it.
  const size_t nl = layer_names.size();
  os << "static const int PC_LAYERS = " << nl << ";\n";
  os << "static const char* const pc_layer_names[" << nl << "] = {";
  for (size_t k = 0; k < nl; ++k) os << (k ? ", " : "") << "\"" << layer_names[k] << "\"";
  os << "};\nstatic const int pc_layer_ops[" << nl << "] = {" << array_lit(layer_ops) << "};\n";
  os << "#ifdef PC_LAYER_TIMES\n"
        "static double pc_layer_time["
     << nl << "], pc_layer_alone[" << nl
     << "];\n"
        "static int pc_layer_reps = 1;\n"
        "#define PC_LAYER_BEGIN() \\\n"
        "  for (int pc_rep = 0; pc_rep < pc_layer_reps; ++pc_rep) { \\\n"
        "  pc_t0 = pc_now_ms()\n"
        "#define PC_LAYER_END(k) \\\n"
        "  (pc_rep ? pc_layer_alone : pc_layer_time)[k] = pc_now_ms() - pc_t0; \\\n"
        "  }\n"
        "#else\n"
        "#define PC_LAYER_BEGIN()\n"
        "#define PC_LAYER_END(k)\n"
        "#endif\n";
  os << "int pconv_layer_count(void) { return PC_LAYERS; }\n"
        "const char* pconv_layer_name(int i) { return i >= 0 && i < PC_LAYERS ? "
        "pc_layer_names[i] : 0; }\n"
        "int pconv_layer_op(int i) { return i >= 0 && i < PC_LAYERS ? pc_layer_ops[i] : -1; }\n"
        "double pconv_layer_ms(int i) {\n"
        "#ifdef PC_LAYER_TIMES\n"
        "  return i >= 0 && i < PC_LAYERS ? pc_layer_time[i] : -1.0;\n"
        "#else\n"
        "  (void)i;\n  return -1.0;\n"
        "#endif\n}\n"
        "int pconv_set_layer_repeat(int n) {\n"
        "#ifdef PC_LAYER_TIMES\n"
        "  pc_layer_reps = n > 1 ? n : 1;\n  return 0;\n"
        "#else\n"
        "  (void)n;\n  return 1;\n"
        "#endif\n}\n"
        "double pconv_layer_ms_alone(int i) {\n"
        "#ifdef PC_LAYER_TIMES\n"
        "  return pc_layer_reps > 1 && i >= 0 && i < PC_LAYERS ? pc_layer_alone[i] : -1.0;\n"
        "#else\n"
        "  (void)i;\n  return -1.0;\n"
        "#endif\n}\n\n";
  os << "int pconv_input_size(void) { return " << gin.c * gin.h * gin.w << "; }\n";
  os << "int pconv_output_size(void) { return " << gout.c * gout.h * gout.w << "; }\n\n";
  os << "int pconv_run(pconv_model* m, const float* input, float* output) {\n";
  os << "  if (!m || !input || !output) return 1;\n";
  os << "  float* A = m->arena;\n  const uint32_t* W = m->weights;\n  (void)W;\n";
  os << "#ifdef PC_LAYER_TIMES\n  double pc_t0 = 0;\n#endif\n";
  os << "  const int pc_threads = pc_max_threads();\n"
        "  const int pc_gather_threads = pc_threads < m->gather_threads ? pc_threads : "
        "m->gather_threads;\n"
        "  (void)pc_gather_threads;\n";
  // Each op's output buffer: its slot of the plan for several threads or for one (make_plan).
  os << "  const bool pc_one = pc_threads == 1;\n  (void)pc_one;\n";
  for (size_t i = 0; i < dm.ops.size(); ++i) {
    if (dm.ops[i].type == OpType::Flatten) continue;
    const int64_t many = P.slot_off[static_cast<size_t>(P.slot[i])],
                  one = P.slot_off_one[static_cast<size_t>(P.slot_one[i])];
    os << "  float* const B" << i << " = A + "
       << (many == one ? cat(many) : cat("(pc_one ? ", one, " : ", many, ")")) << ";\n";
  }
  if (input_threads != "pc_threads") os << "  pc_set_threads(" << input_threads << ");\n";
  const std::string in_buf = "B0";
  os << "  pc_put(input, " << in_buf << ", " << geom_lit(gin) << ");\n";
  if (!gin.flat) os << "  " << zero_border_call(gin, in_buf) << ";\n";
  for (const std::string& c : calls) os << c << "\n";
  if (threads_now != "pc_threads") os << "  pc_set_threads(pc_threads);\n";
  res.one_thread_ops = serial_ops;
  os << "  pc_get(B" << through_flattens(dm, dm.output) << ", " << geom_lit(gout) << ", output);\n";
  os << "  return 0;\n}\n";
  return os.str();
}

uint64_t weight_checksum(const std::vector<uint32_t>& w) {
  uint64_t h = 1469598103934665603ULL;  // FNV-1a over the words
  for (uint32_t x : w) {
    h ^= x;
    h *= 1099511628211ULL;
  }
  return h;
}

void write_file(const std::string& path, const std::string& text, GenResult& res) {
  std::ofstream f(path);
  PCONV_CHECK(f.good(), "cannot write ", path);
  f << text;
  PCONV_CHECK(f.good(), "error writing ", path);
  res.files.push_back(path);
}

void write_weights(const std::string& path, const std::vector<uint32_t>& words, GenResult& res) {
  std::ofstream f(path, std::ios::binary);
  PCONV_CHECK(f.good(), "cannot write ", path);
  const char magic[8] = {'P', 'C', 'O', 'N', 'V', 'W', '0', '1'};
  const uint64_t n = words.size(), sum = weight_checksum(words);
  f.write(magic, 8);
  f.write(reinterpret_cast<const char*>(&n), 8);
  f.write(reinterpret_cast<const char*>(&sum), 8);
  f.write(reinterpret_cast<const char*>(words.data()), static_cast<std::streamsize>(n * 4));
  PCONV_CHECK(f.good(), "error writing ", path);
  res.files.push_back(path);
  res.weight_words = static_cast<int64_t>(n);
}

GenResult generate(const DeployModel& dm, const Target& t, const std::string& out_dir) {
  fs::create_directories(out_dir);
  GenResult res;
  const Plan P = make_plan(dm, t);
  res.arena_floats = P.arena_floats;
  if (t.family == "opencl") {
    generate_opencl(dm, t, P, out_dir, res);
  } else {
    write_file(out_dir + "/pconv_model.cpp", emit_model_source(dm, t, P, res), res);
    write_file(out_dir + "/pconv_ops.h", ops_header(t, dm), res);
    write_file(out_dir + "/pconv_model.h", api_header(t, dm), res);
    write_file(out_dir + "/runner.cpp", runner_source(t, dm), res);
    write_file(out_dir + "/CMakeLists.txt", cmake_source(t, dm), res);
  }
  write_weights(out_dir + "/weights.bin", P.words, res);
  return res;
}

}  // namespace pconv::deploy
