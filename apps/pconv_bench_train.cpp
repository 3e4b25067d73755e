// pconv-bench-train: training throughput of full SGD steps (forward, loss, backward, pconv's
// SGD with momentum and weight decay) on random data, per architecture. With --stages it also
// times the same step inside the ADMM stage (penalty gradients, Z/U updates amortised over a
// CIFAR epoch) and the retrain stage (masks on weights, gradients and momentum); the stages'
// timing windows are interleaved so a change in machine load hits them alike. Each
// architecture runs in its own child process so its peak RSS is its own.
//
//   pconv-bench-train [--arch resnet20 --arch vgg16_cifar] [--batch 128] [--threads 2]
//                     [--steps 5] [--windows 5] [--warmup 3] [--stages dense,admm,retrain]
//                     [--json out.json]
#include <omp.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <iostream>
#include <memory>
#include <nlohmann/json.hpp>
#include <random>
#include <string>
#include <vector>

#include "admm/admm_hooks.h"
#include "admm/config.h"
#include "admm/prune.h"
#include "cli.h"
#include "core/architectures.h"
#include "core/build_commit.h"
#include "train/loss.h"
#include "train/net.h"
#include "train/optimizer.h"

namespace {

struct Options {
  std::vector<std::string> archs;
  int batch = 128, threads = 2, steps = 5, windows = 5, warmup = 3;
  std::vector<std::string> stages = {"dense"};
  std::string json;
};

const char kUsage[] =
    "usage: pconv-bench-train [options]\n"
    "Training throughput (images/s) of full SGD steps on random data, per architecture;\n"
    "scripts/bench_train_throughput.py --pconv BIN runs it next to PyTorch for the ratio.\n"
    "  --arch NAME       architecture to measure; repeatable (default vgg16_cifar, resnet20)\n"
    "  --batch N         batch size (default 128)\n"
    "  --threads T       compute threads (default 2)\n"
    "  --steps S         steps per timing window (default 5)\n"
    "  --windows W       timing windows; median and min-max reported (default 5)\n"
    "  --warmup K        untimed steps first (default 3)\n"
    "  --stages LIST     dense,admm,retrain: also time ADMM and masked-retrain steps\n"
    "  --json FILE       write the figures as JSON\n";

double median(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  return v[v.size() / 2];
}

// One record per stage: {"stage", images_per_s (median), min, max, ...}.
nlohmann::json bench(const std::string& arch, const Options& o) {
  using clock = std::chrono::steady_clock;
  omp_set_num_threads(o.threads);
  pconv::Graph g = pconv::build_architecture(arch, {});
  pconv::ParamMap params = pconv::init_params(g, 1);
  pconv::Net net(g, params);
  pconv::Sgd sgd(g, pconv::SgdConfig{});
  const pconv::Shape& is = g.input_shape();
  pconv::Tensor x({o.batch, is[0], is[1], is[2]});
  std::mt19937 rng(7);
  std::normal_distribution<float> nd(0.f, 1.f);
  for (int64_t i = 0; i < x.size(); ++i) x[i] = nd(rng);
  std::vector<int32_t> labels(static_cast<size_t>(o.batch));
  for (auto& l : labels) l = static_cast<int32_t>(rng() % static_cast<unsigned>(g.num_classes()));

  // Hooks per stage: the paper's 4 SCPs at connectivity 2 on every 3x3 conv but the first.
  pconv::admm::PruningConfig pcfg;
  pcfg.rate = 2.0;
  const pconv::admm::PruningPlan plan = pconv::admm::make_plan(pcfg, g, params);
  std::vector<std::unique_ptr<pconv::TrainHooks>> hooks;
  for (const std::string& st : o.stages) {
    if (st == "dense") {
      hooks.push_back(std::make_unique<pconv::TrainHooks>());
    } else if (st == "admm") {
      hooks.push_back(std::make_unique<pconv::admm::AdmmHooks>(plan, pcfg.admm));
    } else if (st == "retrain") {
      pconv::ParamMap pruned = params;
      pconv::PruningState ps = pconv::admm::hard_prune(g, pruned, plan);
      hooks.push_back(std::make_unique<pconv::admm::MaskedHooks>(g, ps, pruned));
    } else {
      throw pconv::Error("unknown stage " + st + " (dense, admm, retrain)");
    }
    hooks.back()->on_stage_begin(params);
  }

  pconv::Tensor dlogits;
  float loss = 0;
  int64_t step_no = 0;
  auto step = [&](pconv::TrainHooks& h) {
    const pconv::Tensor& y = net.forward(x, true);
    loss = pconv::softmax_cross_entropy(y, labels, 0.f, &dlogits);
    net.backward(dlogits);
    h.adjust_grads(params, net.grads());
    sgd.step(params, net.grads(), 0.01);
    h.after_step(++step_no, params, sgd.momentum());
    net.params_changed();
  };
  for (auto& h : hooks)
    for (int i = 0; i < o.warmup; ++i) step(*h);

  // Per-epoch work (ADMM's Z/U update and rho growth), amortised over a CIFAR-10 epoch.
  const double steps_per_epoch = 50000.0 / o.batch;
  std::vector<double> epoch_cost(hooks.size(), 0.0);
  for (size_t k = 0; k < hooks.size(); ++k) {
    nlohmann::json rec;
    const auto t0 = clock::now();
    hooks[k]->on_epoch_end(0, params, rec);
    epoch_cost[k] = std::chrono::duration<double>(clock::now() - t0).count();
  }

  std::vector<std::vector<double>> rates(hooks.size());
  rusage r0{};
  getrusage(RUSAGE_SELF, &r0);
  for (int w = 0; w < o.windows; ++w) {
    for (size_t k = 0; k < hooks.size(); ++k) {
      const auto t0 = clock::now();
      for (int i = 0; i < o.steps; ++i) step(*hooks[k]);
      double s = std::chrono::duration<double>(clock::now() - t0).count();
      s += o.steps * epoch_cost[k] / steps_per_epoch;
      rates[k].push_back(o.steps * o.batch / s);
    }
  }
  rusage ru{};
  getrusage(RUSAGE_SELF, &ru);
  // CPU seconds (user + system, all threads) per timed step: with a loaded machine the wall-clock
  // rate mostly measures the other processes; this says what the work itself costs.
  auto secs = [](const timeval& t) {
    return static_cast<double>(t.tv_sec) + 1e-6 * static_cast<double>(t.tv_usec);
  };
  const double cpu = secs(ru.ru_utime) + secs(ru.ru_stime) - secs(r0.ru_utime) - secs(r0.ru_stime);
  const double cpu_per_step = cpu / (o.windows * o.steps * static_cast<double>(hooks.size()));
  double load = -1;
  if (std::FILE* f = std::fopen("/proc/loadavg", "r")) {
    if (std::fscanf(f, "%lf", &load) != 1) load = -1;
    std::fclose(f);
  }
  nlohmann::json out = nlohmann::json::array();
  const double dense = median(rates[0]);
  for (size_t k = 0; k < hooks.size(); ++k) {
    const double med = median(rates[k]);
    nlohmann::json r{{"arch", arch},
                     {"stage", o.stages[k]},
                     {"batch", o.batch},
                     {"threads", o.threads},
                     {"images_per_s", med},
                     {"images_per_s_min", *std::min_element(rates[k].begin(), rates[k].end())},
                     {"images_per_s_max", *std::max_element(rates[k].begin(), rates[k].end())},
                     {"windows", rates[k]},
                     {"steps_per_window", o.steps},
                     {"epoch_work_s", epoch_cost[k]},
                     {"last_loss", loss},
                     {"cpu_s_per_step", cpu_per_step},
                     {"images_per_cpu_s", o.batch / cpu_per_step},
                     {"loadavg_1min", load},
                     {"peak_rss_mib", static_cast<double>(ru.ru_maxrss) / 1024.0}};
    // Step-time overhead against the first stage listed (dense), same run.
    if (k > 0) r["step_overhead_vs_" + o.stages[0]] = dense / med - 1.0;
    out.push_back(r);
  }
  return out;
}

}  // namespace

