// Fixed parts of a generated model: the C API header, the portable ops of non-pattern layers,
// the runner and the build file. Raw-string templates; each output names this file.
#include <cstdio>
#include <cstring>

#include "core/error.h"
#include "deploy/codegen_internal.h"

namespace pconv::deploy {

std::string api_header(const Target& t, const DeployModel& dm) {
  return header_comment("pconv_model.h: C API of a generated model.", "codegen_templates.cpp", t,
                        dm) +
         R"PC(#ifndef PCONV_MODEL_H
#define PCONV_MODEL_H
#ifdef __cplusplus
extern "C" {
#endif

typedef struct pconv_model pconv_model;

/* Loads the packed weights and allocates every buffer once. NULL on error (printed to stderr). */
pconv_model* pconv_create(const char* weights_path);
/* One sample: input NCHW floats (pconv_input_size()), output logits (pconv_output_size()).
   Allocates nothing. Returns 0 on success. */
int pconv_run(pconv_model* model, const float* input, float* output);
void pconv_destroy(pconv_model* model);
int pconv_input_size(void);
int pconv_output_size(void);
/* Layers in execution order: their count, graph names and IR op indices (analysis.json), and the
   wall time in ms each took in the last pconv_run when built with -DPC_LAYER_TIMES (else -1). */
int pconv_layer_count(void);
const char* pconv_layer_name(int i);
int pconv_layer_op(int i);
double pconv_layer_ms(int i);
/* Benchmarking (-DPC_LAYER_TIMES, CPU targets): from now on pconv_run runs each layer n times
   back to back, with the same output; pconv_layer_ms then gives each layer's first time (in the
   model) and pconv_layer_ms_alone its last (the layer alone on the caches it left itself, as a
   benchmark of one primitive times it; -1 when n < 2). Returns nonzero where not supported. */
int pconv_set_layer_repeat(int n);
double pconv_layer_ms_alone(int i);

#ifdef __cplusplus
}
#endif
#endif
)PC";
}

