// The OpenCL dialect: OpenCL C kernels (one work-item per filter x row block x tile, same tile
// bodies as the C target) and a small host runtime over the OpenCL C API.
#include "core/error.h"
#include "deploy/codegen_internal.h"

namespace pconv::deploy {

void generate_opencl(const DeployModel& dm, const Target& t, const Plan& P,
                     const std::string& out_dir, GenResult& res) {
  (void)dm, (void)t, (void)P, (void)out_dir, (void)res;
  throw Error("target opencl: not implemented yet");
}

}  // namespace pconv::deploy
