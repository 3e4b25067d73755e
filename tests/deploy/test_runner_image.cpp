// The generated runner's --image path repeats evaluation's preprocessing (resize, centre crop,
// per-channel normalisation) from the model file, on real photos from the ImageNet sample: the
// tensor it builds must be the data pipeline's, exactly when no resampling is involved.
#include <gtest/gtest.h>
#include <unistd.h>

#include <cmath>
#include <filesystem>
#include <fstream>
#include <opencv2/imgcodecs.hpp>
#include <opencv2/imgproc.hpp>
#include <string>
#include <vector>

#include "core/model_file.h"
#include "data/data_config.h"
#include "data/transforms.h"
#include "deploy/compiler.h"
#include "deploy_test_models.h"

using namespace pconv;
using namespace pconv::deploy;
namespace fs = std::filesystem;

namespace {

const std::string kSample = std::string(PCONV_SHARED_DIR) + "/datasets/imagenet-sample-100.tar.gz";

// The first few photos of the sample, extracted into a scratch folder once.
std::vector<std::string> sample_photos(int n) {
  const fs::path dir = fs::path(PCONV_BINARY_DIR) / "deploy-tests" / "runner-image-photos";
  if (!fs::exists(dir / "done")) {
    fs::create_directories(dir);
    const std::string cmd = "tar -xzf '" + kSample + "' -C '" + dir.string() +
                            "' --wildcards '*.JPEG' '*.jpg' 2>/dev/null";
    (void)std::system(cmd.c_str());
    std::ofstream(dir / "done") << "1";
  }
  std::vector<std::string> out;
  for (const auto& e : fs::recursive_directory_iterator(dir)) {
    const std::string ext = e.path().extension().string();
    if (ext == ".JPEG" || ext == ".jpg" || ext == ".jpeg") out.push_back(e.path().string());
  }
  std::sort(out.begin(), out.end());
  if (static_cast<int>(out.size()) > n) out.resize(static_cast<size_t>(n));
  return out;
}

// A tiny image classifier over a 3 x S x S input: conv, pool, linear.
ModelFile tiny_classifier(int size, const nlohmann::json& preprocess) {
  ModelFile m;
  Graph& g = m.graph;
  int x = g.input("in", 3, size, size);
  x = g.relu("r1", g.conv("c1", x, conv(8, 3, 1)));
  x = g.flatten("f", g.global_avg_pool("gap", x));
  g.linear("fc", x, LinearAttrs{5, true});
  m.params = init_params(g, 3);
  if (!preprocess.is_null()) m.meta["input"] = preprocess;
  return m;
}

// Deploys for the portable target and builds the runner; returns the folder.
std::string deploy_built(const ModelFile& m, const std::string& name) {
  CompileOptions opt;
  opt.target = "c";
  opt.out_dir = std::string(PCONV_BINARY_DIR) + "/deploy-tests/" + name;
  fs::remove_all(opt.out_dir);
  opt.print_table = false;
  const CompileResult c = compile_model(m, name, opt);
  build_generated(opt.out_dir, c.target);
  return opt.out_dir;
}

int run(const std::string& cmd, std::string* out = nullptr) {
  const std::string log = fs::temp_directory_path() / ("runner-image-" + std::to_string(getpid()));
  const int rc = std::system((cmd + " > '" + log + "' 2>&1").c_str());
  if (out) {
    std::ifstream f(log);
    out->assign(std::istreambuf_iterator<char>(f), {});
  }
  return rc;
}

std::vector<float> read_f32(const std::string& path) {
  std::ifstream f(path, std::ios::binary);
  std::vector<float> v;
  float x;
  while (f.read(reinterpret_cast<char*>(&x), 4)) v.push_back(x);
  return v;
}

cv::Mat read_rgb(const std::string& path) {
  cv::Mat bgr = cv::imread(path, cv::IMREAD_COLOR), rgb;
  cv::cvtColor(bgr, rgb, cv::COLOR_BGR2RGB);
  return rgb;
}

void write_ppm(const cv::Mat& rgb, const std::string& path) {
  cv::Mat bgr;
  cv::cvtColor(rgb, bgr, cv::COLOR_RGB2BGR);
  ASSERT_TRUE(cv::imwrite(path, bgr));  // .ppm: binary P6
}

// The tensor the runner in dir builds from an image (written as PPM); empty if it failed.
std::vector<float> runner_tensor(const std::string& dir, const cv::Mat& rgb) {
  write_ppm(rgb, dir + "/x.ppm");
  std::string out;
  if (run(runner_command(dir, "--image " + dir + "/x.ppm --save-input " + dir + "/x.f32"), &out) !=
      0) {
    ADD_FAILURE() << "runner --image failed: " << out;
    return {};
  }
  return read_f32(dir + "/x.f32");
}

// CIFAR-style (resize_shorter 0) on an image already at the input size: no resampling, so the
// runner's tensor must equal the data pipeline's bit for bit (the normalisation constants).
TEST(RunnerImage, ExactNormalisationWithoutResampling) {
  if (!fs::exists(kSample)) GTEST_SKIP() << kSample << " missing";
  const int S = 32;
  data::DataConfig dc;
  dc.image_size = S;
  data::complete_data_config(dc);
  const ModelFile m = tiny_classifier(S, data::eval_preprocess_json(dc));
  const std::string dir = deploy_built(m, "runner-image-exact");
  const data::Normalizer norm(dc.mean, dc.std);
  const std::vector<std::string> photos = sample_photos(3);
  ASSERT_EQ(photos.size(), 3u);
  for (const std::string& p : photos) {
    cv::Mat small;
    cv::resize(read_rgb(p), small, cv::Size(S, S), 0, 0, cv::INTER_AREA);
    std::vector<float> want(static_cast<size_t>(3 * S * S));
    data::rgb_to_chw(small, false, norm, want.data());
    const std::vector<float> got = runner_tensor(dir, small);
    ASSERT_EQ(got.size(), want.size());
    // Equal up to float rounding: a -march=native build of the pipeline fuses v * scale + bias
    // into one FMA, the runner's portable build does not.
    for (size_t i = 0; i < got.size(); ++i)
      ASSERT_NEAR(got[i], want[i], 4e-7f * (1.f + std::fabs(want[i]))) << p << " value " << i;
  }
}

// ImageNet-style: shorter side to 256/224 of the input, centre crop. Area averaging and bilinear
// resampling match OpenCV's to within one 8-bit level (most values exactly).
TEST(RunnerImage, ResizeAndCentreCropMatchTheDataPipeline) {
  if (!fs::exists(kSample)) GTEST_SKIP() << kSample << " missing";
  const int S = 40;
  data::DataConfig dc;
  dc.dataset = "folder";
  dc.root = "/unused";
  dc.image_size = S;
  data::complete_data_config(dc);
  const nlohmann::json pre = data::eval_preprocess_json(dc);
  ASSERT_EQ(pre["resize_shorter"], 46);
  const ModelFile m = tiny_classifier(S, pre);
  const std::string dir = deploy_built(m, "runner-image-crop");
  const data::Normalizer norm(dc.mean, dc.std);
  const float level = 1.f / (255.f * *std::min_element(dc.std.begin(), dc.std.end()));
  std::vector<std::string> photos = sample_photos(4);
  ASSERT_EQ(photos.size(), 4u);
  for (size_t k = 0; k < photos.size(); ++k) {
    cv::Mat rgb = read_rgb(photos[k]);
    if (k == 3) cv::resize(rgb, rgb, cv::Size(30, 20));  // smaller than the input: enlarging
    std::vector<float> want(static_cast<size_t>(3 * S * S));
    data::resize_center_crop_to_chw(rgb, S, norm, want.data());
    const std::vector<float> got = runner_tensor(dir, rgb);
    ASSERT_EQ(got.size(), want.size());
    int off_by_level = 0;
    for (size_t i = 0; i < got.size(); ++i) {
      ASSERT_LE(std::fabs(got[i] - want[i]), 1.01f * level) << photos[k] << " value " << i;
      off_by_level += std::fabs(got[i] - want[i]) > 0.5f * level;
    }
    EXPECT_LT(off_by_level, static_cast<int>(got.size()) / 4) << photos[k];
  }
}

// A model file without preprocessing: deploy notes it and the runner refuses images, saying how
// to fix it; --mean/--std at deploy time (CompileOptions::preprocess) make it work.
TEST(RunnerImage, WithoutPreprocessingImagesAreRefusedWithAFix) {
  if (!fs::exists(kSample)) GTEST_SKIP() << kSample << " missing";
  const ModelFile m = tiny_classifier(16, nullptr);
  const std::string dir = deploy_built(m, "runner-image-none");
  cv::Mat small;
  cv::resize(read_rgb(sample_photos(1).at(0)), small, cv::Size(16, 16));
  write_ppm(small, dir + "/x.ppm");
  std::string out;
  EXPECT_NE(run(runner_command(dir, "--image " + dir + "/x.ppm"), &out), 0);
  EXPECT_NE(out.find("--mean"), std::string::npos) << out;
  // The same input as a normalised tensor still runs.
  std::vector<float> x(3 * 16 * 16, 0.25f);
  std::ofstream(dir + "/x.f32", std::ios::binary)
      .write(reinterpret_cast<const char*>(x.data()), static_cast<std::streamsize>(x.size() * 4));
  EXPECT_EQ(run(runner_command(dir, "--input " + dir + "/x.f32"), &out), 0) << out;

  CompileOptions opt;
  opt.target = "c";
  opt.out_dir = dir + "-fixed";
  opt.print_table = false;
  opt.preprocess = {{"mean", {0.5, 0.5, 0.5}}, {"std", {0.25, 0.25, 0.25}}};
  const CompileResult c = compile_model(m, "runner-image-none", opt);
  EXPECT_EQ(c.ir.preprocess["size"], 16);
  opt.preprocess = {{"mean", {0.5, 0.5}}, {"std", {0.25, 0.25, 0.25}}};
  try {
    compile_model(m, "bad-mean", opt);
    ADD_FAILURE() << "two means must be refused";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("3 means"), std::string::npos) << e.what();
  }
}

}  // namespace
