#include "core/model_file.h"

#include <fcntl.h>
#include <unistd.h>

#include <cstdio>

#include "core/hdf5_util.h"

namespace pconv {

using nlohmann::json;

namespace {

constexpr int kFormatVersion = 1;

void write_pruning(h5::File& f, const PruningState& p) {
  std::vector<uint8_t> lib;
  for (uint16_t mask : p.library)
    for (int b = 0; b < 9; ++b) lib.push_back(static_cast<uint8_t>((mask >> b) & 1));
  f.write_u8("/pruning/library", lib, {static_cast<int64_t>(p.library.size()), 9});
  json layers = json::array();
  for (const auto& [layer, ids] : p.layer_ids) layers.push_back(layer);
  json info = p.info;
  info["layers"] = layers;
  f.write_string("/pruning/info", info.dump());
}

PruningState read_pruning(const h5::File& f, const Graph& g) {
  PruningState p;
  Shape s;
  std::vector<uint8_t> lib = f.read_u8("/pruning/library", &s);
  PCONV_CHECK(s.size() == 2 && s[1] == 9, f.path(), ":/pruning/library: expected K x 9, got ",
              shape_str(s));
  for (int64_t k = 0; k < s[0]; ++k) {
    uint16_t mask = 0;
    for (int b = 0; b < 9; ++b) {
      uint8_t v = lib[static_cast<size_t>(k * 9 + b)];
      PCONV_CHECK(v <= 1, f.path(), ":/pruning/library: row ", k, " holds ", int(v), " (want 0/1)");
      mask = static_cast<uint16_t>(mask | (v << b));
    }
    p.library.push_back(mask);
  }
  json info;
  try {
    info = json::parse(f.read_string("/pruning/info"));
  } catch (const json::exception& e) {
    throw Error(cat(f.path(), ":/pruning/info: malformed JSON: ", e.what()));
  }
  for (const json& l : info.value("layers", json::array())) {
    std::string layer = l.get<std::string>();
    int idx = g.find(layer);
    PCONV_CHECK(idx >= 0 && g.node(idx).kind == OpKind::Conv, f.path(), ":/pruning/layers/", layer,
                ": not a conv layer of the graph");
    std::vector<int8_t> ids = f.read_i8("/pruning/layers/" + layer, &s);
    const Node& n = g.node(idx);
    int64_t o = n.out[0], i = g.node(n.inputs[0]).out[0] / n.conv().groups;
    PCONV_CHECK(s.size() == 2 && s[0] == o && s[1] == i, f.path(), ":/pruning/layers/", layer,
                ": shape ", shape_str(s), ", the layer needs [", o, ", ", i, "]");
    for (int8_t id : ids)
      PCONV_CHECK(id >= -1 && id < static_cast<int>(p.library.size()), f.path(),
                  ":/pruning/layers/", layer, ": pattern id ", int(id), " outside the library");
    p.layer_ids[layer] = std::move(ids);
  }
  info.erase("layers");
  p.info = info;
  return p;
}

void write_train(h5::File& f, const TrainState& t) {
  json keys = json::array();
  for (const auto& [key, tensor] : t.tensors) {
    f.write_tensor("/train/state/" + key, tensor);
    keys.push_back(key);
  }
  json info{{"stage", t.stage},     {"epoch", t.epoch}, {"step", t.step}, {"rng", t.rng},
            {"metrics", t.metrics}, {"extra", t.extra}, {"tensors", keys}};
  f.write_string("/train/info", info.dump());
}

TrainState read_train(const h5::File& f) {
  TrainState t;
  json info;
  try {
    info = json::parse(f.read_string("/train/info"));
    t.stage = info.at("stage").get<std::string>();
    t.epoch = info.at("epoch").get<int>();
    t.step = info.at("step").get<int64_t>();
    t.rng = info.at("rng").get<std::string>();
    t.metrics = info.at("metrics");
    t.extra = info.at("extra");
  } catch (const json::exception& e) {
    throw Error(cat(f.path(), ":/train/info: malformed: ", e.what()));
  }
  for (const json& k : info.value("tensors", json::array())) {
    std::string key = k.get<std::string>();
    t.tensors.emplace(key, f.read_tensor("/train/state/" + key));
  }
  return t;
}

void fsync_path(const std::string& path) {
  int fd = ::open(path.c_str(), O_RDONLY);
  if (fd >= 0) {
    ::fsync(fd);
    ::close(fd);
  }
}

}  // namespace

void save_model(const std::string& path, const ModelFile& m) {
  check_params(m.graph, m.params, path);
  const std::string tmp = path + ".tmp";
  {
    h5::File f = h5::File::create(tmp);
    f.write_string("/format", json{{"name", "pconv-model"}, {"version", kFormatVersion}}.dump());
    f.write_string("/graph", m.graph.to_json().dump());
    for (const ParamSpec& s : m.graph.params())
      f.write_tensor("/params/" + s.layer + "/" + role_name(s.role), m.params.at(s.key));
    if (!m.pruning.empty()) {
      write_pruning(f, m.pruning);
      for (const auto& [layer, ids] : m.pruning.layer_ids) {
        const Node& n = m.graph.node(m.graph.find(layer));
        int64_t o = n.out[0], i = m.graph.node(n.inputs[0]).out[0] / n.conv().groups;
        f.write_i8("/pruning/layers/" + layer, ids, {o, i});
      }
    }
    if (m.train) write_train(f, *m.train);
    f.write_string("/meta", m.meta.dump());
  }
  fsync_path(tmp);
  PCONV_CHECK(std::rename(tmp.c_str(), path.c_str()) == 0, path, ": cannot rename ", tmp,
              " into place");
}

ModelFile load_model(const std::string& path) {
  h5::File f = h5::File::open_read(path);
  ModelFile m;
  PCONV_CHECK(f.exists("/format"), path, ": not a pconv model (no /format)");
  try {
    json fmt = json::parse(f.read_string("/format"));
    PCONV_CHECK(fmt.value("name", "") == "pconv-model", path, ": not a pconv model file");
    PCONV_CHECK(fmt.value("version", 0) <= kFormatVersion, path, ": format version ",
                fmt.value("version", 0), " is newer than this pconv (", kFormatVersion, ")");
  } catch (const json::exception& e) {
    throw Error(cat(path, ":/format: malformed: ", e.what()));
  }
  json gj;
  try {
    gj = json::parse(f.read_string("/graph"));
  } catch (const json::exception& e) {
    throw Error(cat(path, ":/graph: malformed JSON: ", e.what()));
  }
  m.graph = Graph::from_json(gj, path + ":/graph");
  for (const ParamSpec& s : m.graph.params()) {
    std::string obj = "/params/" + s.layer + "/" + role_name(s.role);
    Tensor t = f.read_tensor(obj);
    PCONV_CHECK(t.shape() == s.shape, path, ":", obj, ": shape ", shape_str(t.shape()),
                ", the graph needs ", shape_str(s.shape));
    m.params.emplace(s.key, std::move(t));
  }
  if (f.exists("/pruning/info")) m.pruning = read_pruning(f, m.graph);
  if (f.exists("/train/info")) m.train = read_train(f);
  if (f.exists("/meta")) {
    try {
      m.meta = json::parse(f.read_string("/meta"));
    } catch (const json::exception& e) {
      throw Error(cat(path, ":/meta: malformed JSON: ", e.what()));
    }
  }
  return m;
}

}  // namespace pconv