std::string ops_header(const Target& t, const DeployModel& dm) {
  return header_comment("pconv_ops.h: portable ops for non-pattern layers and buffers.",
                        "codegen_templates.cpp", t, dm) +
         R"PC(#pragma once
#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>

#ifdef _OPENMP
#define PC_OMP_FOR _Pragma("omp parallel for schedule(static)")
#define PC_OMP_FOR_CYCLIC _Pragma("omp parallel for schedule(static, 1)")
#define PC_OMP_PARALLEL _Pragma("omp parallel")
#define PC_OMP_FOR_CYCLIC_IN _Pragma("omp for schedule(static, 1)")
#define PC_OMP_FOR_IN _Pragma("omp for schedule(static)")
#define PC_OMP_BARRIER _Pragma("omp barrier")
#include <omp.h>
// pconv_run runs the ops below the generator's min_parallel_work on the calling thread and
// restores the caller's thread count after them; the small-map and stationary convs index their
// per-thread scratch by pc_thread_num.
static inline int pc_max_threads() { return omp_get_max_threads(); }
static inline void pc_set_threads(int n) { omp_set_num_threads(n); }
static inline int pc_thread_num() { return omp_get_thread_num(); }
static inline int pc_num_threads() { return omp_get_num_threads(); }
#else
static inline int pc_max_threads() { return 1; }
static inline void pc_set_threads(int) {}
static inline int pc_thread_num() { return 0; }
static inline int pc_num_threads() { return 1; }
#define PC_OMP_FOR
#define PC_OMP_FOR_CYCLIC
#define PC_OMP_PARALLEL
#define PC_OMP_FOR_CYCLIC_IN
#define PC_OMP_FOR_IN
#define PC_OMP_BARRIER
#endif
#define PC_RESTRICT __restrict__

// Thread t's contiguous share [*b, *e) of n items out of nt, as schedule(static) splits a loop in
// libgomp and libomp (the first n % nt threads take one more): the stationary convs split by
// channels and the pools and border zeroing between them agree on who owns a channel.
static inline void pc_split(int n, int nt, int t, int* b, int* e) {
  const int q = n / nt, r = n % nt;
  *b = t * q + (t < r ? t : r);
  *e = *b + q + (t < r ? 1 : 0);
}

// Thread t's contiguous share [*b, *e) of n items of near-equal work, pre[k] being the work
// before item k (pre[0] = 0, pre[n] the total): the items in order, cut where the work crosses
// t / nt of the total.
static inline void pc_split_work(const int* pre, int n, int nt, int t, int* b, int* e) {
  const long total = pre[n];
  auto cut = [&](int u) {
    return u >= nt ? n : (int)(std::lower_bound(pre, pre + n, (int)((total * u + nt - 1) / nt)) - pre);
  };
  *b = cut(t);
  *e = cut(t + 1);
}

#ifdef PC_LAYER_TIMES
#include <chrono>
static inline double pc_now_ms() {
  return std::chrono::duration<double, std::milli>(
             std::chrono::steady_clock::now().time_since_epoch())
      .count();
}
#endif

// Activation layout: per channel a plane of ps floats, interior (0,0) at org, rows of rs floats.
struct pc_geom {
  int c, h, w;
  long rs, ps, org;
  int flat;
};

static inline float pc_f(uint32_t u) {
  float f;
  std::memcpy(&f, &u, 4);
  return f;
}
static inline const float* pc_fp(const uint32_t* p) { return reinterpret_cast<const float*>(p); }
static inline float pc_maxf(float a, float b) { return a > b ? a : b; }
static inline float pc_minf(float a, float b) { return a < b ? a : b; }
static inline float pc_act(float v, int act) {
  if (act >= 1) v = v > 0.0f ? v : 0.0f;
  if (act == 2) v = v < 6.0f ? v : 6.0f;
  return v;
}
static inline float* pc_at(float* b, const pc_geom& g, int c, int y, int x) {
  return b + (long)c * g.ps + g.org + (long)y * g.rs + x;
}
static inline const float* pc_at(const float* b, const pc_geom& g, int c, int y, int x) {
  return b + (long)c * g.ps + g.org + (long)y * g.rs + x;
}

static inline float* pc_alloc_zero(unsigned long long n) {
  const size_t bytes = ((size_t)n * 4 + 63) / 64 * 64;
  float* p = static_cast<float*>(std::aligned_alloc(64, bytes ? bytes : 64));
  if (p) std::memset(p, 0, bytes);
  return p;
}
static inline void pc_free(void* p) { std::free(p); }

// Weights file: "PCONVW01", uint64 word count, uint64 FNV-1a checksum, words.
static inline uint32_t* pc_load_weights(const char* path, unsigned long long words,
                                        unsigned long long sum) {
  FILE* f = std::fopen(path, "rb");
  if (!f) {
    std::fprintf(stderr, "pconv: cannot open weights file %s\n", path);
    return nullptr;
  }
  char magic[8];
  unsigned long long n = 0, s = 0;
  if (std::fread(magic, 1, 8, f) != 8 || std::memcmp(magic, "PCONVW01", 8) != 0 ||
      std::fread(&n, 8, 1, f) != 1 || std::fread(&s, 8, 1, f) != 1) {
    std::fprintf(stderr, "pconv: %s is not a pconv weights file\n", path);
    std::fclose(f);
    return nullptr;
  }
  if (n != words || s != sum) {
    std::fprintf(stderr, "pconv: %s holds %llu words (checksum %llx), this model needs %llu (%llx)\n",
                 path, n, s, words, sum);
    std::fclose(f);
    return nullptr;
  }
  uint32_t* w = reinterpret_cast<uint32_t*>(pc_alloc_zero(words));
  if (!w || std::fread(w, 4, words, f) != words) {
    std::fprintf(stderr, "pconv: %s is truncated\n", path);
    std::fclose(f);
    pc_free(w);
    return nullptr;
  }
  std::fclose(f);
  unsigned long long h = 1469598103934665603ULL;
  for (unsigned long long i = 0; i < words; ++i) {
    h ^= w[i];
    h *= 1099511628211ULL;
  }
  if (h != sum) {
    std::fprintf(stderr, "pconv: %s is corrupt (checksum mismatch)\n", path);
    pc_free(w);
    return nullptr;
  }
  return w;
}

static inline void pc_put(const float* src, float* dst, pc_geom g) {
  for (int c = 0; c < g.c; ++c)
    for (int y = 0; y < g.h; ++y)
      std::memcpy(pc_at(dst, g, c, y, 0), src + ((long)c * g.h + y) * g.w, sizeof(float) * g.w);
}
static inline void pc_get(const float* src, pc_geom g, float* dst) {
  for (int c = 0; c < g.c; ++c)
    for (int y = 0; y < g.h; ++y)
      for (int x = 0; x < g.w; ++x) dst[((long)c * g.h + y) * g.w + x] = *pc_at(src, g, c, y, x);
}

// Zeroes everything of a mapped tensor but its interior (buffers are reused across layers, and
// the pattern kernels read the border as padding). The geometry comes as template arguments, which
// the generated calls pass as constants: the runs between rows have constant lengths (inlined
// stores, not memset calls); at maps of 2x2 to 8x8 a runtime-geometry version, one memset per
// run, cost more than the pattern convs.
template <int C, int H, int W, long RS, long PS, long ORG>
static inline void pc_zero_border_k(float* b) {
  PC_OMP_FOR
  for (int c = 0; c < C; ++c) {
    float* p = b + (long)c * PS;
    // Everything before the first interior row's data, the gaps between rows, the rest.
    std::fill_n(p, ORG, 0.0f);
    for (int y = 0; y + 1 < H; ++y) std::fill_n(p + ORG + (long)y * RS + W, RS - W, 0.0f);
    std::fill_n(p + ORG + (long)(H - 1) * RS + W, (H + 2) * RS - (ORG + (H - 1) * RS + W), 0.0f);
  }
}

// The rows just above and below a mapped tensor's interior, the map's columns only: what the
// stationary rows layout reads of a border (its lane masks keep to the map's columns).
template <int C, int H, int W, long RS, long PS, long ORG>
static inline void pc_zero_rows_k(float* b) {
  PC_OMP_FOR
  for (int c = 0; c < C; ++c) {
    std::fill_n(b + (long)c * PS + ORG - RS, W, 0.0f);
    std::fill_n(b + (long)c * PS + ORG + (long)H * RS, W, 0.0f);
  }
}

// Dense conv with bounds checks (first layers with large kernels, odd strides, groups).
static inline void pc_conv_generic(const float* in, pc_geom gi, float* out, pc_geom go,
                                   const float* w, const float* b, int K, int S, int P, int G,
                                   int act) {
  const int Ig = gi.c / G, Og = go.c / G;
  PC_OMP_FOR
  for (int o = 0; o < go.c; ++o) {
    const int g0 = (o / Og) * Ig;
    for (int oy = 0; oy < go.h; ++oy)
      for (int ox = 0; ox < go.w; ++ox) {
        float s = b[o];
        for (int i = 0; i < Ig; ++i)
          for (int r = 0; r < K; ++r) {
            const int iy = oy * S - P + r;
            if (iy < 0 || iy >= gi.h) continue;
            for (int q = 0; q < K; ++q) {
              const int ix = ox * S - P + q;
              if (ix < 0 || ix >= gi.w) continue;
              s += w[(((long)o * Ig + i) * K + r) * K + q] * *pc_at(in, gi, g0 + i, iy, ix);
            }
          }
        *pc_at(out, go, o, oy, ox) = pc_act(s, act);
      }
  }
}

// Max (max = 1) or average (padding excluded from the divisor) pooling.
static inline void pc_pool(const float* in, pc_geom gi, float* out, pc_geom go, int K, int S, int P,
                           int max) {
  PC_OMP_FOR
  for (int c = 0; c < go.c; ++c)
    for (int oy = 0; oy < go.h; ++oy)
      for (int ox = 0; ox < go.w; ++ox) {
        float m = -INFINITY, s = 0.0f;
        int n = 0;
        for (int r = 0; r < K; ++r)
          for (int q = 0; q < K; ++q) {
            const int iy = oy * S - P + r, ix = ox * S - P + q;
            if (iy < 0 || iy >= gi.h || ix < 0 || ix >= gi.w) continue;
            const float v = *pc_at(in, gi, c, iy, ix);
            m = v > m ? v : m;
            s += v;
            ++n;
          }
        *pc_at(out, go, c, oy, ox) = max ? m : s / (float)(n > 0 ? n : 1);
      }
}

// Pooling whose windows all lie inside the map (no padding, the usual 2x2 stride 2), geometry as
// template arguments: no bounds checks, constant strides. The same floats, in the same order, as
// pc_pool.
template <int K, int S, int MAX, int C, long RSI, long PSI, long ORGI, int HO, int WO, long RSO,
          long PSO, long ORGO>
static inline void pc_pool_k(const float* in, float* out) {
  PC_OMP_FOR
  for (int c = 0; c < C; ++c)
    for (int oy = 0; oy < HO; ++oy) {
      const float* r = in + (long)c * PSI + ORGI + (long)oy * S * RSI;
      float* o = out + (long)c * PSO + ORGO + (long)oy * RSO;
      for (int ox = 0; ox < WO; ++ox) {
        float m = -INFINITY, s = 0.0f;
        for (int q = 0; q < K; ++q)
          for (int x = 0; x < K; ++x) {
            const float v = r[(long)q * RSI + ox * S + x];
            m = v > m ? v : m;
            s += v;
          }
        o[ox] = MAX ? m : s / (float)(K * K);
      }
    }
}

static inline void pc_gap(const float* in, pc_geom gi, float* out) {
  PC_OMP_FOR
  for (int c = 0; c < gi.c; ++c) {
    float s = 0.0f;
    for (int y = 0; y < gi.h; ++y)
      for (int x = 0; x < gi.w; ++x) s += *pc_at(in, gi, c, y, x);
    out[c] = s / (float)(gi.h * gi.w);
  }
}

// Features in (channel position, y, x) order; the generator rearranged the weight columns. A
// mapped input is gathered into `scratch` first; the GEMV keeps 16 independent partial sums per
// output so the compiler vectorises it without reassociating (memory-bound: each weight is read
// once).
static inline void pc_linear(const float* in, pc_geom gi, float* out, int O, const float* w,
                             const float* b, int act, float* scratch) {
  const long F = (long)gi.c * gi.h * gi.w;
  const float* x = in;
  if (!gi.flat) {
    PC_OMP_FOR
    for (int c = 0; c < gi.c; ++c)
      for (int y = 0; y < gi.h; ++y)
        std::memcpy(scratch + ((long)c * gi.h + y) * gi.w, pc_at(in, gi, c, y, 0),
                    sizeof(float) * gi.w);
    x = scratch;
  }
  const long F16 = F / 16 * 16;
  PC_OMP_FOR
  for (int o = 0; o < O; ++o) {
    const float* PC_RESTRICT wo = w + (long)o * F;
    float acc[16] = {0};
    for (long f = 0; f < F16; f += 16)
      for (int j = 0; j < 16; ++j) acc[j] += wo[f + j] * x[f + j];
    float s = b[o];
    for (long f = F16; f < F; ++f) s += wo[f] * x[f];
    for (int j = 0; j < 16; ++j) s += acc[j];
    out[o] = pc_act(s, act);
  }
}

// Elementwise ops: each tensor through its own geometry (a split op's output has plane strides
// of its own, codegen.cpp: make_plan).
static inline void pc_add(const float* a, pc_geom ga, const float* b, pc_geom gb, float* out,
                          pc_geom g, int act) {
  PC_OMP_FOR
  for (int c = 0; c < g.c; ++c)
    for (int y = 0; y < g.h; ++y)
      for (int x = 0; x < g.w; ++x)
        *pc_at(out, g, c, y, x) = pc_act(*pc_at(a, ga, c, y, x) + *pc_at(b, gb, c, y, x), act);
}

static inline void pc_affine(const float* in, pc_geom gi, float* out, pc_geom g, const float* s,
                             const float* t, int act) {
  PC_OMP_FOR
  for (int c = 0; c < g.c; ++c)
    for (int y = 0; y < g.h; ++y)
      for (int x = 0; x < g.w; ++x)
        *pc_at(out, g, c, y, x) = pc_act(s[c] * *pc_at(in, gi, c, y, x) + t[c], act);
}

static inline void pc_act(const float* in, pc_geom gi, float* out, pc_geom g, int act) {
  PC_OMP_FOR
  for (int c = 0; c < g.c; ++c)
    for (int y = 0; y < g.h; ++y)
      for (int x = 0; x < g.w; ++x) *pc_at(out, g, c, y, x) = pc_act(*pc_at(in, gi, c, y, x), act);
}
)PC";
}

