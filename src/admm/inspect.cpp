#include "admm/inspect.h"

#include <algorithm>
#include <cctype>
#include <cmath>
#include <filesystem>
#include <fstream>
#include <iomanip>
#include <opencv2/core.hpp>
#include <opencv2/imgcodecs.hpp>
#include <opencv2/imgproc.hpp>
#include <sstream>

#include "core/error.h"

namespace pconv::admm {

using nlohmann::json;

namespace {

std::string granularity_of(const PruningState& st) {
  if (st.info.is_object() && st.info.contains("granularity") && st.info["granularity"].is_string())
    return st.info["granularity"].get<std::string>();
  return st.library.empty() ? "dense" : "pattern";
}

bool listed_in_info(const PruningState& st, const std::string& layer) {
  return st.info.is_object() && st.info.contains("per_layer") && st.info["per_layer"].is_object() &&
         st.info["per_layer"].contains(layer);
}

}  // namespace

InspectReport inspect(const ModelFile& m) {
  InspectReport r;
  const Graph& g = m.graph;
  const PruningState& st = m.pruning;
  r.granularity = granularity_of(st);
  r.library = st.library;
  const int k = static_cast<int>(st.library.size());
  r.macs_total = g.macs();
  int64_t macs_removed = 0;
  for (int i = 0; i < g.size(); ++i) {
    const Node& n = g.node(i);
    if (n.kind != OpKind::Conv) continue;
    auto wi = m.params.find(param_key(n.name, ParamRole::Weight));
    PCONV_CHECK(wi != m.params.end(), "layer ", n.name, ": no weight in the model");
    const Tensor& w = wi->second;
    PCONV_CHECK(w.rank() == 4, "layer ", n.name, ": weight ", shape_str(w.shape()), " is not OIHW");
    LayerReport l;
    l.name = n.name;
    l.out = w.dim(0), l.in = w.dim(1), l.kh = w.dim(2), l.kw = w.dim(3);
    l.kernels_total = l.out * l.in;
    l.weights_total = w.size();
    const int64_t ksz = l.kh * l.kw;
    for (int64_t j = 0; j < w.size(); ++j) l.nonzero += w[j] != 0.f;
    auto ids = st.layer_ids.find(n.name);
    if (ids != st.layer_ids.end() && k > 0) {
      l.pruned = true;
      l.pattern_hist.assign(static_cast<size_t>(k), 0);
      for (int8_t id : ids->second)
        if (id >= 0) {
          ++l.kernels_kept;
          if (id < k) ++l.pattern_hist[static_cast<size_t>(id)];
        }
      l.weights_kept = l.kernels_kept * kPatternSize;
    } else if (r.granularity != "pattern" && listed_in_info(st, n.name)) {
      l.pruned = true;
      for (int64_t j = 0; j < l.kernels_total; ++j)
        l.kernels_kept += sum_squares(w.data() + j * ksz, ksz) > 0;
      l.weights_kept = l.nonzero;
    } else {
      l.kernels_kept = l.kernels_total;
      l.weights_kept = l.weights_total;
    }
    l.connectivity_rate =
        l.kernels_kept > 0 ? double(l.kernels_total) / double(l.kernels_kept) : INFINITY;
    l.macs_total = g.layer_macs(i);
    l.macs_kept = l.weights_total > 0 ? l.macs_total / l.weights_total * l.weights_kept : 0;
    macs_removed += l.macs_total - l.macs_kept;
    r.conv_weights_total += l.weights_total;
    r.conv_weights_kept += l.weights_kept;
    r.layers.push_back(std::move(l));
  }
  r.macs_kept = r.macs_total - macs_removed;
  r.conv_compression = r.conv_weights_kept > 0
                           ? double(r.conv_weights_total) / double(r.conv_weights_kept)
                           : INFINITY;
  r.mac_reduction = r.macs_kept > 0 ? double(r.macs_total) / double(r.macs_kept) : INFINITY;
  r.verification = verify(g, m.params, st);
  return r;
}

json InspectReport::to_json() const {
  json lib = json::array();
  for (uint16_t mask : library) lib.push_back(Pattern{mask}.positions());
  json ls = json::array();
  for (const LayerReport& l : layers)
    ls.push_back({{"name", l.name},
                  {"pruned", l.pruned},
                  {"shape", {l.out, l.in, l.kh, l.kw}},
                  {"kernels_total", l.kernels_total},
                  {"kernels_kept", l.kernels_kept},
                  {"connectivity_rate", l.connectivity_rate},
                  {"pattern_hist", l.pattern_hist},
                  {"weights_total", l.weights_total},
                  {"weights_kept", l.weights_kept},
                  {"nonzero", l.nonzero},
                  {"macs_total", l.macs_total},
                  {"macs_kept", l.macs_kept}});
  json viol = json::array();
  for (const Violation& v : verification.violations)
    viol.push_back({{"layer", v.layer}, {"what", v.what}});
  return {{"granularity", granularity},
          {"library", lib},
          {"layers", ls},
          {"totals",
           {{"conv_weights_total", conv_weights_total},
            {"conv_weights_kept", conv_weights_kept},
            {"conv_compression", conv_compression},
            {"macs_total", macs_total},
            {"macs_kept", macs_kept},
            {"mac_reduction", mac_reduction}}},
          {"verified", verification.ok()},
          {"violations", viol}};
}

std::string InspectReport::table() const {
  std::ostringstream os;
  os << "granularity: " << granularity;
  if (!library.empty()) {
    os << ", library (" << library.size() << "):";
    for (size_t i = 0; i < library.size(); ++i) os << " " << i << "=" << Pattern{library[i]}.str();
  }
  os << "\n";
  size_t w = 5;
  for (const LayerReport& l : layers) w = std::max(w, l.name.size());
  os << std::left << std::setw(int(w)) << "layer" << std::right << std::setw(16) << "shape"
     << std::setw(16) << "kernels" << std::setw(8) << "conn" << std::setw(20) << "weights"
     << std::setw(24) << "MACs"
     << "  patterns\n";
  for (const LayerReport& l : layers) {
    std::ostringstream shape, kern, wts, macs, rate, hist;
    shape << l.out << "x" << l.in << "x" << l.kh << "x" << l.kw;
    kern << l.kernels_kept << "/" << l.kernels_total;
    rate << std::fixed << std::setprecision(2) << l.connectivity_rate << "x";
    wts << l.weights_kept << "/" << l.weights_total;
    macs << l.macs_kept << "/" << l.macs_total;
    for (size_t i = 0; i < l.pattern_hist.size(); ++i)
      hist << (i ? " " : "") << i << ":" << l.pattern_hist[i];
    if (!l.pruned) hist << "dense";
    os << std::left << std::setw(int(w)) << l.name << std::right << std::setw(16) << shape.str()
       << std::setw(16) << kern.str() << std::setw(8) << rate.str() << std::setw(20) << wts.str()
       << std::setw(24) << macs.str() << "  " << hist.str() << "\n";
  }
  os << std::fixed << std::setprecision(2) << "conv weights: " << conv_weights_kept << "/"
     << conv_weights_total << " kept (" << conv_compression << "x compression); MACs: " << macs_kept
     << "/" << macs_total << " (" << mac_reduction << "x reduction)\n";
  os << "constraints: "
     << (verification.ok() ? "all hold" : cat(verification.violations.size(), " violation(s)"))
     << " (" << verification.layers_checked << " pruned layers checked from the weights)\n";
  return os.str();
}

namespace {

cv::Scalar colour(int id) {
  static const int kFixed[][3] = {{230, 25, 75},  {60, 180, 75},   {255, 225, 25}, {0, 130, 200},
                                  {245, 130, 48}, {145, 30, 180},  {70, 240, 240}, {240, 50, 230},
                                  {210, 245, 60}, {250, 190, 212}, {0, 128, 128},  {170, 110, 40}};
  if (id < 12) return cv::Scalar(kFixed[id][2], kFixed[id][1], kFixed[id][0]);  // BGR
  cv::Mat hsv(1, 1, CV_8UC3, cv::Scalar(std::fmod(id * 0.618034 * 180.0, 180.0), 200, 230)), bgr;
  cv::cvtColor(hsv, bgr, cv::COLOR_HSV2BGR);
  const cv::Vec3b v = bgr.at<cv::Vec3b>(0, 0);
  return cv::Scalar(v[0], v[1], v[2]);
}

std::string file_stem(const std::string& layer) {
  std::string s = layer;
  for (char& c : s)
    if (!(std::isalnum(static_cast<unsigned char>(c)) || c == '.' || c == '-' || c == '_')) c = '_';
  return s;
}

}  // namespace

std::vector<std::string> write_pattern_pngs(const ModelFile& m, const std::string& dir) {
  std::vector<std::string> written;
  if (m.pruning.library.empty()) return written;
  const PatternMask mask = PatternMask::from_state(m.pruning, m.graph, "png");
  std::filesystem::create_directories(dir);
  const int k = mask.library.size();
  const cv::Scalar white(255, 255, 255), black(0, 0, 0), grey(128, 128, 128);
  const int font = cv::FONT_HERSHEY_SIMPLEX;
  for (const auto& [name, lm] : mask.layers) {
    const int cell = std::clamp(static_cast<int>(768 / std::max(lm.out, lm.in)), 2, 24);
    const int gw = static_cast<int>(lm.in) * cell, gh = static_cast<int>(lm.out) * cell;
    const int top = 40, left = 10, legend_x = left + gw + 20, row_h = 30;
    const int legend_h = (k + 2) * row_h + 20;
    const int width = std::max(legend_x + 240, 420), height = top + std::max(gh, legend_h) + 10;
    cv::Mat img(height, width, CV_8UC3, white);
    cv::putText(img, cat(name, ": ", lm.out, " out x ", lm.in, " in (row = out, col = in)"),
                {left, 25}, font, 0.5, black, 1, cv::LINE_AA);
    for (int64_t o = 0; o < lm.out; ++o)
      for (int64_t i = 0; i < lm.in; ++i) {
        const int id = lm.id(o, i);
        const cv::Rect r(left + static_cast<int>(i) * cell, top + static_cast<int>(o) * cell, cell,
                         cell);
        cv::rectangle(img, r, id < 0 ? black : colour(id), cv::FILLED);
        if (cell >= 8) cv::rectangle(img, r, white, 1);
      }
    const std::vector<int64_t> hist = lm.histogram(k);
    auto legend_row = [&](int row, const cv::Scalar& c, uint16_t pmask, const std::string& text) {
      const int y = top + row * row_h;
      cv::rectangle(img, cv::Rect(legend_x, y, 20, 20), c, cv::FILLED);
      cv::rectangle(img, cv::Rect(legend_x, y, 20, 20), grey, 1);
      if (pmask) {  // the pattern as a 3x3 mini grid
        for (int p = 0; p < kKernelSize; ++p) {
          const cv::Rect q(legend_x + 28 + (p % 3) * 7, y + (p / 3) * 7, 6, 6);
          cv::rectangle(img, q, (pmask >> p) & 1 ? black : cv::Scalar(220, 220, 220), cv::FILLED);
        }
      }
      cv::putText(img, text, {legend_x + 56, y + 15}, font, 0.45, black, 1, cv::LINE_AA);
    };
    for (int id = 0; id < k; ++id)
      legend_row(id, colour(id), mask.library[id].mask,
                 cat(id, " ", mask.library[id].str(), " n=", hist[static_cast<size_t>(id)]));
    legend_row(k, black, 0, cat("removed n=", lm.out * lm.in - lm.kept()));
    const std::string path = (std::filesystem::path(dir) / (file_stem(name) + ".png")).string();
    PCONV_CHECK(cv::imwrite(path, img), path, ": cannot write the PNG");
    written.push_back(path);
  }
  return written;
}

int inspect_command(const std::vector<std::string>& args, std::ostream& out, std::ostream& err) {
  const std::string usage = "usage: pconv-inspect model.h5 [--json out.json] [--png-dir DIR]\n";
  std::string model, json_path, png_dir;
  for (size_t i = 0; i < args.size(); ++i) {
    const std::string& a = args[i];
    if ((a == "--json" || a == "--png-dir") && i + 1 < args.size()) {
      (a == "--json" ? json_path : png_dir) = args[++i];
    } else if (a == "-h" || a == "--help") {
      out << usage;
      return 0;
    } else if (!a.empty() && a[0] != '-' && model.empty()) {
      model = a;
    } else {
      err << "pconv-inspect: unexpected argument \"" << a << "\"\n" << usage;
      return 2;
    }
  }
  if (model.empty()) {
    err << usage;
    return 2;
  }
  try {
    const ModelFile m = load_model(model);
    const InspectReport r = inspect(m);
    out << r.table();
    if (!json_path.empty()) {
      std::ofstream f(json_path);
      PCONV_CHECK(f.good(), json_path, ": cannot write");
      f << r.to_json().dump(2) << "\n";
      PCONV_CHECK(f.good(), json_path, ": write failed");
    }
    if (!png_dir.empty())
      for (const std::string& p : write_pattern_pngs(m, png_dir)) out << "wrote " << p << "\n";
    if (!r.verification.ok()) {
      err << model << ": " << r.verification.violations.size() << " constraint violation(s):\n"
          << r.verification.str();
      return 1;
    }
    return 0;
  } catch (const std::exception& e) {
    err << "pconv-inspect: " << e.what() << "\n";
    return 2;
  }
}

}  // namespace pconv::admm
