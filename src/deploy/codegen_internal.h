// Shared between the generator core and its dialects/templates; not a public interface.
#pragma once

#include <ostream>
#include <sstream>
#include <string>
#include <vector>

#include "deploy/codegen.h"

namespace pconv::deploy {

// Memory and weight layout of one generated model (independent of the dialect).
struct Plan {
  std::vector<Geom> geom;         // per op (a flatten shares its source's)
  std::vector<int> slot;          // per op: arena slot (-1 for flatten)
  std::vector<int64_t> slot_off;  // per slot: float offset in the arena
  // The same for a run on one thread (no memory classes); the generated code picks at run time.
  std::vector<int> slot_one;
  std::vector<int64_t> slot_off_one;
  int64_t scratch_off = 0;  // float offset of the scratch vector (linear gathers)
  int64_t arena_floats = 0;
  // Per thread: floats of the scratch outside the arena (the small-map gathers, the stationary
  // form's accumulators).
  int64_t gather_floats = 16;
  std::vector<uint32_t> words;      // the weights file body
  std::vector<int64_t> woff, boff;  // per op: word offsets of weights / bias (or scale / shift)
};

struct Tap {
  int dy, dx, j;  // offsets from the output pixel; j = weight index within the record
};

Plan make_plan(const DeployModel& dm, const Target& t);

// Threads (codegen_threads.cpp). op_threads: the count op i runs on, as generated code:
// "pc_threads" (the caller's), "pc_gather_threads" (at most what pconv_create made per-thread
// scratch for: the small-map gather form, the stationary form) or "1" (ops below
// Target::min_parallel_work: at 2 threads here they lost more to data moving between the cores
// than they gained). Stationary convs split by input channels, the pools after them and their
// border zeroing run on every thread and split channels alike (channel_split_op), so each core
// keeps to the channels it owns. memory_class: who writes op i's output, 0 the calling thread,
// 1 every thread by channel share, 2 threads otherwise; the plan for several threads puts each
// class in arena slots of its own, so a core seldom writes lines the other core holds (the plan
// for one thread ignores classes: Plan::slot_one).
int64_t op_work(const DeployModel& dm, size_t i);
bool channel_split_op(const DeployModel& dm, size_t i, const Target& t);
std::string op_threads(const DeployModel& dm, size_t i, const Target& t);
int memory_class(const DeployModel& dm, size_t i, const Target& t);
// Whether a conv uses the small-map (pixel x tap lanes) kernel on target t, and its lane count.
bool use_small_map(const Op& op, const Target& t);
int small_map_lanes(const Op& op, const Target& t);
// The small-map kernel's unroll: kernels in flight per filter (one accumulator set each).
int small_map_unroll(const Op& op, const Target& t);
// Its records: per filter, the kernels of every mask in one list of (offset of the gathered
// (channel, mask) vector, 4 weights), padded with zero-weight records that read a zero vector
// to a multiple of the unroll, so a filter's loop has one exit instead of two per mask.
// `offsets` and `counts` get each filter's first word and record count.
std::vector<uint32_t> small_map_records(const Op& op, const Target& t,
                                        std::vector<int64_t>* offsets, std::vector<int>* counts);
std::vector<Tap> mask_taps(uint16_t mask, int K);
// The channel-stationary form of a pattern conv (Target::mask_loadu): a channel's pixels are held
// in registers, shifted once per tap (Target::alignz; AVX2: loaded, see packed_loads), and every
// kept kernel of that channel adds its taps into its filter's accumulator vectors in an L1 buffer.
// Two layouts of the pixels in lanes: packed (row after row, `band` 0: maps of up to 4 vectors,
// 4x4, 7x7, 8x8) and one row a vector (maps at most a vector wide, 14x14, 16x16), swept in bands of
// `band` rows. Filters are split into `groups` of `per_group` (one buffer each, `vectors` per
// filter; threads take groups, or split channels).
struct StationarySchedule {
  bool ok = false;
  int band = 0;     // rows a band (0: packed, one band)
  int vectors = 1;  // accumulator vectors a filter
  // Rows too wide for the registers are cut into `segments` of at most `seg_vecs` vectors
  // (Target::stationary_segment_vecs), each a job of its own; 1: whole rows.
  int segments = 1, seg_vecs = 0;
  int groups = 1, per_group = 1;
  // Split by input channels (a layer below Target::min_parallel_work): each thread sums its
  // contiguous share of the input channels for every filter into partial buffers of its own
  // (`scratch_floats`), then, after a barrier, adds up every thread's partials for its contiguous
  // share of the filters. Pools split channels the same way (schedule(static)), so along a chain
  // of such layers each core reads the channels it wrote. The sums depend on the thread count.
  bool split = false;
  int64_t scratch_floats = 0;  // per thread: a group's accumulators, or (split) all partials
  // Packed without alignz (AVX2; Target::stationary_packed_loads): the input channels are first
  // copied into the arena's scratch as packed planes (`pack_stride` floats apart), and every tap
  // of a channel is a masked load from its copy at the tap's offset.
  bool packed_loads = false;
  int64_t pack_stride = 0;
};
StationarySchedule stationary_schedule(const Op& op, const Target& t);
bool use_stationary(const Op& op, const Target& t);
// Floats of the arena's scratch its packed copy takes (0: none).
int64_t stationary_pack_floats(const Op& op, const Target& t);
// The channel-lanes form (codegen_lanes.cpp; Target::transpose): whether a conv takes it, its
// weights ([block of vec filters][channel][tap][filter in the block], filters by position) and
// its emitter.
bool use_channel_lanes(const Op& op, const Target& t);
std::vector<float> channel_lane_weights(const Op& op, const Target& t);
// Whether it zeroes its output's border itself (whole vector rows, margins of one vector), so
// pconv_run needs no border pass after it.
bool lanes_zero_border(const Op& op, const Geom& go, const Target& t);
void emit_channel_lanes(std::ostream& os, const Target& t, const DeployModel& dm, const Plan& P,
                        size_t i, GenResult& res);
// Its records: per group, per input channel, per mask, (accumulator offset, weights...) for each
// filter of the group that keeps the channel with that mask; counts per (group, channel, mask)
// and each group's first word.
std::vector<uint32_t> stationary_records(const Op& op, const Target& t, std::vector<int>* counts,
                                         std::vector<int64_t>* group_start);

// The elements of an array initialiser, 16 to a line ("" for an empty vector).
template <typename T>
std::string array_lit(const std::vector<T>& v) {
  std::ostringstream os;
  for (size_t i = 0; i < v.size(); ++i) os << (i ? (i % 16 ? ", " : ",\n    ") : "") << v[i];
  return os.str();
}

// Tiling of a stride-1 pattern conv (the row kernel) on target t; make_plan and the emitter agree
// on it through this one function.
struct SparseSchedule {
  int R = 1, T = 1;  // a tile: R output rows x T vectors
  // Filters per block (0: none). A block's filters share one pass over the input channels: their
  // tiles wait in an L1 buffer while records sorted by channel visit them, so a channel's rows
  // are fetched from L2 once per block and mask instead of once per filter that keeps it.
  int F = 0;
  int blocks = 0;  // ceil(filters / F)
};
SparseSchedule sparse_schedule(const Op& op, const Target& t);
// Whether a conv takes the filter-block form of the row kernel on target t.
bool use_blocks(const Op& op, const Target& t);
// The filter-block records of a conv (F > 0): per block, per mask, records (input channel plane
// offset, accumulator offset, weights...) sorted by channel; counts per (block, mask) and each
// block's first word.
std::vector<uint32_t> block_records(const Op& op, const Geom& gi, const Target& t,
                                    const SparseSchedule& s, std::vector<int>* counts,
                                    std::vector<int64_t>* block_start);
// Stride-2 3x3 pattern convs (codegen_strided.cpp): the input split into its four (row, column)
// parity phases in the arena's scratch (rows of qw floats, qp a phase plane), then tiles of R
// output rows x T vectors keep their accumulators in registers. Flat (output rows no whole
// number of vectors): R = 1, tiles of T vectors over the phase index u * qw + v (ev of them,
// whole vectors), stored scattered. Every CPU target (OpenCL has a generator of its own).
struct StridedSchedule {
  bool ok = false, flat = false;
  int R = 1, T = 1;
  int64_t qw = 0, qp = 0, ev = 0;
};
StridedSchedule strided_schedule(const Op& op, const Target& t);
// Dense strided 1x1 convs: the pixels read gathered into the scratch (np floats a channel,
// whole vectors), then tiles of OB filters x T pixel vectors (flat: stored scattered, as rows
// are no whole number of vectors).
struct PointwiseSchedule {
  bool ok = false, flat = false;
  int OB = 4, T = 1;
  int64_t np = 0;
};
PointwiseSchedule pointwise_strided_schedule(const Op& op, const Target& t);
void emit_pointwise_strided(std::ostream& os, const Target& t, const DeployModel& dm, const Plan& P,
                            size_t i, GenResult& res);
// Scratch floats either takes.
int64_t strided_scratch_floats(const Op& op, const Target& t);
void emit_strided(std::ostream& os, const Target& t, const DeployModel& dm, const Plan& P, size_t i,
                  GenResult& res);
std::string spell(const std::string& pat, const std::vector<std::string>& args);
std::string header_comment(const std::string& what, const std::string& tmpl, const Target& t,
                           const DeployModel& dm);
uint64_t weight_checksum(const std::vector<uint32_t>& w);
void write_file(const std::string& path, const std::string& text, GenResult& res);

void emit_tile_body(std::ostream& os, const Target& t, const Op& op, const Geom& gi, const Geom& go,
                    int R, int T, const std::string& ind, int* kernels, bool whole_row = false);
void emit_kernel_rows(std::ostream& os, const Target& t, const Op& op, const Geom& gi,
                      const std::vector<Tap>& taps, int R, int T, const std::string& ind,
                      bool zero_l, bool zero_r, bool zero_tb);
// Inside a loop over channels `c`: channel c's H x W map, every S-th row and column of the tensor
// at `in` (geometry gi), copied into a dense plane (rows of W floats) at `dst` + c * plane (the
// strided 1x1 convs' gathered pixels, the AVX2 stationary form's packed copies).
void emit_dense_copy(std::ostream& os, const Geom& gi, int H, int W, int S, const std::string& dst,
                     int64_t plane, const std::string& ind);
// Vector v through activation act (max with zero, then min with 6 for ReLU6).
std::string vec_act(const Target& t, Act act, const std::string& v);
std::string hex_mask(uint32_t m);  // a lane-mask literal for generated code
// The stationary form's layer function (codegen_stationary.cpp).
void emit_stationary(std::ostream& os, const Target& t, const DeployModel& dm, const Plan& P,
                     size_t i, GenResult& res);
void emit_tile_store(std::ostream& os, const Target& t, const Op& op, const Geom& go, int R, int T,
                     const std::string& ind);

// Templates (codegen_templates.cpp).
std::string ops_header(const Target& t, const DeployModel& dm);
std::string api_header(const Target& t, const DeployModel& dm);
std::string runner_source(const Target& t, const DeployModel& dm);
std::string cmake_source(const Target& t, const DeployModel& dm);

// The OpenCL dialect (codegen_opencl.cpp).
void generate_opencl(const DeployModel& dm, const Target& t, const Plan& P,
                     const std::string& out_dir, GenResult& res);

}  // namespace pconv::deploy