namespace {

// A float as an exact C++ literal: pc_bits_f(0x3e7a1b2cu) (decimal would round-trip only with
// care).
std::string float_literal(float v) {
  uint32_t u;
  std::memcpy(&u, &v, 4);
  char buf[40];
  std::snprintf(buf, sizeof buf, "pc_bits_f(0x%08xu)", u);
  return buf;
}

}  // namespace

std::string runner_source(const Target& t, const DeployModel& dm) {
  // Evaluation's preprocessing as constants: x = v * scale + bias is (v/255 - mean) / std with
  // the data pipeline's float rounding (src/data/transforms.h, Normalizer).
  std::string pre;
  const nlohmann::json& p = dm.preprocess;
  if (p.is_object()) {
    const auto mean = p.at("mean").get<std::vector<float>>();
    const auto sd = p.at("std").get<std::vector<float>>();
    std::string sc, bi;
    for (int c = 0; c < 3; ++c) {
      const float scale = 1.f / (255.f * sd[static_cast<size_t>(c)]);
      const float bias = -mean[static_cast<size_t>(c)] / sd[static_cast<size_t>(c)];
      sc += cat(c ? ", " : "", float_literal(scale));
      bi += cat(c ? ", " : "", float_literal(bias));
    }
    pre = cat("// From the model file: ", p.dump(), "\nstatic const bool kHavePre = true;\n",
              "static const int kPreSize = ", p.at("size").get<int>(),
              ", kPreResize = ", p.at("resize_shorter").get<int>(), ";\n",
              "static const float kScale[3] = {", sc, "}, kBias[3] = {", bi, "};\n");
  } else {
    pre =
        "// The model file names no input preprocessing: --image is refused (see usage).\n"
        "static const bool kHavePre = false;\n"
        "static const int kPreSize = 0, kPreResize = 0;\n"
        "static const float kScale[3] = {0, 0, 0}, kBias[3] = {pc_bits_f(0u), 0, 0};\n";
  }
  return header_comment("runner.cpp: classifies a raw float tensor or a PPM image.",
                        "codegen_templates.cpp", t, dm) +
         R"PC(// usage: runner weights.bin (--input x.f32 | --image x.ppm) [--output logits.f32]
//               [--save-input x.f32] [--repeat N] [--warmup N] [--threads N] [--layer-times]
//               [--layer-repeat N]
//        runner weights.bin --batch --input xs.f32 --output logits.f32
// --batch classifies every sample of a file holding any number of inputs back to back and
// writes their logits back to back (what pconv-eval --deployed uses on a whole test set).
// --layer-times prints each layer's median/min/max ms over the repeats ("layer K op I NAME median
// M min A max B"; needs a build with -DPCONV_LAYER_TIMES=ON). --layer-repeat N (N >= 2) runs each
// layer N times back to back inside every run and adds the last time of each ("layer_alone K op I
// NAME median M min A max B"): the layer alone on the caches it left itself, as a benchmark of one
// primitive times it (the "layer" lines stay each layer's first time, in the model).
// The raw input is pconv_input_size() float32 values in NCHW order, normalised as in training.
// A binary PPM (P6) image goes through evaluation's preprocessing, as pconv-eval does it: resize
// (area averaging when shrinking, bilinear when enlarging, rounded to 8 bits), the centre crop
// for ImageNet-style models, then per-channel (v/255 - mean) / std. --save-input writes the
// tensor it made.
#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <vector>

#include "pconv_model.h"
#ifdef _OPENMP
#include <omp.h>
#endif

static float pc_bits_f(uint32_t u) {
  float f;
  std::memcpy(&f, &u, 4);
  return f;
}

)PC" + pre +
         R"PC(
