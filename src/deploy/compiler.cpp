#include "deploy/compiler.h"

#include <cstdio>
#include <fstream>

#include "core/error.h"

namespace pconv::deploy {

namespace {

// The preprocessing the runner bakes in: the option's keys over the model's meta "input".
nlohmann::json checked_preprocess(const ModelFile& m, const std::string& name,
                                  const nlohmann::json& override_) {
  nlohmann::json p = m.meta.value("input", nlohmann::json());
  if (override_.is_object()) {
    if (!p.is_object()) p = nlohmann::json::object();
    for (auto it = override_.begin(); it != override_.end(); ++it) p[it.key()] = it.value();
  }
  if (!p.is_object() || !p.contains("mean") || !p.contains("std")) return nullptr;
  const Shape in = m.graph.input_shape();                     // C, H, W
  if (in.at(0) != 3 || in.at(1) != in.at(2)) return nullptr;  // not an image model: raw input only
  const int size = static_cast<int>(in.at(1));
  if (!p.contains("size")) p["size"] = size;
  if (!p.contains("resize_shorter")) p["resize_shorter"] = 0;
  const std::string where = name + ": input preprocessing " + p.dump();
  try {
    const auto mean = p.at("mean").get<std::vector<float>>();
    const auto std = p.at("std").get<std::vector<float>>();
    PCONV_CHECK(mean.size() == 3 && std.size() == 3, where, ": needs 3 means and 3 stds");
    for (float s : std) PCONV_CHECK(s > 0, where, ": std must be positive");
    PCONV_CHECK(p.at("size").get<int>() == size, where, ": size differs from the model input ",
                size);
    const int r = p.at("resize_shorter").get<int>();
    PCONV_CHECK(r == 0 || r >= size, where, ": resize_shorter must be 0 or >= size");
  } catch (const nlohmann::json::exception& e) {
    throw Error(cat(where, ": ", e.what()));
  }
  return p;
}

}  // namespace

CompileResult compile_model(const ModelFile& m, const std::string& name,
                            const CompileOptions& opt) {
  CompileResult r;
  r.target = target_by_name(opt.target);
  if (opt.min_parallel_work >= 0) r.target.min_parallel_work = opt.min_parallel_work;
  r.ir = lower(m, name);
  r.ir.model_name = name;
  r.ir.preprocess = checked_preprocess(m, name, opt.preprocess);
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
  if (r.target.family != "opencl") {  // CPU threading (docs/deploy.md, Threads)
    j["generated"]["min_parallel_work"] = r.target.min_parallel_work;
    j["generated"]["one_thread_ops"] = r.gen.one_thread_ops;
  }
  f << j.dump(1) << "\n";
  r.gen.files.push_back(aj);
  if (opt.print_table) std::fputs(analysis_table(r.ir).c_str(), stdout);
  return r;
}

VerifyReport verify_generated(const ModelFile& m, const CompileResult& c, int samples,
                              uint64_t seed) {
  const std::string dir =
      c.gen.files.empty() ? "" : c.gen.files.front().substr(0, c.gen.files.front().rfind('/'));
  // NaN-filled activations at create: a float read before it is written or zeroed fails here.
  build_generated(dir, c.target, "-DPCONV_POISON=ON");
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
