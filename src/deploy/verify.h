// Building generated code, running it, and comparing it with the reference executor.
#pragma once

#include <string>
#include <vector>

#include "core/model_file.h"
#include "deploy/target.h"

namespace pconv::deploy {

// Configures and builds DIR/build with cmake (cross-compiling for neon). Throws with the log's
// tail on failure. Returns the runner's path.
std::string build_generated(const std::string& dir, const Target& t);

// Runs the runner (under qemu-aarch64 for neon) on `input`, returns the logits.
std::vector<float> run_generated(const std::string& dir, const Target& t,
                                 const std::vector<float>& input, int threads = 0);

struct VerifyReport {
  bool ok = false;
  int ref_top1 = -1, gen_top1 = -1;
  float max_abs_err = 0, max_tol_ratio = 0;  // worst |err| / tol
  std::string message;
};

// Deterministic pseudo-random input in [-1, 1] (seeded), per-sample shape of the model.
std::vector<float> random_input(const ModelFile& m, uint64_t seed);

// Compares generated logits with the reference on `input`: every logit within its tolerance
// (logit_tolerance) and the same top-1 (unless the reference's top two are closer than their
// tolerance, which is reported).
VerifyReport compare_with_reference(const ModelFile& m, const std::vector<float>& input,
                                    const std::vector<float>& logits);

// Runs a shell command, capturing output; returns the exit status.
int run_command(const std::string& cmd, std::string* output);

}  // namespace pconv::deploy
