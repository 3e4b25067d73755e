// pconv-synth --arch vgg16 --image-size 224 --patterns 4 --conn-rate 3.1 --seed 1 --out m.h5
//             [--classes N] [--width W] [--prune-first]
#include <cstdio>
#include <string>

#include "cli.h"
#include "core/model_file.h"
#include "deploy/synth.h"

namespace {
const char kUsage[] =
    "usage: pconv-synth --arch NAME --out M.h5 [options]\n"
    "Writes a pruned model with random weights (BN randomised) for speed studies: every 3x3\n"
    "conv but the first gets the joint pattern + connectivity projection.\n"
    "  --arch NAME        built-in architecture (vgg16_cifar, vgg16, resnet20, ...)\n"
    "  --image-size N     input size (default 32)\n"
    "  --classes N        classifier outputs (default 10)\n"
    "  --width W          width multiplier (default 1)\n"
    "  --patterns K       4 = the paper's SCPs; up to 56 centre-holding 4-tap patterns\n"
    "  --conn-rate R      connectivity rate: keep ceil(O*I/R) kernels per layer (default 1)\n"
    "  --prune-first      prune the first conv too\n"
    "  --seed S           weight seed (default 1)\n"
    "  --out M.h5         output model file\n";
}  // namespace

int main(int argc, char** argv) {
  using namespace pconv;
  try {
    deploy::SynthOptions o;
    std::string out;
    cli::Args args(argc, argv, kUsage);
    while (args.next()) {
      if (args.is("--arch"))
        o.arch = args.value();
      else if (args.is("--image-size"))
        o.image_size = args.int_value(1, 4096);
      else if (args.is("--patterns"))
        o.patterns = args.int_value(1, 56);
      else if (args.is("--conn-rate"))
        o.conn_rate = args.double_value(1.0, 1e9);
      else if (args.is("--seed"))
        o.seed = args.u64_value();
      else if (args.is("--classes"))
        o.num_classes = args.int_value(1);
      else if (args.is("--width"))
        o.width = static_cast<float>(args.double_value(1e-3, 64.0));
      else if (args.is("--prune-first"))
        o.prune_first = true;
      else if (args.is("--out"))
        out = args.value();
      else
        args.unknown();
    }
    if (out.empty()) args.missing("--out M.h5");
    const ModelFile m = deploy::synth_model(o);
    save_model(out, m);
    std::printf("wrote %s: %s %dx%d, %d patterns, connectivity %.2fx, %zu pruned layers\n",
                out.c_str(), o.arch.c_str(), o.image_size, o.image_size, o.patterns, o.conn_rate,
                m.pruning.layer_ids.size());
    return 0;
  } catch (const std::exception& e) {
    std::fprintf(stderr, "pconv-synth: %s\n", e.what());
    return 1;
  }
}
