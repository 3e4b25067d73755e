#include "deploy/verify.h"

#include <algorithm>
#include <array>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <random>
#include <sstream>

#include "core/error.h"
#include "deploy/reference.h"
#include "train/net.h"

namespace pconv::deploy {

namespace fs = std::filesystem;

int run_command(const std::string& cmd, std::string* output) {
  FILE* p = popen((cmd + " 2>&1").c_str(), "r");
  PCONV_CHECK(p, "cannot run: ", cmd);
  std::array<char, 4096> buf;
  std::string out;
  size_t n;
  while ((n = fread(buf.data(), 1, buf.size(), p)) > 0) out.append(buf.data(), n);
  const int st = pclose(p);
  if (output) *output = out;
  return WIFEXITED(st) ? WEXITSTATUS(st) : -1;
}

static std::string tail(const std::string& s, size_t n = 3000) {
  return s.size() > n ? "..." + s.substr(s.size() - n) : s;
}

std::string build_generated(const std::string& dir, const Target& t,
                            const std::string& cmake_args) {
  std::string cfg =
      "cmake -S " + dir + " -B " + dir + "/build -DCMAKE_BUILD_TYPE=Release " + cmake_args;
  if (t.family == "neon")
    cfg +=
        " -DCMAKE_SYSTEM_NAME=Linux -DCMAKE_SYSTEM_PROCESSOR=aarch64"
        " -DCMAKE_CXX_COMPILER=aarch64-linux-gnu-g++";
  std::string out;
  PCONV_CHECK(run_command(cfg, &out) == 0, dir, ": cmake configure of the generated code failed:\n",
              tail(out));
  PCONV_CHECK(run_command("cmake --build " + dir + "/build -j2", &out) == 0, dir,
              ": build of the generated code failed:\n", tail(out));
  PCONV_CHECK(out.find("warning:") == std::string::npos, dir,
              ": the generated code compiles with warnings:\n", tail(out));
  return dir + "/build/runner";
}

std::vector<float> run_generated(const std::string& dir, const Target& t,
                                 const std::vector<float>& input, int threads) {
  const std::string in = dir + "/verify_input.f32", outp = dir + "/verify_logits.f32";
  {
    std::ofstream f(in, std::ios::binary);
    f.write(reinterpret_cast<const char*>(input.data()),
            static_cast<std::streamsize>(input.size() * 4));
    PCONV_CHECK(f.good(), "cannot write ", in);
  }
  std::string cmd =
      dir + "/build/runner " + dir + "/weights.bin --input " + in + " --output " + outp;
  if (threads > 0) cmd += " --threads " + std::to_string(threads);
  if (t.family == "neon") cmd = "qemu-aarch64 -L /usr/aarch64-linux-gnu " + cmd;
  std::string out;
  PCONV_CHECK(run_command(cmd, &out) == 0, dir, ": the generated runner failed:\n", tail(out));
  std::ifstream f(outp, std::ios::binary);
  PCONV_CHECK(f.good(), dir, ": the runner wrote no logits");
  std::vector<float> y;
  float v;
  while (f.read(reinterpret_cast<char*>(&v), 4)) y.push_back(v);
  return y;
}

std::vector<float> random_input(const ModelFile& m, uint64_t seed) {
  std::mt19937_64 rng(seed);
  std::uniform_real_distribution<float> u(-1.f, 1.f);
  std::vector<float> x(static_cast<size_t>(numel(m.graph.input_shape())));
  for (float& v : x) v = u(rng);
  return x;
}

std::vector<float> net_forward(const ModelFile& m, const std::vector<float>& input) {
  ParamMap params = m.params;  // Net keeps a reference and may reorder into its own layouts
  Net net(m.graph, params);
  Shape shape = m.graph.input_shape();
  shape.insert(shape.begin(), 1);
  Tensor x(shape);
  PCONV_CHECK(static_cast<size_t>(x.size()) == input.size(), "net_forward: input holds ",
              input.size(), " values, the model needs ", x.size());
  std::copy(input.begin(), input.end(), x.data());
  const Tensor& y = net.forward(x, false);
  return std::vector<float>(y.data(), y.data() + y.size());
}

namespace {

struct OracleCheck {
  bool ok = true;
  int top1 = -1;
  float max_abs_err = 0, max_tol_ratio = 0;
};

int argmax(const std::vector<float>& v) {
  return static_cast<int>(std::max_element(v.begin(), v.end()) - v.begin());
}

// `tol(i)`: the bound on |gen_i - oracle_i|.
template <typename Tol>
OracleCheck check_oracle(const char* name, const std::vector<float>& oracle,
                         const std::vector<float>& gen, Tol tol, std::ostringstream& msg) {
  OracleCheck c;
  if (oracle.size() != gen.size()) {
    msg << "generated code gave " << gen.size() << " logits, " << name << " " << oracle.size()
        << "; ";
    c.ok = false;
    return c;
  }
  for (size_t i = 0; i < gen.size(); ++i) {
    const float err = std::fabs(gen[i] - oracle[i]);
    const float t = tol(i);
    c.max_abs_err = std::max(c.max_abs_err, err);
    c.max_tol_ratio = std::max(c.max_tol_ratio, t > 0 ? err / t : (err > 0 ? INFINITY : 0.f));
    if (!(err <= t)) {
      if (c.ok)
        msg << name << ": logit " << i << ": generated " << gen[i] << ", oracle " << oracle[i]
            << ", |err| " << err << " > tolerance " << t << "; ";
      c.ok = false;
    }
  }
  c.top1 = argmax(oracle);
  const int g = argmax(gen);
  if (c.top1 != g) {
    const size_t a = static_cast<size_t>(c.top1), b = static_cast<size_t>(g);
    const float gap = oracle[a] - oracle[b];
    if (gap > tol(a) + tol(b)) {
      msg << name << ": top-1 differs: generated " << g << ", oracle " << c.top1 << "; ";
      c.ok = false;
    } else {
      msg << name << ": top-1 differs within tolerance (oracle gap " << gap << "); ";
    }
  }
  return c;
}

}  // namespace

VerifyReport compare_with_reference(const ModelFile& m, const std::vector<float>& input,
                                    const std::vector<float>& logits) {
  const ReferenceResult ref = reference_forward(m, input);
  const std::vector<float> net = net_forward(m, input);
  std::ostringstream msg;
  // Net and the generated code both round in float32: each is within logit_tolerance of the exact
  // value, so they are within twice that of each other.
  const OracleCheck n = check_oracle(
      "pconv::Net", net, logits, [&](size_t i) { return 2 * logit_tolerance(ref, i); }, msg);
  const OracleCheck d = check_oracle(
      "naive reference", ref.logits, logits, [&](size_t i) { return logit_tolerance(ref, i); },
      msg);
  VerifyReport r;
  r.ok = n.ok && d.ok;
  r.ref_top1 = n.top1;
  r.gen_top1 = logits.empty() ? -1 : argmax(logits);
  r.max_abs_err = n.max_abs_err;
  r.max_tol_ratio = n.max_tol_ratio;
  r.naive_top1 = d.top1;
  r.naive_max_abs_err = d.max_abs_err;
  r.naive_max_tol_ratio = d.max_tol_ratio;
  msg << "vs pconv::Net: max |err| " << n.max_abs_err << ", worst err/tol " << n.max_tol_ratio
      << "; vs naive reference: max |err| " << d.max_abs_err << ", worst err/tol "
      << d.max_tol_ratio;
  r.message = msg.str();
  return r;
}

}  // namespace pconv::deploy
