// pconv-synth --arch vgg16 --image-size 224 --patterns 4 --conn-rate 3.1 --seed 1 --out m.h5
//             [--classes N] [--width W] [--prune-first]
#include <cstdio>
#include <cstdlib>
#include <string>

#include "core/model_file.h"
#include "deploy/synth.h"

int main(int argc, char** argv) {
  using namespace pconv;
  try {
    deploy::SynthOptions o;
    std::string out;
    for (int i = 1; i < argc; ++i) {
      const std::string a = argv[i];
      auto value = [&]() -> std::string {
        PCONV_CHECK(i + 1 < argc, a, " needs a value");
        return argv[++i];
      };
      if (a == "--arch")
        o.arch = value();
      else if (a == "--image-size")
        o.image_size = std::stoi(value());
      else if (a == "--patterns")
        o.patterns = std::stoi(value());
      else if (a == "--conn-rate")
        o.conn_rate = std::stod(value());
      else if (a == "--seed")
        o.seed = std::stoull(value());
      else if (a == "--classes")
        o.num_classes = std::stoi(value());
      else if (a == "--width")
        o.width = std::stof(value());
      else if (a == "--prune-first")
        o.prune_first = true;
      else if (a == "--out")
        out = value();
      else
        throw Error(cat("unknown option ", a));
    }
    PCONV_CHECK(!out.empty(),
                "usage: pconv-synth --arch NAME --image-size N --patterns K --conn-rate R --seed S "
                "--out m.h5");
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
