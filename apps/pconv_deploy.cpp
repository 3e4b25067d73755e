// pconv-deploy model.h5 --target x86|avx512|avx2|neon|opencl|c --out DIR [--verify] [--no-reorder]
#include <cstdio>
#include <string>

#include "core/model_file.h"
#include "deploy/compiler.h"

int main(int argc, char** argv) {
  using namespace pconv;
  try {
    std::string model, target = "x86", out;
    bool verify = false, reorder = true;
    for (int i = 1; i < argc; ++i) {
      const std::string a = argv[i];
      auto value = [&]() -> std::string {
        PCONV_CHECK(i + 1 < argc, a, " needs a value");
        return argv[++i];
      };
      if (a == "--target")
        target = value();
      else if (a == "--out")
        out = value();
      else if (a == "--verify")
        verify = true;
      else if (a == "--no-reorder")
        reorder = false;
      else if (!a.empty() && a[0] == '-')
        throw Error(cat("unknown option ", a));
      else
        model = a;
    }
    PCONV_CHECK(
        !model.empty() && !out.empty(),
        "usage: pconv-deploy model.h5 --target x86|avx512|avx2|neon|opencl|c --out DIR [--verify]");
    const ModelFile m = load_model(model);
    deploy::CompileOptions opt;
    opt.target = target;
    opt.out_dir = out;
    opt.plan.reorder_filters = reorder;
    const deploy::CompileResult c = deploy::compile_model(m, model, opt);
    std::printf("generated %zu files in %s (target %s, %d pattern kernels, weights %lld bytes)\n",
                c.gen.files.size(), out.c_str(), c.target.name.c_str(), c.gen.pattern_kernels,
                static_cast<long long>(c.gen.weight_words * 4));
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
