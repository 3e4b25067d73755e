#include "pipeline/run_config.h"

#include <algorithm>

#include "core/error.h"

namespace pconv {

using nlohmann::json;

const char* stage_kind_name(StageKind k) {
  switch (k) {
    case StageKind::Pretrain:
      return "pretrain";
    case StageKind::Admm:
      return "admm";
    case StageKind::Prune:
      return "prune";
    case StageKind::Retrain:
      return "retrain";
  }
  return "?";
}

namespace {

StageKind parse_kind(const std::string& s) {
  if (s == "pretrain") return StageKind::Pretrain;
  if (s == "admm") return StageKind::Admm;
  if (s == "prune") return StageKind::Prune;
  return StageKind::Retrain;
}

// Training keys shared by the "train" defaults and each stage's overrides.
TrainLoopConfig parse_loop(JsonReader& r, const TrainLoopConfig& d, bool with_epochs) {
  TrainLoopConfig c = d;
  if (with_epochs) c.epochs = r.get_int("epochs", d.epochs, 0, 100000);
  c.batch_size = r.get_int("batch_size", d.batch_size, 1, 65536);
  c.label_smoothing =
      static_cast<float>(r.get_double("label_smoothing", d.label_smoothing, 0, 0.999));
  c.eval_every = r.get_int("eval_every", d.eval_every, 1, 100000);
  c.max_steps_per_epoch = r.get_int("max_steps_per_epoch", d.max_steps_per_epoch, 0, 1 << 30);
  c.loader_workers = r.get_int("loader_workers", d.loader_workers, 1, 64);
  // "distill": {...} sets distillation for these stages; "distill": null turns off an inherited
  // one.
  if (r.has("distill")) {
    if (r.raw("distill").is_null()) {
      c.distill = DistillConfig();
    } else {
      JsonReader k = r.object("distill");
      c.distill.teacher = k.require_string("teacher");
      PCONV_CHECK(!c.distill.teacher.empty(), k.where("teacher"), ": must name a model .h5");
      c.distill.where = k.where("teacher");  // run_pipeline checks the file before any stage runs
      c.distill.alpha = static_cast<float>(k.get_double("alpha", 0.9, 0, 1));
      c.distill.temperature = static_cast<float>(k.get_double("temperature", 4, 0.05, 100));
      k.finish();
    }
  }
  JsonReader opt = r.object("optimizer");
  c.sgd = parse_sgd_config(opt, d.sgd);
  opt.finish();
  JsonReader sch = r.object("schedule");
  c.schedule = parse_schedule_config(sch, d.schedule);
  sch.finish();
  return c;
}

}  // namespace

RunConfig parse_run_config(const json& j, const std::string& file) {
  RunConfig c;
  c.file = file;
  c.raw = j;
  JsonReader r(j, "$", file);
  c.name = r.require_string("name");
  PCONV_CHECK(!c.name.empty() && c.name.find('/') == std::string::npos, r.where("name"),
              ": must be a non-empty folder name without '/'");
  c.run_dir = r.get_string("run_dir", "runs/" + c.name);
  c.seed = static_cast<uint64_t>(r.get_int("seed", 0, 0, INT32_MAX));
  c.threads = r.get_int("threads", 0, 0, 1024);

  JsonReader m = r.object("model");
  c.model.arch = m.get_string("arch", "");
  c.model.init = m.get_string("init", "");
  c.model.graph = m.raw("graph");
  c.model.arch_options.width = static_cast<float>(m.get_double("width", 1.0, 0.01, 16.0));
  c.model.arch_options.num_classes = m.get_int("num_classes", 0, 0, 1 << 20);
  int sources = !c.model.arch.empty() + !c.model.graph.is_null() + !c.model.init.empty();
  PCONV_CHECK(sources == 1, m.where(""), ": give exactly one of \"arch\", \"graph\" or \"init\"");
  if (!c.model.arch.empty()) {
    const auto names = architecture_names();
    PCONV_CHECK(std::find(names.begin(), names.end(), c.model.arch) != names.end(), m.where("arch"),
                ": unknown architecture \"", c.model.arch, "\"");
  }
  m.finish();

  JsonReader d = r.object("data");
  c.data = data::parse_data_config(d);
  c.model.arch_options.image_size = c.data.image_size;

  TrainLoopConfig defaults;
  defaults.seed = c.seed;
  JsonReader t = r.object("train");
  defaults = parse_loop(t, defaults, true);
  t.finish();

  if (r.has("pruning")) c.pruning = admm::parse_pruning_config(r.object("pruning"));

  auto stages = r.object_list("stages");
  PCONV_CHECK(!stages.empty(), r.where("stages"), ": at least one stage is required");
  for (size_t i = 0; i < stages.size(); ++i) {
    JsonReader& s = stages[i];
    StageConfig sc;
    std::string kind = s.get_enum("kind", "", {"pretrain", "admm", "prune", "retrain"});
    sc.kind = parse_kind(kind);
    sc.name = s.get_string("name", std::to_string(i + 1) + "-" + kind);
    sc.loop = parse_loop(s, defaults, true);
    sc.loop.stage = kind;
    if (sc.kind != StageKind::Prune)
      PCONV_CHECK(sc.loop.epochs > 0, s.where("epochs"), ": a ", kind, " stage needs epochs > 0");
    // Retrain takes its masks from the model (a prune stage or an imported pruned model).
    if (sc.kind == StageKind::Admm || sc.kind == StageKind::Prune)
      PCONV_CHECK(c.pruning.has_value(), s.where("kind"), ": stage \"", kind,
                  "\" needs a \"pruning\" section in the config");
    s.finish();
    c.stages.push_back(sc);
  }
  r.finish();
  return c;
}

void apply_override(json& j, const std::string& a) {
  size_t eq = a.find('=');
  PCONV_CHECK(eq != std::string::npos && eq > 0, "--set ", a, ": expected key.path=value");
  std::string path = a.substr(0, eq), text = a.substr(eq + 1);
  json value;
  try {
    value = json::parse(text);
  } catch (const json::exception&) {
    value = text;
  }
  json* cur = &j;
  size_t start = 0;
  while (true) {
    size_t dot = path.find('.', start);
    std::string key =
        path.substr(start, dot == std::string::npos ? std::string::npos : dot - start);
    PCONV_CHECK(!key.empty(), "--set ", a, ": empty key in path");
    json* next;
    if (cur->is_array()) {
      size_t idx = 0;
      try {
        idx = std::stoul(key);
      } catch (const std::exception&) {
        throw Error(cat("--set ", a, ": \"", key, "\" must index a list"));
      }
      PCONV_CHECK(idx < cur->size(), "--set ", a, ": index ", idx, " beyond the list's ",
                  cur->size(), " items");
      next = &(*cur)[idx];
    } else {
      if (cur->is_null()) *cur = json::object();
      PCONV_CHECK(cur->is_object(), "--set ", a, ": \"", key, "\" is inside a non-object");
      next = &(*cur)[key];
    }
    if (dot == std::string::npos) {
      *next = value;
      return;
    }
    cur = next;
    start = dot + 1;
  }
}

RunConfig load_run_config(const std::string& path, const std::vector<std::string>& overrides) {
  json j = read_json_file(path);
  for (const std::string& o : overrides) apply_override(j, o);
  return parse_run_config(j, path);
}

}  // namespace pconv
