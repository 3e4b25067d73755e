#include "pipeline/import_pytorch.h"

#include <hdf5.h>

#include "core/hdf5_util.h"

#include <algorithm>
#include <cmath>
#include <set>

#include "admm/pattern.h"
#include "admm/prune.h"
#include "core/error.h"
#include "pipeline/provenance.h"

namespace pconv {
namespace {

using nlohmann::json;

constexpr const char* kBatchesTracked = ".num_batches_tracked";
constexpr int kMaxListed = 30;  // problems listed in one error message

bool ends_with(const std::string& s, const std::string& suffix) {
  return s.size() >= suffix.size() &&
         s.compare(s.size() - suffix.size(), suffix.size(), suffix) == 0;
}

const char* torch_role(ParamRole r) {
  switch (r) {
    case ParamRole::Weight:
    case ParamRole::Gamma:
      return "weight";
    case ParamRole::Bias:
    case ParamRole::Beta:
      return "bias";
    case ParamRole::RunningMean:
      return "running_mean";
    case ParamRole::RunningVar:
      return "running_var";
  }
  return "?";
}

herr_t collect_link(hid_t, const char* name, const H5L_info_t*, void* out) {
  static_cast<std::vector<std::string>*>(out)->push_back(name);
  return 0;
}

// Names of the links directly under `group` ("/" or "/pattern_ids"), in name order.
std::vector<std::string> list_links(const h5::File& f, const std::string& group) {
  h5::Handle g(H5Gopen2(f.id(), group.c_str(), H5P_DEFAULT), H5Gclose);
  PCONV_CHECK(g.valid(), f.path(), ":", group, ": is not a group");
  std::vector<std::string> names;
  hsize_t idx = 0;
  PCONV_CHECK(H5Literate(g.get(), H5_INDEX_NAME, H5_ITER_INC, &idx, collect_link, &names) >= 0,
              f.path(), ":", group, ": cannot list its members");
  return names;
}

H5I_type_t object_type(const h5::File& f, const std::string& obj) {
  h5::Handle o(H5Oopen(f.id(), obj.c_str(), H5P_DEFAULT), H5Oclose);
  PCONV_CHECK(o.valid(), f.path(), ":", obj, ": cannot open (a dangling link?)");
  return H5Iget_type(o.get());
}

H5T_class_t dataset_class(const h5::File& f, const std::string& obj) {
  h5::Handle ds(H5Dopen2(f.id(), obj.c_str(), H5P_DEFAULT), H5Dclose);
  PCONV_CHECK(ds.valid(), f.path(), ":", obj, ": cannot open the dataset");
  h5::Handle type(H5Dget_type(ds.get()), H5Tclose);
  return H5Tget_class(type.get());
}

std::vector<uint16_t> read_patterns(const h5::File& f) {
  const std::string where = f.path() + ":/patterns";
  Shape s;
  const std::vector<int8_t> v = f.read_i8("/patterns", &s);
  const bool ok_shape = (s.size() == 3 && s[1] == 3 && s[2] == 3) || (s.size() == 2 && s[1] == 9);
  PCONV_CHECK(ok_shape && s[0] >= 1, where, ": shape ", shape_str(s),
              ", expected K x 3 x 3 (or K x 9) with K >= 1");
  std::vector<uint16_t> masks(static_cast<size_t>(s[0]), 0);
  for (size_t k = 0; k < masks.size(); ++k)
    for (int p = 0; p < admm::kKernelSize; ++p) {
      const int8_t x = v[k * admm::kKernelSize + static_cast<size_t>(p)];
      PCONV_CHECK(x == 0 || x == 1, where, ": pattern ", k, " position ", p, " (row ", p / 3,
                  ", column ", p % 3, ") holds ", int(x), ", expected 0 or 1");
      if (x) masks[k] |= static_cast<uint16_t>(1u << p);
    }
  admm::PatternLibrary::from_masks(masks, where);  // exactly 4 positions each, no repeats
  return masks;
}

std::string join_problems(const std::vector<std::string>& problems) {
  std::string s;
  for (size_t i = 0; i < problems.size() && i < static_cast<size_t>(kMaxListed); ++i)
    s += "\n  " + problems[i];
  if (problems.size() > static_cast<size_t>(kMaxListed))
    s += cat("\n  ... and ", problems.size() - kMaxListed, " more");
  return s;
}

std::string node_desc(const Node& n) {
  if (n.kind != OpKind::Conv) return op_name(n.kind);
  const ConvAttrs& a = n.conv();
  return cat(a.kernel_h, "x", a.kernel_w, " conv with groups ", a.groups);
}

// Validates the pattern masks against the graph and the weights; returns the pruning state.
PruningState build_pruning(const StateDict& sd, const Graph& g, const std::string& arch,
                           const ParamMap& params) {
  PCONV_CHECK(!sd.pattern_ids.empty(), sd.source,
              ":/patterns is present but /pattern_ids holds no layer (a pruned model names its "
              "pruned convs there; drop /patterns for a dense model)");
  const int k = static_cast<int>(sd.patterns->size());
  PruningState st;
  st.library = *sd.patterns;
  json per_layer = json::object();
  for (const auto& [key, ids] : sd.pattern_ids) {
    const std::string where = cat(sd.source, ":/pattern_ids/", key);
    PCONV_CHECK(ends_with(key, ".weight"), where, ": expected the key of a conv weight (",
                "\"<layer>.weight\")");
    const std::string layer = key.substr(0, key.size() - 7);
    const int idx = g.find(layer);
    PCONV_CHECK(idx >= 0, where, ": ", arch, " has no layer ", layer);
    const Node& n = g.node(idx);
    PCONV_CHECK(n.kind == OpKind::Conv && n.conv().kernel_h == 3 && n.conv().kernel_w == 3 &&
                    n.conv().groups == 1,
                where, ": ", layer, " is a ", node_desc(n), " in ", arch,
                "; pattern masks apply to 3x3 convs with groups 1");
    const Shape& w = params.at(param_key(layer, ParamRole::Weight)).shape();
    const Shape need{w[0], w[1]};
    const Shape& have = sd.pattern_ids_shape.at(key);
    PCONV_CHECK(have == need, where, ": file has ", shape_str(have), ", ", arch, " needs ",
                shape_str(need), " (O x I of ", key, ")");
    int64_t kept = 0;
    for (size_t j = 0; j < ids.size(); ++j) {
      PCONV_CHECK(ids[j] >= -1 && ids[j] < k, where, ": kernel (", j / static_cast<size_t>(w[1]),
                  ", ", j % static_cast<size_t>(w[1]), ") has pattern id ", int(ids[j]),
                  ", outside -1..", k - 1, " (the library holds ", k, " patterns)");
      kept += ids[j] >= 0;
    }
    const int64_t units = need[0] * need[1];
    PCONV_CHECK(kept > 0, where, ": every kernel of ", layer, " is removed (-1)");
    st.layer_ids[layer] = ids;
    per_layer[layer] = {{"rate", static_cast<double>(units) / static_cast<double>(kept)},
                        {"units", units},
                        {"budget", kept}};
  }
  st.info = {{"method", "import"},
             {"granularity", "pattern"},
             {"library_source", "import"},
             {"source", sd.source},
             {"per_layer", per_layer}};
  const admm::VerifyReport r = admm::verify(g, params, st);
  if (!r.ok())
    throw Error(cat(sd.source, ": the weights violate their own pattern masks (",
                    r.violations.size(),
                    " violation(s); a masked PyTorch model holds exact zeros "
                    "outside each kept kernel's pattern and in every removed kernel):\n",
                    r.str()));
  return st;
}

}  // namespace

std::string torch_key(const ParamSpec& s) {
  return s.layer + "." + torch_role(s.role);
}

int default_image_size(const std::string& arch) {
  static const std::set<std::string> imagenet{"vgg16", "resnet18", "resnet50", "mobilenet_v2"};
  return imagenet.count(arch) ? 224 : 32;
}

StateDict read_state_dict(const std::string& path) {
  const h5::File f = h5::File::open_read(path);
  StateDict sd;
  sd.source = path;
  for (const std::string& name : list_links(f, "/")) {
    const std::string obj = "/" + name;
    const H5I_type_t type = object_type(f, obj);
    if (type == H5I_GROUP) {
      if (name == "reference") {
        sd.ignored.push_back("reference/");
      } else if (name == "pattern_ids") {
        for (const std::string& key : list_links(f, obj)) {
          Shape s;
          sd.pattern_ids[key] = f.read_i8(obj + "/" + key, &s);
          sd.pattern_ids_shape[key] = s;
        }
      } else {
        sd.groups.push_back(name);
      }
      continue;
    }
    PCONV_CHECK(type == H5I_DATASET, path, ":", obj, ": neither a dataset nor a group");
    if (name == "patterns") {
      sd.patterns = read_patterns(f);
    } else if (ends_with(name, kBatchesTracked)) {
      sd.ignored.push_back(name);
    } else if (dataset_class(f, obj) == H5T_FLOAT) {
      sd.tensors[name] = f.read_tensor(obj);
    } else {
      sd.non_float.push_back(name);
    }
  }
  return sd;
}

ModelFile import_state_dict(const StateDict& sd, const Graph& g, const std::string& arch) {
  std::map<std::string, const ParamSpec*> expected;  // by torch key
  const std::vector<ParamSpec> specs = g.params();
  for (const ParamSpec& s : specs) expected[torch_key(s)] = &s;

  std::vector<std::string> problems;
  bool shape_mismatch = false;
  size_t unexpected = 0;
  ModelFile m;
  m.graph = g;
  for (const auto& [key, t] : sd.tensors) {
    auto it = expected.find(key);
    if (it == expected.end()) {
      problems.push_back(cat("unexpected key ", key, ": file has ", shape_str(t.shape()), ", ",
                             arch, " has no such parameter"));
      ++unexpected;
      continue;
    }
    const ParamSpec& s = *it->second;
    if (t.shape() != s.shape) {
      problems.push_back(
          cat(key, ": file has ", shape_str(t.shape()), ", ", arch, " needs ", shape_str(s.shape)));
      shape_mismatch = true;
      continue;
    }
    m.params[s.key] = t;
  }
  for (const ParamSpec& s : specs)
    if (!sd.tensors.count(torch_key(s)))
      problems.push_back(cat("missing key ", torch_key(s), ": file has none, ", arch, " needs ",
                             shape_str(s.shape)));
  for (const std::string& key : sd.non_float)
    problems.push_back(
        cat("unexpected key ", key, ": an integer dataset (parameters and statistics are float)"));
  for (const std::string& key : sd.ignored) {
    if (!ends_with(key, kBatchesTracked)) continue;
    const std::string layer = key.substr(0, key.size() - std::string(kBatchesTracked).size());
    const int idx = g.find(layer);
    if (idx < 0 || g.node(idx).kind != OpKind::BatchNorm)
      problems.push_back(cat("unexpected key ", key, ": ", arch, " has no batch norm ", layer));
  }
  for (const std::string& name : sd.groups)
    problems.push_back(cat("unexpected group /", name,
                           " (state_dict keys are datasets at the root; pattern_ids and "
                           "reference are the only groups)"));
  if (!problems.empty())
    throw Error(cat(sd.source, ": the state dict does not match ", arch, " (", problems.size(),
                    " problem(s))", join_problems(problems),
                    shape_mismatch ? "\n(check --width, --num-classes and --image-size)" : "",
                    2 * unexpected > sd.tensors.size()
                        ? cat("\n(most keys are unknown to ", arch, ": is --arch right?)")
                        : ""));
  check_params(g, m.params, sd.source);

  if (sd.patterns)
    m.pruning = build_pruning(sd, g, arch, m.params);
  else
    PCONV_CHECK(sd.pattern_ids.empty(), sd.source,
                ":/pattern_ids is present but /patterns (the library the ids refer to) is not");
  return m;
}

ModelFile import_pytorch(const std::string& path, const ImportOptions& opt) {
  StateDict sd = read_state_dict(path);
  if (!opt.strip_prefix.empty()) {
    auto strip = [&](const std::string& k) {
      return k.compare(0, opt.strip_prefix.size(), opt.strip_prefix) == 0
                 ? k.substr(opt.strip_prefix.size())
                 : k;
    };
    std::map<std::string, Tensor> tensors;
    for (auto& [k, t] : sd.tensors) tensors[strip(k)] = std::move(t);
    sd.tensors = std::move(tensors);
    for (auto& k : sd.ignored) k = strip(k);
    for (auto& k : sd.non_float) k = strip(k);
    std::map<std::string, std::vector<int8_t>> ids;
    std::map<std::string, Shape> shapes;
    for (auto& [k, v] : sd.pattern_ids) ids[strip(k)] = std::move(v);
    for (auto& [k, s] : sd.pattern_ids_shape) shapes[strip(k)] = s;
    sd.pattern_ids = std::move(ids);
    sd.pattern_ids_shape = std::move(shapes);
  }
  ArchOptions ao = opt.arch_options;
  if (opt.num_classes_from_file) {
    // The classifier is the output node; its weight's first dimension is the class count.
    const Graph probe = build_architecture(opt.arch, ao);
    const Node& last = probe.node(probe.output());
    if (last.kind == OpKind::Linear) {
      auto it = sd.tensors.find(last.name + ".weight");
      if (it != sd.tensors.end() && it->second.rank() == 2 && it->second.dim(0) > 0)
        ao.num_classes = static_cast<int>(it->second.dim(0));
    }
  }
  const Graph g = build_architecture(opt.arch, ao);
  ModelFile m = import_state_dict(sd, g, opt.arch);
  m.meta = {{"tool", "pconv-import"},
            {"source", path},
            {"arch", opt.arch},
            {"num_classes", ao.num_classes},
            {"width", ao.width},
            {"image_size", ao.image_size},
            {"command", recorded_command_line()},
            {"commit", git_commit()}};
  if (!opt.strip_prefix.empty()) m.meta["strip_prefix"] = opt.strip_prefix;
  return m;
}

int import_command(const std::vector<std::string>& args, std::ostream& out, std::ostream& err) {
  const char* usage =
      "usage: pconv-import IN.h5 --arch ARCH [--num-classes N] [--image-size S] [--width W] "
      "[--strip-prefix P] --out OUT.h5";
  std::string in, out_path;
  ImportOptions opt;
  bool image_size_given = false;
  try {
    for (size_t i = 0; i < args.size(); ++i) {
      const std::string& a = args[i];
      auto value = [&]() -> std::string {
        PCONV_CHECK(i + 1 < args.size(), a, " needs a value");
        return args[++i];
      };
      auto number = [&](double lo) {
        const std::string v = value();
        size_t used = 0;
        double x = 0;
        try {
          x = std::stod(v, &used);
        } catch (const std::exception&) {
          used = 0;
        }
        PCONV_CHECK(used == v.size() && std::isfinite(x) && x >= lo, a, ": \"", v,
                    "\" is not a number >= ", lo);
        return x;
      };
      if (a == "--arch") {
        opt.arch = value();
      } else if (a == "--out") {
        out_path = value();
      } else if (a == "--num-classes") {
        opt.arch_options.num_classes = static_cast<int>(number(1));
        opt.num_classes_from_file = false;
      } else if (a == "--image-size") {
        opt.arch_options.image_size = static_cast<int>(number(8));
        image_size_given = true;
      } else if (a == "--width") {
        opt.arch_options.width = static_cast<float>(number(1e-6));
      } else if (a == "--strip-prefix") {
        opt.strip_prefix = value();
      } else if (a == "-h" || a == "--help") {
        out << usage << "\n";
        return 0;
      } else if (!a.empty() && a[0] == '-') {
        throw Error(cat("unknown option ", a));
      } else {
        PCONV_CHECK(in.empty(), "one input file only (got ", in, " and ", a, ")");
        in = a;
      }
    }
    PCONV_CHECK(!in.empty() && !opt.arch.empty() && !out_path.empty(), usage);
    const std::vector<std::string> known = architecture_names();
    PCONV_CHECK(std::find(known.begin(), known.end(), opt.arch) != known.end(),
                "unknown architecture \"", opt.arch, "\"");
  } catch (const Error& e) {
    err << "pconv-import: " << e.what() << "\n";
    return 2;
  }
  if (!image_size_given) opt.arch_options.image_size = default_image_size(opt.arch);
  try {
    const ModelFile m = import_pytorch(in, opt);
    save_model(out_path, m);
    const std::vector<ParamSpec> specs = m.graph.params();
    out << in << " -> " << out_path << ": " << opt.arch << " (num_classes " << m.graph.num_classes()
        << ", width " << opt.arch_options.width << ", image " << opt.arch_options.image_size
        << "), " << specs.size() << " tensors\n";
    if (m.pruning.empty()) {
      out << "dense (no /patterns in the file)\n";
    } else {
      int64_t kept = 0, total = 0;
      for (const auto& [layer, ids] : m.pruning.layer_ids) {
        total += static_cast<int64_t>(ids.size());
        kept += std::count_if(ids.begin(), ids.end(), [](int8_t x) { return x >= 0; });
      }
      out << "pruned: " << m.pruning.layer_ids.size() << " layers, " << m.pruning.library.size()
          << " patterns, " << kept << " of " << total
          << " kernels kept; every weight lies inside its kernel's pattern (verified)\n";
    }
    return 0;
  } catch (const std::exception& e) {
    err << "pconv-import: " << e.what() << "\n";
    return 1;
  }
}

}  // namespace pconv
