// pconv-deploy model.h5 --target x86|avx512|avx2|neon|opencl|c --out DIR [--verify]
//   [--min-parallel-work N] [--no-reorder]
#include <cstdio>
#include <string>

#include "cli.h"
#include "core/model_file.h"
#include "deploy/compiler.h"

namespace {
const char kUsage[] =
    "usage: pconv-deploy MODEL.h5 --out DIR [options]\n"
    "Compiles a pattern/connectivity-pruned model into a standalone source folder (sources,\n"
    "packed weights, CMakeLists.txt, C API header, runner); see docs/deploy.md.\n"
    "  --target NAME   x86 (AVX-512 if this machine has it, else AVX2), avx512, avx2,\n"
    "                  neon (aarch64), opencl, c (portable scalar)    (default x86)\n"
    "  --out DIR       output folder (created; existing generated files are replaced)\n"
    "  --verify        build the output and compare it with the reference executor on\n"
    "                  seeded inputs (neon: cross-compiled, run under qemu-aarch64)\n"
    "  --mean R,G,B    input normalisation the runner applies to --image files, on [0,1]\n"
    "  --std R,G,B     pixels; default: what the model file records (pconv-train writes it)\n"
    "  --resize-shorter N  resize an image's shorter side to N and centre-crop (ImageNet\n"
    "                  style); 0 resizes the whole image to the input size\n"
    "  --min-parallel-work N  ops with less work (MACs; 16 per element for linear\n"
    "                  weights, pools and other data movement) run on one thread;\n"
    "                  0 threads every op\n"
    "                  (default 8000000, measured on 2 cores: docs/deploy.md)\n"
    "  --no-reorder    keep the filter order (for debugging the reorder pass)\n";
}  // namespace

int main(int argc, char** argv) {
  using namespace pconv;
  try {
    std::string model, target = "x86", out;
    bool verify = false, reorder = true;
    long long min_parallel_work = -1;
    nlohmann::json pre = nlohmann::json::object();
    cli::Args args(argc, argv, kUsage);
    while (args.next()) {
      if (args.is("--target"))
        target = args.value();
      else if (args.is("--out"))
        out = args.value();
      else if (args.is("--verify"))
        verify = true;
      else if (args.is("--mean"))
        pre["mean"] = args.doubles_value(3);
      else if (args.is("--std"))
        pre["std"] = args.doubles_value(3);
      else if (args.is("--resize-shorter"))
        pre["resize_shorter"] = args.int_value(0);
      else if (args.is("--min-parallel-work"))
        min_parallel_work = args.int_value(0);
      else if (args.is("--no-reorder"))
        reorder = false;
      else if (args.is_option())
        args.unknown();
      else {
        PCONV_CHECK(model.empty(), "one model file only (got ", model, " and ", args.arg(), ")");
        model = args.arg();
      }
    }
    if (model.empty()) args.missing("the model file");
    if (out.empty()) args.missing("--out DIR");
    const ModelFile m = load_model(model);
    deploy::CompileOptions opt;
    opt.target = target;
    opt.out_dir = out;
    opt.plan.reorder_filters = reorder;
    opt.min_parallel_work = min_parallel_work;
    if (!pre.empty()) opt.preprocess = pre;
    const deploy::CompileResult c = deploy::compile_model(m, model, opt);
    std::printf("generated %zu files in %s (target %s, %d pattern kernels, weights %lld bytes)\n",
                c.gen.files.size(), out.c_str(), c.target.name.c_str(), c.gen.pattern_kernels,
                static_cast<long long>(c.gen.weight_words * 4));
    if (c.ir.preprocess.is_null())
      std::printf(
          "note: the model records no input normalisation, so the runner takes raw tensors "
          "only (--input); pass --mean and --std to let it classify images\n");
    if (verify) {
      const deploy::VerifyReport r = deploy::verify_generated(m, c);
      std::printf("verify %s: %s\n", r.ok ? "PASSED" : "FAILED", r.message.c_str());
      return r.ok ? 0 : 1;
    }
    return 0;
  } catch (const std::exception& e) {
    std::fprintf(stderr, "pconv-deploy: %s\n", e.what());
    return 1;
  }
}
