// pconv OpenCL ops template (src/deploy/cl/opencl_ops.cl), embedded into pconv-deploy at build
// time and copied at the top of every generated pconv_model.cl. The simple layers (input/output
// copies, border zeroing, the generic dense conv, pools, linear, add, affine, activation) as
// plain kernels; pattern convs are generated per layer after this text.
//
// Addressing: all activations live in one arena buffer A. A tensor view is (o, ps, rs): the float
// index of element (channel 0, row 0, column 0), the channel plane stride and the row stride, so
// element (c, y, x) is A[o + c * ps + y * rs + x]. Flat tensors have ps = rs = 1, h = w = 1. The
// generator checks that every index fits an int. Weights W is one buffer of 32-bit words (floats,
// or int32 channel positions in pattern records); woff/boff are word offsets into it.

inline float pc_act(float v, int act) {
  if (act >= 1) v = fmax(v, 0.0f);
  if (act == 2) v = fmin(v, 6.0f);
  return v;
}

// Dense NCHW sample x -> the input tensor's interior.
__kernel void pc_put(__global const float* restrict x, __global float* restrict A, int o, int ps,
                     int rs, int C, int H, int Wd) {
  const int i = get_global_id(0);
  if (i >= C * H * Wd) return;
  const int c = i / (H * Wd), r = i % (H * Wd);
  A[o + c * ps + (r / Wd) * rs + r % Wd] = x[i];
}

// A tensor's interior -> dense NCHW (a logits tensor that is not flat).
__kernel void pc_get(__global const float* restrict A, __global float* restrict y, int o, int ps,
                     int rs, int C, int H, int Wd) {
  const int i = get_global_id(0);
  if (i >= C * H * Wd) return;
  const int c = i / (H * Wd), r = i % (H * Wd);
  y[i] = A[o + c * ps + (r / Wd) * rs + r % Wd];
}

// Zeroes everything of a mapped tensor but its interior: rows 0 and H + 1 of each plane, and the
// columns left of `col` and from col + Wd on. The pattern kernels read the border as padding, and
// arena slots are reused, so this runs after every layer whose output a pattern conv reads.
__kernel void pc_zero_border(__global float* restrict A, int base, int C, int H, int Wd, int ps,
                             int rs, int col) {
  const int i = get_global_id(0);
  if (i >= C * ps) return;
  const int p = i % ps, row = p / rs, x = p % rs;
  if (row < 1 || row > H || x < col || x >= col + Wd) A[base + i] = 0.0f;
}

// Dense conv with bounds checks (first layers with large kernels, odd strides, grouped convs).
// One work-item per output element; weights OIHW by output and input position.
__kernel void pc_conv_generic(__global float* restrict A, __global const float* restrict W,
                              int io, int ips, int irs, int IC, int IH, int IW, int oo, int ops,
                              int ors, int OC, int OH, int OW, int woff, int boff, int K, int S,
                              int P, int G, int act) {
  const int i = get_global_id(0);
  if (i >= OC * OH * OW) return;
  const int o = i / (OH * OW), oy = (i / OW) % OH, ox = i % OW;
  const int Ig = IC / G, Og = OC / G, g0 = (o / Og) * Ig;
  float s = W[boff + o];
  for (int c = 0; c < Ig; ++c)
    for (int r = 0; r < K; ++r) {
      const int iy = oy * S - P + r;
      if (iy < 0 || iy >= IH) continue;
      for (int q = 0; q < K; ++q) {
        const int ix = ox * S - P + q;
        if (ix < 0 || ix >= IW) continue;
        s += W[woff + ((o * Ig + c) * K + r) * K + q] * A[io + (g0 + c) * ips + iy * irs + ix];
      }
    }
  A[oo + o * ops + oy * ors + ox] = pc_act(s, act);
}

// Max (max = 1) or average (padding excluded from the divisor) pooling.
__kernel void pc_pool(__global float* restrict A, int io, int ips, int irs, int IH, int IW, int oo,
                      int ops, int ors, int C, int OH, int OW, int K, int S, int P, int max) {
  const int i = get_global_id(0);
  if (i >= C * OH * OW) return;
  const int c = i / (OH * OW), oy = (i / OW) % OH, ox = i % OW;
  float m = -INFINITY, s = 0.0f;
  int n = 0;
  for (int r = 0; r < K; ++r)
    for (int q = 0; q < K; ++q) {
      const int iy = oy * S - P + r, ix = ox * S - P + q;
      if (iy < 0 || iy >= IH || ix < 0 || ix >= IW) continue;
      const float v = A[io + c * ips + iy * irs + ix];
      m = v > m ? v : m;
      s += v;
      ++n;
    }
  A[oo + c * ops + oy * ors + ox] = max ? m : s / (float)(n > 0 ? n : 1);
}

__kernel void pc_gap(__global float* restrict A, int io, int ips, int irs, int C, int H, int Wd,
                     int oo) {
  const int c = get_global_id(0);
  if (c >= C) return;
  float s = 0.0f;
  for (int y = 0; y < H; ++y)
    for (int x = 0; x < Wd; ++x) s += A[io + c * ips + y * irs + x];
  A[oo + c] = s / (float)(H * Wd);
}

// One work-item per output; features in (channel position, y, x) order (the generator
// rearranged the weight columns).
__kernel void pc_linear(__global float* restrict A, __global const float* restrict W, int io,
                        int ips, int irs, int C, int H, int Wd, int oo, int O, int woff, int boff,
                        int act) {
  const int o = get_global_id(0);
  if (o >= O) return;
  __global const float* wo = W + woff + o * (C * H * Wd);
  float s = W[boff + o];
  for (int c = 0; c < C; ++c)
    for (int y = 0; y < H; ++y)
      for (int x = 0; x < Wd; ++x) s += wo[(c * H + y) * Wd + x] * A[io + c * ips + y * irs + x];
  A[oo + o] = pc_act(s, act);
}

__kernel void pc_add(__global float* restrict A, int ao, int bo, int oo, int ps, int rs, int C,
                     int H, int Wd, int act) {
  const int i = get_global_id(0);
  if (i >= C * H * Wd) return;
  const int e = (i / (H * Wd)) * ps + ((i / Wd) % H) * rs + i % Wd;
  A[oo + e] = pc_act(A[ao + e] + A[bo + e], act);
}

__kernel void pc_affine(__global float* restrict A, __global const float* restrict W, int io,
                        int oo, int ps, int rs, int C, int H, int Wd, int soff, int toff,
                        int act) {
  const int i = get_global_id(0);
  if (i >= C * H * Wd) return;
  const int c = i / (H * Wd), e = c * ps + ((i / Wd) % H) * rs + i % Wd;
  A[oo + e] = pc_act(W[soff + c] * A[io + e] + W[toff + c], act);
}

__kernel void pc_activation(__global float* restrict A, int io, int oo, int ps, int rs, int C,
                            int H, int Wd, int act) {
  const int i = get_global_id(0);
  if (i >= C * H * Wd) return;
  const int e = (i / (H * Wd)) * ps + ((i / Wd) % H) * rs + i % Wd;
  A[oo + e] = pc_act(A[io + e], act);
}
