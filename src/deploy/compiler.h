// The deploy compiler end to end: model file -> analysed, reordered, packed IR -> generated
// folder (+ analysis.json), and optional verification against the reference executor.
#pragma once

#include <string>

#include "core/model_file.h"
#include "deploy/codegen.h"
#include "deploy/ir.h"
#include "deploy/verify.h"

namespace pconv::deploy {

struct CompileOptions {
  std::string target = "x86";
  std::string out_dir;
  PlanOptions plan;
  // Target::min_parallel_work for this compile; negative = the target's default.
  int64_t min_parallel_work = -1;
  bool print_table = true;
  // Overrides the model's meta "input" (keys size, resize_shorter, mean, std); null = keep it.
  nlohmann::json preprocess;
};

struct CompileResult {
  DeployModel ir;
  Target target;
  GenResult gen;
};

CompileResult compile_model(const ModelFile& m, const std::string& name, const CompileOptions& opt);

// Builds the generated folder, runs it on `inputs` seeded random samples and compares each with
// the reference executor. Returns the worst report (ok only when all pass).
VerifyReport verify_generated(const ModelFile& m, const CompileResult& c, int samples = 2,
                              uint64_t seed = 1);

}  // namespace pconv::deploy
