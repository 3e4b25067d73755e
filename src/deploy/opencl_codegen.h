// The OpenCL dialect of the generator, shared between its kernel emitter (opencl_codegen.cpp) and
// its host-runtime template (opencl_host.cpp); not a public interface.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "deploy/codegen_internal.h"

namespace pconv::deploy {

// One kernel argument of a launch: an int, or one of the runtime's buffers.
struct ClArg {
  enum Kind { Int, Arena, Weights, Input, Output, Tables };
  Kind kind = Int;
  int64_t value = 0;
};

// One kernel launch of pconv_run, in order. local[0] == 0: the runtime picks the work-group.
struct ClLaunch {
  std::string kernel;  // kernel name in the program
  std::string what;    // what it computes, for error messages ("conv3+bn3+relu3")
  int dims = 1;
  int64_t global[2] = {1, 1};
  int64_t local[2] = {0, 0};
  std::vector<ClArg> args;
  int layer = -1;  // index into ClHostPlan::layer_names (-1: input/output copies)
};

// What the host runtime needs besides the launches.
struct ClHostPlan {
  std::vector<ClLaunch> launches;
  int64_t input_floats = 0, output_floats = 0;
  int64_t output_arena_offset = -1;  // >= 0: logits read from the arena there; else from Output
  int64_t arena_floats = 0;
  uint64_t weight_words = 0, weight_sum = 0;
  // The pattern convs' per-filter record offsets and per-mask kernel counts, one global int
  // buffer: as program-scope __constant arrays they overflow NVIDIA's 64 KiB of constant data
  // for VGG-16 (ptxas: "too much global constant data").
  std::vector<int32_t> tables;
  // Layers in execution order (the per-layer timing API): graph names and IR op indices.
  std::vector<std::string> layer_names;
  std::vector<int> layer_ops;
};

// The fixed kernels (src/deploy/cl/opencl_ops.cl, embedded at build time).
const char* opencl_ops_source();

// pconv_model.cpp of the opencl target: the kernel source embedded as string literals, platform
// and device choice (PCONV_OPENCL_PLATFORM), buffers and kernels made once in pconv_create.
std::string opencl_host_source(const Target& t, const DeployModel& dm, const ClHostPlan& hp,
                               const std::string& cl_source);

}  // namespace pconv::deploy
