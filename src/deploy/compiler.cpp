#include "deploy/compiler.h"

#include <cstdio>
#include <fstream>

#include "core/error.h"

namespace pconv::deploy {

CompileResult compile_model(const ModelFile& m, const std::string& name,
                            const CompileOptions& opt) {
  CompileResult r;
  r.target = target_by_name(opt.target);
  r.ir = lower(m, name);
  r.ir.model_name = name;
  plan_convs(r.ir, opt.plan);
  r.gen = generate(r.ir, r.target, opt.out_dir);
  const std::string aj = opt.out_dir + "/analysis.json";
  std::ofstream f(aj);
  PCONV_CHECK(f.good(), "cannot write ", aj);
  nlohmann::json j = analysis_json(r.ir);
  j["target"] = r.target.name;
  j["generated"] = {{"layers", r.gen.layers},
                    {"pattern_kernels", r.gen.pattern_kernels},
                    {"arena_bytes", r.gen.arena_floats * 4},
                    {"weight_bytes", r.gen.weight_words * 4}};
  f << j.dump(1) << "\n";
  r.gen.files.push_back(aj);
  if (opt.print_table) std::fputs(analysis_table(r.ir).c_str(), stdout);
  return r;
}

VerifyReport verify_generated(const ModelFile& m, const CompileResult& c, int samples,
                              uint64_t seed) {
  const std::string dir =
      c.gen.files.empty() ? "" : c.gen.files.front().substr(0, c.gen.files.front().rfind('/'));
  build_generated(dir, c.target);
  VerifyReport worst;
  worst.ok = true;
  for (int s = 0; s < samples; ++s) {
    const std::vector<float> x = random_input(m, seed + static_cast<uint64_t>(s));
    const VerifyReport r = compare_with_reference(m, x, run_generated(dir, c.target, x));
    if (!r.ok) return r;
    if (r.max_tol_ratio >= worst.max_tol_ratio) worst = r;
  }
  return worst;
}

}  // namespace pconv::deploy