// Per output index along one axis: the source indices and weights that make it.
struct pc_taps {
  std::vector<int> first, count, idx;
  std::vector<float> w;
};

// shrink: area averaging (each output averages the source span it covers, as OpenCV's
// INTER_AREA); else bilinear with half-pixel centres (INTER_LINEAR), edges clamped.
static pc_taps pc_axis(int src, int dst, bool shrink) {
  pc_taps t;
  const double scale = (double)src / dst;
  for (int i = 0; i < dst; ++i) {
    t.first.push_back((int)t.idx.size());
    if (shrink) {
      const double a = i * scale, b = (i + 1) * scale;
      for (int j = (int)a; j < src && j < b; ++j) {
        const double lo = std::max<double>(a, j), hi = std::min<double>(b, j + 1);
        if (hi > lo) {
          t.idx.push_back(j);
          t.w.push_back((float)((hi - lo) / scale));
        }
      }
    } else {
      double fx = (i + 0.5) * scale - 0.5;
      if (fx < 0) fx = 0;
      int j = (int)fx;
      if (j > src - 1) j = src - 1;
      const float w1 = (float)(fx - j);
      t.idx.push_back(j);
      t.w.push_back(1.f - w1);
      t.idx.push_back(std::min(j + 1, src - 1));
      t.w.push_back(w1);
    }
    t.count.push_back((int)t.idx.size() - t.first.back());
  }
  return t;
}

