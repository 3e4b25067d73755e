// Node names follow PyTorch's usual module names (torchvision's vgg16_bn / resnet / mobilenet_v2,
// the common CIFAR layouts), so a state_dict maps onto the graph by name.
#include "core/architectures.h"

#include <algorithm>
#include <cmath>

#include "core/error.h"

namespace pconv {
namespace {

int scaled(int c, float width) {
  return std::max(1, static_cast<int>(std::lround(c * width)));
}

// MobileNet's rounding: to a multiple of 8, never below 90% of the exact value.
int make_divisible(float v, int divisor = 8) {
  int nv = std::max(divisor, static_cast<int>(v + divisor / 2.0f) / divisor * divisor);
  if (nv < 0.9f * v) nv += divisor;
  return nv;
}

ConvAttrs conv_attrs(int out, int k, int stride, int pad, int groups = 1, bool bias = false) {
  ConvAttrs a;
  a.out_channels = out;
  a.kernel_h = a.kernel_w = k;
  a.stride_h = a.stride_w = stride;
  a.pad_h = a.pad_w = pad;
  a.groups = groups;
  a.bias = bias;
  return a;
}

// conv -> bn -> relu with explicit names; returns the relu (or bn when relu is empty).
int conv_bn(Graph& g, int x, const std::string& conv, const std::string& bn,
            const std::string& relu, const ConvAttrs& a, bool relu6 = false) {
  x = g.conv(conv, x, a);
  x = g.batch_norm(bn, x);
  if (relu.empty()) return x;
  return relu6 ? g.relu6(relu, x) : g.relu(relu, x);
}

// ---- VGG-16 with batch norm: features.N as in torchvision's vgg16_bn -------------------------
Graph vgg16(const ArchOptions& o, bool cifar) {
  Graph g;
  int x = g.input("input", 3, o.image_size, o.image_size);
  const int cfg[] = {64, 64, 0, 128, 128, 0, 256, 256, 256, 0, 512, 512, 512, 0, 512, 512, 512, 0};
  int idx = 0;
  for (int c : cfg) {
    std::string p = "features.";
    if (c == 0) {
      x = g.max_pool(p + std::to_string(idx++), x, PoolAttrs{2, 2, 0});
      continue;
    }
    int w = scaled(c, o.width);
    x = g.conv(p + std::to_string(idx++), x, conv_attrs(w, 3, 1, 1, 1, true));
    x = g.batch_norm(p + std::to_string(idx++), x);
    x = g.relu(p + std::to_string(idx++), x);
  }
  x = g.flatten("flatten", x);
  if (cifar) {
    g.linear("classifier", x, LinearAttrs{o.num_classes, true});
    return g;
  }
  int hidden = scaled(4096, o.width);
  x = g.linear("classifier.0", x, LinearAttrs{hidden, true});
  x = g.relu("classifier.1", x);
  x = g.linear("classifier.3", x, LinearAttrs{hidden, true});
  x = g.relu("classifier.4", x);
  g.linear("classifier.6", x, LinearAttrs{o.num_classes, true});
  return g;
}

// ---- ResNets -------------------------------------------------------------------------------
int basic_block(Graph& g, int x, const std::string& p, int in, int out, int stride) {
  int y = conv_bn(g, x, p + ".conv1", p + ".bn1", p + ".relu1", conv_attrs(out, 3, stride, 1));
  y = conv_bn(g, y, p + ".conv2", p + ".bn2", "", conv_attrs(out, 3, 1, 1));
  int sc = x;
  if (stride != 1 || in != out)
    sc = conv_bn(g, x, p + ".downsample.0", p + ".downsample.1", "", conv_attrs(out, 1, stride, 0));
  y = g.add(p + ".add", y, sc);
  return g.relu(p + ".relu2", y);
}

int bottleneck(Graph& g, int x, const std::string& p, int in, int planes, int stride) {
  int out = planes * 4;
  int y = conv_bn(g, x, p + ".conv1", p + ".bn1", p + ".relu1", conv_attrs(planes, 1, 1, 0));
  y = conv_bn(g, y, p + ".conv2", p + ".bn2", p + ".relu2", conv_attrs(planes, 3, stride, 1));
  y = conv_bn(g, y, p + ".conv3", p + ".bn3", "", conv_attrs(out, 1, 1, 0));
  int sc = x;
  if (stride != 1 || in != out)
    sc = conv_bn(g, x, p + ".downsample.0", p + ".downsample.1", "", conv_attrs(out, 1, stride, 0));
  y = g.add(p + ".add", y, sc);
  return g.relu(p + ".relu3", y);
}

// CIFAR ResNet-6n+2 (He et al. 2016, sec. 4.2), 16/32/64 channels; projection shortcuts (1x1
// conv + BN) where the shape changes, since zero-padding shortcuts have no parameters to import.
Graph resnet_cifar(const ArchOptions& o, int depth) {
  int n = (depth - 2) / 6;
  Graph g;
  int x = g.input("input", 3, o.image_size, o.image_size);
  int c = scaled(16, o.width);
  x = conv_bn(g, x, "conv1", "bn1", "relu", conv_attrs(c, 3, 1, 1));
  int in = c;
  for (int stage = 0; stage < 3; ++stage) {
    int out = scaled(16 << stage, o.width);
    for (int b = 0; b < n; ++b) {
      int stride = (stage > 0 && b == 0) ? 2 : 1;
      std::string p = "layer" + std::to_string(stage + 1) + "." + std::to_string(b);
      x = basic_block(g, x, p, in, out, stride);
      in = out;
    }
  }
  x = g.global_avg_pool("avgpool", x);
  x = g.flatten("flatten", x);
  g.linear("fc", x, LinearAttrs{o.num_classes, true});
  return g;
}

// torchvision ResNet-18 (basic) / ResNet-50 (bottleneck, stride on the 3x3: "v1.5").
Graph resnet_imagenet(const ArchOptions& o, bool bottle, const int (&blocks)[4]) {
  Graph g;
  int x = g.input("input", 3, o.image_size, o.image_size);
  int c = scaled(64, o.width);
  x = conv_bn(g, x, "conv1", "bn1", "relu", conv_attrs(c, 7, 2, 3));
  x = g.max_pool("maxpool", x, PoolAttrs{3, 2, 1});
  int in = c;
  for (int stage = 0; stage < 4; ++stage) {
    int planes = scaled(64 << stage, o.width);
    for (int b = 0; b < blocks[stage]; ++b) {
      int stride = (stage > 0 && b == 0) ? 2 : 1;
      std::string p = "layer" + std::to_string(stage + 1) + "." + std::to_string(b);
      if (bottle) {
        x = bottleneck(g, x, p, in, planes, stride);
        in = planes * 4;
      } else {
        x = basic_block(g, x, p, in, planes, stride);
        in = planes;
      }
    }
  }
  x = g.global_avg_pool("avgpool", x);
  x = g.flatten("flatten", x);
  g.linear("fc", x, LinearAttrs{o.num_classes, true});
  return g;
}

// ---- MobileNet-v2 (torchvision naming); CIFAR strides: stem and the 24-channel stage stride 1 --
Graph mobilenet_v2(const ArchOptions& o, bool cifar) {
  Graph g;
  int x = g.input("input", 3, o.image_size, o.image_size);
  int in = make_divisible(32 * o.width);
  x = conv_bn(g, x, "features.0.0", "features.0.1", "features.0.2",
              conv_attrs(in, 3, cifar ? 1 : 2, 1), true);
  const int settings[7][4] = {{1, 16, 1, 1}, {6, 24, 2, 2},  {6, 32, 3, 2}, {6, 64, 4, 2},
                              {6, 96, 3, 1}, {6, 160, 3, 2}, {6, 320, 1, 1}};
  int f = 1;
  for (int s = 0; s < 7; ++s) {
    int t = settings[s][0], out = make_divisible(settings[s][1] * o.width), n = settings[s][2];
    int stage_stride = (cifar && s == 1) ? 1 : settings[s][3];
    for (int i = 0; i < n; ++i, ++f) {
      int stride = i == 0 ? stage_stride : 1;
      std::string p = "features." + std::to_string(f) + ".conv.";
      int hidden = in * t;
      int y = x, k = 0;
      if (t != 1) {
        std::string q = p + std::to_string(k++);
        y = conv_bn(g, y, q + ".0", q + ".1", q + ".2", conv_attrs(hidden, 1, 1, 0), true);
      }
      std::string q = p + std::to_string(k++);
      y = conv_bn(g, y, q + ".0", q + ".1", q + ".2", conv_attrs(hidden, 3, stride, 1, hidden),
                  true);
      y = g.conv(p + std::to_string(k++), y, conv_attrs(out, 1, 1, 0));
      y = g.batch_norm(p + std::to_string(k++), y);
      if (stride == 1 && in == out) y = g.add("features." + std::to_string(f) + ".add", y, x);
      x = y;
      in = out;
    }
  }
  int last = make_divisible(1280 * std::max(1.0f, o.width));
  std::string p = "features." + std::to_string(f);
  x = conv_bn(g, x, p + ".0", p + ".1", p + ".2", conv_attrs(last, 1, 1, 0), true);
  x = g.global_avg_pool("avgpool", x);
  x = g.flatten("flatten", x);
  g.linear("classifier.1", x, LinearAttrs{o.num_classes, true});
  return g;
}

// ---- quicknet: a ResNet-9-style net (Page's DAWNBench design) at half width, for the quick start.
// Most MACs sit in 3x3 convs of 64-256 channels, which oneDNN runs efficiently on 2 cores.
Graph quicknet(const ArchOptions& o) {
  Graph g;
  int x = g.input("input", 3, o.image_size, o.image_size);
  int c0 = scaled(32, o.width), c1 = scaled(64, o.width), c2 = scaled(128, o.width),
      c3 = scaled(256, o.width);
  x = conv_bn(g, x, "prep.conv", "prep.bn", "prep.relu", conv_attrs(c0, 3, 1, 1));
  auto stage = [&](const std::string& p, int in, int out, bool residual) {
    int y = g.conv(p + ".conv", in, conv_attrs(out, 3, 1, 1));
    y = g.max_pool(p + ".pool", y, PoolAttrs{2, 2, 0});
    y = g.relu(p + ".relu", g.batch_norm(p + ".bn", y));
    if (!residual) return y;
    int r =
        conv_bn(g, y, p + ".res1.conv", p + ".res1.bn", p + ".res1.relu", conv_attrs(out, 3, 1, 1));
    r = conv_bn(g, r, p + ".res2.conv", p + ".res2.bn", p + ".res2.relu", conv_attrs(out, 3, 1, 1));
    return g.add(p + ".add", r, y);
  };
  x = stage("layer1", x, c1, true);
  x = stage("layer2", x, c2, false);
  x = stage("layer3", x, c3, true);
  x = g.global_avg_pool("pool", x);
  x = g.flatten("flatten", x);
  g.linear("fc", x, LinearAttrs{o.num_classes, true});
  return g;
}

}  // namespace

std::vector<std::string> architecture_names() {
  return {"quicknet", "vgg16_cifar",        "vgg16",       "resnet20", "resnet56", "resnet18",
          "resnet50", "mobilenet_v2_cifar", "mobilenet_v2"};
}

Graph build_architecture(const std::string& name, const ArchOptions& o) {
  PCONV_CHECK(o.num_classes > 0, "architecture ", name, ": num_classes must be > 0");
  PCONV_CHECK(o.width > 0, "architecture ", name, ": width must be > 0");
  PCONV_CHECK(o.image_size >= 8, "architecture ", name, ": image_size must be >= 8");
  if (name == "quicknet") return quicknet(o);
  if (name == "vgg16_cifar") return vgg16(o, true);
  if (name == "vgg16") return vgg16(o, false);
  if (name == "resnet20") return resnet_cifar(o, 20);
  if (name == "resnet56") return resnet_cifar(o, 56);
  if (name == "resnet18") return resnet_imagenet(o, false, {2, 2, 2, 2});
  if (name == "resnet50") return resnet_imagenet(o, true, {3, 4, 6, 3});
  if (name == "mobilenet_v2_cifar") return mobilenet_v2(o, true);
  if (name == "mobilenet_v2") return mobilenet_v2(o, false);
  std::string list;
  for (const auto& n : architecture_names()) list += (list.empty() ? "" : ", ") + n;
  throw Error(cat("unknown architecture \"", name, "\" (known: ", list, ")"));
}

}  // namespace pconv
