// pconv-bench model.h5 [--threads 1,2] [--repeat N] [--json out.json] [--md out.md] [--work DIR]
// Batch-1 timing of the generated x86 code against oneDNN (direct / Winograd / auto per conv) and
// the dense model through pconv::Net; see docs/deploy.md.
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <string>

#include "core/error.h"
#include "core/model_file.h"
#include "deploy/bench.h"

int main(int argc, char** argv) {
  using namespace pconv;
  try {
    deploy::BenchOptions o;
    std::string model, json_out, md_out;
    o.command = "pconv-bench";
    for (int i = 1; i < argc; ++i) o.command += std::string(" ") + argv[i];
    for (int i = 1; i < argc; ++i) {
      const std::string a = argv[i];
      auto value = [&]() -> std::string {
        PCONV_CHECK(i + 1 < argc, a, " needs a value");
        return argv[++i];
      };
      if (a == "--threads") {
        o.threads.clear();
        std::string v = value();
        for (size_t p = 0; p <= v.size();) {
          const size_t q = std::min(v.find(',', p), v.size());
          o.threads.push_back(std::stoi(v.substr(p, q - p)));
          PCONV_CHECK(o.threads.back() >= 1, "--threads: counts must be >= 1");
          p = q + 1;
        }
      } else if (a == "--repeat") {
        o.repeat = std::stoi(value());
        PCONV_CHECK(o.repeat >= 1, "--repeat must be >= 1");
      } else if (a == "--json") {
        json_out = value();
      } else if (a == "--md") {
        md_out = value();
      } else if (a == "--work") {
        o.work_dir = value();
      } else if (a == "--target") {
        o.target = value();
      } else if (!a.empty() && a[0] == '-') {
        throw Error(cat("unknown option ", a));
      } else {
        PCONV_CHECK(model.empty(), "one model file only");
        model = a;
      }
    }
    PCONV_CHECK(!model.empty(),
                "usage: pconv-bench model.h5 [--threads 1,2] [--repeat N] [--json out.json] "
                "[--md out.md] [--work DIR]");
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