// Resizes an interleaved RGB image to w x h, rounding to 8 bits as the data pipeline's does.
static std::vector<unsigned char> pc_resize(const std::vector<unsigned char>& px, int sw, int sh,
                                            int w, int h) {
  if (sw == w && sh == h) return px;
  const bool shrink = w < sw && h < sh;
  const pc_taps tx = pc_axis(sw, w, shrink), ty = pc_axis(sh, h, shrink);
  std::vector<float> rows((size_t)sh * w * 3);
  for (int y = 0; y < sh; ++y)
    for (int x = 0; x < w; ++x)
      for (int c = 0; c < 3; ++c) {
        float a = 0;
        for (int k = 0; k < tx.count[(size_t)x]; ++k) {
          const size_t q = (size_t)(tx.first[(size_t)x] + k);
          a += tx.w[q] * px[((size_t)y * sw + tx.idx[q]) * 3 + c];
        }
        rows[((size_t)y * w + x) * 3 + c] = a;
      }
  std::vector<unsigned char> out((size_t)w * h * 3);
  for (int y = 0; y < h; ++y)
    for (int x = 0; x < w; ++x)
      for (int c = 0; c < 3; ++c) {
        float a = 0;
        for (int k = 0; k < ty.count[(size_t)y]; ++k) {
          const size_t q = (size_t)(ty.first[(size_t)y] + k);
          a += ty.w[q] * rows[((size_t)ty.idx[q] * w + x) * 3 + c];
        }
        out[((size_t)y * w + x) * 3 + c] = (unsigned char)std::min(255.f, std::max(0.f, std::round(a)));
      }
  return out;
}

