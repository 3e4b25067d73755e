// Front and IR: BN folding, constraint checks, analysis, filter reorder, packing, permutation
// rules.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <set>

#include "core/architectures.h"
#include "core/error.h"
#include "deploy/ir.h"
#include "deploy/reference.h"
#include "deploy/synth.h"
#include "deploy/target.h"

using namespace pconv;
using namespace pconv::deploy;

namespace {

ModelFile one_conv(int cin, int cout, int h, int w, int stride, double rate, bool bn = true,
                   bool tail_conv = false) {
  ModelFile m;
  int x = m.graph.input("in", cin, h, w);
  ConvAttrs a;
  a.out_channels = cout;
  a.stride_h = a.stride_w = stride;
  x = m.graph.conv("conv", x, a);
  if (bn) x = m.graph.batch_norm("bn", x);
  x = m.graph.relu("relu", x);
  if (tail_conv) {
    ConvAttrs b;
    b.out_channels = 3;
    m.graph.conv("next", x, b);
  }
  m.params = init_params(m.graph, 3);
  randomize_bn(m, 5);
  m.pruning.library = synth_library(4);
  Tensor& wt = m.params.at("conv/weight");
  m.pruning.layer_ids["conv"] = joint_project(wt, m.pruning.library, rate);
  return m;
}

// A synthesised model of `arch` at connectivity `rate`, lowered and planned.
DeployModel planned_synth(const std::string& arch, double rate) {
  SynthOptions o;
  o.arch = arch;
  o.conn_rate = rate;
  DeployModel dm = lower(synth_model(o), arch);
  plan_convs(dm);
  return dm;
}

}  // namespace

TEST(DeployFront, FoldsBatchNormKeepingZeros) {
  const ModelFile m = one_conv(8, 6, 5, 5, 1, 2.0);
  const DeployModel dm = lower(m, "test");
  ASSERT_EQ(dm.ops.size(), 2u);  // input, conv+bn+relu
  const Op& op = dm.ops[1];
  EXPECT_EQ(op.source, "conv+bn+relu");
  EXPECT_EQ(op.act, Act::ReLU);
  const Tensor& w = m.params.at("conv/weight");
  for (int o = 0; o < 6; ++o) {
    const float s =
        m.params.at("bn/gamma")[o] / std::sqrt(m.params.at("bn/running_var")[o] + 1e-5f);
    EXPECT_NEAR(op.bias[static_cast<size_t>(o)],
                m.params.at("bn/beta")[o] - m.params.at("bn/running_mean")[o] * s, 1e-6);
    for (int j = 0; j < 8 * 9; ++j) {
      const float orig = w[o * 72 + j];
      if (orig == 0.f)
        EXPECT_EQ(op.weight[static_cast<size_t>(o * 72 + j)], 0.f);
      else
        EXPECT_FLOAT_EQ(op.weight[static_cast<size_t>(o * 72 + j)], orig * s);
    }
  }
}

TEST(DeployFront, RejectsWeightOutsidePattern) {
  ModelFile m = one_conv(4, 4, 5, 5, 1, 1.0);
  Tensor& w = m.params.at("conv/weight");
  const int8_t id = m.pruning.layer_ids["conv"][5];  // kernel (1, 1)
  const uint16_t mask = m.pruning.library[static_cast<size_t>(id)];
  int pos = 0;
  while (mask >> pos & 1) ++pos;
  w[5 * 9 + pos] = 0.5f;
  try {
    lower(m, "m.h5");
    FAIL() << "no error";
  } catch (const Error& e) {
    const std::string s = e.what();
    EXPECT_NE(s.find("layer \"conv\""), std::string::npos) << s;
    EXPECT_NE(s.find("kernel (1, 1)"), std::string::npos) << s;
    EXPECT_NE(s.find("outside its pattern"), std::string::npos) << s;
  }
}

TEST(DeployFront, RejectsNonZeroRemovedKernel) {
  ModelFile m = one_conv(4, 4, 5, 5, 1, 4.0);
  auto& ids = m.pruning.layer_ids["conv"];
  const size_t k = static_cast<size_t>(std::find(ids.begin(), ids.end(), -1) - ids.begin());
  ASSERT_LT(k, ids.size());
  m.params.at("conv/weight")[static_cast<int64_t>(k * 9 + 4)] = 1.f;
  EXPECT_THROW(
      {
        try {
          lower(m, "m.h5");
        } catch (const Error& e) {
          EXPECT_NE(std::string(e.what()).find("is removed (id -1)"), std::string::npos)
              << e.what();
          throw;
        }
      },
      Error);
}

TEST(DeployFront, RejectsUnknownTarget) {
  EXPECT_THROW(target_by_name("tpu"), Error);
}

