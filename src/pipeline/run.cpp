#include "pipeline/run.h"

#include <omp.h>

#include <algorithm>
#include <filesystem>
#include <fstream>

#include "admm/admm_hooks.h"
#include "admm/prune.h"
#include "core/log.h"
#include "core/model_file.h"
#include "data/dataset.h"
#include "pipeline/provenance.h"
#include "pipeline/report.h"
#include "train/progress.h"

namespace pconv {

namespace fs = std::filesystem;
using nlohmann::json;

namespace {

void write_text_atomic(const fs::path& p, const std::string& text) {
  fs::path tmp = p;
  tmp += ".tmp";
  {
    std::ofstream f(tmp, std::ios::trunc);
    PCONV_CHECK(f.good(), tmp.string(), ": cannot write");
    f << text;
    PCONV_CHECK(f.good(), tmp.string(), ": write failed (disk full?)");
  }
  fs::rename(tmp, p);
}

void write_metrics(const fs::path& p, const json& metrics) {
  std::string s;
  for (const json& r : metrics) s += r.dump() + "\n";
  write_text_atomic(p, s);
}

bool holds_run(const fs::path& dir) {
  if (!fs::exists(dir)) return false;
  for (const auto& e : fs::directory_iterator(dir))
    if (e.is_directory() || e.path().filename() == "config.json") return true;
  return false;
}

ModelFile initial_model(const RunConfig& cfg, int num_classes) {
  ModelFile m;
  if (!cfg.model.init.empty()) {
    m = load_model(cfg.model.init);
    m.train.reset();
    log_info("model: loaded ", cfg.model.init);
    return m;
  }
  if (!cfg.model.arch.empty()) {
    ArchOptions o = cfg.model.arch_options;
    if (o.num_classes == 0) o.num_classes = num_classes;
    m.graph = build_architecture(cfg.model.arch, o);
  } else {
    m.graph = Graph::from_json(cfg.model.graph, cfg.file + ": $.model.graph");
  }
  m.params = init_params(m.graph, cfg.seed);
  return m;
}

json base_meta(const RunConfig& cfg) {
  return json{{"command", recorded_command_line()},
              {"commit", git_commit()},
              {"run", cfg.name},
              {"dataset", cfg.data.dataset},
              {"input", data::eval_preprocess_json(cfg.data)}};
}

// A model file without optimizer/ADMM tensors: what best.h5, final.h5 and model.h5 hold.
ModelFile result_copy(const ModelFile& m) {
  ModelFile r;
  r.graph = m.graph;
  r.params = m.params;
  r.pruning = m.pruning;
  r.meta = m.meta;
  if (m.train) {
    r.train = *m.train;
    r.train->tensors.clear();
  }
  return r;
}

json stage_summary(const StageConfig& s, const TrainState& st, double seconds) {
  json out{{"stage", stage_kind_name(s.kind)}, {"name", s.name}, {"epochs", st.epoch}};
  if (!st.metrics.empty()) {
    const json& last = st.metrics.back();
    for (const char* k : {"test_top1", "test_top5", "test_loss", "train_top1"})
      if (last.contains(k)) out[k] = last[k];
  }
  if (st.extra.contains("best_top1")) out["best_top1"] = st.extra["best_top1"];
  double train_s = 0;
  for (const json& r : st.metrics) train_s += r.value("train_seconds", 0.0);
  out["train_seconds"] = train_s;
  out["wall_seconds"] = seconds;
  return out;
}

}  // namespace

RunResult run_pipeline(const RunConfig& cfg, const RunOptions& opt) {
  const fs::path dir = cfg.run_dir;
  if (holds_run(dir)) {
    if (opt.restart) {
      log_warn("--restart: removing ", dir.string());
      fs::remove_all(dir);
    } else if (!opt.resume) {
      throw Error(cat(dir.string(), " already holds a run: pass --resume to continue it, or ",
                      "--restart to discard it and start over"));
    }
  }
  // A missing teacher fails now, not hours later when its stage starts. One inside this run's
  // folder may be written by an earlier stage, so only those outside are checked.
  for (const StageConfig& s : cfg.stages) {
    const std::string& t = s.loop.distill.teacher;
    if (t.empty() || fs::exists(t)) continue;
    const fs::path rel =
        fs::absolute(t).lexically_normal().lexically_relative(fs::absolute(dir).lexically_normal());
    PCONV_CHECK(!rel.empty() && *rel.begin() != "..", s.loop.distill.where, ": no such file \"", t,
                "\" (the distillation teacher of stage ", s.name, ")");
  }
  fs::create_directories(dir);
  fs::path cfg_copy = dir / "config.json";
  if (fs::exists(cfg_copy)) {
    json old = read_json_file(cfg_copy.string());
    for (const char* k : {"model", "data", "stages", "pruning"})
      if (old.value(k, json()) != cfg.raw.value(k, json()))
        log_warn("resuming with a different \"", k, "\" section than ", cfg_copy.string(),
                 " recorded; finished stages are kept as they are");
  }
  write_text_atomic(cfg_copy, cfg.raw.dump(2) + "\n");
  if (cfg.threads > 0) omp_set_num_threads(cfg.threads);
  log_info("run ", cfg.name, " in ", dir.string(), " with ", omp_get_max_threads(), " threads");

  auto train_ds = data::open_dataset(cfg.data, data::Split::Train);
  auto test_ds = data::open_dataset(cfg.data, data::Split::Test);
  log_info(train_ds->describe());
  log_info(test_ds->describe());

  ModelFile current = initial_model(cfg, train_ds->num_classes());
  log_info("model: ", current.graph.size(), " nodes, ",
           static_cast<double>(current.graph.macs()) / 1e6, " M MACs per image");
  RunResult result;
  json stages = json::array();
  for (const StageConfig& stage : cfg.stages) {
    const fs::path sdir = dir / stage.name;
    const fs::path final_path = sdir / "final.h5", ck_path = sdir / "checkpoint.h5";
    fs::create_directories(sdir);
    if (fs::exists(final_path)) {
      current = load_model(final_path.string());
      log_info("stage ", stage.name, ": done earlier (", final_path.string(), ")");
      stages.push_back(current.meta.value("stage_summary", json::object()));
      continue;
    }
    double t0 = wall_seconds();
    TrainState st;
    // The commits of every binary that worked on this stage (a resumed stage may span several).
    json commits = json::array();
    if (fs::exists(ck_path)) {
      current = load_model(ck_path.string());
      PCONV_CHECK(current.train.has_value(), ck_path.string(), ": holds no training state");
      st = *current.train;
      log_info("stage ", stage.name, ": resuming at epoch ", st.epoch + 1, " (step ", st.step, ")");
      // Checkpoints of binaries older than this record name no build ("commit" there was the
      // checkout's HEAD at run time).
      commits = current.meta.value("commits", json::array({"not recorded"}));
      if (!commits.empty() && commits.back() != git_commit())
        log_warn("stage ", stage.name, ": started by a binary built at ", commits.back().dump(),
                 ", continued by one built at ", git_commit());
    }
    if (commits.empty() || commits.back() != git_commit()) commits.push_back(git_commit());
    current.meta = base_meta(cfg);
    current.meta["stage"] = stage.name;
    current.meta["commits"] = commits;

    if (stage.kind == StageKind::Prune) {
      std::optional<admm::PruningPlan> plan;
      if (current.train) plan = admm::plan_from_state(*current.train);
      if (!plan) plan = admm::make_plan(*cfg.pruning, current.graph, current.params);
      current.pruning = admm::hard_prune(current.graph, current.params, *plan);
      admm::VerifyReport rep = admm::verify(current.graph, current.params, current.pruning);
      PCONV_CHECK(rep.ok(), "prune: constraints violated after projection:\n", rep.str());
      Net net(current.graph, current.params);
      data::LoaderOptions lo;
      lo.batch_size = stage.loop.batch_size;
      lo.shuffle = lo.augment = lo.drop_last = false;
      data::BatchLoader loader(*test_ds, lo);
      EvalResult e = evaluate(net, loader, "  test after hard prune");
      log_info("hard prune: test top1 ", e.top1, " (", rep.layers_checked, " layers verified)");
      st = TrainState();
      st.stage = "prune";
      st.metrics.push_back({{"stage", "prune"},
                            {"epoch", 0},
                            {"test_top1", e.top1},
                            {"test_top5", e.top5},
                            {"test_loss", e.loss}});
    } else {
      std::unique_ptr<TrainHooks> hooks;
      if (stage.kind == StageKind::Admm) {
        std::optional<admm::PruningPlan> plan;
        if (!st.extra.is_null() && st.extra.contains("admm")) plan = admm::plan_from_state(st);
        if (!plan) plan = admm::make_plan(*cfg.pruning, current.graph, current.params);
        hooks = std::make_unique<admm::AdmmHooks>(*plan, cfg.pruning->admm);
      } else if (stage.kind == StageKind::Retrain) {
        PCONV_CHECK(!current.pruning.empty() || current.pruning.info.contains("layers"), "stage ",
                    stage.name, ": retrain needs a pruned model (run a prune stage first)");
        hooks = std::make_unique<admm::MaskedHooks>(current.graph, current.pruning, current.params);
      }
      Trainer trainer(current.graph, current.params, stage.loop, *train_ds, *test_ds, hooks.get());
      TrainCallbacks cb;
      cb.stop_requested = [&] { return opt.stop && opt.stop->load(); };
      cb.checkpoint = [&](const TrainState& s, const json& rec, bool best) {
        current.train = s;
        save_model(ck_path.string(), current);
        write_metrics(sdir / "metrics.jsonl", s.metrics);
        if (best) save_model((sdir / "best.h5").string(), result_copy(current));
        (void)rec;
      };
      if (!trainer.run(st, cb)) {
        log_warn("stopped: checkpoint saved to ", ck_path.string(), "; continue with --resume");
        result.finished = false;
        return result;
      }
    }
    current.train = st;
    json summary = stage_summary(stage, st, wall_seconds() - t0);
    summary["commits"] = commits;
    if (!current.pruning.empty()) {
      admm::VerifyReport rep = admm::verify(current.graph, current.params, current.pruning);
      summary["constraints_ok"] = rep.ok();
      if (!rep.ok()) log_warn("stage ", stage.name, ": pruning constraints violated:\n", rep.str());
    }
    current.meta["stage_summary"] = summary;
    save_model(final_path.string(), result_copy(current));
    write_metrics(sdir / "metrics.jsonl", st.metrics);
    fs::remove(ck_path);
    stages.push_back(summary);
    log_info("stage ", stage.name, " finished in ", format_duration(wall_seconds() - t0));
  }
  result.model_path = (dir / "model.h5").string();
  save_model(result.model_path, result_copy(current));
  // "commit": the binary that wrote this summary; "stage_commits": every binary that trained a
  // stage (stages finished by older binaries keep theirs), which is what the results came from.
  json stage_commits = json::array();
  for (const json& s : stages) {
    // Stages finished by binaries that predate this record: their code is unknown.
    const json cs = s.contains("commits") ? s["commits"] : json::array({"not recorded"});
    for (const json& c : cs)
      if (std::find(stage_commits.begin(), stage_commits.end(), c) == stage_commits.end())
        stage_commits.push_back(c);
  }
  result.summary = {{"run", cfg.name},
                    {"stages", stages},
                    {"model", result.model_path},
                    {"commit", git_commit()},
                    {"stage_commits", stage_commits},
                    {"command", recorded_command_line()},
                    {"threads", omp_get_max_threads()}};
  write_text_atomic(dir / "summary.json", result.summary.dump(2) + "\n");
  // TensorBoard events, inspect.json and report.md with charts; problems are only warnings.
  if (opt.report) write_report(dir.string());
  result.finished = true;
  return result;
}

}  // namespace pconv
