// Built-in architectures by name, in PyTorch's usual layouts so imported weights map 1:1.
#pragma once

#include <string>
#include <vector>

#include "core/graph.h"

namespace pconv {

struct ArchOptions {
  int num_classes = 10;
  float width = 1.0f;   // channel multiplier (rounded to a multiple of 8 where the arch does)
  int image_size = 32;  // input H = W
};

// Names: quicknet, vgg16_cifar, vgg16, resnet20, resnet56, resnet18, resnet50,
// mobilenet_v2_cifar, mobilenet_v2.
Graph build_architecture(const std::string& name, const ArchOptions& opt);
std::vector<std::string> architecture_names();

}  // namespace pconv
