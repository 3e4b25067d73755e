// The deploy IR: a pruned model lowered to a flat list of inference ops over tensors, with BN
// folded, patterns analysed, filters reordered and weights packed. This is the algorithm (the
// paper's layerwise information extraction, filter kernel reorder and packing); code emitters
// (codegen.h) read it and decide nothing about it.
#pragma once

#include <cstdint>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "core/model_file.h"

namespace pconv::deploy {

enum class Act { None, ReLU, ReLU6 };

enum class OpType {
  Input,
  Conv,  // any conv; how it is computed is decided by conv_kind()
  MaxPool,
  AvgPool,
  GlobalAvgPool,
  Linear,
  Add,
  Affine,      // a BatchNorm that follows no conv: y = scale * x + shift per channel
  Activation,  // a standalone ReLU / ReLU6 that could not be fused
  Flatten,     // a view: no code, the consumer reads through the producer's layout
};
const char* op_type_name(OpType t);

// One kept kernel of a conv: the input channel *position* in the producer's (possibly permuted)
// channel order, the tap mask (bit r*K+c) and one weight per set bit, in bit order.
struct PackedKernel {
  int in_pos = 0;
  uint16_t mask = 0;
  std::vector<float> w;
};

// The result of analysis + reorder + packing for one conv.
struct ConvPlan {
  // Layerwise information extraction.
  bool pruned = false;                  // has pruning ids (pattern layer)
  std::vector<uint16_t> masks;          // distinct tap masks used, sorted (the layer's "patterns")
  std::vector<int> kernels_per_filter;  // by original filter
  int64_t kept_kernels = 0, total_kernels = 0;
  int64_t nonzero_macs = 0, dense_macs = 0;
  // Filter kernel reorder: position -> original filter; and per position the kernel count of
  // each mask (masks order), so generated code loops per pattern with no branch.
  std::vector<int> filter_order;
  std::vector<int> counts;  // [pos * masks.size() + m]
  // Packed weights: per position, kernels grouped by mask, each (in_pos, taps...), in words.
  std::vector<int64_t> filter_offset;  // word offset of each position's first record
  std::vector<uint32_t> words;         // int32 channel positions and float bits
  std::vector<float> bias;             // by position (BN folded)
  int64_t packed_bytes() const { return static_cast<int64_t>(words.size() + bias.size()) * 4; }
  int64_t dense_bytes = 0;  // O*I*K*K*4 + O*4
};

struct Op {
  std::string name;    // the graph node whose output this op produces (after fusion: the last)
  std::string source;  // graph nodes folded into this op, "conv3+bn3+relu3"
  OpType type = OpType::Input;
  std::vector<int> inputs;  // op indices
  Act act = Act::None;
  // Output, per sample. Linear/GAP outputs are flat (h = w = 1).
  int c = 0, h = 0, w = 0;
  // Channel order of the output: perm[pos] = original channel. Empty = identity.
  std::vector<int> perm;
  // Conv
  int in_c = 0, in_h = 0, in_w = 0, k = 0, stride = 1, pad = 0, groups = 1;
  std::vector<float> weight;  // conv OIHW / linear {out, in}, folded, original channel order
  std::vector<float> bias;    // per original output channel (zeros when none)
  std::vector<int8_t> ids;    // pruned convs: pattern id per kernel (O*I/groups), -1 = removed
  ConvPlan plan;              // filled by plan_convs() for convs
  // Pools
  int pool_k = 0, pool_stride = 0, pool_pad = 0;
  // Affine (standalone BN)
  std::vector<float> scale, shift;
};

struct DeployModel {
  std::string model_name;
  std::vector<Op> ops;            // topological; ops[0] is the input
  int output = -1;                // op index of the logits
  std::vector<uint16_t> library;  // the model's pattern library (for reports)
  // Evaluation's preprocessing (docs/model-format.md, meta "input"), which the runner repeats for
  // raw images; null when the model file does not say (the runner then refuses --image).
  nlohmann::json preprocess;
  int num_classes() const { return ops.at(static_cast<size_t>(output)).c; }
  // Consumers of each op (op indices), computed by lower().
  std::vector<std::vector<int>> users;
};

// How the generated code computes a conv (a property of the layer, not of the target).
enum class ConvKind {
  Sparse,         // stride 1, K in {1,3}, pad (K-1)/2: row-streamed pattern kernel (any tap masks)
  SparseStrided,  // stride 2, K = 3, pad 1: from the input's four phases (codegen_strided.cpp)
  Generic,        // anything else: dense loop with bounds checks
};
ConvKind conv_kind(const Op& op);

// Front: checks every pruned layer against its pattern ids (kept non-zeros inside the pattern,
// removed kernels all zero), folds BN into the preceding conv (zeros stay zeros), fuses ReLU /
// ReLU6 into convs, linears and adds, and rejects unsupported graphs with the layer named.
DeployModel lower(const ModelFile& m, const std::string& where);

// Filter kernel reorder options.
struct PlanOptions {
  bool reorder_filters = true;  // group filters by kernel-count/pattern profile
};

// Layerwise information extraction, filter kernel reorder (folding each permutation into its
// consumers; see docs/deploy.md for the residual-add rule) and weight packing of every conv.
void plan_convs(DeployModel& dm, const PlanOptions& opt = {});

// The analysis as JSON (analysis.json) and as a short table for the terminal.
nlohmann::json analysis_json(const DeployModel& dm);
std::string analysis_table(const DeployModel& dm);

// Weights of a linear op rearranged for the generated code: columns follow the producer's
// channel positions ({out, in} with in = pos*H*W + y*W + x).
std::vector<float> linear_packed_weight(const DeployModel& dm, const Op& op);
// Generic conv weights: OIHW by output position and input position.
std::vector<float> generic_conv_weight(const DeployModel& dm, const Op& op);
// Channel order of an op's output (identity when perm is empty).
std::vector<int> channel_order(const Op& op);
// Input channel position of original channel c in producer `src`.
std::vector<int> position_of(const Op& src);

int popcount9(uint16_t m);

// The op whose buffer op x reads: x itself, or the source of a chain of flattens (views).
int through_flattens(const DeployModel& dm, int x);

}  // namespace pconv::deploy
