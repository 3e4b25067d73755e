// Classification losses and accuracy counting on plain {N, classes} logits.
#pragma once

#include <cstdint>
#include <vector>

#include "core/tensor.h"

namespace pconv {

// Mean over the batch of the cross-entropy between softmax(logits) and the target distribution
// (1 - smoothing) * onehot(label) + smoothing / classes (PyTorch's label_smoothing rule).
// When `dlogits` is non-null it is resized to {N, classes} and receives d(loss)/d(logits),
// i.e. (softmax - target) / N. Labels must lie in [0, classes).
float softmax_cross_entropy(const Tensor& logits, const std::vector<int32_t>& labels,
                            float smoothing, Tensor* dlogits);

// Hinton et al.'s distillation term: T^2 times the batch mean of KL(softmax(teacher / T) ||
// softmax(student / T)). The T^2 keeps its gradient's scale independent of T, so it mixes with the
// label loss at a fixed weight. `dlogits` (when non-null) receives d(loss)/d(student), i.e.
// T * (softmax(student / T) - softmax(teacher / T)) / N. The teacher gets no gradient.
float distillation_kl(const Tensor& student, const Tensor& teacher, float temperature,
                      Tensor* dlogits);

// How many samples have their label among the k largest logits (ties broken toward the label:
// a label counts when fewer than k classes score strictly higher).
int64_t count_topk(const Tensor& logits, const std::vector<int32_t>& labels, int k);
inline int64_t count_top1(const Tensor& logits, const std::vector<int32_t>& labels) {
  return count_topk(logits, labels, 1);
}

}  // namespace pconv
