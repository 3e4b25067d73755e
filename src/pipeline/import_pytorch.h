// Models from PyTorch: a state_dict saved with h5py (one float32 dataset per key at the file's
// root, keys with dots: "features.0.weight", "layer1.0.bn1.running_mean") mapped onto a built-in
// architecture, optionally with the pattern masks of an already pruned model (docs/import.md):
//   /<key>                       float32, one per state_dict key (num_batches_tracked ignored)
//   /patterns                    int8 K x 3 x 3 (or K x 9), 1 = kept position
//   /pattern_ids/<conv key>      int8 O x I per pruned conv ("pattern_ids/features.3.weight"),
//                                pattern id of each kernel, -1 = removed kernel
//   /reference/...               optional test data written by scripts/export_pytorch.py (ignored)
// pconv-import is a thin main over import_command.
#pragma once

#include <cstdint>
#include <map>
#include <optional>
#include <ostream>
#include <string>
#include <vector>

#include "core/architectures.h"
#include "core/model_file.h"

namespace pconv {

// PyTorch's name of a pconv parameter: "<layer>.<role>" with BN gamma -> weight, beta -> bias.
std::string torch_key(const ParamSpec& s);

// A state_dict as read from an .h5 file, before it is matched to a graph.
struct StateDict {
  std::string source;                     // the file, for error messages
  std::map<std::string, Tensor> tensors;  // every float dataset at the root, by key
  std::vector<std::string> ignored;    // keys skipped on purpose (num_batches_tracked, reference/)
  std::vector<std::string> non_float;  // integer datasets other than num_batches_tracked
  std::vector<std::string> groups;     // root groups other than pattern_ids and reference
  // The pattern masks of a pruned model, when the file holds them.
  std::optional<std::vector<uint16_t>> patterns;           // 9-bit masks, bit r*3+c
  std::map<std::string, std::vector<int8_t>> pattern_ids;  // by conv weight key ("x.weight")
  std::map<std::string, Shape> pattern_ids_shape;
};

// Reads the file; validates only what needs no graph (patterns are 0/1 and keep 4 positions).
StateDict read_state_dict(const std::string& path);

struct ImportOptions {
  std::string arch;
  ArchOptions arch_options;
  bool num_classes_from_file = true;  // take num_classes from the classifier's weight
  std::string strip_prefix;           // removed from every key that starts with it ("module.")
};

// image_size when none is given: 224 for the ImageNet architectures, 32 for the others.
int default_image_size(const std::string& arch);

// Maps the state dict onto `g` (named `arch` in messages): every graph parameter must be present
// with its shape; an unexpected key, a missing key or a shape mismatch is an error listing every
// problem, each naming the key and both shapes. With pattern masks: the pruning state (library,
// per-layer ids, info {method "import", granularity "pattern", per_layer budgets}) is built and
// verified from the weights; a weight outside its kernel's pattern, or a non-zero removed kernel,
// is an error naming the layer.
ModelFile import_state_dict(const StateDict& sd, const Graph& g, const std::string& arch);

// read_state_dict + build_architecture + import_state_dict; meta records source, arch, options.
ModelFile import_pytorch(const std::string& path, const ImportOptions& opt);

// pconv-import IN.h5 --arch ARCH [--num-classes N] [--image-size S] [--width W]
//   [--strip-prefix P] --out OUT.h5
// Exit status: 0 written, 1 the file does not fit the architecture (or violates its masks),
// 2 usage errors.
int import_command(const std::vector<std::string>& args, std::ostream& out, std::ostream& err);

}  // namespace pconv
