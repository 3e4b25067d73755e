#include <gtest/gtest.h>

#include "error_of.h"

#include "core/architectures.h"
#include "core/error.h"
#include "core/json_reader.h"

#include <functional>

namespace pconv {
namespace {

using nlohmann::json;

TEST(GraphJson, RoundTripEveryArchitecture) {
  for (const std::string& name : architecture_names()) {
    ArchOptions o;
    o.image_size =
        (name == "vgg16" || name == "resnet18" || name == "resnet50" || name == "mobilenet_v2")
            ? 224
            : 32;
    Graph g = build_architecture(name, o);
    Graph h = Graph::from_json(json::parse(g.to_json().dump()), name);
    ASSERT_EQ(g.size(), h.size()) << name;
    EXPECT_EQ(g.to_json(), h.to_json()) << name;
    for (int i = 0; i < g.size(); ++i) EXPECT_EQ(g.node(i).out, h.node(i).out) << name;
  }
}

TEST(GraphJson, ErrorsNameThePlace) {
  json j = build_architecture("resnet20", ArchOptions{}).to_json();
  j["nodes"][3]["inputs"] = {"nope"};
  EXPECT_NE(error_of([&] { Graph::from_json(j, "m.json"); }).find("m.json.nodes[3]"),
            std::string::npos);
  json k = build_architecture("resnet20", ArchOptions{}).to_json();
  k["nodes"][1]["op"] = "convolution";
  std::string e = error_of([&] { Graph::from_json(k, "m.json"); });
  EXPECT_NE(e.find("unknown op \"convolution\""), std::string::npos) << e;
  EXPECT_NE(e.find("nodes[1]"), std::string::npos) << e;
}

TEST(GraphBuild, ShapeErrors) {
  Graph g;
  int x = g.input("input", 3, 8, 8);
  ConvAttrs a;
  a.out_channels = 4;
  a.groups = 2;  // 3 input channels are not divisible by 2
  EXPECT_NE(error_of([&] { g.conv("c", x, a); }).find("groups 2"), std::string::npos);
  a.groups = 1;
  int c = g.conv("c", x, a);
  EXPECT_EQ(g.node(c).out, Shape({4, 8, 8}));
  EXPECT_NE(error_of([&] { g.add("sum", x, c); }).find("shapes differ"), std::string::npos);
  EXPECT_NE(error_of([&] { g.conv("c", x, a); }).find("duplicate"), std::string::npos);
  EXPECT_NE(error_of([&] {
              g.linear("fc", c, LinearAttrs{10, true});
            }).find("flatten"),
            std::string::npos);
}

TEST(JsonReader, TypedReadsAndErrors) {
  json j = json::parse(R"({"lr": 0.1, "epochs": 30, "name": "x", "opt": {"kind": "sgd"},
                           "typo_key": 1, "list": [1, 2]})");
  JsonReader r(j, "$", "cfg.json");
  EXPECT_DOUBLE_EQ(r.get_double("lr", 0, 0, 10), 0.1);
  EXPECT_EQ(r.get_int("epochs", 0, 1, 1000), 30);
  EXPECT_EQ(r.get_int("missing", 7), 7);
  EXPECT_EQ(r.get_string("name", ""), "x");
  EXPECT_EQ(r.get_int_list("list", {}), std::vector<int>({1, 2}));
  JsonReader o = r.object("opt");
  EXPECT_NE(error_of([&] { o.get_enum("kind", "sgd", {"adam"}); }).find("cfg.json: $.opt.kind"),
            std::string::npos);
  // typo_key was never read: finish() names it.
  EXPECT_NE(error_of([&] { r.finish(); }).find("$.typo_key: unknown key"), std::string::npos);
  JsonReader r2(j, "$", "cfg.json");
  EXPECT_NE(error_of([&] { r2.get_int("lr", 0); }).find("expected an integer"), std::string::npos);
  EXPECT_NE(error_of([&] { r2.get_int("epochs", 0, 1, 10); }).find("out of range"),
            std::string::npos);
  EXPECT_NE(error_of([&] { r2.require_string("absent"); }).find("required"), std::string::npos);
}

TEST(JsonReader, MalformedFile) {
  std::string p = ::testing::TempDir() + "bad.json";
  FILE* f = std::fopen(p.c_str(), "w");
  std::fputs("{\"a\": 1,,}", f);
  std::fclose(f);
  EXPECT_NE(error_of([&] { read_json_file(p); }).find("malformed JSON"), std::string::npos);
  EXPECT_NE(error_of([&] { read_json_file(p + ".absent"); }).find("cannot open"),
            std::string::npos);
}

}  // namespace
}  // namespace pconv
