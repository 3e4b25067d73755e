#include "deploy/bench.h"

#include <omp.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <dnnl.hpp>
#include <fstream>
#include <functional>
#include <map>
#include <sstream>

#include "core/build_commit.h"
#include "core/error.h"
#include "deploy/compiler.h"
#include "deploy/verify.h"
#include "train/net.h"

namespace pconv::deploy {

namespace {

using json = nlohmann::json;
using Clock = std::chrono::steady_clock;

struct Stat {
  double median = -1, min = -1, max = -1;
};

Stat stat_of(std::vector<double> v) {
  Stat s;
  if (v.empty()) return s;
  std::sort(v.begin(), v.end());
  s.median = v[v.size() / 2];
  s.min = v.front();
  s.max = v.back();
  return s;
}

json stat_json(const Stat& s) {
  if (s.median < 0) return nullptr;
  return {{"median_ms", s.median}, {"min_ms", s.min}, {"max_ms", s.max}};
}

template <typename F>
Stat time_ms(int repeat, F&& f, int warm_up) {
  for (int i = 0; i < warm_up; ++i) f();
  std::vector<double> v;
  for (int i = 0; i < repeat; ++i) {
    const auto t0 = Clock::now();
    f();
    v.push_back(std::chrono::duration<double, std::milli>(Clock::now() - t0).count());
  }
  return stat_of(v);
}

void fill(dnnl::memory& m, float v) {
  float* p = static_cast<float*>(m.get_data_handle());
  const size_t n = m.get_desc().get_size() / sizeof(float);
  std::fill(p, p + n, v);
}

dnnl::primitive_attr act_attr(Act a) {
  dnnl::primitive_attr attr;
  if (a != Act::None) {
    dnnl::post_ops po;
    if (a == Act::ReLU)
      po.append_eltwise(1.f, dnnl::algorithm::eltwise_relu, 0.f, 0.f);
    else
      po.append_eltwise(1.f, dnnl::algorithm::eltwise_clip, 0.f, 6.f);
    attr.set_post_ops(po);
  }
  return attr;
}

// A timed thing: its per-round statistics, combined at the end (median of the round medians,
// min of the minima, max of the maxima), so every measurement samples the same rounds.
struct Rounds {
  std::vector<double> medians, mins, maxs;
  void add(const Stat& s) {
    if (s.median < 0) return;
    medians.push_back(s.median), mins.push_back(s.min), maxs.push_back(s.max);
  }
  Stat stat() const {
    if (medians.empty()) return {};
    Stat s = stat_of(medians);
    s.min = *std::min_element(mins.begin(), mins.end());
    s.max = *std::max_element(maxs.begin(), maxs.end());
    return s;
  }
};

// One conv in oneDNN with algorithm `alg`, formats chosen by the primitive (tag::any), fused
// activation as in the generated code: a callable that runs it once, or an empty one when oneDNN
// has no implementation.
std::function<void()> dnnl_conv(dnnl::engine& eng, dnnl::stream& s, const Op& op,
                                dnnl::algorithm alg, std::string* impl) {
  using tag = dnnl::memory::format_tag;
  using dt = dnnl::memory::data_type;
  const int g = op.groups;
  dnnl::memory::dims src{1, op.in_c, op.in_h, op.in_w}, dst{1, op.c, op.h, op.w}, bias{op.c};
  dnnl::memory::dims wei = g == 1 ? dnnl::memory::dims{op.c, op.in_c, op.k, op.k}
                                  : dnnl::memory::dims{g, op.c / g, op.in_c / g, op.k, op.k};
  try {
    dnnl::convolution_forward::desc d(
        dnnl::prop_kind::forward_inference, alg, dnnl::memory::desc(src, dt::f32, tag::any),
        dnnl::memory::desc(wei, dt::f32, tag::any), dnnl::memory::desc(bias, dt::f32, tag::a),
        dnnl::memory::desc(dst, dt::f32, tag::any), {op.stride, op.stride}, {op.pad, op.pad},
        {op.pad, op.pad});
    dnnl::convolution_forward::primitive_desc pd(d, act_attr(op.act), eng);
    if (impl) *impl = pd.impl_info_str();
    dnnl::memory ms(pd.src_desc(), eng), mw(pd.weights_desc(), eng), mb(pd.bias_desc(), eng),
        md(pd.dst_desc(), eng);
    fill(ms, 0.5f), fill(mw, 0.01f), fill(mb, 0.1f), fill(md, 0.f);
    dnnl::convolution_forward conv(pd);
    const std::unordered_map<int, dnnl::memory> args = {
        {DNNL_ARG_SRC, ms}, {DNNL_ARG_WEIGHTS, mw}, {DNNL_ARG_BIAS, mb}, {DNNL_ARG_DST, md}};
    return [conv, args, &s] {
      conv.execute(s, args);
      s.wait();
    };
  } catch (const dnnl::error&) {
    return {};
  }
}

std::function<void()> dnnl_linear(dnnl::engine& eng, dnnl::stream& s, const Op& op,
                                  int in_features) {
  using tag = dnnl::memory::format_tag;
  using dt = dnnl::memory::data_type;
  try {
    dnnl::inner_product_forward::desc d(dnnl::prop_kind::forward_inference,
                                        dnnl::memory::desc({1, in_features}, dt::f32, tag::any),
                                        dnnl::memory::desc({op.c, in_features}, dt::f32, tag::any),
                                        dnnl::memory::desc({op.c}, dt::f32, tag::a),
                                        dnnl::memory::desc({1, op.c}, dt::f32, tag::any));
    dnnl::inner_product_forward::primitive_desc pd(d, act_attr(op.act), eng);
    dnnl::memory ms(pd.src_desc(), eng), mw(pd.weights_desc(), eng), mb(pd.bias_desc(), eng),
        md(pd.dst_desc(), eng);
    fill(ms, 0.5f), fill(mw, 0.01f), fill(mb, 0.1f), fill(md, 0.f);
    dnnl::inner_product_forward ip(pd);
    const std::unordered_map<int, dnnl::memory> args = {
        {DNNL_ARG_SRC, ms}, {DNNL_ARG_WEIGHTS, mw}, {DNNL_ARG_BIAS, mb}, {DNNL_ARG_DST, md}};
    return [ip, args, &s] {
      ip.execute(s, args);
      s.wait();
    };
  } catch (const dnnl::error&) {
    return {};
  }
}

// The features a linear reads: its source's (through flattens) elements.
int linear_in_features(const DeployModel& dm, const Op& op) {
  const Op& src = dm.ops[static_cast<size_t>(through_flattens(dm, op.inputs[0]))];
  return src.c * src.h * src.w;
}

std::string shell_line(const std::string& cmd) {
  std::string out;
  if (run_command(cmd, &out) != 0) return "";
  while (!out.empty() && (out.back() == '\n' || out.back() == '\r')) out.pop_back();
  return out;
}

double gflops(int64_t macs, double ms) {
  return ms > 0 ? 2.0 * static_cast<double>(macs) / (ms * 1e6) : 0.0;
}

}  // namespace

json run_bench(const ModelFile& m, const std::string& name, const BenchOptions& opt) {
  PCONV_CHECK(!opt.work_dir.empty(), "pconv-bench: no work folder");
  CompileOptions co;
  co.target = opt.target;
  co.out_dir = opt.work_dir;
  co.print_table = false;
  const CompileResult c = compile_model(m, name, co);
  PCONV_CHECK(c.target.family == "x86", "pconv-bench times x86 code; target ", c.target.name);
  build_generated(opt.work_dir, c.target, "-DPCONV_LAYER_TIMES=ON -DPCONV_NATIVE=ON");
  // Correctness first: a fast wrong answer is no result.
  const std::vector<float> x = random_input(m, 1);
  const VerifyReport vr = compare_with_reference(m, x, run_generated(opt.work_dir, c.target, x));
  PCONV_CHECK(vr.ok, "pconv-bench: the generated code fails verification: ", vr.message);

  const DeployModel& dm = c.ir;
  json j;
  j["model"] = name;
  j["command"] = opt.command;
  // The generator that wrote the code is this binary, so its build commit is the one to record.
  const std::string commit = build_commit();
  j["commit"] = commit;
  j["dirty"] = commit.size() > 6 && commit.compare(commit.size() - 6, 6, "-dirty") == 0;
  j["cpu"] = shell_line("grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ *//'");
  j["target"] = c.target.name;
  j["repeat"] = opt.repeat;
  j["rounds"] = std::max(1, std::min(opt.rounds, opt.repeat));
  j["verify"] = vr.message;
  j["oneDNN"] = cat(dnnl_version()->major, ".", dnnl_version()->minor, ".", dnnl_version()->patch);
  j["runs"] = json::array();

  dnnl::engine eng(dnnl::engine::kind::cpu, 0);
  dnnl::stream s(eng);
  for (int th : opt.threads) {
    omp_set_num_threads(th);
    // Every measurement is created once, then all are timed in interleaved rounds (the runner's
    // per-layer hook, each oneDNN primitive, the dense model), so a slow phase of a shared host
    // falls on both sides of a ratio alike rather than on whichever ran during it.
    struct Measured {
      std::function<void()> run;
      Rounds rounds;
    };
    enum { kDirect, kWinograd, kAuto, kLinear };
    std::map<std::pair<size_t, int>, Measured> dnn;
    std::map<size_t, std::string> impl_d, impl_w, impl_a;
    for (size_t i = 1; i < dm.ops.size(); ++i) {
      const Op& op = dm.ops[i];
      if (op.type == OpType::Conv) {
        dnn[{i, kDirect}].run =
            dnnl_conv(eng, s, op, dnnl::algorithm::convolution_direct, &impl_d[i]);
        dnn[{i, kWinograd}].run =
            dnnl_conv(eng, s, op, dnnl::algorithm::convolution_winograd, &impl_w[i]);
        dnn[{i, kAuto}].run = dnnl_conv(eng, s, op, dnnl::algorithm::convolution_auto, &impl_a[i]);
      } else if (op.type == OpType::Linear) {
        dnn[{i, kLinear}].run = dnnl_linear(eng, s, op, linear_in_features(dm, op));
      }
    }
    // The whole dense model through pconv::Net (oneDNN, auto algorithm).
    ParamMap params = m.params;
    Net net(m.graph, params);
    Shape shape = m.graph.input_shape();
    shape.insert(shape.begin(), 1);
    Tensor in(shape, 0.5f);
    Measured dense{[&] { net.forward(in, false); }, {}};
    std::map<int, Rounds> gen_rounds, alone_rounds;
    Rounds e2e_rounds;
    const int rounds = std::max(1, std::min(opt.rounds, opt.repeat));
    for (int r = 0; r < rounds; ++r) {
      const int k = opt.repeat / rounds + (r < opt.repeat % rounds ? 1 : 0);
      // Generated code: per-layer medians from the timing hook, and the end-to-end latency;
      // then each layer alone (run 3 times back to back in every inference, the last timed), as
      // oneDNN's primitives below are timed: the like-for-like comparison.
      for (const bool alone : {false, true}) {
        std::string out;
        const std::string cmd =
            cat(opt.work_dir, "/build/runner ", opt.work_dir, "/weights.bin --input ", opt.work_dir,
                "/verify_input.f32 --repeat ", k, " --warmup 3 --threads ", th, " --layer-times",
                alone ? " --layer-repeat 3" : "");
        PCONV_CHECK(run_command(cmd, &out) == 0, "pconv-bench: runner failed:\n", out);
        std::istringstream is(out);
        for (std::string line; std::getline(is, line);) {
          std::istringstream ls(line);
          std::string w, lname;
          int layer = 0, op = 0;
          Stat st;
          const bool in_model = !alone && line.rfind("layer ", 0) == 0;
          if (in_model || (alone && line.rfind("layer_alone ", 0) == 0)) {
            std::string a, b, c2;
            ls >> w >> layer >> w >> op >> lname >> a >> st.median >> b >> st.min >> c2 >> st.max;
            (alone ? alone_rounds : gen_rounds)[op].add(st);
          } else if (!alone && line.rfind("latency_ms", 0) == 0) {
            ls >> w >> w >> st.median >> w >> st.min >> w >> st.max;
            e2e_rounds.add(st);
          }
        }
      }
      // oneDNN: first JIT and first touch, then the caches the others used; the runner is a
      // fresh process each round, so it warms up 3 runs every round (with 1, the medians of the
      // 224 model's layers sat 1.4-1.5x above their minima, oneDNN's 1.0-1.2x).
      const int warm = r == 0 ? 3 : 1;
      for (auto& [key, meas] : dnn)
        if (meas.run) meas.rounds.add(time_ms(k, meas.run, warm));
      dense.rounds.add(time_ms(k, dense.run, warm));
    }
    // An op's generated-code figure from its rounds (none: an op the runner does not time).
    auto stat_of = [](const std::map<int, Rounds>& rounds_of, size_t i) {
      const auto it = rounds_of.find(static_cast<int>(i));
      return it == rounds_of.end() ? Stat{} : it->second.stat();
    };
    const Stat e2e = e2e_rounds.stat();
    auto timed = [&](size_t i, int kind) { return dnn[{i, kind}].rounds.stat(); };
    json run;
    run["threads"] = th;
    run["layers"] = json::array();
    double conv_gen = 0, conv_best = 0, conv_direct = 0, conv_auto = 0, pat_gen = 0, pat_best = 0;
    double conv_alone = 0, pat_alone = 0;
    bool alone_ok = true;  // every conv timed alone (CPU targets)
    int64_t conv_nz = 0, conv_dense = 0, pat_nz = 0;
    double all_gen = 0, all_dnnl = 0;
    for (size_t i = 1; i < dm.ops.size(); ++i) {
      const Op& op = dm.ops[i];
      if (op.type == OpType::Flatten) continue;
      json L;
      L["op"] = i;
      L["name"] = op.name;
      L["type"] = op_type_name(op.type);
      const Stat g = stat_of(gen_rounds, i), ga = stat_of(alone_rounds, i);
      L["generated"] = stat_json(g);
      L["generated_alone"] = stat_json(ga);
      all_gen += std::max(0.0, g.median);
      if (op.type == OpType::Conv) {
        const bool pattern = op.plan.pruned && op.k == 3;
        L["shape"] = cat(op.in_c, "x", op.in_h, "x", op.in_w, " -> ", op.c, "x", op.h, "x", op.w,
                         " k", op.k, " s", op.stride);
        L["pattern"] = pattern;
        L["nonzero_macs"] = op.plan.nonzero_macs;
        L["dense_macs"] = op.plan.dense_macs;
        const Stat d = timed(i, kDirect), w = timed(i, kWinograd), a = timed(i, kAuto);
        L["onednn_direct"] = stat_json(d);
        L["onednn_winograd"] = stat_json(w);
        L["onednn_auto"] = stat_json(a);
        L["onednn_impl"] = {{"direct", impl_d[i]},
                            {"winograd", w.median < 0 ? "" : impl_w[i]},
                            {"auto", impl_a[i]}};
        double best = d.median;
        std::string which = "direct";
        if (w.median > 0 && w.median < best) best = w.median, which = "winograd";
        if (a.median > 0 && a.median < best) best = a.median, which = "auto";
        L["onednn_best"] = which;
        L["onednn_best_ms"] = best;
        L["speedup_vs_best"] = g.median > 0 ? best / g.median : 0.0;
        L["speedup_vs_best_alone"] = ga.median > 0 ? best / ga.median : 0.0;
        L["speedup_vs_direct"] = g.median > 0 ? d.median / g.median : 0.0;
        L["generated_gflops_nonzero"] = gflops(op.plan.nonzero_macs, g.median);
        L["generated_alone_gflops_nonzero"] = gflops(op.plan.nonzero_macs, ga.median);
        L["onednn_best_gflops_dense"] = gflops(op.plan.dense_macs, best);
        conv_gen += g.median, conv_best += best, conv_direct += d.median, conv_auto += a.median;
        conv_alone += ga.median;
        alone_ok = alone_ok && ga.median > 0;
        conv_nz += op.plan.nonzero_macs, conv_dense += op.plan.dense_macs;
        all_dnnl += best;
        if (pattern)
          pat_gen += g.median, pat_alone += ga.median, pat_best += best,
              pat_nz += op.plan.nonzero_macs;
      } else if (op.type == OpType::Linear) {
        const Stat d = timed(i, kLinear);
        L["shape"] = cat(linear_in_features(dm, op), " -> ", op.c);
        L["onednn"] = stat_json(d);
        L["speedup_vs_best"] = g.median > 0 ? d.median / g.median : 0.0;
        L["speedup_vs_best_alone"] = ga.median > 0 ? d.median / ga.median : 0.0;
        all_dnnl += std::max(0.0, d.median);
      }
      run["layers"].push_back(L);
    }
    if (!alone_ok) conv_alone = pat_alone = -1;
    run["conv"] = {{"generated_ms", conv_gen},
                   {"onednn_best_ms", conv_best},
                   {"onednn_direct_ms", conv_direct},
                   {"onednn_auto_ms", conv_auto},
                   {"speedup_vs_best", conv_gen > 0 ? conv_best / conv_gen : 0.0},
                   {"generated_alone_ms", conv_alone},
                   {"speedup_vs_best_alone", conv_alone > 0 ? conv_best / conv_alone : 0.0},
                   {"generated_alone_gflops_nonzero", gflops(conv_nz, conv_alone)},
                   {"speedup_vs_direct", conv_gen > 0 ? conv_direct / conv_gen : 0.0},
                   {"speedup_vs_auto", conv_gen > 0 ? conv_auto / conv_gen : 0.0},
                   {"generated_gflops_nonzero", gflops(conv_nz, conv_gen)},
                   {"onednn_best_gflops_dense", gflops(conv_dense, conv_best)}};
    run["pattern_conv"] = {{"generated_ms", pat_gen},
                           {"onednn_best_ms", pat_best},
                           {"speedup_vs_best", pat_gen > 0 ? pat_best / pat_gen : 0.0},
                           {"generated_alone_ms", pat_alone},
                           {"speedup_vs_best_alone", pat_alone > 0 ? pat_best / pat_alone : 0.0},
                           {"generated_alone_gflops_nonzero", gflops(pat_nz, pat_alone)},
                           {"generated_gflops_nonzero", gflops(pat_nz, pat_gen)}};
    const Stat nt = dense.rounds.stat();
    run["total"] = {{"generated_e2e", stat_json(e2e)},
                    {"generated_layers_sum_ms", all_gen},
                    {"onednn_layers_best_sum_ms", all_dnnl},
                    {"dense_model_net", stat_json(nt)},
                    {"speedup_vs_dense_model", e2e.median > 0 ? nt.median / e2e.median : 0.0}};
    j["runs"].push_back(run);
  }
  return j;
}

namespace {

std::string fmt(double v, int prec = 3) {
  if (v < 0) return "n/a";
  char b[64];
  std::snprintf(b, sizeof b, "%.*f", prec, v);
  return b;
}

std::string ms_range(const json& s) {
  if (s.is_null()) return "n/a";
  return fmt(s["median_ms"].get<double>()) + " (" + fmt(s["min_ms"].get<double>()) + "–" +
         fmt(s["max_ms"].get<double>()) + ")";
}

double med(const json& s) {
  return s.is_null() ? -1.0 : s["median_ms"].get<double>();
}

}  // namespace

std::string bench_table(const json& j) {
  std::ostringstream os;
  for (const json& run : j["runs"]) {
    os << "== " << j["model"].get<std::string>() << ", " << run["threads"].get<int>()
       << " thread(s), ms: median of the medians of " << j.value("rounds", 1)
       << " interleaved rounds, " << j["repeat"].get<int>() << " runs in all\n";
    char b[512];
    std::snprintf(b, sizeof b, "%-14s %-28s %9s %9s %9s %9s %9s %7s %7s %8s\n", "layer", "shape",
                  "gen", "gen alone", "direct", "winograd", "auto", "x best", "x alone", "GF/s nz");
    os << b;
    for (const json& L : run["layers"]) {
      if (L["type"] != "conv" && L["type"] != "linear") continue;
      const bool conv = L["type"] == "conv";
      std::snprintf(b, sizeof b, "%-14s %-28s %9s %9s %9s %9s %9s %7s %7s %8s\n",
                    L["name"].get<std::string>().c_str(), L["shape"].get<std::string>().c_str(),
                    fmt(med(L["generated"])).c_str(), fmt(med(L["generated_alone"])).c_str(),
                    fmt(med(conv ? L["onednn_direct"] : L["onednn"])).c_str(),
                    conv ? fmt(med(L["onednn_winograd"])).c_str() : "",
                    conv ? fmt(med(L["onednn_auto"])).c_str() : "",
                    fmt(L["speedup_vs_best"].get<double>(), 2).c_str(),
                    fmt(L["speedup_vs_best_alone"].get<double>(), 2).c_str(),
                    conv ? fmt(L["generated_alone_gflops_nonzero"].get<double>(), 1).c_str() : "");
      os << b;
    }
    const json& c = run["conv"];
    const json& p = run["pattern_conv"];
    const json& t = run["total"];
    os << "conv layers: generated " << fmt(c["generated_ms"]) << " ms, oneDNN best "
       << fmt(c["onednn_best_ms"]) << " ms -> " << fmt(c["speedup_vs_best"], 2) << "x (vs direct "
       << fmt(c["speedup_vs_direct"], 2) << "x, vs auto " << fmt(c["speedup_vs_auto"], 2) << "x); "
       << fmt(c["generated_gflops_nonzero"], 1) << " GFLOP/s non-zero; each layer alone "
       << fmt(c["generated_alone_ms"]) << " ms -> " << fmt(c["speedup_vs_best_alone"], 2) << "x, "
       << fmt(c["generated_alone_gflops_nonzero"], 1) << " GFLOP/s\n";
    os << "pattern convs: " << fmt(p["speedup_vs_best"], 2) << "x vs oneDNN best ("
       << fmt(p["speedup_vs_best_alone"], 2) << "x alone), "
       << fmt(p["generated_gflops_nonzero"], 1) << " GFLOP/s non-zero ("
       << fmt(p["generated_alone_gflops_nonzero"], 1) << " alone)\n";
    os << "whole model: generated " << ms_range(t["generated_e2e"]) << " ms, dense model (Net) "
       << ms_range(t["dense_model_net"]) << " ms -> " << fmt(t["speedup_vs_dense_model"], 2)
       << "x\n";
  }
  return os.str();
}

std::string bench_markdown(const json& j) {
  std::ostringstream os;
  os << "### " << j["model"].get<std::string>() << "\n\n";
  os << "Command: `" << j["command"].get<std::string>() << "`  \ncommit "
     << j["commit"].get<std::string>()
     << (j["dirty"].get<bool>() ? " (built with uncommitted changes)" : "") << ", "
     << j["cpu"].get<std::string>() << ", oneDNN " << j["oneDNN"].get<std::string>() << ", target "
     << j["target"].get<std::string>()
     << ", batch 1, ms: median of the per-round medians (min–max of all runs), "
     << j["repeat"].get<int>() << " runs of each measurement in " << j.value("rounds", 1)
     << " interleaved rounds.  \n"
     << "Verification: " << j["verify"].get<std::string>() << "\n\n";
  for (const json& run : j["runs"]) {
    const int th = run["threads"].get<int>();
    os << "#### " << th << " thread" << (th > 1 ? "s" : "") << "\n\n";
    os << "| layer | shape | generated, in the model | generated, alone | oneDNN direct | oneDNN "
          "winograd | oneDNN auto | best | speedup vs best, in the model | speedup vs best, alone "
          "| GFLOP/s non-zero (gen, in the model) | GFLOP/s non-zero (gen, alone) | GFLOP/s "
          "dense-equiv (oneDNN best) |\n"
          "|---|---|---|---|---|---|---|---|---|---|---|---|---|\n";
    for (const json& L : run["layers"]) {
      if (L["type"] == "conv") {
        os << "| " << L["name"].get<std::string>() << " | " << L["shape"].get<std::string>()
           << " | " << ms_range(L["generated"]) << " | " << ms_range(L["generated_alone"]) << " | "
           << ms_range(L["onednn_direct"]) << " | " << ms_range(L["onednn_winograd"]) << " | "
           << ms_range(L["onednn_auto"]) << " | " << L["onednn_best"].get<std::string>() << " | "
           << fmt(L["speedup_vs_best"].get<double>(), 2) << "x | "
           << fmt(L["speedup_vs_best_alone"].get<double>(), 2) << "x | "
           << fmt(L["generated_gflops_nonzero"].get<double>(), 1) << " | "
           << fmt(L["generated_alone_gflops_nonzero"].get<double>(), 1) << " | "
           << fmt(L["onednn_best_gflops_dense"].get<double>(), 1) << " |\n";
      } else if (L["type"] == "linear") {
        os << "| " << L["name"].get<std::string>() << " | " << L["shape"].get<std::string>()
           << " | " << ms_range(L["generated"]) << " | " << ms_range(L["generated_alone"]) << " | "
           << ms_range(L["onednn"]) << " (inner product) | | | | "
           << fmt(L["speedup_vs_best"].get<double>(), 2) << "x | "
           << fmt(L["speedup_vs_best_alone"].get<double>(), 2) << "x | | | |\n";
      }
    }
    const json& c = run["conv"];
    const json& p = run["pattern_conv"];
    const json& t = run["total"];
    os << "\n- Conv layers, in the model: generated " << fmt(c["generated_ms"])
       << " ms, oneDNN best per layer " << fmt(c["onednn_best_ms"]) << " ms: **"
       << fmt(c["speedup_vs_best"], 2) << "x** (vs direct " << fmt(c["speedup_vs_direct"], 2)
       << "x, vs auto " << fmt(c["speedup_vs_auto"], 2) << "x); "
       << fmt(c["generated_gflops_nonzero"], 1) << " GFLOP/s on non-zero MACs.\n";
    os << "- Conv layers, each alone (timed as oneDNN's are): generated "
       << fmt(c["generated_alone_ms"]) << " ms: **" << fmt(c["speedup_vs_best_alone"], 2) << "x**; "
       << fmt(c["generated_alone_gflops_nonzero"], 1) << " GFLOP/s non-zero.\n";
    os << "- Pattern-pruned 3x3 convs only: **" << fmt(p["speedup_vs_best"], 2)
       << "x** vs oneDNN best in the model, **" << fmt(p["speedup_vs_best_alone"], 2)
       << "x** alone; " << fmt(p["generated_gflops_nonzero"], 1) << " / "
       << fmt(p["generated_alone_gflops_nonzero"], 1) << " GFLOP/s non-zero.\n";
    os << "- Whole model: generated " << ms_range(t["generated_e2e"]) << " ms (sum of layers "
       << fmt(t["generated_layers_sum_ms"]) << "); dense model through "
       << "pconv::Net " << ms_range(t["dense_model_net"]) << " ms: **"
       << fmt(t["speedup_vs_dense_model"], 2) << "x**.\n\n";
  }
  return os.str();
}

}  // namespace pconv::deploy
