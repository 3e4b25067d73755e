#include "deploy/deployed_eval.h"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>

#include "core/log.h"

namespace pconv::deploy {

namespace fs = std::filesystem;

namespace {

int argmax(const float* v, int k) {
  return static_cast<int>(std::max_element(v, v + k) - v);
}

void run_or_throw(const std::string& cmd, const std::string& what) {
  if (std::system(cmd.c_str()) != 0) throw Error(cat(what, " failed: ", cmd));
}

}  // namespace

DeployedEval evaluate_deployed(Net& net, data::BatchLoader& loader, const std::string& dir) {
  const fs::path d(dir);
  PCONV_CHECK(fs::exists(d / "weights.bin") && fs::exists(d / "CMakeLists.txt"), dir,
              ": not a folder written by pconv-deploy (no weights.bin / CMakeLists.txt)");
  const fs::path runner = d / "build" / "runner";
  if (!fs::exists(runner)) {
    log_info("building ", dir, " (cmake)");
    run_or_throw(cat("cmake -S '", dir, "' -B '", (d / "build").string(),
                     "' -DCMAKE_BUILD_TYPE=Release > /dev/null && cmake --build '",
                     (d / "build").string(), "' -j > /dev/null"),
                 "building the generated code");
  }
  // Pass 1: the reference executor's logits, and every input written for the runner.
  const fs::path inputs = d / "eval_inputs.f32", outputs = d / "eval_logits.f32";
  std::vector<float> ref;
  std::vector<int32_t> labels;
  int k = 0;
  {
    std::ofstream in(inputs, std::ios::binary | std::ios::trunc);
    PCONV_CHECK(in.good(), inputs.string(), ": cannot write");
    data::Batch b;
    loader.start_epoch(0);
    while (loader.next(b)) {
      const Tensor& logits = net.forward(b.images, false);
      k = static_cast<int>(logits.dim(1));
      ref.insert(ref.end(), logits.data(), logits.data() + logits.size());
      labels.insert(labels.end(), b.labels.begin(), b.labels.end());
      in.write(reinterpret_cast<const char*>(b.images.data()),
               static_cast<std::streamsize>(sizeof(float) * b.images.size()));
    }
    PCONV_CHECK(in.good(), inputs.string(), ": write failed (disk full?)");
  }
  // Pass 2: the generated code on the same inputs. Passive OpenMP waiting (unless the user chose
  // otherwise): with spinning barriers a busy machine made a 10,000-image run 8x slower.
  run_or_throw(cat("OMP_WAIT_POLICY=\"${OMP_WAIT_POLICY:-passive}\" '", runner.string(), "' '",
                   (d / "weights.bin").string(), "' --batch --input '", inputs.string(),
                   "' --output '", outputs.string(), "' > /dev/null"),
               "running the generated code");
  std::vector<float> out(ref.size());
  {
    std::ifstream f(outputs, std::ios::binary);
    f.read(reinterpret_cast<char*>(out.data()),
           static_cast<std::streamsize>(sizeof(float) * out.size()));
    PCONV_CHECK(f.gcount() == static_cast<std::streamsize>(sizeof(float) * out.size()),
                outputs.string(), ": the runner wrote fewer logits than there are images");
  }
  fs::remove(inputs);
  fs::remove(outputs);
  DeployedEval r;
  r.images = static_cast<int64_t>(labels.size());
  int64_t c_ref = 0, c_dep = 0, same = 0;
  for (int64_t i = 0; i < r.images; ++i) {
    const float* a = ref.data() + i * k;
    const float* b = out.data() + i * k;
    const int pa = argmax(a, k), pb = argmax(b, k);
    c_ref += pa == labels[static_cast<size_t>(i)];
    c_dep += pb == labels[static_cast<size_t>(i)];
    same += pa == pb;
    for (int j = 0; j < k; ++j)
      r.max_logit_diff = std::max(r.max_logit_diff, double(std::fabs(a[j] - b[j])));
  }
  PCONV_CHECK(r.images > 0, "deployed evaluation: the data set is empty");
  r.model_top1 = double(c_ref) / double(r.images);
  r.deployed_top1 = double(c_dep) / double(r.images);
  r.agreement = double(same) / double(r.images);
  return r;
}

}  // namespace pconv::deploy
