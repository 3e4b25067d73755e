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

// The reference executor's logits and labels over one epoch; each batch's inputs also go to
// `inputs` when it is given (and `net` may then be null: inputs only).
struct ReferencePass {
  std::vector<float> logits;
  std::vector<int32_t> labels;
  int classes = 0;
};

ReferencePass reference_pass(Net* net, data::BatchLoader& loader, const fs::path& inputs) {
  ReferencePass p;
  std::ofstream in;
  if (!inputs.empty()) {
    in.open(inputs, std::ios::binary | std::ios::trunc);
    PCONV_CHECK(in.good(), inputs.string(), ": cannot write");
  }
  data::Batch b;
  loader.start_epoch(0);
  while (loader.next(b)) {
    if (net) {
      const Tensor& logits = net->forward(b.images, false);
      p.classes = static_cast<int>(logits.dim(1));
      p.logits.insert(p.logits.end(), logits.data(), logits.data() + logits.size());
    }
    p.labels.insert(p.labels.end(), b.labels.begin(), b.labels.end());
    if (in.is_open())
      in.write(reinterpret_cast<const char*>(b.images.data()),
               static_cast<std::streamsize>(sizeof(float) * b.images.size()));
  }
  if (in.is_open()) {
    in.close();
    PCONV_CHECK(!in.fail(), inputs.string(), ": write failed (disk full?)");
  }
  PCONV_CHECK(!p.labels.empty(), "deployed evaluation: the data set is empty");
  return p;
}

// Reads exactly as many logits as the reference holds; a shorter or longer file is the wrong
// run (other images, another model, a crash half way).
std::vector<float> read_logits(const fs::path& file, size_t count) {
  std::ifstream f(file, std::ios::binary);
  PCONV_CHECK(f.good(), file.string(), ": cannot open the deployed code's logits");
  std::vector<float> out(count);
  f.read(reinterpret_cast<char*>(out.data()), static_cast<std::streamsize>(sizeof(float) * count));
  const auto got = f.gcount();
  PCONV_CHECK(got == static_cast<std::streamsize>(sizeof(float) * count) &&
                  f.peek() == std::ifstream::traits_type::eof(),
              file.string(), ": expected ", count, " logits (", count * sizeof(float),
              " bytes: one row per image of this data set and model), got ", fs::file_size(file),
              " bytes");
  return out;
}

DeployedEval score(const ReferencePass& ref, const std::vector<float>& out) {
  const int k = ref.classes;
  DeployedEval r;
  r.images = static_cast<int64_t>(ref.labels.size());
  int64_t c_ref = 0, c_dep = 0, same = 0;
  for (int64_t i = 0; i < r.images; ++i) {
    const float* a = ref.logits.data() + i * k;
    const float* b = out.data() + i * k;
    const int pa = argmax(a, k), pb = argmax(b, k);
    const int label = ref.labels[static_cast<size_t>(i)];
    c_ref += pa == label;
    c_dep += pb == label;
    same += pa == pb;
    for (int j = 0; j < k; ++j) {
      // A NaN never compares greater: count it as an infinite difference.
      const double d = std::fabs(double(a[j]) - double(b[j]));
      r.max_logit_diff = std::isnan(d) ? INFINITY : std::max(r.max_logit_diff, d);
    }
  }
  r.model_top1 = double(c_ref) / double(r.images);
  r.deployed_top1 = double(c_dep) / double(r.images);
  r.agreement = double(same) / double(r.images);
  return r;
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
  const ReferencePass ref = reference_pass(&net, loader, inputs);
  // Pass 2: the generated code on the same inputs. Passive OpenMP waiting (unless the user chose
  // otherwise): with spinning barriers a busy machine made a 10,000-image run 8x slower.
  run_or_throw(cat("OMP_WAIT_POLICY=\"${OMP_WAIT_POLICY:-passive}\" '", runner.string(), "' '",
                   (d / "weights.bin").string(), "' --batch --input '", inputs.string(),
                   "' --output '", outputs.string(), "' > /dev/null"),
               "running the generated code");
  const std::vector<float> out = read_logits(outputs, ref.logits.size());
  fs::remove(inputs);
  fs::remove(outputs);
  return score(ref, out);
}

int64_t export_eval_inputs(data::BatchLoader& loader, const std::string& file) {
  return static_cast<int64_t>(reference_pass(nullptr, loader, file).labels.size());
}

DeployedEval compare_deployed_logits(Net& net, data::BatchLoader& loader,
                                     const std::string& logits_file) {
  const ReferencePass ref = reference_pass(&net, loader, {});
  return score(ref, read_logits(logits_file, ref.logits.size()));
}

}  // namespace pconv::deploy
