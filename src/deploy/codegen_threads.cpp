// Which threads run each op of the generated code, and which memory they write: the decisions
// the memory plan (arena slots, plane strides) and the emitted pc_set_threads calls share.
#include <cstdint>
#include <string>

#include "deploy/codegen_internal.h"

namespace pconv::deploy {

// An op's work in MAC-equivalents, for the threading decision (Target::min_parallel_work): MACs
// for convs (non-zero ones for pruned layers); 16 per element for what streams memory rather than
// computing: a linear's weights (a batch-1 GEMV reads each once), the inputs of pools, adds,
// affine ops, activations and the input copy. So at the default bar such an op is threaded from
// 2 MB of input on, the per-core L2 here: below that its input sits in the producing core's
// cache (VGG-16/32's 0.26 MB pool input: 2 threads 2x slower; VGG-16/224's 3.2 MB: 2x faster).
int64_t op_work(const DeployModel& dm, size_t i) {
  const Op& op = dm.ops[i];
  switch (op.type) {
    case OpType::Conv:
      return op.plan.nonzero_macs;
    case OpType::Linear:
      return 16 * static_cast<int64_t>(op.weight.size());
    case OpType::Input:
      return 16 * static_cast<int64_t>(op.c) * op.h * op.w;
    default: {
      int64_t e = 0;
      for (int x : op.inputs) {
        const Op& s = dm.ops[static_cast<size_t>(x)];
        e += static_cast<int64_t>(s.c) * s.h * s.w;
      }
      return 16 * e;
    }
  }
}

bool channel_split_op(const DeployModel& dm, size_t i, const Target& t) {
  const Op& op = dm.ops[i];
  if (op.type == OpType::MaxPool || op.type == OpType::AvgPool)
    return channel_split_op(dm, static_cast<size_t>(op.inputs[0]), t);
  const StationarySchedule S = stationary_schedule(op, t);
  return S.ok && S.split;
}

std::string op_threads(const DeployModel& dm, size_t i, const Target& t) {
  const Op& op = dm.ops[i];
  const bool stationary = use_stationary(op, t);
  if (channel_split_op(dm, i, t)) return "pc_gather_threads";
  if (!stationary && use_small_map(op, t)) return "pc_gather_threads";
  if (t.min_parallel_work > 0 && op_work(dm, i) < t.min_parallel_work) return "1";
  return stationary ? "pc_gather_threads" : "pc_threads";
}

int memory_class(const DeployModel& dm, size_t i, const Target& t) {
  if (channel_split_op(dm, i, t)) return 1;
  return op_threads(dm, i, t) == "1" ? 0 : 2;
}

}  // namespace pconv::deploy
