// pconv-bench model.h5 [--threads 1,2] [--repeat N] [--json out.json] [--md out.md] [--work DIR]
// Batch-1 timing of the generated x86 code against oneDNN (direct / Winograd / auto per conv) and
// the dense model through pconv::Net; see docs/deploy.md.
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <string>

#include "cli.h"
#include "core/error.h"
#include "core/model_file.h"
#include "deploy/bench.h"

namespace {
const char kUsage[] =
    "usage: pconv-bench MODEL.h5 [options]\n"
    "Batch-1 timing of the code pconv-deploy generates against oneDNN (direct, Winograd and\n"
    "auto per conv, same run) and the dense model through pconv::Net; see docs/deploy.md.\n"
    "  --threads 1,2   thread counts to measure (default 1,2)\n"
    "  --repeat N      timed runs per measurement; medians and min-max reported (default 30)\n"
    "  --rounds N      split them into N rounds, every measurement timed in each in turn, so\n"
    "                  the generated code and oneDNN share the host's phases (default 5)\n"
    "  --target NAME   x86, avx512 or avx2 (default x86)\n"
    "  --work DIR      where the code is generated and built (default: a temp folder)\n"
    "  --json FILE     write every figure as JSON\n"
    "  --md FILE       write a markdown report\n";
}  // namespace

int main(int argc, char** argv) {
  using namespace pconv;
  try {
    deploy::BenchOptions o;
    std::string model, json_out, md_out;
    o.command = "pconv-bench";
    for (int i = 1; i < argc; ++i) o.command += std::string(" ") + argv[i];
    cli::Args args(argc, argv, kUsage);
    while (args.next()) {
      if (args.is("--threads")) {
        o.threads.clear();
        const std::string v = args.value();
        for (size_t p = 0; p <= v.size();) {
          const size_t q = std::min(v.find(',', p), v.size());
          const std::string n = v.substr(p, q - p);
          PCONV_CHECK(!n.empty() && n.find_first_not_of("0123456789") == std::string::npos &&
                          std::stoi(n) >= 1,
                      "--threads: expected counts >= 1 separated by commas, got '", v, "'");
          o.threads.push_back(std::stoi(n));
          p = q + 1;
        }
      } else if (args.is("--repeat")) {
        o.repeat = args.int_value(1);
      } else if (args.is("--rounds")) {
        o.rounds = args.int_value(1);
      } else if (args.is("--json")) {
        json_out = args.value();
      } else if (args.is("--md")) {
        md_out = args.value();
      } else if (args.is("--work")) {
        o.work_dir = args.value();
      } else if (args.is("--target")) {
        o.target = args.value();
      } else if (args.is_option()) {
        args.unknown();
      } else {
        PCONV_CHECK(model.empty(), "one model file only (got ", model, " and ", args.arg(), ")");
        model = args.arg();
      }
    }
    if (model.empty()) args.missing("the model file");
    const std::string stem = std::filesystem::path(model).stem().string();
    if (o.work_dir.empty())
      o.work_dir = (std::filesystem::temp_directory_path() / ("pconv-bench-" + stem)).string();
    const ModelFile m = load_model(model);
    const nlohmann::json j = deploy::run_bench(m, stem, o);
    std::fputs(deploy::bench_table(j).c_str(), stdout);
    if (!json_out.empty()) {
      std::ofstream f(json_out);
      PCONV_CHECK(f.good(), "cannot write ", json_out);
      f << j.dump(1) << "\n";
    }
    if (!md_out.empty()) {
      std::ofstream f(md_out);
      PCONV_CHECK(f.good(), "cannot write ", md_out);
      f << deploy::bench_markdown(j);
    }
    return 0;
  } catch (const std::exception& e) {
    std::fprintf(stderr, "pconv-bench: %s\n", e.what());
    return 1;
  }
}
