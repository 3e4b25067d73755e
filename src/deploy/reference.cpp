#include "deploy/reference.h"

#include <algorithm>
#include <cmath>
#include <limits>

#include "core/error.h"

namespace pconv::deploy {

namespace {

struct Map {
  int c = 0, h = 1, w = 1;
  std::vector<double> v;  // double: the oracle's own rounding stays far below the tolerance
};

const Tensor& P(const ModelFile& m, const Node& n, ParamRole r) {
  auto it = m.params.find(param_key(n.name, r));
  PCONV_CHECK(it != m.params.end(), "reference: layer \"", n.name, "\": missing parameter ",
              param_key(n.name, r));
  return it->second;
}

Map run(const ModelFile& m, const std::vector<float>& input, bool absval, double* sqrt_red) {
  const Graph& g = m.graph;
  std::vector<Map> val(static_cast<size_t>(g.size()));
  auto A = [&](double x) { return absval ? std::fabs(x) : x; };
  for (int ni = 0; ni < g.size(); ++ni) {
    const Node& n = g.node(ni);
    Map& y = val[static_cast<size_t>(ni)];
    if (n.out.size() == 3) {
      y.c = static_cast<int>(n.out[0]);
      y.h = static_cast<int>(n.out[1]);
      y.w = static_cast<int>(n.out[2]);
    } else {
      y.c = static_cast<int>(numel(n.out));
    }
    y.v.assign(static_cast<size_t>(y.c) * y.h * y.w, 0.0);
    const Map* x = n.inputs.empty() ? nullptr : &val[static_cast<size_t>(n.inputs[0])];
    switch (n.kind) {
      case OpKind::Input:
        PCONV_CHECK(input.size() == y.v.size(), "reference: input holds ", input.size(),
                    " values, the model expects ", y.v.size());
        for (size_t i = 0; i < y.v.size(); ++i) y.v[i] = A(input[i]);
        break;
      case OpKind::Conv: {
        const ConvAttrs& a = n.conv();
        const Tensor& W = P(m, n, ParamRole::Weight);
        const int Ig = x->c / a.groups, Og = y.c / a.groups, KH = a.kernel_h, KW = a.kernel_w;
        if (sqrt_red) *sqrt_red += std::sqrt(static_cast<double>(Ig * KH * KW));
        const Tensor* B = a.bias ? &P(m, n, ParamRole::Bias) : nullptr;
#pragma omp parallel for schedule(dynamic, 1)
        for (int o = 0; o < y.c; ++o) {
          const int g0 = (o / Og) * Ig;
          for (int oy = 0; oy < y.h; ++oy)
            for (int ox = 0; ox < y.w; ++ox) {
              double s = B ? A((*B)[o]) : 0.0;
              for (int i = 0; i < Ig; ++i)
                for (int r = 0; r < KH; ++r) {
                  const int iy = oy * a.stride_h - a.pad_h + r;
                  if (iy < 0 || iy >= x->h) continue;
                  for (int c = 0; c < KW; ++c) {
                    const int ix = ox * a.stride_w - a.pad_w + c;
                    if (ix < 0 || ix >= x->w) continue;
                    s += A(W[((static_cast<int64_t>(o) * Ig + i) * KH + r) * KW + c]) *
                         x->v[(static_cast<size_t>(g0 + i) * x->h + iy) * x->w + ix];
                  }
                }
              y.v[(static_cast<size_t>(o) * y.h + oy) * y.w + ox] = s;
            }
        }
        break;
      }
      case OpKind::BatchNorm: {
        const Tensor &ga = P(m, n, ParamRole::Gamma), &be = P(m, n, ParamRole::Beta),
                     &mu = P(m, n, ParamRole::RunningMean), &var = P(m, n, ParamRole::RunningVar);
        const size_t hw = static_cast<size_t>(y.h) * y.w;
        for (int c = 0; c < y.c; ++c) {
          const double s = ga[c] / std::sqrt(static_cast<double>(var[c]) + n.bn().eps);
          const double t = be[c] - mu[c] * s;
          for (size_t j = 0; j < hw; ++j)
            y.v[c * hw + j] =
                absval ? std::fabs(s) * x->v[c * hw + j] + std::fabs(t) : s * x->v[c * hw + j] + t;
        }
        break;
      }
      case OpKind::ReLU:
        for (size_t i = 0; i < y.v.size(); ++i) y.v[i] = std::max(0.0, x->v[i]);
        break;
      case OpKind::ReLU6:
        for (size_t i = 0; i < y.v.size(); ++i) y.v[i] = std::min(6.0, std::max(0.0, x->v[i]));
        break;
      case OpKind::MaxPool:
      case OpKind::AvgPool: {
        const PoolAttrs& a = n.pool();
        for (int c = 0; c < y.c; ++c)
          for (int oy = 0; oy < y.h; ++oy)
            for (int ox = 0; ox < y.w; ++ox) {
              double mx = -std::numeric_limits<double>::infinity(), s = 0;
              int cnt = 0;
              for (int r = 0; r < a.kernel; ++r)
                for (int q = 0; q < a.kernel; ++q) {
                  const int iy = oy * a.stride - a.pad + r, ix = ox * a.stride - a.pad + q;
                  if (iy < 0 || iy >= x->h || ix < 0 || ix >= x->w) continue;
                  const double v = x->v[(static_cast<size_t>(c) * x->h + iy) * x->w + ix];
                  mx = std::max(mx, v);
                  s += v;
                  ++cnt;
                }
              y.v[(static_cast<size_t>(c) * y.h + oy) * y.w + ox] =
                  n.kind == OpKind::MaxPool ? mx : s / std::max(cnt, 1);
            }
        break;
      }
      case OpKind::GlobalAvgPool: {
        const size_t hw = static_cast<size_t>(x->h) * x->w;
        for (int c = 0; c < y.c; ++c) {
          double s = 0;
          for (size_t j = 0; j < hw; ++j) s += x->v[c * hw + j];
          y.v[static_cast<size_t>(c)] = s / static_cast<double>(hw);
        }
        break;
      }
      case OpKind::Flatten:
        y.v = x->v;
        break;
      case OpKind::Linear: {
        const Tensor& W = P(m, n, ParamRole::Weight);
        const Tensor* B = n.linear().bias ? &P(m, n, ParamRole::Bias) : nullptr;
        const size_t in = x->v.size();
        if (sqrt_red) *sqrt_red += std::sqrt(static_cast<double>(in));
        for (int o = 0; o < y.c; ++o) {
          double s = B ? A((*B)[o]) : 0.0;
          for (size_t i = 0; i < in; ++i) s += A(W[static_cast<int64_t>(o * in + i)]) * x->v[i];
          y.v[static_cast<size_t>(o)] = s;
        }
        break;
      }
      case OpKind::Add: {
        const Map& b = val[static_cast<size_t>(n.inputs[1])];
        for (size_t i = 0; i < y.v.size(); ++i) y.v[i] = x->v[i] + b.v[i];
        break;
      }
    }
  }
  return val.back();
}

}  // namespace

ReferenceResult reference_forward(const ModelFile& m, const std::vector<float>& input) {
  ReferenceResult r;
  Map y = run(m, input, false, &r.sqrt_reduction);
  r.logits.assign(y.v.begin(), y.v.end());
  double ss = 0;
  for (double v : y.v) ss += v * v;
  r.rms = y.v.empty() ? 0.0 : std::sqrt(ss / static_cast<double>(y.v.size()));
  return r;
}

float logit_tolerance(const ReferenceResult& r, size_t i) {
  const double u = std::ldexp(1.0, -24);
  return static_cast<float>(4.0 * u * std::max(1.0, r.sqrt_reduction) *
                            (std::fabs(static_cast<double>(r.logits.at(i))) + r.rms));
}

}  // namespace pconv::deploy
