// The channel-stationary form of the pattern convs (AVX-512; AVX2 with the taps loaded instead of
// shifted: the sideways ones one float off in rows, every one from a packed copy of the input in
// the packed layout): its schedule, its records and its emitter. See StationarySchedule in
// codegen_internal.h.
#include <algorithm>
#include <functional>
#include <ostream>
#include <sstream>
#include <string>
#include <vector>

#include "deploy/codegen_internal.h"

namespace pconv::deploy {

std::vector<std::pair<int, int>> stationary_taps(const Op& op) {
  std::vector<std::pair<int, int>> taps;  // (dy, dx)
  for (uint16_t m : op.plan.masks)
    for (const Tap& tp : mask_taps(m, op.k))
      if (std::find(taps.begin(), taps.end(), std::make_pair(tp.dy, tp.dx)) == taps.end())
        taps.push_back({tp.dy, tp.dx});
  return taps;
}

StationarySchedule stationary_schedule(const Op& op, const Target& t) {
  StationarySchedule s;
  if (t.mask_loadu.empty() || t.mask_storeu.empty() || op.type != OpType::Conv ||
      conv_kind(op) != ConvKind::Sparse || op.k != 3 || op.plan.masks.empty() ||
      op.h * op.w < t.stationary_min_pixels || use_channel_lanes(op, t))
    return s;
  // Every tap's shifted copy of the channel stays in registers, beside the accumulators and the
  // weights: at most Target::stationary_regs (R: AVX-512 26 of 32, AVX2 11 of 16). Packed: with
  // alignz taps x vectors <= R - 2 (4 vectors, 8x8, for the 5 taps of the 4 SCPs), loaded from a
  // packed copy (Target::stationary_packed_loads) <= R (AVX2: 2 vectors, 4x4 and 3x3). Rows:
  // a band's rows, the row above and below, and a copy per row of each tap off the centre
  // column (the up/down taps are the neighbouring rows themselves) <= R: for the 4 SCPs on
  // AVX-512 8 rows of one vector (14x14, 16x16), 3 of two (28x28), 1 of four (56x56); on AVX2 3
  // rows of one vector (8x8), 1 of two (14x14, 16x16).
  const std::vector<std::pair<int, int>> taps = stationary_taps(op);
  const int packed = (op.h * op.w + t.vec - 1) / t.vec;
  int sideways = 0;
  for (auto [dy, dx] : taps) sideways += dx != 0;
  s.split = t.stationary_split_min_reduction > 0 && t.min_parallel_work > 0 &&
            op.plan.nonzero_macs < t.min_parallel_work &&
            op.plan.nonzero_macs >= int64_t{t.stationary_split_min_reduction} * op.c * op.h * op.w;
  // Rows of more than stationary_max_row_vecs vectors go in segments of at most
  // stationary_segment_vecs where the reduction is long enough
  // (Target::stationary_segment_min_reduction): as rows, plus (alignz) a neighbour vector on
  // each inner edge of the rows the sideways taps shift (so R - 2 registers). Narrow segments
  // take taller bands: each channel's rows then feed more accumulators per load and per
  // (channel, mask) list.
  const int rv = (op.w + t.vec - 1) / t.vec, sv0 = t.stationary_segment_vecs;
  const bool segments =
      sv0 > 0 && t.stationary_max_row_vecs > 0 && rv > t.stationary_max_row_vecs && !s.split &&
      op.plan.nonzero_macs >= int64_t{t.stationary_segment_min_reduction} * op.c * op.h * op.w;
  const int R = t.stationary_regs;
  const bool shifts = !t.alignz.empty();  // in registers; otherwise loads
  if (shifts && static_cast<int>(taps.size()) * packed <= R - 2) {
    s.vectors = packed;
  } else if (!shifts && t.stationary_packed_loads && static_cast<int>(taps.size()) * packed <= R) {
    s.vectors = packed;
    s.packed_loads = true;
    s.pack_stride = int64_t{packed} * t.vec;
  } else if (segments) {
    s.segments = (rv + sv0 - 1) / sv0;
    s.seg_vecs = (rv + s.segments - 1) / s.segments;
    const int bseg = ((shifts ? R - 2 : R) / s.seg_vecs - 2) / (1 + sideways);
    if (bseg < 1) return s;
    const int nb = (op.h + bseg - 1) / bseg;
    s.band = (op.h + nb - 1) / nb;
    s.vectors = s.band * s.seg_vecs;
  } else if (const int bmax = (R / rv - 2) / (1 + sideways);
             rv <= t.stationary_max_row_vecs && bmax >= 1) {
    const int nb = (op.h + bmax - 1) / bmax;
    s.band = (op.h + nb - 1) / nb;
    s.vectors = s.band * rv;
  } else {
    return s;
  }
  const int64_t fmax =
      std::max<int64_t>(1, t.stationary_acc_bytes / (int64_t{s.vectors} * t.vec * 4));
  s.groups = static_cast<int>((op.c + fmax - 1) / fmax);
  s.per_group = (op.c + s.groups - 1) / s.groups;  // equal groups
  // Rows pay against the row kernel where it takes filter blocks (14x14-28x28 here: 7-17%
  // less time) or where a channel's records per mask are many (56x56 at connectivity 3.1: about
  // 10 a group, 20% less). On 32x32x64 at 8.8 (2 a list: a loop exit mispredicted every few
  // kernels) and on a first conv of 3 channels (its output written in bands across 64 planes)
  // they lost 15-30% (docs/deploy.md).
  const double per_list = static_cast<double>(op.plan.kept_kernels) /
                          (static_cast<double>(s.groups) * op.in_c * op.plan.masks.size());
  s.ok = !s.band ||
         (op.in_c >= 16 && (sparse_schedule(op, t).F > 0 || per_list >= t.stationary_min_per_list));
  const int bands = s.band ? (op.h + s.band - 1) / s.band : 1;
  s.scratch_floats = s.split ? int64_t{bands} * s.groups * s.per_group * s.vectors * t.vec
                             : int64_t{s.per_group} * s.vectors * t.vec;
  return s;
}

bool use_stationary(const Op& op, const Target& t) {
  return stationary_schedule(op, t).ok;
}

int64_t stationary_pack_floats(const Op& op, const Target& t) {
  const StationarySchedule s = stationary_schedule(op, t);
  return s.ok && s.packed_loads ? int64_t{op.in_c} * s.pack_stride : 0;
}

std::vector<uint32_t> stationary_records(const Op& op, const Target& t, std::vector<int>* counts,
                                         std::vector<int64_t>* group_start) {
  const int M = static_cast<int>(op.plan.masks.size());
  const StationarySchedule S = stationary_schedule(op, t);
  std::vector<uint32_t> words;
  counts->assign(static_cast<size_t>(S.groups) * op.in_c * M, 0);
  group_start->clear();
  for (int g = 0; g < S.groups; ++g) {
    group_start->push_back(static_cast<int64_t>(words.size()));
    // (channel, mask) -> the group's records, filters ascending.
    std::vector<std::vector<uint32_t>> per(static_cast<size_t>(op.in_c) * M);
    for (int f = 0; f < S.per_group && g * S.per_group + f < op.c; ++f) {
      const int p = g * S.per_group + f;
      const uint32_t* r = op.plan.words.data() + op.plan.filter_offset[static_cast<size_t>(p)];
      for (int m = 0; m < M; ++m) {
        const int nt = popcount9(op.plan.masks[static_cast<size_t>(m)]);
        for (int n = op.plan.counts[static_cast<size_t>(p) * M + m]; n > 0; --n, r += nt + 1) {
          std::vector<uint32_t>& v = per[static_cast<size_t>(r[0]) * M + m];
          v.push_back(static_cast<uint32_t>(f * S.vectors * t.vec));
          v.insert(v.end(), r + 1, r + 1 + nt);
        }
      }
    }
    for (size_t k = 0; k < per.size(); ++k) {
      const int nt = popcount9(op.plan.masks[k % static_cast<size_t>(M)]);
      (*counts)[static_cast<size_t>(g) * per.size() + k] =
          static_cast<int>(per[k].size()) / (nt + 1);
      words.insert(words.end(), per[k].begin(), per[k].end());
    }
  }
  return words;
}

namespace {

// The packed map's rows as (vector, row, lane mask) pieces, for the masked loads and stores.
struct StationaryPiece {
  int k, y;
  uint32_t mask;
};

std::vector<StationaryPiece> stationary_pieces(const Op& op, const Target& t, int NV) {
  std::vector<StationaryPiece> pieces;
  for (int k = 0; k < NV; ++k)
    for (int y = 0; y < op.h; ++y) {
      uint32_t mask = 0;
      for (int x = 0; x < op.w; ++x)
        if ((y * op.w + x) / t.vec == k) mask |= 1u << ((y * op.w + x) % t.vec);
      if (mask) pieces.push_back({k, y, mask});
    }
  return pieces;
}

// Rows layout: the lanes of a row's vector j that hold the map's columns.
uint32_t stationary_row_lanes(const Op& op, const Target& t, int j) {
  return (1u << std::min(t.vec, op.w - j * t.vec)) - 1;
}

std::string stationary_piece_ptr(const Op& op, const Target& t, const std::string& base,
                                 const StationaryPiece& pc, int64_t rs) {
  return cat(base, " + ", int64_t{pc.y} * rs + int64_t{pc.k} * t.vec - int64_t{pc.y} * op.w);
}

// The records of one channel: per mask, load the filter's accumulators, add the taps (named by
// `vec`), store them back.
void emit_stationary_records(std::ostream& os, const Target& t, const Op& op,
                             const std::string& ind, int nv,
                             const std::function<std::string(int, int, int)>& vec) {
  const int M = static_cast<int>(op.plan.masks.size());
  for (int m = 0; m < M; ++m) {
    const std::vector<Tap> mt = mask_taps(op.plan.masks[static_cast<size_t>(m)], op.k);
    const int nt = static_cast<int>(mt.size());
    os << ind << "for (int n = cnt[" << m << "]; n > 0; --n, r += " << nt + 1 << ") {\n";
    os << ind << "  float* PC_RESTRICT a = acc + r[0];\n";
    for (const Tap& tp : mt)
      os << ind << "  const " << t.vtype << " w" << tp.j << " = "
         << spell(t.set1, {spell(t.bits2f, {cat("r[", tp.j + 1, "]")})}) << ";\n";
    for (int k = 0; k < nv; ++k) {
      os << ind << "  " << t.vtype << " s" << k << " = " << spell(t.load, {cat("a + ", k * t.vec)})
         << ";\n";
      for (const Tap& tp : mt)
        os << ind << "  s" << k << " = "
           << spell(t.fma, {vec(tp.dy, tp.dx, k), cat("w", tp.j), cat("s", k)}) << ";\n";
      os << ind << "  " << spell(t.store, {cat("a + ", k * t.vec), cat("s", k)}) << ";\n";
    }
    os << ind << "}\n";
  }
}

std::string stationary_tap_name(int dy, int dx, int k) {
  return cat("t", dy + 1, dx + 1, "_", k);
}

// Prefetches into L1 the lines of channel c + t.stationary_prefetch that the channel loop will
// load (`ranges`: float offsets and lengths from `ic`; the last channels re-fetch their own).
// Each channel is loaded once a group and band, from L2, L3 or, after a layer split by channels,
// the other core's cache, and the record loops between two channels' loads leave those misses
// exposed (docs/deploy.md).
void emit_channel_prefetch(std::ostream& os, const Target& t, const Geom& gi, bool banded,
                           const std::string& ind, const std::string& c_end,
                           const std::vector<std::pair<int64_t, int64_t>>& ranges) {
  const int D = t.stationary_prefetch;
  if (D <= 0 || t.prefetch.empty()) return;
  constexpr int64_t kLine = 16;  // floats a 64-byte line
  // Where `ic` falls in its line: known when the strides it moves by keep lines in step (arena
  // slots are line-aligned; a band starts y0 rows in); otherwise taken as aligned, which at worst
  // skips a line.
  const bool known = gi.ps % kLine == 0 && (!banded || gi.rs % kLine == 0);
  const int64_t mis = known ? gi.org % kLine : 0;
  auto line_of = [&](int64_t f) { return (f - (f < 0 ? kLine - 1 : 0)) / kLine; };
  std::vector<int64_t> lines;
  for (auto [off, len] : ranges)
    for (int64_t l = line_of(mis + off); l <= line_of(mis + off + len - 1); ++l)
      if (std::find(lines.begin(), lines.end(), l) == lines.end()) lines.push_back(l);
  os << ind << "const float* pf = c + " << D << " < " << c_end << " ? ic + " << D * gi.ps
     << " : ic;\n";
  for (int64_t l : lines) os << ind << spell(t.prefetch, {cat("pf + ", l * kLine - mis)}) << ";\n";
}

// Rows layout: the band function for bands of B rows, over the SV vectors of each row from vector
// x0 on (whole rows: x0 = 0, SV = the row's). It runs nc channels from the one whose band ic0
// points at (at vector x0): loads rows -1 .. B (the zero rows above and below the map cover its
// edges) and, on a segment's inner edges, the neighbour vector of each row a sideways tap shifts;
// shifts the sideways taps (without alignz: loads them one float off, masked to the map's
// columns), adds the records.
void emit_stationary_band_fn(std::ostream& os, const Target& t, const Op& op, const Geom& gi,
                             const Geom& go, const std::string& name, int B, int x0, int SV) {
  const int V = t.vec, M = static_cast<int>(op.plan.masks.size());
  const int RV = (op.w + V - 1) / V;  // vectors a whole row
  const bool shifts = !t.alignz.empty();
  const bool left = x0 > 0, right = x0 + SV < RV;
  os << "static inline void " << name
     << "(const float* PC_RESTRICT ic0, float* PC_RESTRICT acc, const uint32_t* PC_RESTRICT r, "
        "const int* PC_RESTRICT cnt, int nc, const float* ob0, int nf) {\n";
  os << "  (void)ob0;\n  (void)nf;  // the output the job will store, its filter count\n";
  os << "  for (int c = 0; c < nc; ++c, cnt += " << M << ") {\n";
  os << "    const float* ic = ic0 + (long)c * " << gi.ps << ";\n";
  // The epilogue's output lines, filter c (and c + nc, ...) at channel c, into L2: its stores then
  // find them there instead of waiting, burst after burst, on lines that the rest of the model
  // pushed out to memory (docs/deploy.md).
  if (t.stationary_out_prefetch && !t.prefetch_l2.empty()) {
    os << "    for (int f = c; f < nf; f += nc) {\n";
    os << "      const float* po = ob0 + (long)f * " << go.ps << ";\n";
    for (int k = 0; k < B; ++k)
      for (int j = 0; j < SV; ++j)
        os << "      " << spell(t.prefetch_l2, {cat("po + ", int64_t{k} * go.rs + int64_t{j} * V)})
           << ";\n";
    os << "    }\n";
  }
  std::vector<int> shifted(static_cast<size_t>(B + 2), 0);  // rows a sideways tap reads
  for (auto [dy, dx] : stationary_taps(op))
    if (dx != 0)
      for (int k = 0; k < B; ++k) shifted[static_cast<size_t>(k + 1 + dy)] = 1;
  std::vector<std::pair<int64_t, int64_t>> rows;  // what each row's loads touch, from ic
  for (int k = 0; k < B + 2; ++k) {
    const bool sh = shifted[static_cast<size_t>(k)];
    if (shifts) {  // whole vectors, and the neighbour vectors
      const int lo = left && sh ? -1 : 0, hi = right && sh ? SV + 1 : SV;
      rows.push_back({int64_t{k - 1} * gi.rs + int64_t{lo} * V, int64_t{hi - lo} * V});
    } else {  // the map's columns, and one more on each side the taps reach
      const int lo = left && sh ? -1 : 0, hi = std::min(SV * V + (sh ? 1 : 0), op.w - x0 * V);
      rows.push_back({int64_t{k - 1} * gi.rs + lo, hi - lo});
    }
  }
  emit_channel_prefetch(os, t, gi, true, "    ", "nc", rows);
  auto load_at = [&](const std::string& var, uint32_t lanes, int64_t off) {  // from ic + off
    os << "    const " << t.vtype << " " << var << " = "
       << spell(t.mask_loadu, {hex_mask(lanes), cat("ic + ", off)}) << ";\n";
  };
  auto load = [&](const std::string& var, int k, int j) {  // row k, vector j of the segment
    load_at(var, stationary_row_lanes(op, t, x0 + j), int64_t{k - 1} * gi.rs + int64_t{j} * V);
  };
  for (int k = 0; k < B + 2; ++k)
    for (int j = 0; j < SV; ++j) load(cat("x", k, "_", j), k, j);
  for (int k = 0; k < B + 2 && shifts; ++k) {
    if (!shifted[static_cast<size_t>(k)]) continue;
    if (left) load(cat("xl", k), k, -1);
    if (right) load(cat("xr", k), k, SV);
  }
  for (auto [dy, dx] : stationary_taps(op)) {
    if (dx == 0) continue;
    for (int j = 0; j < SV; ++j) {
      uint32_t valid = 0;
      for (int l = 0; l < V; ++l) {
        const int x = (x0 + j) * V + l;
        if (x < op.w && x + dx >= 0 && x + dx < op.w) valid |= 1u << l;
      }
      for (int k = 0; k < B; ++k) {
        const int row = k + 1 + dy;
        const std::string tap = stationary_tap_name(dy, dx, k * SV + j);
        if (!shifts) {
          load_at(tap, valid, int64_t{row - 1} * gi.rs + j * V + dx);
          continue;
        }
        const std::string cur = cat("x", row, "_", j);
        const std::string nb = dx > 0 ? (j + 1 < SV ? cat("x", row, "_", j + 1)
                                         : right    ? cat("xr", row)
                                                    : t.zero)
                                      : (j > 0  ? cat("x", row, "_", j - 1)
                                         : left ? cat("xl", row)
                                                : t.zero);
        os << "    const " << t.vtype << " " << tap << " = "
           << (dx > 0 ? spell(t.alignz, {hex_mask(valid), nb, cur, "1"})
                      : spell(t.alignz, {hex_mask(valid), cur, nb, cat(V - 1)}))
           << ";\n";
      }
    }
  }
  emit_stationary_records(os, t, op, "    ", B * SV, [&](int dy, int dx, int v) {
    return dx == 0 ? cat("x", v / SV + 1 + dy, "_", v % SV) : stationary_tap_name(dy, dx, v);
  });
  os << "  }\n}\n";
}

// Packed layout: the channel loop over [cb, ce), inline in the layer function. Lane l of vector k
// holds pixel p = k*V + l = y*W + x.
void emit_stationary_packed_loop(std::ostream& os, const Target& t, const Op& op, const Geom& gi,
                                 const StationarySchedule& S, const std::string& cb,
                                 const std::string& ce, const std::string& ind) {
  const int V = t.vec, M = static_cast<int>(op.plan.masks.size()), npx = op.h * op.w;
  const int NV = S.vectors;
  auto valid_lanes = [&](int dy, int dx, int k) {
    uint32_t valid = 0;
    for (int l = 0; l < V; ++l) {
      const int p = k * V + l, y = p / op.w + dy, x = p % op.w + dx;
      if (p < npx && y >= 0 && y < op.h && x >= 0 && x < op.w) valid |= 1u << l;
    }
    return valid;
  };
  os << ind << "for (int c = " << cb << "; c < " << ce << "; ++c, cnt += " << M << ") {\n";
  if (S.packed_loads) {  // each tap a masked load from the channel's packed copy
    os << ind << "  const float* ic = pk + (long)c * " << S.pack_stride << ";\n";
    Geom packed;
    packed.ps = S.pack_stride;
    emit_channel_prefetch(os, t, packed, false, ind + "  ", ce, {{0, npx}});
    for (auto [dy, dx] : stationary_taps(op))
      for (int k = 0; k < NV; ++k)
        os << ind << "  const " << t.vtype << " " << stationary_tap_name(dy, dx, k) << " = "
           << spell(t.mask_loadu,
                    {hex_mask(valid_lanes(dy, dx, k)), cat("ic + ", k * V + dy * op.w + dx)})
           << ";\n";
    emit_stationary_records(os, t, op, ind + "  ", NV, stationary_tap_name);
    os << ind << "}\n";
    return;
  }
  os << ind << "  const float* ic = in + " << gi.org << " + (long)c * " << gi.ps << ";\n";
  std::vector<std::pair<int64_t, int64_t>> rows;
  for (int y = 0; y < op.h; ++y) rows.push_back({int64_t{y} * gi.rs, op.w});
  emit_channel_prefetch(os, t, gi, false, ind + "  ", ce, rows);
  for (int k = 0; k < NV; ++k)
    os << ind << "  " << t.vtype << " " << stationary_tap_name(0, 0, k) << " = " << t.zero << ";\n";
  for (const StationaryPiece& pc : stationary_pieces(op, t, NV))
    os << ind << "  " << stationary_tap_name(0, 0, pc.k) << " = "
       << spell(t.mask_loadu_into, {stationary_tap_name(0, 0, pc.k), hex_mask(pc.mask),
                                    stationary_piece_ptr(op, t, "ic", pc, gi.rs)})
       << ";\n";
  for (auto [dy, dx] : stationary_taps(op)) {
    if (dy == 0 && dx == 0) continue;
    const int sh = dy * op.w + dx;  // lane l takes pixel p + sh
    for (int k = 0; k < NV; ++k) {
      const uint32_t valid = valid_lanes(dy, dx, k);
      // Pixel p + sh lies in vector k or its neighbour (|sh| < V): shift the pair.
      const std::string lo = sh > 0 ? stationary_tap_name(0, 0, k)
                                    : (k > 0 ? stationary_tap_name(0, 0, k - 1) : t.zero);
      const std::string hi = sh > 0 ? (k + 1 < NV ? stationary_tap_name(0, 0, k + 1) : t.zero)
                                    : stationary_tap_name(0, 0, k);
      os << ind << "  const " << t.vtype << " " << stationary_tap_name(dy, dx, k) << " = "
         << spell(t.alignz, {hex_mask(valid), hi, lo, cat(sh > 0 ? sh : V + sh)}) << ";\n";
    }
  }
  emit_stationary_records(os, t, op, ind + "  ", NV, stationary_tap_name);
  os << ind << "}\n";
}

// Stores a filter's accumulators (at `src`; split: thread 0's partials, the others' GF floats
// apart, summed in thread order) activated into its output plane at `ob`: `nv` vectors, a band of
// nv / sv rows of sv vectors from vector x0 (rows layout; sv 0: whole rows) or the packed map.
void emit_stationary_store(std::ostream& os, const Target& t, const Op& op, const Geom& go,
                           const StationarySchedule& S, int64_t GF, const std::string& ind,
                           const std::string& src, int nv, int sv = 0, int x0 = 0) {
  const int V = t.vec, RV = sv ? sv : (op.w + V - 1) / V;  // vectors a stored row
  auto value = [&](int v) {
    const std::string at = cat(src, " + ", v * V);
    if (!S.split) {
      os << ind << "  const " << t.vtype << " o = " << vec_act(t, op.act, spell(t.load, {at}))
         << ";\n";
      return;
    }
    os << ind << "  " << t.vtype << " o = " << spell(t.load, {at}) << ";\n";
    os << ind << "  for (int u = 1; u < nth; ++u) o = "
       << spell(t.add, {"o", spell(t.load, {cat(at, " + (long)u * ", GF)})}) << ";\n";
    os << ind << "  o = " << vec_act(t, op.act, "o") << ";\n";
  };
  const std::vector<StationaryPiece> pieces =
      S.band ? std::vector<StationaryPiece>{} : stationary_pieces(op, t, S.vectors);
  for (int v = 0; v < nv; ++v) {
    os << ind << "{\n";
    value(v);
    if (S.band) {
      os << ind << "  "
         << spell(t.mask_storeu, {cat("ob + ", int64_t{v / RV} * go.rs + (v % RV) * V),
                                  hex_mask(stationary_row_lanes(op, t, x0 + v % RV)), "o"})
         << ";\n";
    } else {
      for (const StationaryPiece& pc : pieces)
        if (pc.k == v)
          os << ind << "  "
             << spell(t.mask_storeu,
                      {stationary_piece_ptr(op, t, "ob", pc, go.rs), hex_mask(pc.mask), "o"})
             << ";\n";
    }
    os << ind << "}\n";
  }
}

}  // namespace

// The channel-stationary form (stationary_schedule): per filter group (its accumulators in the
// per-thread scratch, so they stay in L1), each input channel is loaded once and shifted once per
// tap of the layer's masks (a masked cross-lane shift zeroes the lanes whose tap falls outside
// the map); then every kept kernel of that channel, one branch-free loop per mask, loads its
// filter's accumulator vectors, adds its taps and stores them back. The gather form of the small
// maps reads 4 gathered vectors per kernel from an L2-sized scratch and the row kernel's filter
// blocks reload and shift a channel's rows for every kernel; this form does both once per channel.
// Packed maps (lane l of vector k is pixel 16k + l, row after row) are one band; maps of one to
// four vectors a row are swept in bands of rows, each band size a function of its own (the last
// band may be shorter). Threads take groups or (band, group) jobs, or, split by input channels
// (StationarySchedule::split), every job over their share of the channels.
void emit_stationary(std::ostream& os, const Target& t, const DeployModel& dm, const Plan& P,
                     size_t i, GenResult& res) {
  const Op& op = dm.ops[i];
  const Geom& gi = P.geom[static_cast<size_t>(op.inputs[0])];
  const Geom& go = P.geom[i];
  const int V = t.vec, M = static_cast<int>(op.plan.masks.size());
  const StationarySchedule S = stationary_schedule(op, t);
  const int NV = S.vectors, G = S.groups, PG = S.per_group;
  const int64_t GF = P.gather_floats, FV = int64_t{NV} * V;  // floats a filter's accumulators
  const std::string fn = cat("L", i);
  std::vector<int> counts;
  std::vector<int64_t> starts;
  stationary_records(op, t, &counts, &starts);
  os << "static const int32_t " << fn << "_start[" << G << "] = {\n    " << array_lit(starts)
     << "};\n";
  os << "static const int " << fn << "_cnt[" << counts.size() << "] = {\n    " << array_lit(counts)
     << "};\n";
  if (S.split) {  // per group, each channel's first record word (a thread starts at its first)
    std::vector<int64_t> cstart;
    for (int g = 0; g < G; ++g) {
      int64_t w = starts[static_cast<size_t>(g)];
      for (int c = 0; c <= op.in_c; ++c) {
        cstart.push_back(w);
        for (int m = 0; m < M && c < op.in_c; ++m)
          w += int64_t{counts[(static_cast<size_t>(g) * op.in_c + c) * M + m]} *
               (popcount9(op.plan.masks[static_cast<size_t>(m)]) + 1);
      }
    }
    os << "static const int32_t " << fn << "_cstart[" << cstart.size() << "] = {\n    "
       << array_lit(cstart) << "};\n";
  }
  std::vector<int> band_sizes;
  if (S.band) {
    band_sizes.push_back(S.band);
    if (op.h % S.band) band_sizes.push_back(op.h % S.band);
  }
  const int RV = (op.w + V - 1) / V, NB = S.band ? (op.h + S.band - 1) / S.band : 1;
  const int NS = S.segments, SVM = NS > 1 ? S.seg_vecs : RV;
  // Segments whose code is the same but for where they start (the inner ones: both neighbours,
  // whole vectors) share one band function and one branch of the job, which adds sg * SVM
  // vectors at run time: a map of any width takes at most four of each (first, inner, the one
  // beside a ragged last vector, last).
  struct SegClass {
    int first, last, sv;  // segments first..last, sv vectors each
    std::string name;
  };
  std::vector<std::vector<SegClass>> classes(band_sizes.size());
  for (size_t bi = 0; bi < band_sizes.size(); ++bi) {
    const int B = band_sizes[bi];
    std::string prev;
    for (int s = 0; s < NS; ++s) {
      const int x0 = s * SVM, SV = std::min(SVM, RV - x0);
      std::ostringstream body;
      emit_stationary_band_fn(body, t, op, gi, go, "@", B, x0, SV);
      std::string key = body.str() + "|";  // and the epilogue's lane masks
      for (int j = 0; j < SV; ++j) key += cat(stationary_row_lanes(op, t, x0 + j), ",");
      if (s > 0 && key == prev) {
        classes[bi].back().last = s;
        continue;
      }
      prev = key;
      const std::string name = cat(fn, "_band", B, NS > 1 ? cat("_s", s) : "");
      std::string code = body.str();
      code.replace(code.find('@'), 1, name);
      os << code;
      classes[bi].push_back({s, s, SV, name});
    }
  }
  os << "// " << op.source << ": sparse 3x3 s1, channel-stationary, " << op.in_c << "x" << op.in_h
     << "x" << op.in_w << " -> " << op.c << "x" << op.h << "x" << op.w << ", " << M << " masks, "
     << (S.band ? cat("bands of ", S.band, " rows of ", RV, " vectors",
                      NS > 1 ? cat(" in ", NS, " segments") : "")
                : cat(NV, " packed vectors a channel"))
     << ", " << stationary_taps(op).size() << " taps, " << G << " groups of " << PG << " filters"
     << (S.split ? ", threads split input channels" : "") << "\n";
  os << "static void " << fn
     << "(const float* PC_RESTRICT in, float* PC_RESTRICT out, const uint32_t* PC_RESTRICT wts, "
        "float* PC_RESTRICT scratch, float*"
     << (S.packed_loads ? " PC_RESTRICT pk" : "") << ") {\n";
  os << "  PC_OMP_PARALLEL\n  {\n";
  // The packed copy: split by channels, each thread copies the channels it then reads; otherwise
  // the threads share the copying and wait for each other.
  auto pack = [&](const std::string& cb, const std::string& ce, const std::string& ind) {
    os << ind << "for (int c = " << cb << "; c < " << ce << "; ++c) {\n";
    emit_dense_copy(os, gi, op.h, op.w, 1, "pk", S.pack_stride, ind + "  ");
    os << ind << "}\n";
  };
  if (S.packed_loads && !S.split) {
    os << "    PC_OMP_FOR_IN\n";
    pack("0", cat(op.in_c), "    ");
  }
  // Jobs: (band, segment, group), band-major. Split: every thread runs every job over its
  // channels. Otherwise threads take jobs, contiguous runs (so each thread writes, and the next
  // such layer reads, its own rows) or, packed, groups cyclically.
  const bool jobs = S.split || (S.band && (t.stationary_band_major || NS > 1));
  if (S.split) {
    os << "    const int nth = pc_num_threads(), th = pc_thread_num();\n";
    os << "    int c0, c1;\n    pc_split(" << op.in_c << ", nth, th, &c0, &c1);\n";
    if (S.packed_loads) pack("c0", "c1", "    ");
    os << "    float* PC_RESTRICT part = scratch + (long)th * " << GF << ";\n";
    os << "    for (int job = 0; job < " << NB * G << "; ++job) {\n";
  } else {
    os << "    float* PC_RESTRICT acc = scratch + (long)pc_thread_num() * " << GF << ";\n";
    os << (jobs
               ? cat("    PC_OMP_FOR_IN\n    for (int job = 0; job < ", NB * NS * G, "; ++job) {\n")
               : cat("    PC_OMP_FOR_CYCLIC_IN\n    for (int g = 0; g < ", G, "; ++g) {\n"));
  }
  if (jobs) os << "      const int g = job % " << G << ";\n";
  if (S.split) os << "      float* PC_RESTRICT acc = part + (long)job * " << PG * FV << ";\n";
  os << "      const int p0 = g * " << PG << ";\n";
  os << "      const int nf = " << op.c << " - p0 < " << PG << " ? " << op.c << " - p0 : " << PG
     << ";\n";
  os << "      const uint32_t* PC_RESTRICT rg = wts + " << P.woff[i] << " + "
     << (S.split ? cat(fn, "_cstart[g * ", op.in_c + 1, " + c0]") : cat(fn, "_start[g]")) << ";\n";
  os << "      const int* PC_RESTRICT cg = " << fn << "_cnt + "
     << (S.split ? cat("(g * ", op.in_c, " + c0) * ", M) : cat("g * ", op.in_c * M)) << ";\n";
  auto init_acc = [&](const std::string& ind, int nv) {
    const std::string bias =
        spell(t.set1, {spell(t.bits2f, {cat("wts[", P.boff[i], " + p0 + f]")})});
    os << ind << "for (int f = 0; f < nf; ++f) {\n";
    os << ind << "  const " << t.vtype
       << " b = " << (S.split ? cat("th == 0 ? ", bias, " : ", t.zero) : bias) << ";\n";
    for (int k = 0; k < nv; ++k)
      os << ind << "  " << spell(t.store, {cat("acc + f * ", FV, " + ", k * V), "b"}) << ";\n";
    os << ind << "}\n";
  };
  const std::string c_begin = S.split ? "c0" : "0", n_channels = S.split ? "c1 - c0" : cat(op.in_c);
  if (S.band) {
    os << (jobs ? cat("      {\n        const int y0 = job / ", NS * G, " * ", S.band, ";\n")
                : cat("      for (int y0 = 0; y0 < ", op.h, "; y0 += ", S.band, ") {\n"));
    if (NS > 1) os << "        const int sg = job / " << G << " % " << NS << ";\n";
    for (size_t bi = 0; bi < band_sizes.size(); ++bi) {
      const int B = band_sizes[bi];
      const bool bands2 = band_sizes.size() > 1;
      if (bands2)
        os << "        " << (bi ? "else" : cat("if (y0 + ", S.band, " <= ", op.h, ")")) << " {\n";
      const std::vector<SegClass>& cls = classes[bi];
      for (size_t ci = 0; ci < cls.size(); ++ci) {
        const SegClass& sc = cls[ci];
        const int SV = sc.sv;
        // Where the segment starts, added to a row's start: a constant, or sg * SVM vectors in
        // a class of several.
        const std::string xo = sc.first == sc.last
                                   ? (sc.first ? cat(" + ", int64_t{sc.first} * SVM * V) : "")
                                   : cat(" + (long)sg * ", SVM * V);
        const std::string ind = std::string(8 + 2 * bands2 + 2 * (cls.size() > 1), ' ');
        if (cls.size() > 1)
          os << std::string(8 + 2 * bands2, ' ') << (ci ? "else " : "")
             << (ci + 1 < cls.size() ? cat("if (sg <= ", sc.last, ") ") : "") << "{\n";
        init_acc(ind, B * SV);
        os << ind << sc.name << "(in + " << gi.org << xo << " + (long)" << c_begin << " * " << gi.ps
           << " + (long)y0 * " << gi.rs << ", acc, rg, cg, " << n_channels << ", out + (long)p0 * "
           << go.ps << " + " << go.org << xo << " + (long)y0 * " << go.rs << ", "
           << (S.split ? "0" : "nf") << ");\n";
        if (!S.split) {
          os << ind << "for (int f = 0; f < nf; ++f) {\n";
          os << ind << "  float* ob = out + (long)(p0 + f) * " << go.ps << " + " << go.org << xo
             << " + (long)y0 * " << go.rs << ";\n";
          emit_stationary_store(os, t, op, go, S, GF, ind + "  ", cat("acc + f * ", FV), B * SV, SV,
                                sc.first * SVM);
          os << ind << "}\n";
        }
        if (cls.size() > 1) os << std::string(8 + 2 * bands2, ' ') << "}\n";
      }
      if (bands2) os << "        }\n";
    }
    os << "      }\n";
  } else {
    os << "      const uint32_t* PC_RESTRICT r = rg;\n";
    os << "      const int* PC_RESTRICT cnt = cg;\n";
    init_acc("      ", NV);
    emit_stationary_packed_loop(os, t, op, gi, S, c_begin, S.split ? "c1" : cat(op.in_c), "      ");
    if (!S.split) {
      os << "      for (int f = 0; f < nf; ++f) {\n";
      os << "        float* ob = out + (long)(p0 + f) * " << go.ps << " + " << go.org << ";\n";
      emit_stationary_store(os, t, op, go, S, GF, "        ", cat("acc + f * ", FV), NV);
      os << "      }\n";
    }
  }
  os << "    }\n";
  if (S.split) {
    // Every thread's partials are in: finish this thread's share of the filters.
    os << "    PC_OMP_BARRIER\n";
    os << "    int f0, f1;\n    pc_split(" << op.c << ", nth, th, &f0, &f1);\n";
    os << "    for (int f = f0; f < f1; ++f) {\n";
    os << "      const float* PC_RESTRICT s0 = scratch + (long)f * " << FV << ";\n";
    os << "      float* ob0 = out + (long)f * " << go.ps << " + " << go.org << ";\n";
    if (S.band) {
      os << "      for (int b = 0; b < " << NB << "; ++b) {\n";
      os << "        const float* PC_RESTRICT s = s0 + (long)b * " << int64_t{G} * PG * FV << ";\n";
      os << "        float* ob = ob0 + (long)b * " << int64_t{S.band} * go.rs << ";\n";
      for (size_t bi = 0; bi < band_sizes.size(); ++bi) {
        const std::string ind = band_sizes.size() > 1 ? "          " : "        ";
        if (band_sizes.size() > 1)
          os << "        " << (bi ? "else" : cat("if (b + 1 < ", NB, ")")) << " {\n";
        emit_stationary_store(os, t, op, go, S, GF, ind, "s", band_sizes[bi] * RV);
        if (band_sizes.size() > 1) os << "        }\n";
      }
      os << "      }\n";
    } else {
      os << "      const float* PC_RESTRICT s = s0;\n      float* ob = ob0;\n";
      emit_stationary_store(os, t, op, go, S, GF, "      ", "s", NV);
    }
    os << "    }\n";
  }
  os << "  }\n}\n\n";
  res.pattern_kernels += M;
  res.layers.push_back({{"op", i},
                        {"name", op.name},
                        {"function", fn},
                        {"kind", "sparse_stationary"},
                        {"masks", M},
                        {"layout", S.band           ? "rows"
                                   : S.packed_loads ? "packed_loads"
                                                    : "packed"},
                        {"band_rows", S.band},
                        {"row_segments", NS},
                        {"vectors", NV},
                        {"tap_shifts", stationary_taps(op).size()},
                        {"groups", G},
                        {"filters_per_group", PG},
                        {"threads_split", S.split ? "input channels" : "filters"}});
}

}  // namespace pconv::deploy
