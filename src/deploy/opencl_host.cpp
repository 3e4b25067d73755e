// The host runtime of the opencl target (pconv_model.cpp of a generated folder): the C API over
// the OpenCL C API of the ICD loader. pconv_create picks the platform and device, builds the
// program, creates the buffers (arena, weights, input, output) and one kernel object per launch
// with its arguments set; pconv_run writes the input, enqueues the launches in order on an
// in-order queue and reads back only the logits.
#include <algorithm>
#include <sstream>

#include "core/error.h"
#include "deploy/codegen_internal.h"
#include "deploy/opencl_codegen.h"

namespace pconv::deploy {

const char* opencl_ops_source() {
  return
#include "opencl_ops.cl.inc"
      ;
}

namespace {

// Raw-string chunks below the 65,536 characters ISO C++ compilers must support (-Woverlength-
// strings), split at line ends.
std::string source_literals(const std::string& src) {
  PCONV_CHECK(src.find(")PCCL\"") == std::string::npos,
              "target opencl: kernel source holds the literal delimiter");
  std::ostringstream os;
  size_t at = 0;
  while (at < src.size()) {
    size_t end = std::min(src.size(), at + 60000);
    if (end < src.size()) {
      const size_t nl = src.rfind('\n', end);
      if (nl != std::string::npos && nl > at) end = nl + 1;
    }
    os << "    R\"PCCL(" << src.substr(at, end - at) << ")PCCL\",\n";
    at = end;
  }
  return os.str();
}

const char* arg_kind(ClArg::Kind k) {
  switch (k) {
    case ClArg::Arena:
      return "PC_ARENA";
    case ClArg::Weights:
      return "PC_WEIGHTS";
    case ClArg::Input:
      return "PC_INPUT";
    case ClArg::Tables:
      return "PC_TABLES";
    case ClArg::Output:
      return "PC_OUTPUT";
    default:
      return "PC_INT";
  }
}

std::string quote(const std::string& s) {
  std::string q = "\"";
  for (char c : s) {
    if (c == '"' || c == '\\') q += '\\';
    q += c;
  }
  return q + "\"";
}

}  // namespace

std::string opencl_host_source(const Target& t, const DeployModel& dm, const ClHostPlan& hp,
                               const std::string& cl_source) {
  std::ostringstream os;
  os << header_comment("pconv_model.cpp: OpenCL host runtime and the C API.", "opencl_host.cpp", t,
                       dm);
  os << R"PC(#define CL_TARGET_OPENCL_VERSION 120
#ifdef __APPLE__
#include <OpenCL/opencl.h>
#else
#include <CL/cl.h>
#endif

#include <cctype>
#include <string>
#include <vector>

#include "pconv_model.h"
#include "pconv_ops.h"

// The kernels: the fixed ops template and one specialised kernel per pattern conv (also written
// to pconv_model.cl for reading).
static const char* PC_CL_SOURCE[] = {
)PC";
  os << source_literals(cl_source) << "};\n\n";
  os << "static const unsigned long long PC_WEIGHT_WORDS = " << hp.weight_words << "ULL;\n";
  os << "static const unsigned long long PC_WEIGHT_SUM = " << hp.weight_sum << "ULL;\n";
  os << "static const unsigned long long PC_ARENA_FLOATS = " << hp.arena_floats << "ULL;\n";
  os << "static const int PC_INPUT_FLOATS = " << hp.input_floats << ";\n";
  os << "static const int PC_OUTPUT_FLOATS = " << hp.output_floats << ";\n";
  os << "static const long PC_OUTPUT_ARENA_OFFSET = " << hp.output_arena_offset
     << ";  // < 0: read the output buffer\n\n";
  // A global buffer, not __constant arrays in the program: see ClHostPlan::tables.
  os << "// Pattern convs' per-filter record offsets and per-mask kernel counts (kernel arg Tb).\n"
     << "static const int PC_TABLE_DATA[" << std::max<size_t>(1, hp.tables.size()) << "] = {\n    "
     << (hp.tables.empty() ? "0" : array_lit(hp.tables)) << "};\n\n";
  os << R"PC(enum pc_arg_kind { PC_INT, PC_ARENA, PC_WEIGHTS, PC_INPUT, PC_OUTPUT, PC_TABLES };
struct pc_arg {
  pc_arg_kind kind;
  int value;
};
struct pc_launch {
  const char* kernel;
  const char* name;  // the layer(s) it computes, for error messages
  unsigned dims;
  size_t global[2], local[2];
  std::vector<pc_arg> args;
  int layer;  // index into pc_layer_names, -1 for the input/output copies
};

// pconv_run's launches, in order.
static const pc_launch PC_LAUNCHES[] = {
)PC";
  for (const ClLaunch& l : hp.launches) {
    os << "    {" << quote(l.kernel) << ", " << quote(l.what) << ", " << l.dims << ", {"
       << l.global[0] << ", " << l.global[1] << "}, {" << l.local[0] << ", " << l.local[1]
       << "}, {";
    for (size_t a = 0; a < l.args.size(); ++a)
      os << (a ? ", " : "") << "{" << arg_kind(l.args[a].kind) << ", " << l.args[a].value << "}";
    os << "}, " << l.layer << "},\n";
  }
  os << "};\n";
  const size_t nl = hp.layer_names.size();
  os << "static const int PC_LAYERS = " << nl << ";\n";
  os << "static const char* const pc_layer_names[" << std::max<size_t>(1, nl) << "] = {";
  for (size_t k = 0; k < nl; ++k) os << (k ? ", " : "") << quote(hp.layer_names[k]);
  os << "};\nstatic const int pc_layer_ops[" << std::max<size_t>(1, nl) << "] = {";
  for (size_t k = 0; k < nl; ++k) os << (k ? ", " : "") << hp.layer_ops[k];
  os << "};\n";
  os << R"PC(static const size_t PC_NUM_LAUNCHES = sizeof(PC_LAUNCHES) / sizeof(PC_LAUNCHES[0]);

struct pconv_model {
  cl_context context = nullptr;
  cl_command_queue queue = nullptr;
  cl_program program = nullptr;
  cl_mem arena = nullptr, weights = nullptr, input = nullptr, output = nullptr, tables = nullptr;
  std::vector<cl_kernel> kernels;
#ifdef PC_LAYER_TIMES
  std::vector<cl_event> events;
  double layer_ms[PC_LAYERS > 0 ? PC_LAYERS : 1] = {};
#endif
};

#ifdef PC_LAYER_TIMES
static pconv_model* pc_last = nullptr;  // the model of the last pconv_run (pconv_layer_ms)
#endif

static const char* pc_cl_error(cl_int e) {
  switch (e) {
    case CL_DEVICE_NOT_FOUND: return "CL_DEVICE_NOT_FOUND";
    case CL_DEVICE_NOT_AVAILABLE: return "CL_DEVICE_NOT_AVAILABLE";
    case CL_MEM_OBJECT_ALLOCATION_FAILURE: return "CL_MEM_OBJECT_ALLOCATION_FAILURE";
    case CL_OUT_OF_RESOURCES: return "CL_OUT_OF_RESOURCES";
    case CL_OUT_OF_HOST_MEMORY: return "CL_OUT_OF_HOST_MEMORY";
    case CL_BUILD_PROGRAM_FAILURE: return "CL_BUILD_PROGRAM_FAILURE";
    case CL_INVALID_VALUE: return "CL_INVALID_VALUE";
    case CL_INVALID_KERNEL_NAME: return "CL_INVALID_KERNEL_NAME";
    case CL_INVALID_ARG_INDEX: return "CL_INVALID_ARG_INDEX";
    case CL_INVALID_ARG_SIZE: return "CL_INVALID_ARG_SIZE";
    case CL_INVALID_BUFFER_SIZE: return "CL_INVALID_BUFFER_SIZE";
    case CL_INVALID_WORK_GROUP_SIZE: return "CL_INVALID_WORK_GROUP_SIZE";
    case CL_INVALID_WORK_ITEM_SIZE: return "CL_INVALID_WORK_ITEM_SIZE";
    case CL_INVALID_GLOBAL_WORK_SIZE: return "CL_INVALID_GLOBAL_WORK_SIZE";
    case -1001: return "CL_PLATFORM_NOT_FOUND_KHR";  // cl_khr_icd, cl_ext.h
    default: return "OpenCL error";
  }
}

static bool pc_ok(cl_int e, const char* what, const char* layer) {
  if (e == CL_SUCCESS) return true;
  std::fprintf(stderr, "pconv-opencl: %s%s%s failed: %d (%s)\n", what, layer ? " for layer " : "",
               layer ? layer : "", (int)e, pc_cl_error(e));
  return false;
}

static std::string pc_platform_str(cl_platform_id p, cl_platform_info what) {
  size_t n = 0;
  if (clGetPlatformInfo(p, what, 0, nullptr, &n) != CL_SUCCESS || n == 0) return "";
  std::string s(n, '\0');
  clGetPlatformInfo(p, what, n, &s[0], nullptr);
  s.resize(n - 1);
  return s;
}

static std::string pc_device_str(cl_device_id d, cl_device_info what) {
  size_t n = 0;
  if (clGetDeviceInfo(d, what, 0, nullptr, &n) != CL_SUCCESS || n == 0) return "";
  std::string s(n, '\0');
  clGetDeviceInfo(d, what, n, &s[0], nullptr);
  s.resize(n - 1);
  return s;
}

static std::string pc_lower(std::string s) {
  for (char& c : s) c = (char)std::tolower((unsigned char)c);
  return s;
}

static std::vector<cl_device_id> pc_devices(cl_platform_id p, cl_device_type type) {
  cl_uint n = 0;
  if (clGetDeviceIDs(p, type, 0, nullptr, &n) != CL_SUCCESS || n == 0) return {};
  std::vector<cl_device_id> d(n);
  if (clGetDeviceIDs(p, type, n, d.data(), nullptr) != CL_SUCCESS) return {};
  return d;
}

// PCONV_OPENCL_PLATFORM (a case-insensitive substring of a platform's name or vendor, or of a
// device's name) picks the device; by default the first platform with a GPU, else the first
// device of the first platform. Prints the choice to stderr.
static bool pc_pick_device(cl_platform_id* platform, cl_device_id* device) {
  cl_uint np = 0;
  const cl_int e = clGetPlatformIDs(0, nullptr, &np);
  if (e != CL_SUCCESS || np == 0) {
    std::fprintf(stderr,
                 "pconv-opencl: no OpenCL platform found (clGetPlatformIDs: %d, %s); install an "
                 "OpenCL driver (ICD under /etc/OpenCL/vendors, e.g. pocl-opencl-icd)\n",
                 (int)e, e == CL_SUCCESS ? "0 platforms" : pc_cl_error(e));
    return false;
  }
  std::vector<cl_platform_id> ps(np);
  if (!pc_ok(clGetPlatformIDs(np, ps.data(), nullptr), "clGetPlatformIDs", nullptr)) return false;
  const char* env = std::getenv("PCONV_OPENCL_PLATFORM");
  const std::string want = env ? pc_lower(env) : "";
  std::string seen;
  for (cl_platform_id p : ps) {
    const std::string pn = pc_platform_str(p, CL_PLATFORM_NAME);
    seen += "\n  platform \"" + pn + "\" (" + pc_platform_str(p, CL_PLATFORM_VENDOR) + "):";
    for (cl_device_id d : pc_devices(p, CL_DEVICE_TYPE_ALL))
      seen += " \"" + pc_device_str(d, CL_DEVICE_NAME) + "\"";
  }
  if (!want.empty()) {
    for (cl_platform_id p : ps) {
      const std::string pn = pc_lower(pc_platform_str(p, CL_PLATFORM_NAME) + " " +
                                      pc_platform_str(p, CL_PLATFORM_VENDOR));
      std::vector<cl_device_id> gpus = pc_devices(p, CL_DEVICE_TYPE_GPU);
      std::vector<cl_device_id> all = pc_devices(p, CL_DEVICE_TYPE_ALL);
      if (pn.find(want) != std::string::npos && !all.empty()) {
        *platform = p;
        *device = gpus.empty() ? all[0] : gpus[0];
        return true;
      }
      for (cl_device_id d : all)
        if (pc_lower(pc_device_str(d, CL_DEVICE_NAME)).find(want) != std::string::npos) {
          *platform = p;
          *device = d;
          return true;
        }
    }
    std::fprintf(stderr, "pconv-opencl: PCONV_OPENCL_PLATFORM=\"%s\" matches no platform or "
                 "device; found:%s\n", env, seen.c_str());
    return false;
  }
  for (cl_platform_id p : ps) {
    std::vector<cl_device_id> gpus = pc_devices(p, CL_DEVICE_TYPE_GPU);
    if (!gpus.empty()) {
      *platform = p;
      *device = gpus[0];
      return true;
    }
  }
  for (cl_platform_id p : ps) {
    std::vector<cl_device_id> all = pc_devices(p, CL_DEVICE_TYPE_ALL);
    if (!all.empty()) {
      *platform = p;
      *device = all[0];
      return true;
    }
  }
  std::fprintf(stderr, "pconv-opencl: no OpenCL device found; platforms:%s\n", seen.c_str());
  return false;
}

void pconv_destroy(pconv_model* m) {
  if (!m) return;
#ifdef PC_LAYER_TIMES
  if (pc_last == m) pc_last = nullptr;
#endif
  for (cl_kernel k : m->kernels)
    if (k) clReleaseKernel(k);
  if (m->tables) clReleaseMemObject(m->tables);
  if (m->output) clReleaseMemObject(m->output);
  if (m->input) clReleaseMemObject(m->input);
  if (m->weights) clReleaseMemObject(m->weights);
  if (m->arena) clReleaseMemObject(m->arena);
  if (m->program) clReleaseProgram(m->program);
  if (m->queue) clReleaseCommandQueue(m->queue);
  if (m->context) clReleaseContext(m->context);
  delete m;
}

static pconv_model* pc_fail(pconv_model* m) {
  pconv_destroy(m);
  return nullptr;
}

pconv_model* pconv_create(const char* weights_path) {
  cl_platform_id platform = nullptr;
  cl_device_id device = nullptr;
  if (!pc_pick_device(&platform, &device)) return nullptr;
  std::fprintf(stderr, "pconv-opencl: device \"%s\" (%s), platform \"%s\" (%s)\n",
               pc_device_str(device, CL_DEVICE_NAME).c_str(),
               pc_device_str(device, CL_DEVICE_VERSION).c_str(),
               pc_platform_str(platform, CL_PLATFORM_NAME).c_str(),
               pc_platform_str(platform, CL_PLATFORM_VENDOR).c_str());
  pconv_model* m = new pconv_model;
  cl_int e = CL_SUCCESS;
  const cl_context_properties props[] = {CL_CONTEXT_PLATFORM, (cl_context_properties)platform, 0};
  m->context = clCreateContext(props, 1, &device, nullptr, nullptr, &e);
  if (!pc_ok(e, "clCreateContext", nullptr)) return pc_fail(m);
#ifdef PC_LAYER_TIMES
  const cl_command_queue_properties qprops = CL_QUEUE_PROFILING_ENABLE;
#else
  const cl_command_queue_properties qprops = 0;
#endif
  m->queue = clCreateCommandQueue(m->context, device, qprops, &e);
  if (!pc_ok(e, "clCreateCommandQueue", nullptr)) return pc_fail(m);
  uint32_t* w = pc_load_weights(weights_path, PC_WEIGHT_WORDS, PC_WEIGHT_SUM);
  if (!w) return pc_fail(m);
  const size_t weight_bytes = (size_t)(PC_WEIGHT_WORDS ? PC_WEIGHT_WORDS : 1) * 4;
  m->weights = clCreateBuffer(m->context, CL_MEM_READ_ONLY | CL_MEM_COPY_HOST_PTR, weight_bytes,
                              w, &e);
  pc_free(w);
  if (!pc_ok(e, "clCreateBuffer (weights)", nullptr)) return pc_fail(m);
  m->arena = clCreateBuffer(m->context, CL_MEM_READ_WRITE, (size_t)PC_ARENA_FLOATS * 4, nullptr,
                            &e);
  if (!pc_ok(e, "clCreateBuffer (arena)", nullptr)) return pc_fail(m);
  m->input = clCreateBuffer(m->context, CL_MEM_READ_ONLY, (size_t)PC_INPUT_FLOATS * 4, nullptr, &e);
  if (!pc_ok(e, "clCreateBuffer (input)", nullptr)) return pc_fail(m);
  m->output = clCreateBuffer(m->context, CL_MEM_WRITE_ONLY, (size_t)PC_OUTPUT_FLOATS * 4, nullptr,
                             &e);
  if (!pc_ok(e, "clCreateBuffer (output)", nullptr)) return pc_fail(m);
  m->tables = clCreateBuffer(m->context, CL_MEM_READ_ONLY | CL_MEM_COPY_HOST_PTR,
                             sizeof(PC_TABLE_DATA), (void*)PC_TABLE_DATA, &e);
  if (!pc_ok(e, "clCreateBuffer (tables)", nullptr)) return pc_fail(m);
  const float zero = 0.0f;
  if (!pc_ok(clEnqueueFillBuffer(m->queue, m->arena, &zero, sizeof zero, 0,
                                 (size_t)PC_ARENA_FLOATS * 4, 0, nullptr, nullptr),
             "clEnqueueFillBuffer (arena)", nullptr))
    return pc_fail(m);
  m->program = clCreateProgramWithSource(
      m->context, (cl_uint)(sizeof(PC_CL_SOURCE) / sizeof(PC_CL_SOURCE[0])), PC_CL_SOURCE,
      nullptr, &e);
  if (!pc_ok(e, "clCreateProgramWithSource", nullptr)) return pc_fail(m);
  e = clBuildProgram(m->program, 1, &device, "", nullptr, nullptr);
  if (e != CL_SUCCESS) {
    size_t n = 0;
    clGetProgramBuildInfo(m->program, device, CL_PROGRAM_BUILD_LOG, 0, nullptr, &n);
    std::string log(n, '\0');
    if (n) clGetProgramBuildInfo(m->program, device, CL_PROGRAM_BUILD_LOG, n, &log[0], nullptr);
    std::fprintf(stderr, "pconv-opencl: building pconv_model.cl failed (%d, %s):\n%s\n", (int)e,
                 pc_cl_error(e), log.c_str());
    return pc_fail(m);
  }
  for (size_t i = 0; i < PC_NUM_LAUNCHES; ++i) {
    const pc_launch& l = PC_LAUNCHES[i];
    cl_kernel k = clCreateKernel(m->program, l.kernel, &e);
    if (!pc_ok(e, "clCreateKernel", l.name)) return pc_fail(m);
    m->kernels.push_back(k);
    for (size_t a = 0; a < l.args.size(); ++a) {
      const pc_arg& g = l.args[a];
      cl_mem b = g.kind == PC_ARENA     ? m->arena
                 : g.kind == PC_WEIGHTS ? m->weights
                 : g.kind == PC_TABLES  ? m->tables
                 : g.kind == PC_INPUT   ? m->input
                                        : m->output;
      e = g.kind == PC_INT ? clSetKernelArg(k, (cl_uint)a, sizeof(cl_int), &g.value)
                           : clSetKernelArg(k, (cl_uint)a, sizeof(cl_mem), &b);
      if (!pc_ok(e, "clSetKernelArg", l.name)) return pc_fail(m);
    }
  }
  if (!pc_ok(clFinish(m->queue), "clFinish", nullptr)) return pc_fail(m);
  return m;
}

int pconv_input_size(void) { return PC_INPUT_FLOATS; }
int pconv_output_size(void) { return PC_OUTPUT_FLOATS; }

int pconv_run(pconv_model* m, const float* input, float* output) {
  if (!m || !input || !output) return 1;
  if (!pc_ok(clEnqueueWriteBuffer(m->queue, m->input, CL_FALSE, 0, (size_t)PC_INPUT_FLOATS * 4,
                                  input, 0, nullptr, nullptr),
             "clEnqueueWriteBuffer (input)", nullptr))
    return 1;
#ifdef PC_LAYER_TIMES
  m->events.assign(PC_NUM_LAUNCHES, nullptr);
  pc_last = m;
#endif
  for (size_t i = 0; i < PC_NUM_LAUNCHES; ++i) {
    const pc_launch& l = PC_LAUNCHES[i];
#ifdef PC_LAYER_TIMES
    cl_event* ev = &m->events[i];
#else
    cl_event* ev = nullptr;
#endif
    if (!pc_ok(clEnqueueNDRangeKernel(m->queue, m->kernels[i], l.dims, nullptr, l.global,
                                      l.local[0] ? l.local : nullptr, 0, nullptr, ev),
               "clEnqueueNDRangeKernel", l.name))
      return 1;
  }
  cl_mem src = PC_OUTPUT_ARENA_OFFSET >= 0 ? m->arena : m->output;
  const size_t off = PC_OUTPUT_ARENA_OFFSET >= 0 ? (size_t)PC_OUTPUT_ARENA_OFFSET * 4 : 0;
  if (!pc_ok(clEnqueueReadBuffer(m->queue, src, CL_TRUE, off, (size_t)PC_OUTPUT_FLOATS * 4, output,
                                 0, nullptr, nullptr),
             "clEnqueueReadBuffer (logits)", nullptr))
    return 1;
#ifdef PC_LAYER_TIMES
  // Device time of each layer's kernels (profiling events), summed per layer.
  for (int k = 0; k < PC_LAYERS; ++k) m->layer_ms[k] = 0.0;
  for (size_t i = 0; i < PC_NUM_LAUNCHES; ++i) {
    cl_ulong t0 = 0, t1 = 0;
    clGetEventProfilingInfo(m->events[i], CL_PROFILING_COMMAND_START, sizeof t0, &t0, nullptr);
    clGetEventProfilingInfo(m->events[i], CL_PROFILING_COMMAND_END, sizeof t1, &t1, nullptr);
    if (PC_LAUNCHES[i].layer >= 0) m->layer_ms[PC_LAUNCHES[i].layer] += (double)(t1 - t0) * 1e-6;
    clReleaseEvent(m->events[i]);
  }
#endif
  return 0;
}

/* Per-layer timing API (pconv_model.h): with -DPC_LAYER_TIMES, each layer's device time in the
   last pconv_run from OpenCL profiling events; else -1. */
int pconv_layer_count(void) { return PC_LAYERS; }
const char* pconv_layer_name(int i) { return i >= 0 && i < PC_LAYERS ? pc_layer_names[i] : 0; }
int pconv_layer_op(int i) { return i >= 0 && i < PC_LAYERS ? pc_layer_ops[i] : -1; }
double pconv_layer_ms(int i) {
#ifdef PC_LAYER_TIMES
  return pc_last && i >= 0 && i < PC_LAYERS ? pc_last->layer_ms[i] : -1.0;
#else
  (void)i;
  return -1.0;
#endif
}
int pconv_set_layer_repeat(int n) { return n > 1; }  // layers are not repeated here
double pconv_layer_ms_alone(int) { return -1.0; }
)PC";
  return os.str();
}

}  // namespace pconv::deploy
