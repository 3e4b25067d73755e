// The "pruning" config section: defaults, every library form, layer selection on a real graph,
// and errors that name the JSON path and the layer.
#include <gtest/gtest.h>

#include "admm/config.h"
#include "core/architectures.h"
#include "core/error.h"

namespace pconv::admm {
namespace {

using nlohmann::json;

PruningConfig parse(const json& j) {
  return parse_pruning_config(JsonReader(j, "$.pruning"));
}

// Expects parsing/selection to throw with every fragment in the message.
template <typename F>
void expect_error(F&& f, std::vector<std::string> fragments) {
  try {
    f();
    FAIL() << "no error";
  } catch (const Error& e) {
    for (const auto& s : fragments)
      EXPECT_NE(std::string(e.what()).find(s), std::string::npos)
          << "missing \"" << s << "\" in: " << e.what();
  }
}

TEST(Config, Defaults) {
  const PruningConfig c = parse(json::object());
  EXPECT_EQ(c.rate, 1.0);
  EXPECT_EQ(c.granularity, Granularity::Pattern);
  EXPECT_EQ(c.library.kind, LibrarySpec::Kind::Scp4);
  EXPECT_EQ(c.admm.update_every, 0);
  EXPECT_FALSE(c.admm.rho_per_step);
  EXPECT_FALSE(c.prune_first_conv);
}

TEST(Config, FullSection) {
  const PruningConfig c = parse(json::parse(R"({
    "rate": 8.8, "layer_rates": {"layer3.0.conv1": 4},
    "exclude": ["layer1.0.conv1"], "granularity": "pattern",
    "library": [[1,3,4,5], [[0,1,0],[0,1,1],[0,1,0]]],
    "admm": {"rho": 0.001, "rho_factor": 1.08, "rho_every": 2, "rho_unit": "step",
             "rho_max": 0.1, "update_every": 50, "scale_u": true}})"));
  EXPECT_EQ(c.rate, 8.8);
  EXPECT_EQ(c.layer_rates.at("layer3.0.conv1"), 4.0);
  ASSERT_EQ(c.library.kind, LibrarySpec::Kind::Explicit);
  ASSERT_EQ(c.library.explicit_.size(), 2);
  EXPECT_EQ(c.library.explicit_[1].str(), "{1,4,5,7}");
  EXPECT_EQ(c.admm.rho_factor, 1.08);
  EXPECT_EQ(c.admm.rho_every, 2);
  EXPECT_TRUE(c.admm.rho_per_step);
  EXPECT_EQ(c.admm.rho_max, 0.1);
  EXPECT_EQ(c.admm.update_every, 50);
  EXPECT_TRUE(c.admm.scale_u);
  EXPECT_EQ(parse(json::parse(R"({"library": {"from_model": 8}})")).library.k, 8);
}

TEST(Config, ErrorsNameThePath) {
  expect_error([] { parse(json::parse(R"({"rte": 2})")); }, {"$.pruning.rte", "unknown key"});
  expect_error([] { parse(json::parse(R"({"rate": 0.5})")); }, {"$.pruning.rate"});
  expect_error([] { parse(json::parse(R"({"admm": {"rho_unit": "batch"}})")); },
               {"$.pruning.admm.rho_unit"});
  expect_error([] { parse(json::parse(R"({"admm": {"rh0": 1}})")); }, {"$.pruning.admm.rh0"});
  expect_error([] { parse(json::parse(R"({"library": "scp8"})")); }, {"$.pruning.library"});
  expect_error([] { parse(json::parse(R"({"library": {"from_model": 80}})")); },
               {"$.pruning.library.from_model"});
  expect_error([] { parse(json::parse(R"({"library": [[1,3,4,5],[1,3,4]]})")); },
               {"$.pruning.library[1]", "exactly 4"});
  expect_error([] { parse(json::parse(R"({"library": [[1,3,4,5],[5,4,3,1]]})")); },
               {"$.pruning.library[1]", "twice"});
  expect_error([] { parse(json::parse(R"({"library": [[[0,1,0],[1,2,1],[0,0,0]]]})")); },
               {"$.pruning.library[0][1][1]"});
  expect_error([] { parse(json::parse(R"({"layer_rates": {"conv2": 0}})")); },
               {"$.pruning.layer_rates.conv2"});
  expect_error([] { parse(json::parse(R"({"granularity": "channel"})")); },
               {"$.pruning.granularity"});
}

TEST(Config, DefaultSelectionOnResnet20) {
  const Graph g = build_architecture("resnet20", {});
  const auto layers = select_layers(g, parse(json::object()));
  EXPECT_EQ(layers.size(), 18u);  // all 3x3 block convs; not conv1, not the 1x1 downsamples
  EXPECT_EQ(std::count(layers.begin(), layers.end(), "conv1"), 0);
  EXPECT_EQ(std::count(layers.begin(), layers.end(), "layer2.0.downsample.0"), 0);
  EXPECT_EQ(layers.front(), "layer1.0.conv1");
  const auto with_first = select_layers(g, parse(json::parse(R"({"prune_first_conv": true,
      "exclude": ["layer3.2.conv2"]})")));
  EXPECT_EQ(with_first.size(), 18u);
  EXPECT_EQ(with_first.front(), "conv1");
  const auto inc = select_layers(g, parse(json::parse(R"({"include": ["layer2.1.conv1"]})")));
  EXPECT_EQ(inc, std::vector<std::string>{"layer2.1.conv1"});
}

TEST(Config, SelectionErrorsNameTheLayer) {
  const Graph g = build_architecture("resnet20", {});
  expect_error([&] { select_layers(g, parse(json::parse(R"({"include": ["nope"]})"))); },
               {"$.pruning.include[0]", "nope", "not in the graph"});
  expect_error(
      [&] { select_layers(g, parse(json::parse(R"({"include": ["layer2.0.downsample.0"]})"))); },
      {"$.pruning.include[0]", "layer2.0.downsample.0", "3x3"});
  expect_error([&] { select_layers(g, parse(json::parse(R"({"exclude": ["bogus"]})"))); },
               {"$.pruning.exclude[0]", "bogus"});
  expect_error([&] { select_layers(g, parse(json::parse(R"({"layer_rates": {"conv1": 2}})"))); },
               {"$.pruning.layer_rates.conv1", "not selected"});
}

TEST(Config, PlanRatesLibraryAndJsonRoundTrip) {
  const Graph g = build_architecture("resnet20", {});
  const ParamMap params = init_params(g, 7);
  const PruningConfig c = parse(json::parse(
      R"({"rate": 4, "layer_rates": {"layer3.2.conv2": 2}, "library": {"from_model": 6}})"));
  const PruningPlan p = make_plan(c, g, params);
  ASSERT_EQ(p.layers.size(), 18u);
  EXPECT_EQ(p.layers.front().rate, 4.0);
  EXPECT_EQ(p.layers.back().name, "layer3.2.conv2");
  EXPECT_EQ(p.layers.back().rate, 2.0);
  EXPECT_EQ(p.layers.back().out, 64);
  EXPECT_EQ(p.layers.back().in, 64);
  EXPECT_EQ(p.library.size(), 6);
  EXPECT_EQ(p.library_source, "from_model:6");
  EXPECT_EQ(p.library_votes.size(), 56u);
  const PruningPlan q = plan_from_json(plan_to_json(p), "test");
  EXPECT_EQ(plan_to_json(q), plan_to_json(p));
  EXPECT_EQ(q.library.masks(), p.library.masks());
}

}  // namespace
}  // namespace pconv::admm
