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

std::string build_generated(const std::string& dir, const Target& t) {
  std::string cfg = "cmake -S " + dir + " -B " + dir + "/build -DCMAKE_BUILD_TYPE=Release";
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

VerifyReport compare_with_reference(const ModelFile& m, const std::vector<float>& input,
                                    const std::vector<float>& logits) {
  const ReferenceResult ref = reference_forward(m, input);
  VerifyReport r;
  std::ostringstream msg;
  if (logits.size() != ref.logits.size()) {
    r.message =
        cat("generated code gave ", logits.size(), " logits, the reference ", ref.logits.size());
    return r;
  }
  bool ok = true;
  for (size_t i = 0; i < logits.size(); ++i) {
    const float err = std::fabs(logits[i] - ref.logits[i]);
    const float tol = logit_tolerance(ref, i);
    r.max_abs_err = std::max(r.max_abs_err, err);
    r.max_tol_ratio = std::max(r.max_tol_ratio, tol > 0 ? err / tol : (err > 0 ? INFINITY : 0.f));
    if (!(err <= tol)) {
      if (ok)
        msg << "logit " << i << ": generated " << logits[i] << ", reference " << ref.logits[i]
            << ", |err| " << err << " > tolerance " << tol << "; ";
      ok = false;
    }
  }
  auto argmax = [](const std::vector<float>& v) {
    return static_cast<int>(std::max_element(v.begin(), v.end()) - v.begin());
  };
  r.ref_top1 = argmax(ref.logits);
  r.gen_top1 = argmax(logits);
  if (r.ref_top1 != r.gen_top1) {
    const size_t a = static_cast<size_t>(r.ref_top1), b = static_cast<size_t>(r.gen_top1);
    const float gap = ref.logits[a] - ref.logits[b];
    if (gap > logit_tolerance(ref, a) + logit_tolerance(ref, b)) {
      msg << "top-1 differs: generated " << r.gen_top1 << ", reference " << r.ref_top1 << "; ";
      ok = false;
    } else {
      msg << "top-1 differs within tolerance (reference gap " << gap << "); ";
    }
  }
  r.ok = ok;
  msg << "max |err| " << r.max_abs_err << ", worst err/tol " << r.max_tol_ratio;
  r.message = msg.str();
  return r;
}

}  // namespace pconv::deploy
