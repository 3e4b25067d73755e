// Synthetic pruned models for tests and benchmarks: random weights (init_params), randomised BN
// statistics, and a joint pattern + connectivity projection (synth_prune.cpp, one small file so
// it can be swapped for src/admm's).
#pragma once

#include <string>
#include <vector>

#include "core/model_file.h"

namespace pconv::deploy {

struct SynthOptions {
  std::string arch = "vgg16_cifar";
  int image_size = 32;
  int num_classes = 10;
  float width = 1.0f;
  int patterns = 4;          // 4 = the paper's SCPs; more: further centre-holding 4-tap masks
  double conn_rate = 1.0;    // connectivity pruning rate (kernels kept = ceil(O*I / rate))
  bool prune_first = false;  // prune the first conv too (excluded by default, as in the paper)
  uint64_t seed = 1;
};

// The pattern library used by pconv-synth: the 4 SCPs, then more centre-holding 4-tap masks.
std::vector<uint16_t> synth_library(int patterns);

// Joint projection of one OIHW 3x3 weight: each kernel's best library pattern (most energy), the
// top ceil(O*I / rate) kernels by that energy kept; zeroes the rest in place; returns the ids.
std::vector<int8_t> joint_project(Tensor& w, const std::vector<uint16_t>& lib, double rate);

ModelFile synth_model(const SynthOptions& opt);

// Draws BN statistics away from the identity (gamma, var in [0.5, 1.5), beta, mean in
// [-0.1, 0.1)), so that folding is exercised.
void randomize_bn(ModelFile& m, uint64_t seed);

// Prunes every eligible 3x3 conv (groups 1) of `m` but, unless prune_first, the first conv, with
// the library of `patterns` masks at `rate`. Returns the number of pruned layers.
int prune_model(ModelFile& m, int patterns, double rate, bool prune_first);

}  // namespace pconv::deploy