// Reads a binary PPM and applies evaluation's preprocessing; false with a message on failure.
static bool read_ppm(const char* path, std::vector<float>& x, int n) {
  if (!kHavePre) {
    std::fprintf(stderr, "runner: the model file names no input preprocessing (mean/std), so a raw "
                         "image cannot be prepared; give a normalised --input tensor, or redeploy "
                         "with pconv-deploy --mean R,G,B --std R,G,B\n");
    return false;
  }
  FILE* f = std::fopen(path, "rb");
  int w = 0, h = 0, mx = 0;
  if (!f || std::fscanf(f, "P6 %d %d %d", &w, &h, &mx) != 3 || w <= 0 || h <= 0 || mx <= 0 || mx > 255) {
    std::fprintf(stderr, "runner: %s is not a binary PPM (P6) image with 8-bit samples\n", path);
    if (f) std::fclose(f);
    return false;
  }
  std::fgetc(f);
  std::vector<unsigned char> px((size_t)w * h * 3);
  const bool ok = std::fread(px.data(), 1, px.size(), f) == px.size();
  std::fclose(f);
  if (!ok) {
    std::fprintf(stderr, "runner: %s is truncated\n", path);
    return false;
  }
  if (mx != 255)
    for (unsigned char& v : px) v = (unsigned char)std::lround(v * 255.0 / mx);
  const int S = kPreSize;
  if (3 * S * S != n) {
    std::fprintf(stderr, "runner: preprocessing size %d does not fit the model input\n", S);
    return false;
  }
  int rw = S, rh = S;  // resize_shorter 0: the whole image to S x S
  if (kPreResize > 0) {
    if (w <= h) {
      rw = kPreResize;
      rh = (int)std::lround((double)h * kPreResize / w);
    } else {
      rh = kPreResize;
      rw = (int)std::lround((double)w * kPreResize / h);
    }
  }
  const std::vector<unsigned char> r = pc_resize(px, w, h, rw, rh);
  const int x0 = (rw - S) / 2, y0 = (rh - S) / 2;
  x.assign((size_t)n, 0.0f);
  for (int c = 0; c < 3; ++c)
    for (int y = 0; y < S; ++y)
      for (int q = 0; q < S; ++q)
        x[((size_t)c * S + y) * S + q] =
            (float)r[((size_t)(y + y0) * rw + (q + x0)) * 3 + c] * kScale[c] + kBias[c];
  return true;
}

