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
  std::mt19937_64 rng(opt.seed * 7919 + 17);
  std::uniform_real_distribution<float> u(0.f, 1.f);
  // BN statistics away from the identity, so folding is exercised.
  for (const Node& n : m.graph.nodes()) {
    if (n.kind != OpKind::BatchNorm) continue;
    for (ParamRole r :
         {ParamRole::Gamma, ParamRole::Beta, ParamRole::RunningMean, ParamRole::RunningVar}) {
      Tensor& t = m.params.at(param_key(n.name, r));
      for (int64_t i = 0; i < t.size(); ++i) {
        const float x = u(rng);
        t[i] = r == ParamRole::Gamma         ? 0.5f + x
               : r == ParamRole::Beta        ? 0.2f * (x - 0.5f)
               : r == ParamRole::RunningMean ? 0.2f * (x - 0.5f)
                                             : 0.5f + x;
      }
    }
  }
  m.pruning.library = synth_library(opt.patterns);
  bool first = true;
  int pruned = 0;
  for (const Node& n : m.graph.nodes()) {
    if (n.kind != OpKind::Conv) continue;
    const ConvAttrs& a = n.conv();
    const bool eligible = a.kernel_h == 3 && a.kernel_w == 3 && a.groups == 1;
    const bool skip = first && !opt.prune_first;
    first = false;
    if (!eligible || skip) continue;
    Tensor& w = m.params.at(param_key(n.name, ParamRole::Weight));
    m.pruning.layer_ids[n.name] = joint_project(w, m.pruning.library, opt.conn_rate);
    ++pruned;
  }
  m.pruning.info = {{"method", "pconv-synth joint projection"},
                    {"patterns", opt.patterns},
                    {"conn_rate", opt.conn_rate},
                    {"pruned_layers", pruned}};
  m.meta = {{"synth", {{"arch", opt.arch}, {"image_size", opt.image_size}, {"seed", opt.seed}}}};
  return m;
}

}  // namespace pconv::deploy
