// Per-target descriptions for the code generator: vector width, intrinsic spellings, register
// budget, threading and build flags. The generator core (codegen.cpp) is written once against
// these; a target is data, not code.
#pragma once

#include <string>
#include <vector>

namespace pconv::deploy {

struct Target {
  std::string name;    // "c", "avx512", "avx2", "neon", "opencl"
  std::string family;  // "c", "x86", "neon", "opencl": which build/run recipe applies
  int vec = 1;         // floats per vector
  // Register blocking: accumulators a tile may hold. AVX-512/NEON have 32 vector registers:
  // 12 accumulators leave room for T+2 row vectors, their 2 neighbours and 4 broadcast weights.
  // AVX2 has 16: 8 accumulators. Scalar: 8 keeps the tile in integer/FP registers too.
  int acc_budget = 8;
  int max_tile_vecs = 4;  // vectors per output row in one tile (T)
  // Row-band size of the pattern convs: the input rows one band needs (all channels) should fit in
  // about this many bytes (half the per-core L2 of the machines measured here, PERF-NOTES.md).
  int64_t band_bytes = 512 * 1024;
  // Pad rows whose stride is a multiple of 1 KiB by one vector (make_plan).
  bool row_pad = true;
  // Filter blocks of the pattern convs: the bytes of L1 their tile buffer may take (0: one
  // filter at a time with its tile in registers). See SparseSchedule in codegen_internal.h.
  int64_t block_acc_bytes = 0;
  // Threading (CPU targets): an op whose work (op_work in codegen.cpp: MACs, or 16 per element
  // streamed: linear weights, pool inputs) is below this runs on the calling thread whatever the
  // thread count. On the 2-core machines measured here (docs/deploy.md) two threads lost on every
  // op of VGG-16/CIFAR (at most 1.9 M non-zero MACs a layer): half of each layer's input sits in
  // the other core's cache. They gain on VGG-16/224's convs (at least 66 M) and on its large
  // pools and linears. 0 threads every op.
  int64_t min_parallel_work = 8'000'000;
  // The row kernel's threads: contiguous runs of row bands (each thread every filter of its
  // bands) where a layer has at least this many bands, filters cyclically inside each band
  // otherwise (0: always). By bands each core reads its own bands once, with no barrier per band;
  // VGG-16/224 at 2 threads: its 224- and 112-wide layers 12-30% faster (docs/deploy.md).
  int row_split_min_bands = 8;
  std::string include;  // header line(s) for the intrinsics
  std::string helpers;  // definitions the spellings below use (emitted after the include)
  std::string vtype;    // vector type
  // Spellings with $0, $1, $2 as operands.
  std::string zero;   // a zero vector
  std::string set1;   // broadcast scalar $0
  std::string load;   // aligned load from pointer $0
  std::string loadu;  // unaligned load from pointer $0
  std::string store;  // aligned store of $1 to pointer $0
  std::string fma;    // $0 * $1 + $2
  std::string max, min;
  // Neighbours built from aligned vectors (row streaming): left = value at x-1 from (cur $0,
  // previous $1); right = value at x+1 from (cur $0, next $1). Empty: unaligned loads instead.
  std::string shl, shr;
  // Small-map pattern kernel (pixel x tap lanes): a broadcast of 4 floats from pointer $0 to every
  // group of 4 lanes, and a vector add (AVX-512, AVX2). Empty: the row kernel on small maps too.
  std::string bcast4, add;
  int small_map_pixels = 16;  // maps of at most this many pixels use it
  // Its gather and epilogue in vector code (AVX-512; empty: scalar loops): perm2z = lanes of
  // ($0, $2) picked by index vector $1, zeroed outside mask $3; perm = one-source permute (index
  // $0, $1); shuf = in-lane shuffle ($0, $1, immediate $2); idx16 = index vector of the 16 ints
  // in $0; mask_loadu / mask_storeu = masked unaligned load (mask $0, pointer $1) / store
  // (pointer $0, mask $1, value $2).
  std::string perm2z, perm, shuf, idx16, mask_loadu, mask_storeu;
  // Channel-stationary form of the pattern conv (AVX-512, AVX2: it needs mask_loadu and
  // mask_storeu; see stationary_schedule in codegen_stationary.cpp): alignz = lanes of ($1:$2)
  // shifted down by $3 lanes, zeroed outside mask $0; mask_loadu_into = ($0 with the lanes of
  // mask $1 loaded from pointer $2). Without alignz (AVX2: no cross-lane shift of a vector pair)
  // the rows layout's sideways taps are masked loads one float off instead, and the packed
  // layout needs stationary_packed_loads.
  // Maps of at least stationary_min_pixels take it; a filter group's accumulators take at most
  // stationary_acc_bytes; the rows layout takes rows of at most stationary_max_row_vecs vectors;
  // a band's rows and tap copies take at most stationary_regs vector registers (the weights and
  // one accumulator take the rest).
  std::string alignz, mask_loadu_into;
  // Without alignz, the packed layout from a packed copy of the input instead (masked loads at
  // each tap's offset; maps of up to stationary_regs / taps vectors: AVX2 4x4 and 3x3).
  bool stationary_packed_loads = false;
  int stationary_regs = 26;
  // The rows layout where the row kernel takes no filter blocks: where a group's (channel, mask)
  // lists average at least this many records (see stationary_schedule).
  int stationary_min_per_list = 4;
  int stationary_min_pixels = 9;
  // 40 KiB of the 48 KiB L1D here: VGG-16/224's 28x28 and 14x14 layers in 6 and 5 groups instead
  // of 7 and 8, longer (channel, mask) lists, 3-8% less time at 1 thread (docs/deploy.md).
  int64_t stationary_acc_bytes = 40 * 1024;
  int stationary_max_row_vecs = 4;
  // Rows wider than stationary_max_row_vecs (112 and 224 wide; 0 there turns both off) are cut
  // into segments of at most this many vectors, each swept in bands as rows are (0: never; the
  // row kernel takes them), where the non-zero reduction is at least
  // stationary_segment_min_reduction MACs an output: each job's accumulator set-up, epilogue and
  // output lines then spread over enough kernels. VGG-16/224 with the output prefetch: its
  // 64-channel layers (83) 31-42% faster than the row kernel, the 128x112x112 one (165) 16-19%
  // (docs/deploy.md).
  int stationary_segment_vecs = 2;
  int stationary_segment_min_reduction = 80;
  bool stationary_band_major = true;  // rows layout: threads split bands, not filter groups
  // Its channel loop prefetches (`prefetch`: the line at pointer $0 into L1) the input of the
  // channel this many ahead (0: none): VGG-16/224's stationary layers 2-6% faster at 1 thread,
  // VGG-16/CIFAR's first layer split by channels 17% at 2 threads (docs/deploy.md).
  std::string prefetch;
  int stationary_prefetch = 2;
  // And at channel c the output lines of filter c (c + nc, ...) of its job (`prefetch_l2`: into
  // L2), so that the epilogue's stores find them in L2: VGG-16/224 at 1 thread 5-17% on most
  // stationary layers, more on the 64-channel ones in segments (docs/deploy.md).
  std::string prefetch_l2;
  bool stationary_out_prefetch = true;
  // Stationary layers below min_parallel_work whose non-zero reduction length (MACs per output
  // element) is at least this run threaded, split by input channels (StationarySchedule::split;
  // 0: never). Each thread then exchanges about one float per output element for that many
  // MACs. On VGG-16/CIFAR here: 48 splits every layer from the second 16x16 one on (58 and more;
  // the first, 29, stays on one thread), 2 threads 4% faster than 96 (docs/deploy.md).
  int stationary_split_min_reduction = 48;
  // Dense 3x3 convs with at most lanes_max_in_c input channels (an image's first conv: a few
  // records a filter, so the row kernel's shifts and per-tile costs dominate) put output
  // channels in the lanes: each input pixel is broadcast into its FMA, and `transpose` (the
  // array of vec vectors $0 in place, lanes by vectors; defined by transpose_def) turns a tile of
  // vec pixels x vec filters into plane rows. Empty: the row kernel.
  std::string transpose, transpose_def;
  int lanes_max_in_c = 8;
  std::string bits2f;   // uint32 bits $0 -> float
  std::string cflags;   // compile flags for the generated CMakeLists.txt
  std::string asm_fma;  // the FMA mnemonic expected in the generated assembly ("vfmadd", "fmla")
};

// "c", "x86" (AVX-512 when the build machine has it, else AVX2), "avx512", "avx2", "neon",
// "opencl". Throws pconv::Error naming the unknown target.
Target target_by_name(const std::string& name);
std::vector<std::string> target_names();
bool host_has_avx512();

}  // namespace pconv::deploy
