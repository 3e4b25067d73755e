// Architectures are checked against parameter counts published for their PyTorch references,
// which catches a wrong channel, stride or missing layer anywhere in the net.
#include <gtest/gtest.h>

#include "core/architectures.h"
#include "core/error.h"

namespace pconv {
namespace {

int64_t trainable_params(const Graph& g) {
  int64_t n = 0;
  for (const ParamSpec& s : g.params())
    if (s.trainable) n += numel(s.shape);
  return n;
}

TEST(Architectures, TorchvisionParameterCounts) {
  ArchOptions in;
  in.num_classes = 1000;
  in.image_size = 224;
  // torchvision's documented counts.
  EXPECT_EQ(trainable_params(build_architecture("resnet18", in)), 11689512);
  EXPECT_EQ(trainable_params(build_architecture("resnet50", in)), 25557032);
  EXPECT_EQ(trainable_params(build_architecture("mobilenet_v2", in)), 3504872);
  EXPECT_EQ(trainable_params(build_architecture("vgg16", in)), 138365992);
}

TEST(Architectures, CifarShapesAndCounts) {
  ArchOptions c;
  Graph r20 = build_architecture("resnet20", c);
  // 0.27M with zero-pad shortcuts; our two 1x1 projection shortcuts (+BN) add
  // 16*32+32*64+2*(32+64).
  EXPECT_EQ(trainable_params(r20), 269722 + 16 * 32 + 32 * 64 + 2 * (32 + 64));
  EXPECT_EQ(r20.num_classes(), 10);
  Graph vgg = build_architecture("vgg16_cifar", c);
  EXPECT_EQ(vgg.node(vgg.find("flatten")).out, Shape({512}));
  // 13 conv layers with bias + BN, classifier 512->10.
  int convs = 0;
  for (const Node& n : vgg.nodes()) convs += n.kind == OpKind::Conv;
  EXPECT_EQ(convs, 13);
  Graph mb = build_architecture("mobilenet_v2_cifar", c);
  EXPECT_EQ(mb.node(mb.find("avgpool")).out, Shape({1280, 1, 1}));
  // CIFAR strides: 32 -> 4 at the last stage (three stride-2 stages remain).
  EXPECT_EQ(mb.node(mb.find("features.18.0")).out, Shape({1280, 4, 4}));
  Graph q = build_architecture("quicknet", c);
  EXPECT_EQ(q.node(q.find("layer3.add")).out, Shape({256, 4, 4}));
}

TEST(Architectures, WidthMultiplierScalesChannels) {
  ArchOptions c;
  c.width = 0.5f;
  Graph g = build_architecture("vgg16_cifar", c);
  EXPECT_EQ(g.node(g.find("features.0")).out[0], 32);
  EXPECT_EQ(g.node(g.find("flatten")).out, Shape({256}));
}

TEST(Architectures, MacsOfResNet20) {
  // The published 40.55M: stem, 6 convs per stage (the first of stages 2-3 strided), fc;
  // the projection shortcuts add 16*32*16*16 + 32*64*8*8.
  Graph g = build_architecture("resnet20", ArchOptions{});
  int64_t stem = 16 * 27 * 32 * 32;
  int64_t stage1 = 6 * (16 * 144 * 32 * 32);
  int64_t stage2 = 32 * 144 * 16 * 16 + 5 * (32 * 288 * 16 * 16);
  int64_t stage3 = 64 * 288 * 8 * 8 + 5 * (64 * 576 * 8 * 8);
  EXPECT_EQ(stem + stage1 + stage2 + stage3, 40550400);
  EXPECT_EQ(g.macs(), 40550400 + 64 * 10 + 16 * 32 * 16 * 16 + 32 * 64 * 8 * 8);
}

TEST(Architectures, UnknownNameListsKnownOnes) {
  try {
    build_architecture("resnet21", ArchOptions{});
    FAIL() << "no error";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("resnet20"), std::string::npos) << e.what();
  }
}

}  // namespace
}  // namespace pconv
