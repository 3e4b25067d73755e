// Accuracy of generated code over a whole data set, against the .h5 model it came from: every
// image goes through both the reference executor (pconv::Net) and the generated runner.
#pragma once

#include <string>

#include "data/batch_loader.h"
#include "train/net.h"

namespace pconv::deploy {

struct DeployedEval {
  int64_t images = 0;
  double model_top1 = 0, deployed_top1 = 0;
  double agreement = 0;       // fraction of images where both predict the same class
  double max_logit_diff = 0;  // largest |logit difference| over all images and classes
};

// `dir` is a folder written by pconv-deploy (built into dir/build when that is missing; for
// `opencl` the build needs an OpenCL loader and headers). Runs one epoch of `loader` (in order,
// no augmentation).
DeployedEval evaluate_deployed(Net& net, data::BatchLoader& loader, const std::string& dir);

// For a device this machine cannot run (a phone, a GPU elsewhere): writes the loader's images, in
// order, as the raw float32 tensors the runner's `--batch --input` reads. Returns the count.
int64_t export_eval_inputs(data::BatchLoader& loader, const std::string& file);

// Scores logits the runner wrote on that device (`runner weights.bin --batch --input FILE
// --output LOGITS`) from export_eval_inputs' file against the model on the same loader.
DeployedEval compare_deployed_logits(Net& net, data::BatchLoader& loader,
                                     const std::string& logits_file);

}  // namespace pconv::deploy