int main(int argc, char** argv) {
  Options o;
  std::string command = "pconv-bench-train";
  for (int i = 1; i < argc; ++i) command += std::string(" ") + argv[i];
  try {
    pconv::cli::Args args(argc, argv, kUsage);
    while (args.next()) {
      if (args.is("--arch")) {
        o.archs.push_back(args.value());
      } else if (args.is("--batch")) {
        o.batch = args.int_value(1);
      } else if (args.is("--threads")) {
        o.threads = args.int_value(1);
      } else if (args.is("--steps")) {
        o.steps = args.int_value(1);
      } else if (args.is("--windows")) {
        o.windows = args.int_value(1);
      } else if (args.is("--warmup")) {
        o.warmup = args.int_value(1);
      } else if (args.is("--stages")) {
        o.stages.clear();
        const std::string v = args.value();
        for (size_t p = 0; p <= v.size();) {
          const size_t c = std::min(v.find(',', p), v.size());
          o.stages.push_back(v.substr(p, c - p));
          p = c + 1;
        }
        PCONV_CHECK(o.stages[0] == "dense", "--stages must start with dense, got '", v, "'");
      } else if (args.is("--json")) {
        o.json = args.value();
      } else {
        args.unknown();
      }
    }
  } catch (const std::exception& e) {
    std::cerr << "pconv-bench-train: " << e.what() << "\n";
    return 2;
  }
  if (o.archs.empty()) o.archs = {"vgg16_cifar", "resnet20"};
  const std::string commit = pconv::build_commit();
  nlohmann::json all = nlohmann::json::array();
  for (const std::string& arch : o.archs) {
    int fd[2];
    if (pipe(fd) != 0) return 1;
    const pid_t pid = fork();
    if (pid == 0) {
      close(fd[0]);
      std::string text;
      int rc = 0;
      try {
        text = nlohmann::json{{"records", bench(arch, o)}}.dump();
      } catch (const std::exception& e) {
        text = nlohmann::json{{"arch", arch}, {"error", e.what()}}.dump();
        rc = 1;
      }
      if (write(fd[1], text.data(), text.size()) < 0) rc = 1;
      close(fd[1]);
      _exit(rc);
    }
    close(fd[1]);
    std::string text;
    char buf[4096];
    ssize_t n;
    while ((n = read(fd[0], buf, sizeof buf)) > 0) text.append(buf, static_cast<size_t>(n));
    close(fd[0]);
    int status = 0;
    waitpid(pid, &status, 0);
    nlohmann::json r = text.empty() ? nlohmann::json{{"arch", arch}, {"error", "child crashed"}}
                                    : nlohmann::json::parse(text);
    if (r.contains("error")) {
      std::cerr << "pconv-bench-train: " << arch << ": " << r["error"].get<std::string>() << "\n";
      return 1;
    }
    for (nlohmann::json rec : r["records"]) {
      rec["command"] = command;
      rec["commit"] = commit;
      std::printf(
          "%-14s %-8s batch %d threads %d: %.1f images/s (min %.1f, max %.1f over %d windows), "
          "%.1f images per CPU-second, peak RSS %.0f MiB, load %.2f",
          arch.c_str(), rec["stage"].get<std::string>().c_str(), o.batch, o.threads,
          rec["images_per_s"].get<double>(), rec["images_per_s_min"].get<double>(),
          rec["images_per_s_max"].get<double>(), o.windows, rec["images_per_cpu_s"].get<double>(),
          rec["peak_rss_mib"].get<double>(), rec["loadavg_1min"].get<double>());
      for (auto it = rec.begin(); it != rec.end(); ++it)
        if (it.key().rfind("step_overhead_vs_", 0) == 0)
          std::printf(", step overhead %+.1f%%", 100.0 * it.value().get<double>());
      std::printf("\n");
      std::fflush(stdout);
      all.push_back(rec);
    }
  }
  if (!o.json.empty()) {
    std::ofstream f(o.json);
    f << all.dump(2) << "\n";
    if (!f) {
      std::cerr << "pconv-bench-train: cannot write " << o.json << "\n";
      return 1;
    }
  }
  return 0;
}
