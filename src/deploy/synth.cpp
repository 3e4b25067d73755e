#include "deploy/synth.h"

#include <random>

#include "core/architectures.h"
#include "core/error.h"

namespace pconv::deploy {

ModelFile synth_model(const SynthOptions& opt) {
  ArchOptions ao;
  ao.num_classes = opt.num_classes;
  ao.width = opt.width;
  ao.image_size = opt.image_size;
  ModelFile m;
  m.graph = build_architecture(opt.arch, ao);
  m.params = init_params(m.graph, opt.seed);
  randomize_bn(m, opt.seed * 7919 + 17);
  const int pruned = prune_model(m, opt.patterns, opt.conn_rate, opt.prune_first);
  m.pruning.info = {{"method", "pconv-synth joint projection"},
                    {"patterns", opt.patterns},
                    {"conn_rate", opt.conn_rate},
                    {"pruned_layers", pruned}};
  m.meta = {{"synth", {{"arch", opt.arch}, {"image_size", opt.image_size}, {"seed", opt.seed}}}};
  return m;
}

void randomize_bn(ModelFile& m, uint64_t seed) {
  std::mt19937_64 rng(seed);
  std::uniform_real_distribution<float> u(0.f, 1.f);
  for (const Node& n : m.graph.nodes()) {
    if (n.kind != OpKind::BatchNorm) continue;
    for (ParamRole r :
         {ParamRole::Gamma, ParamRole::Beta, ParamRole::RunningMean, ParamRole::RunningVar}) {
      Tensor& t = m.params.at(param_key(n.name, r));
      for (int64_t i = 0; i < t.size(); ++i) {
        const float x = u(rng);
        t[i] = r == ParamRole::Gamma || r == ParamRole::RunningVar ? 0.5f + x : 0.2f * (x - 0.5f);
      }
    }
  }
}

int prune_model(ModelFile& m, int patterns, double rate, bool prune_first) {
  m.pruning.library = synth_library(patterns);
  m.pruning.layer_ids.clear();
  bool first = true;
  int pruned = 0;
  for (const Node& n : m.graph.nodes()) {
    if (n.kind != OpKind::Conv) continue;
    const ConvAttrs& a = n.conv();
    const bool eligible = a.kernel_h == 3 && a.kernel_w == 3 && a.groups == 1;
    const bool skip = first && !prune_first;
    first = false;
    if (!eligible || skip) continue;
    Tensor& w = m.params.at(param_key(n.name, ParamRole::Weight));
    m.pruning.layer_ids[n.name] = joint_project(w, m.pruning.library, rate);
    ++pruned;
  }
  return pruned;
}

}  // namespace pconv::deploy
