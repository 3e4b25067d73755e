#include "deploy/target.h"

#include <cstdlib>

#include "core/error.h"

namespace pconv::deploy {

bool host_has_avx512() {
#if defined(__x86_64__) || defined(__i386__)
  __builtin_cpu_init();
  return __builtin_cpu_supports("avx512f");
#else
  return false;
#endif
}

std::vector<std::string> target_names() {
  return {"c", "x86", "avx512", "avx2", "neon", "opencl"};
}

static Target target_table(const std::string& name);

// Tuning knobs for experiments (pconv-deploy, pconv-bench; docs/deploy.md): an environment
// variable, when set, replaces the target's value (times `scale`).
template <typename T>
static void env_override(const char* name, T* field, long long scale = 1) {
  if (const char* e = std::getenv(name)) *field = static_cast<T>(std::atoll(e) * scale);
}

Target target_by_name(const std::string& name) {
  Target t = target_table(name);
  env_override("PCONV_BAND_KB", &t.band_bytes, 1024);  // the row-band budget, KiB
  env_override("PCONV_ROW_PAD", &t.row_pad);
  env_override("PCONV_SMALL_MAP_PIXELS", &t.small_map_pixels);
  env_override("PCONV_BLOCK_KB", &t.block_acc_bytes, 1024);
  env_override("PCONV_LANES_MAX_IN_C", &t.lanes_max_in_c);
  env_override("PCONV_MIN_PARALLEL_WORK", &t.min_parallel_work);
  env_override("PCONV_ROW_SPLIT_MIN_BANDS", &t.row_split_min_bands);
  env_override("PCONV_STATIONARY_REGS", &t.stationary_regs);
  env_override("PCONV_STATIONARY_MIN_PER_LIST", &t.stationary_min_per_list);
  env_override("PCONV_STATIONARY_PACKED_LOADS", &t.stationary_packed_loads);
  env_override("PCONV_STATIONARY_MIN_PIXELS", &t.stationary_min_pixels);
  env_override("PCONV_STATIONARY_ACC_KB", &t.stationary_acc_bytes, 1024);
  env_override("PCONV_STATIONARY_ROW_VECS", &t.stationary_max_row_vecs);
  env_override("PCONV_STATIONARY_BAND_MAJOR", &t.stationary_band_major);
  env_override("PCONV_STATIONARY_SEGMENT_VECS", &t.stationary_segment_vecs);
  env_override("PCONV_STATIONARY_SEGMENT_MIN_REDUCTION", &t.stationary_segment_min_reduction);
  env_override("PCONV_STATIONARY_OUT_PREFETCH", &t.stationary_out_prefetch);
  env_override("PCONV_STATIONARY_PREFETCH", &t.stationary_prefetch);
  env_override("PCONV_STATIONARY_SPLIT_MIN_REDUCTION", &t.stationary_split_min_reduction);
  return t;
}

static Target target_table(const std::string& name) {
  Target t;
  t.name = name;
  t.bits2f = "pc_f($0)";
  if (name == "c" || name == "opencl") {
    t.family = name;
    t.vec = 1;
    t.acc_budget = 8;
    t.max_tile_vecs = 8;
    t.vtype = "float";
    t.zero = "0.0f";
    t.set1 = "($0)";
    t.load = "(*($0))";
    t.loadu = "(*($0))";
    t.store = "*($0) = ($1)";
    t.fma = "(($0) * ($1) + ($2))";
    t.max = "pc_maxf($0, $1)";
    t.min = "pc_minf($0, $1)";
    t.shl = "($1)";  // one lane: the left neighbour is the previous element
    t.shr = "($1)";
    t.cflags = "-O3";
    if (name == "opencl") {
      t.bits2f = "as_float($0)";
      t.max = "fmax($0, $1)";
      t.min = "fmin($0, $1)";
      t.fma = "fma($0, $1, $2)";
      t.cflags = "-O2";
    }
    return t;
  }
  if (name == "x86") return target_table(host_has_avx512() ? "avx512" : "avx2");
  if (name == "avx512" || name == "avx2") {  // what both x86 targets spell alike
    t.family = "x86";
    t.include = "#include <immintrin.h>";
    t.prefetch = "_mm_prefetch((const char*)($0), _MM_HINT_T0)";
    t.prefetch_l2 = "_mm_prefetch((const char*)($0), _MM_HINT_T1)";
    t.asm_fma = "vfmadd";
  }
  if (name == "avx512") {
    t.vec = 16;
    t.acc_budget = 12;
    t.max_tile_vecs = 4;
    // Half the 48 KiB L1D: the rest holds the channel rows being reused and the records.
    t.block_acc_bytes = 24 * 1024;
    t.vtype = "__m512";
    t.zero = "_mm512_setzero_ps()";
    t.set1 = "_mm512_set1_ps($0)";
    t.load = "_mm512_load_ps($0)";
    t.loadu = "_mm512_loadu_ps($0)";
    t.store = "_mm512_store_ps($0, $1)";
    t.fma = "_mm512_fmadd_ps($0, $1, $2)";
    t.max = "_mm512_maskz_max_ps(0xFFFF, $0, $1)";  // maskz: GCC 12 warns on the undefined source
                                                    // of _mm512_max_ps
    t.min = "_mm512_maskz_min_ps(0xFFFF, $0, $1)";
    t.shl =
        "_mm512_castsi512_ps(_mm512_maskz_alignr_epi32(0xFFFF, _mm512_castps_si512($0), "
        "_mm512_castps_si512($1), 15))";
    t.shr =
        "_mm512_castsi512_ps(_mm512_maskz_alignr_epi32(0xFFFF, _mm512_castps_si512($1), "
        "_mm512_castps_si512($0), 1))";
    t.bcast4 = "_mm512_maskz_broadcast_f32x4(0xFFFF, _mm_loadu_ps(pc_fp($0)))";
    t.add = "_mm512_add_ps($0, $1)";
    t.perm2z = "_mm512_maskz_permutex2var_ps($3, $0, $1, $2)";
    t.perm = "_mm512_maskz_permutexvar_ps(0xFFFF, $0, $1)";  // maskz: as max, no GCC 12 warning
    t.shuf = "_mm512_shuffle_ps($0, $1, $2)";
    t.idx16 = "_mm512_setr_epi32($0)";
    t.mask_loadu = "_mm512_maskz_loadu_ps($0, $1)";
    t.mask_storeu = "_mm512_mask_storeu_ps($0, $1, $2)";
    t.alignz =
        "_mm512_castsi512_ps(_mm512_maskz_alignr_epi32($0, _mm512_castps_si512($1), "
        "_mm512_castps_si512($2), $3))";
    t.mask_loadu_into = "_mm512_mask_loadu_ps($0, $1, $2)";
    t.transpose = "pc_transpose16($0)";
    // Four rounds of 16 two-source shuffles: 32-bit pairs, 64-bit pairs, then 128-bit lanes twice
    // (maskz: GCC 12 warns on the undefined source of the plain forms, as for max).
    t.transpose_def = R"PC(static inline void pc_transpose16(__m512* r) {
  __m512 t[16];
  for (int i = 0; i < 16; i += 2) {
    t[i] = _mm512_maskz_unpacklo_ps(0xFFFF, r[i], r[i + 1]);
    t[i + 1] = _mm512_maskz_unpackhi_ps(0xFFFF, r[i], r[i + 1]);
  }
  for (int i = 0; i < 16; i += 4) {
    const __m512d a = _mm512_castps_pd(t[i]), b = _mm512_castps_pd(t[i + 2]);
    const __m512d c = _mm512_castps_pd(t[i + 1]), d = _mm512_castps_pd(t[i + 3]);
    r[i] = _mm512_castpd_ps(_mm512_maskz_unpacklo_pd(0xFF, a, b));
    r[i + 1] = _mm512_castpd_ps(_mm512_maskz_unpackhi_pd(0xFF, a, b));
    r[i + 2] = _mm512_castpd_ps(_mm512_maskz_unpacklo_pd(0xFF, c, d));
    r[i + 3] = _mm512_castpd_ps(_mm512_maskz_unpackhi_pd(0xFF, c, d));
  }
  for (int i = 0; i < 8; ++i) {
    const int a = i / 4 * 8 + i % 4, b = a + 4;
    t[a] = _mm512_maskz_shuffle_f32x4(0xFFFF, r[a], r[b], 0x88);
    t[b] = _mm512_maskz_shuffle_f32x4(0xFFFF, r[a], r[b], 0xDD);
  }
  for (int i = 0; i < 8; ++i) {
    r[i] = _mm512_maskz_shuffle_f32x4(0xFFFF, t[i], t[i + 8], 0x88);
    r[i + 8] = _mm512_maskz_shuffle_f32x4(0xFFFF, t[i], t[i + 8], 0xDD);
  }
}
)PC";
    t.cflags = "-O3 -mavx512f -mavx2 -mfma";
    return t;
  }
  if (name == "avx2") {
    t.vec = 8;
    t.acc_budget = 8;
    t.max_tile_vecs = 2;
    t.vtype = "__m256";
    t.zero = "_mm256_setzero_ps()";
    t.set1 = "_mm256_set1_ps($0)";
    t.load = "_mm256_load_ps($0)";
    t.loadu = "_mm256_loadu_ps($0)";
    t.store = "_mm256_store_ps($0, $1)";
    t.fma = "_mm256_fmadd_ps($0, $1, $2)";
    t.max = "_mm256_max_ps($0, $1)";
    t.min = "_mm256_min_ps($0, $1)";
    t.bcast4 = "_mm256_broadcast_ps(reinterpret_cast<const __m128*>(pc_fp($0)))";
    t.add = "_mm256_add_ps($0, $1)";
    t.transpose = "pc_transpose8($0)";
    // 32-bit pairs, 64-bit pairs (two-source in-lane shuffles), then the 128-bit halves.
    t.transpose_def = R"PC(static inline void pc_transpose8(__m256* r) {
  __m256 t[8], u[8];
  for (int i = 0; i < 8; i += 2) {
    t[i] = _mm256_unpacklo_ps(r[i], r[i + 1]);
    t[i + 1] = _mm256_unpackhi_ps(r[i], r[i + 1]);
  }
  for (int i = 0; i < 8; i += 4) {
    u[i] = _mm256_shuffle_ps(t[i], t[i + 2], 0x44);
    u[i + 1] = _mm256_shuffle_ps(t[i], t[i + 2], 0xEE);
    u[i + 2] = _mm256_shuffle_ps(t[i + 1], t[i + 3], 0x44);
    u[i + 3] = _mm256_shuffle_ps(t[i + 1], t[i + 3], 0xEE);
  }
  for (int i = 0; i < 4; ++i) {
    r[i] = _mm256_permute2f128_ps(u[i], u[i + 4], 0x20);
    r[i + 4] = _mm256_permute2f128_ps(u[i], u[i + 4], 0x31);
  }
}
)PC";
    // Masked loads and stores take a vector of lane masks: pc_lanes8 makes it from the bits of
    // a constant, and the full mask is a plain load or store (GCC keeps vmaskmovps otherwise).
    t.helpers = R"PC(static inline __m256i pc_lanes8(int m) {
  return _mm256_setr_epi32(-(m & 1), -(m >> 1 & 1), -(m >> 2 & 1), -(m >> 3 & 1), -(m >> 4 & 1),
                           -(m >> 5 & 1), -(m >> 6 & 1), -(m >> 7 & 1));
}
static inline __m256 pc_maskload8(int m, const float* p) {
  return m == 0xFF ? _mm256_loadu_ps(p) : _mm256_maskload_ps(p, pc_lanes8(m));
}
static inline void pc_maskstore8(float* p, int m, __m256 v) {
  if (m == 0xFF)
    _mm256_storeu_ps(p, v);
  else
    _mm256_maskstore_ps(p, pc_lanes8(m), v);
}
)PC";
    t.mask_loadu = "pc_maskload8($0, $1)";
    t.mask_storeu = "pc_maskstore8($0, $1, $2)";
    // The stationary form's sideways taps are masked loads (no alignz): 16 registers hold a
    // band's rows and tap copies (11), the 4 weights of a mask and an accumulator. Rows of up to
    // 2 vectors (16 wide), segments of 1 vector in bands of 3 rows beyond.
    t.stationary_regs = 11;
    t.stationary_acc_bytes = 20 * 1024;  // of a 32 KiB L1D
    t.stationary_max_row_vecs = 2;
    t.stationary_segment_vecs = 1;
    // Here (Zen 3) the rows layout beat the row kernel, which has no filter blocks on AVX2, on
    // every VGG-16/32 layer it can take, lists of 1-3 records too: 16x16 and 8x8 layers 20-30%
    // less time at 1 thread (docs/deploy.md).
    t.stationary_min_per_list = 0;
    t.stationary_packed_loads = true;
    t.cflags = "-O3 -mavx2 -mfma";  // no cheap cross-lane rotate: neighbours by unaligned loads
    return t;
  }
  if (name == "neon") {
    t.family = "neon";
    t.vec = 4;
    t.acc_budget = 12;
    t.max_tile_vecs = 4;
    t.include = "#include <arm_neon.h>";
    t.vtype = "float32x4_t";
    t.zero = "vdupq_n_f32(0.0f)";
    t.set1 = "vdupq_n_f32($0)";
    t.load = "vld1q_f32($0)";
    t.loadu = "vld1q_f32($0)";
    t.store = "vst1q_f32($0, $1)";
    t.fma = "vfmaq_f32($2, $0, $1)";
    t.max = "vmaxq_f32($0, $1)";
    t.min = "vminq_f32($0, $1)";
    t.shl = "vextq_f32($1, $0, 3)";
    t.shr = "vextq_f32($0, $1, 1)";
    t.cflags = "-O3";
    t.asm_fma = "fmla";
    return t;
  }
  throw Error(
      cat("unknown deploy target \"", name, "\" (known: c, x86, avx512, avx2, neon, opencl)"));
}

}  // namespace pconv::deploy