int main(int argc, char** argv) {
  if (argc < 2) {
    std::fprintf(stderr, "usage: %s weights.bin (--input x.f32 | --image x.ppm) [--output y.f32] [--save-input x.f32] [--repeat N] [--warmup N] [--threads N] [--layer-times] [--layer-repeat N]\n", argv[0]);
    return 2;
  }
  const char *in_path = nullptr, *img_path = nullptr, *out_path = nullptr, *save_path = nullptr;
  int repeat = 1, threads = 0, warmup = 1, layer_repeat = 1;
  bool layer_times = false, batch = false;
  for (int i = 2; i < argc; ++i) {
    const std::string a = argv[i];
    if (a == "--layer-times") {
      layer_times = true;
      continue;
    }
    if (a == "--batch") {
      batch = true;
      continue;
    }
    if (i + 1 >= argc) {
      std::fprintf(stderr, "runner: %s needs a value\n", argv[i]);
      return 2;
    }
    if (a == "--input") in_path = argv[++i];
    else if (a == "--image") img_path = argv[++i];
    else if (a == "--output") out_path = argv[++i];
    else if (a == "--save-input") save_path = argv[++i];
    else if (a == "--repeat") repeat = std::max(1, std::atoi(argv[++i]));
    else if (a == "--warmup") warmup = std::max(1, std::atoi(argv[++i]));
    else if (a == "--threads") threads = std::atoi(argv[++i]);
    else if (a == "--layer-repeat") layer_repeat = std::max(1, std::atoi(argv[++i]));
    else {
      std::fprintf(stderr, "runner: unknown option %s\n", argv[i]);
      return 2;
    }
  }
#ifdef _OPENMP
  if (threads > 0) omp_set_num_threads(threads);
#else
  (void)threads;
#endif
  const int n = pconv_input_size(), k = pconv_output_size();
  std::vector<float> x((size_t)n), y((size_t)k);
  if (batch) {
    if (!in_path || !out_path) {
      std::fprintf(stderr, "runner: --batch needs --input and --output\n");
      return 2;
    }
    FILE* f = std::fopen(in_path, "rb");
    FILE* g = f ? std::fopen(out_path, "wb") : nullptr;
    pconv_model* m = g ? pconv_create(argv[1]) : nullptr;
    if (!f || !g || !m) {
      std::fprintf(stderr, "runner: cannot open %s / %s or create the model\n", in_path, out_path);
      return 1;
    }
    long count = 0;
    size_t got;
    while ((got = std::fread(x.data(), 4, (size_t)n, f)) == (size_t)n) {
      if (pconv_run(m, x.data(), y.data()) != 0 || std::fwrite(y.data(), 4, (size_t)k, g) != (size_t)k) {
        std::fprintf(stderr, "runner: sample %ld failed\n", count);
        return 1;
      }
      ++count;
    }
    std::fclose(f);
    pconv_destroy(m);
    if (std::fclose(g) != 0 || got != 0) {
      std::fprintf(stderr, "runner: %s is not a whole number of %d-float samples\n", in_path, n);
      return 1;
    }
    std::printf("batch: %ld samples classified\n", count);
    return 0;
  }
  if (in_path) {
    FILE* f = std::fopen(in_path, "rb");
    if (!f || std::fread(x.data(), 4, (size_t)n, f) != (size_t)n) {
      std::fprintf(stderr, "runner: %s must hold %d float32 values\n", in_path, n);
      if (f) std::fclose(f);
      return 1;
    }
    std::fclose(f);
  } else if (img_path) {
    if (!read_ppm(img_path, x, n)) return 1;
  } else {
    std::fprintf(stderr, "runner: give --input or --image\n");
    return 2;
  }
  if (save_path) {
    FILE* f = std::fopen(save_path, "wb");
    if (!f || std::fwrite(x.data(), 4, (size_t)n, f) != (size_t)n || std::fclose(f) != 0) {
      std::fprintf(stderr, "runner: cannot write %s\n", save_path);
      return 1;
    }
  }
  pconv_model* m = pconv_create(argv[1]);
  if (!m) return 1;
  if (layer_repeat > 1 && pconv_set_layer_repeat(layer_repeat) != 0) {
    std::fprintf(stderr, "runner: --layer-repeat needs a CPU target built with -DPCONV_LAYER_TIMES=ON\n");
    return 2;
  }
  for (int w = 0; w < warmup; ++w)  // warm-up: first touch, caches, the thread pool
    if (pconv_run(m, x.data(), y.data()) != 0) return 1;
  std::vector<double> ms;
  const int nl = pconv_layer_count();
  std::vector<std::vector<double>> lms((size_t)nl), alone((size_t)nl);
  for (int r = 0; r < repeat; ++r) {
    const auto t0 = std::chrono::steady_clock::now();
    pconv_run(m, x.data(), y.data());
    ms.push_back(std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count());
    for (int l = 0; l < nl && layer_times; ++l) {
      lms[(size_t)l].push_back(pconv_layer_ms(l));
      if (layer_repeat > 1) alone[(size_t)l].push_back(pconv_layer_ms_alone(l));
    }
  }
  std::sort(ms.begin(), ms.end());
  auto print_layers = [&](const char* tag, std::vector<std::vector<double>>& times) {
    for (int l = 0; l < nl; ++l) {
      std::vector<double>& v = times[(size_t)l];
      std::sort(v.begin(), v.end());
      std::printf("%s %d op %d %s median %.6f min %.6f max %.6f\n", tag, l, pconv_layer_op(l),
                  pconv_layer_name(l), v[v.size() / 2], v.front(), v.back());
    }
  };
  if (layer_times) print_layers("layer", lms);
  if (layer_times && layer_repeat > 1) print_layers("layer_alone", alone);
  std::vector<int> idx((size_t)k);
  for (int i = 0; i < k; ++i) idx[(size_t)i] = i;
  std::partial_sort(idx.begin(), idx.begin() + std::min(5, k), idx.end(),
                    [&](int a, int b) { return y[(size_t)a] > y[(size_t)b]; });
  std::printf("top-5:");
  for (int i = 0; i < std::min(5, k); ++i) std::printf(" %d (%.5g)", idx[(size_t)i], y[(size_t)idx[(size_t)i]]);
  std::printf("\nlatency_ms median %.4f min %.4f max %.4f over %d runs\n", ms[ms.size() / 2], ms.front(),
              ms.back(), repeat);
#ifdef _OPENMP
  std::printf("threads %d\n", omp_get_max_threads());  // what pconv_run left set
#else
  std::printf("threads 1\n");
#endif
  if (out_path) {
    FILE* f = std::fopen(out_path, "wb");
    if (!f || std::fwrite(y.data(), 4, (size_t)k, f) != (size_t)k) {
      std::fprintf(stderr, "runner: cannot write %s\n", out_path);
      if (f) std::fclose(f);
      return 1;
    }
    std::fclose(f);
  }
  pconv_destroy(m);
  return 0;
}
)PC";
}

