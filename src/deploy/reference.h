// A naive dense reference executor over the model graph (BN unfolded, weights as stored): the
// second oracle beside pconv::Net, and the source of error bounds for comparisons.
#pragma once

#include <vector>

#include "core/model_file.h"

namespace pconv::deploy {

struct ReferenceResult {
  std::vector<float> logits;
  // Root mean square of the logits: the scale of the output against which rounding is measured.
  double rms = 0.0;
  // Sum over conv/linear layers of sqrt(reduction length): rounding errors of independent
  // reductions of length K grow like sqrt(K) u relative to the magnitude.
  double sqrt_reduction = 0.0;
};

// One sample, input {C,H,W} flattened NCHW.
ReferenceResult reference_forward(const ModelFile& m, const std::vector<float>& input);

// Tolerance for comparing a float32 implementation with the reference (computed in double) on
// logit i: 4 * u * sqrt_reduction * (|logit_i| + rms), u = 2^-24. Each layer's float32 reduction of
// length K adds a relative error of about sqrt(K) u at the output's scale; the sum over layers
// bounds their accumulation (see docs/deploy.md).
float logit_tolerance(const ReferenceResult& r, size_t i);

}  // namespace pconv::deploy
