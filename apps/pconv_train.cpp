// pconv-train CONFIG.json: dense pretraining, ADMM pruning, hard pruning and masked retraining as
// the config's stages say, in a run folder that any later invocation resumes.
#include <omp.h>

#include <unistd.h>
#include <atomic>
#include <csignal>
#include <cstdio>
#include <cstring>
#include <iostream>

#include "cli.h"
#include "core/log.h"
#include "pipeline/provenance.h"
#include "pipeline/run.h"

namespace {

std::atomic<bool> g_stop{false};

void on_sigint(int) {
  if (g_stop.load()) std::_Exit(130);  // a second Ctrl-C leaves at once
  g_stop.store(true);
  const char msg[] =
      "\n[pconv] stopping after this step; saving a checkpoint (Ctrl-C again to abort)\n";
  ssize_t r = write(2, msg, sizeof msg - 1);
  (void)r;
}

const char kUsage[] =
    "usage: pconv-train CONFIG.json [options]\n"
    "  --resume            continue the run folder's stages where they stopped\n"
    "  --restart           discard the run folder and start over\n"
    "  --set KEY=VALUE     override a config key (JSON path with dots, e.g.\n"
    "                      train.optimizer.lr=0.05 or stages.0.epochs=3); repeatable\n"
    "  --epochs N          set the epochs of every training stage\n"
    "  --threads N         compute threads (default: every core)\n"
    "  --run-dir DIR       run folder (default runs/<name>)\n"
    "  --smoke N           cap every epoch at N steps and the data at a subset (quick check)\n"
    "Keys and stages: docs/user-guide.md.\n";

}  // namespace

int main(int argc, char** argv) {
  using namespace pconv;
  set_command_line(command_line(argc, argv));
  std::string config;
  std::vector<std::string> sets;
  RunOptions opt;
  try {
    cli::Args args(argc, argv, kUsage);
    while (args.next()) {
      if (args.is("--resume")) {
        opt.resume = true;
      } else if (args.is("--restart")) {
        opt.restart = true;
      } else if (args.is("--set")) {
        sets.push_back(args.value());
      } else if (args.is("--threads")) {
        sets.push_back("threads=" + std::to_string(args.int_value(1)));
      } else if (args.is("--run-dir")) {
        sets.push_back("run_dir=" + nlohmann::json(args.value()).dump());
      } else if (args.is("--epochs")) {
        sets.push_back("__epochs=" + std::to_string(args.int_value(0)));
      } else if (args.is("--smoke")) {
        sets.push_back("__smoke=" + std::to_string(args.int_value(1)));
      } else if (args.is_option()) {
        args.unknown();
      } else {
        PCONV_CHECK(config.empty(), "only one config file may be given (got ", config, " and ",
                    args.arg(), ")");
        config = args.arg();
      }
    }
    if (config.empty()) args.missing("the config file");
    PCONV_CHECK(!(opt.resume && opt.restart), "--resume and --restart exclude each other");
    // --epochs and --smoke expand to per-stage overrides once the stage count is known.
    nlohmann::json raw = read_json_file(config);
    std::vector<std::string> expanded;
    size_t nstages = raw.value("stages", nlohmann::json::array()).size();
    for (const std::string& s : sets) {
      if (s.rfind("__epochs=", 0) == 0) {
        for (size_t k = 0; k < nstages; ++k)
          if (raw["stages"][k].value("kind", "") != "prune")
            expanded.push_back(cat("stages.", k, ".epochs=", s.substr(9)));
      } else if (s.rfind("__smoke=", 0) == 0) {
        expanded.push_back("train.max_steps_per_epoch=" + s.substr(8));
        expanded.push_back("data.test_limit=1000");
      } else {
        expanded.push_back(s);
      }
    }
    RunConfig cfg = load_run_config(config, expanded);
    std::signal(SIGINT, on_sigint);
    std::signal(SIGTERM, on_sigint);
    opt.stop = &g_stop;
    RunResult r = run_pipeline(cfg, opt);
    if (!r.finished) return 130;
    std::printf("\nrun %s finished: %s\n", cfg.name.c_str(), r.model_path.c_str());
    std::printf("%-16s %-9s %7s %10s %10s %12s\n", "stage", "kind", "epochs", "test_top1",
                "best_top1", "train_time");
    for (const auto& s : r.summary["stages"]) {
      std::printf("%-16s %-9s %7d %10.4f %10.4f %11.0fs\n", s.value("name", "").c_str(),
                  s.value("stage", "").c_str(), s.value("epochs", 0), s.value("test_top1", 0.0),
                  s.value("best_top1", s.value("test_top1", 0.0)), s.value("train_seconds", 0.0));
    }
    return 0;
  } catch (const std::exception& e) {
    std::fprintf(stderr, "pconv-train: error: %s\n", e.what());
    return 1;
  }
}