std::string cmake_source(const Target& t, const DeployModel& dm) {
  std::string flags = t.cflags;
  std::string s = "# " +
                  std::string("CMakeLists.txt: builds the generated model and its runner.\n") +
                  "# Generated by pconv-deploy (src/deploy/codegen_templates.cpp) for target \"" +
                  t.name + "\", model \"" + dm.model_name + "\". Do not edit.\n";
  s += "cmake_minimum_required(VERSION 3.16)\nproject(pconv_model LANGUAGES CXX)\n"
       "set(CMAKE_CXX_STANDARD 17)\nset(CMAKE_CXX_STANDARD_REQUIRED ON)\n"
       "if(NOT CMAKE_BUILD_TYPE)\n  set(CMAKE_BUILD_TYPE Release)\nendif()\n"
       "find_package(OpenMP)\n";
  if (t.family == "opencl") {
    s += "find_package(OpenCL REQUIRED)\n"
         "add_library(pconv_model STATIC pconv_model.cpp)\n"
         "target_link_libraries(pconv_model PUBLIC OpenCL::OpenCL)\n";
  } else {
    s += "add_library(pconv_model STATIC pconv_model.cpp)\n";
  }
  s += "target_compile_options(pconv_model PRIVATE " + flags +
       " -Wall -Wextra -Wpedantic)\n"
       "# Benchmarking: per-layer wall times (pconv_layer_ms) and code tuned for the build host.\n"
       "option(PCONV_LAYER_TIMES \"record per-layer times\" OFF)\n"
       "option(PCONV_NATIVE \"build with -march=native\" OFF)\n"
       "# A check: NaN in the activations and scratch at create, so anything read before it is\n"
       "# written or zeroed in the same run reaches the logits (what pconv-deploy --verify "
       "builds).\n"
       "option(PCONV_POISON \"fill the arena and scratch with NaN at create\" OFF)\n"
       "if(PCONV_POISON)\n  target_compile_definitions(pconv_model PRIVATE PC_POISON)\nendif()\n"
       "if(PCONV_LAYER_TIMES)\n  target_compile_definitions(pconv_model PRIVATE "
       "PC_LAYER_TIMES)\nendif()\n"
       "if(PCONV_NATIVE)\n  target_compile_options(pconv_model PRIVATE -march=native)\nendif()\n"
       "if(OpenMP_CXX_FOUND)\n  target_link_libraries(pconv_model PUBLIC "
       "OpenMP::OpenMP_CXX)\nendif()\n"
       "add_executable(runner runner.cpp)\n"
       "target_compile_options(runner PRIVATE -O2 -Wall -Wextra -Wpedantic)\n"
       "target_link_libraries(runner PRIVATE pconv_model)\n";
  return s;
}

}  // namespace pconv::deploy
