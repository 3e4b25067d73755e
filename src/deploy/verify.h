// Building generated code, running it, and comparing it with the reference executor.
#pragma once

#include <string>
#include <vector>

#include "core/model_file.h"
#include "deploy/target.h"

namespace pconv::deploy {

// Configures and builds DIR/build with cmake (cross-compiling for neon). Throws with the log's
// tail on failure. Returns the runner's path.
// `cmake_args` adds configure options (pconv-bench: -DPCONV_LAYER_TIMES=ON -DPCONV_NATIVE=ON).
std::string build_generated(const std::string& dir, const Target& t,
                            const std::string& cmake_args = "");

// Runs the runner (under qemu-aarch64 for neon) on `input`, returns the logits.
std::vector<float> run_generated(const std::string& dir, const Target& t,
                                 const std::vector<float>& input, int threads = 0);

struct VerifyReport {
  bool ok = false;
  int ref_top1 = -1, gen_top1 = -1;          // ref: the primary oracle, pconv::Net (oneDNN)
  float max_abs_err = 0, max_tol_ratio = 0;  // against pconv::Net: worst |err|, |err| / tol
  int naive_top1 = -1;                       // the second oracle: the naive double reference
  float naive_max_abs_err = 0, naive_max_tol_ratio = 0;
  std::string message;
};

// Deterministic pseudo-random input in [-1, 1] (seeded), per-sample shape of the model.
std::vector<float> random_input(const ModelFile& m, uint64_t seed);

// Dense oneDNN inference (pconv::Net, inference mode) of the model as stored: the same pruned,
// unfolded weights the generated code was compiled from. One sample, input {C,H,W} flattened.
std::vector<float> net_forward(const ModelFile& m, const std::vector<float>& input);

// Compares generated logits with both oracles on `input`. Primary: pconv::Net (float32, so the
// bound is twice the reference tolerance: both sides carry a float32 rounding error); second: the
// naive double reference (reference.h) within logit_tolerance. Each needs every logit within its
// tolerance and the same top-1 (unless the oracle's top two are closer than their tolerances,
// which is reported).
VerifyReport compare_with_reference(const ModelFile& m, const std::vector<float>& input,
                                    const std::vector<float>& logits);

// Runs a shell command, capturing output; returns the exit status.
int run_command(const std::string& cmd, std::string* output);

}  // namespace pconv::deploy