TEST(DeployPlan, PacksKernelsGroupedByPatternWithoutDenseStorage) {
  ModelFile m = one_conv(16, 12, 6, 6, 1, 3.0, false, true);
  DeployModel dm = lower(m, "t");
  plan_convs(dm);
  const ConvPlan& P = dm.ops[1].plan;
  // The next conv absorbs the permutation: its records name input positions of it.
  ASSERT_FALSE(dm.ops[1].perm.empty());
  const std::vector<int> pos = position_of(dm.ops[1]);
  for (int p = 0; p < 12; ++p)
    EXPECT_EQ(pos[static_cast<size_t>(dm.ops[1].perm[static_cast<size_t>(p)])], p);
  const int64_t kept = static_cast<int64_t>(std::ceil(16 * 12 / 3.0));
  EXPECT_EQ(P.kept_kernels, kept);
  // One (channel, 4 weights) record per kept kernel: 5 words, no dense 3x3, no per-weight index.
  EXPECT_EQ(static_cast<int64_t>(P.words.size()), kept * 5);
  EXPECT_LT(P.packed_bytes(), P.dense_bytes / 2);
  EXPECT_LE(P.masks.size(), 4u);
  // Filters sorted by kernel count (heaviest first); records follow each filter's counts, and each
  // record's weights equal the original kernel's pattern positions.
  const Tensor& w = m.params.at("conv/weight");
  int prev = 1 << 30;
  for (size_t p = 0; p < P.filter_order.size(); ++p) {
    const int o = P.filter_order[p];
    const int n = P.kernels_per_filter[static_cast<size_t>(o)];
    EXPECT_LE(n, prev);
    prev = n;
    size_t at = static_cast<size_t>(P.filter_offset[p]);
    for (size_t mi = 0; mi < P.masks.size(); ++mi)
      for (int c = 0; c < P.counts[p * P.masks.size() + mi]; ++c) {
        const int ch = static_cast<int>(P.words[at]);
        ASSERT_EQ(m.pruning.library[static_cast<size_t>(
                      m.pruning.layer_ids.at("conv")[static_cast<size_t>(o * 16 + ch)])],
                  P.masks[mi]);
        int j = 0;
        for (int t = 0; t < 9; ++t)
          if (P.masks[mi] >> t & 1) {
            float v;
            std::memcpy(&v, &P.words[at + 1 + static_cast<size_t>(j++)], 4);
            EXPECT_EQ(v, w[(o * 16 + ch) * 9 + t]);
          }
        at += 5;
      }
    EXPECT_EQ(at, p + 1 < P.filter_offset.size() ? static_cast<size_t>(P.filter_offset[p + 1])
                                                 : P.words.size());
  }
}

TEST(DeployPlan, PermutationFoldsIntoNextConvButNotIntoResidualAdd) {
  SynthOptions o;
  o.arch = "resnet20";
  o.conn_rate = 2.0;
  const ModelFile m = synth_model(o);
  DeployModel dm = lower(m, "resnet20");
  plan_convs(dm);
  int permuted = 0;
  for (size_t i = 0; i < dm.ops.size(); ++i) {
    const Op& op = dm.ops[i];
    if (op.type == OpType::Add) {
      for (int x : op.inputs) EXPECT_TRUE(dm.ops[static_cast<size_t>(x)].perm.empty()) << op.name;
    }
    if (op.type == OpType::Conv && !op.perm.empty()) {
      ++permuted;
      for (int u : dm.users[i]) EXPECT_EQ(dm.ops[static_cast<size_t>(u)].type, OpType::Conv);
    }
  }
  EXPECT_GT(permuted, 0);  // the first conv of each residual block may permute
  EXPECT_TRUE(dm.ops[static_cast<size_t>(dm.output)].perm.empty());
}

TEST(DeployPlan, AnalysisReportsEveryConv) {
  const DeployModel dm = planned_synth("vgg16_cifar", 8.8);
  const nlohmann::json j = analysis_json(dm);
  ASSERT_EQ(j["conv_layers"].size(), 13u);
  EXPECT_FALSE(j["conv_layers"][0]["pruned"].get<bool>());
  for (size_t i = 1; i < 13; ++i) {
    EXPECT_TRUE(j["conv_layers"][i]["pruned"].get<bool>());
    EXPECT_NEAR(j["conv_layers"][i]["connectivity_rate"].get<double>(), 8.8, 0.05);
  }
  EXPECT_GT(j["total"]["dense_bytes"].get<int64_t>(),
            10 * j["total"]["packed_bytes"].get<int64_t>());
  EXPECT_NE(analysis_table(dm).find("total packed"), std::string::npos);
}

// ResNet-20's projection shortcuts (dense strided 1x1) are stored dense in weights.bin: their
// size is reported as such, not as the plan's records (a channel word per weight, twice as much).
TEST(DeployPlan, AnalysisReportsDenseConvsAtTheirDenseSize) {
  const DeployModel dm = planned_synth("resnet20", 2.0);
  const nlohmann::json j = analysis_json(dm);
  int shortcuts = 0;
  for (const auto& L : j["conv_layers"])
    if (L["shape"]["k"] == 1) {
      ++shortcuts;
      EXPECT_EQ(L["packed_bytes"], L["dense_bytes"]) << L["name"];
    }
  EXPECT_EQ(shortcuts, 2);
  EXPECT_NE(analysis_table(dm).find("2/2"), std::string::npos);  // 16 -> 32: 2 KiB each way
}

TEST(DeployReference, ToleranceGrowsWithReductionLength) {
  ReferenceResult a, b;
  a.logits = b.logits = {1.f, -2.f};
  a.rms = b.rms = 1.5;
  a.sqrt_reduction = 10;
  b.sqrt_reduction = 100;
  EXPECT_GT(logit_tolerance(b, 0), 5 * logit_tolerance(a, 0));
  EXPECT_GT(logit_tolerance(a, 1), logit_tolerance(a, 0));
}
