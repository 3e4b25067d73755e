// pconv-bench-train: training throughput of the oneDNN executor (forward, loss, backward and an
// SGD momentum + weight decay update per step) on random data, per architecture. Each
// architecture runs in its own child process so its peak RSS is its own.
//
//   pconv-bench-train [--arch resnet20 --arch vgg16_cifar] [--batch 128] [--threads 2]
//                     [--steps 5] [--windows 5] [--warmup 3] [--json out.json]
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
#include <nlohmann/json.hpp>
#include <random>
#include <string>
#include <vector>

#include "core/architectures.h"
#include "train/loss.h"
#include "train/net.h"

namespace {

struct Options {
  std::vector<std::string> archs;
  int batch = 128, threads = 2, steps = 5, windows = 5, warmup = 3;
  std::string json;
};

[[noreturn]] void usage(const std::string& why) {
  std::cerr << "pconv-bench-train: " << why
            << "\nusage: pconv-bench-train [--arch NAME]... [--batch N] [--threads T] [--steps S]"
               " [--windows W] [--warmup K] [--json FILE]\n";
  std::exit(2);
}

// Tiny inline SGD (momentum 0.9, weight decay 5e-4 on every trainable tensor); the real optimizer
// lives in src/train/optimizer.*.
void sgd_step(pconv::ParamMap& params, pconv::ParamMap& grads, pconv::ParamMap& mom, float lr) {
  for (auto& [key, g] : grads) {
    float* w = params.at(key).data();
    float* v = mom.at(key).data();
    const float* d = g.data();
    const int64_t n = g.size();
#pragma omp parallel for schedule(static) if (n > 65536)
    for (int64_t i = 0; i < n; ++i) {
      v[i] = 0.9f * v[i] + d[i] + 5e-4f * w[i];
      w[i] -= lr * v[i];
    }
  }
}

nlohmann::json bench(const std::string& arch, const Options& o) {
  using clock = std::chrono::steady_clock;
  omp_set_num_threads(o.threads);
  pconv::Graph g = pconv::build_architecture(arch, {});
  pconv::ParamMap params = pconv::init_params(g, 1);
  pconv::Net net(g, params);
  pconv::ParamMap mom;
  for (auto& [k, t] : net.grads()) mom.emplace(k, pconv::Tensor(t.shape()));
  const pconv::Shape& is = g.input_shape();
  pconv::Tensor x({o.batch, is[0], is[1], is[2]});
  std::mt19937 rng(7);
  std::normal_distribution<float> nd(0.f, 1.f);
  for (int64_t i = 0; i < x.size(); ++i) x[i] = nd(rng);
  std::vector<int32_t> labels(static_cast<size_t>(o.batch));
  for (auto& l : labels) l = static_cast<int32_t>(rng() % static_cast<unsigned>(g.num_classes()));
  pconv::Tensor dlogits;
  float loss = 0;
  auto step = [&] {
    const pconv::Tensor& y = net.forward(x, true);
    loss = pconv::softmax_cross_entropy(y, labels, 0.f, &dlogits);
    net.backward(dlogits);
    sgd_step(params, net.grads(), mom, 0.01f);
    net.params_changed();
  };
  for (int i = 0; i < o.warmup; ++i) step();
  std::vector<double> rates;
  rusage r0{};
  getrusage(RUSAGE_SELF, &r0);
  for (int w = 0; w < o.windows; ++w) {
    const auto t0 = clock::now();
    for (int i = 0; i < o.steps; ++i) step();
    const double s = std::chrono::duration<double>(clock::now() - t0).count();
    rates.push_back(o.steps * o.batch / s);
  }
  std::vector<double> sorted = rates;
  std::sort(sorted.begin(), sorted.end());
  rusage ru{};
  getrusage(RUSAGE_SELF, &ru);
  // CPU seconds (user + system, all threads) per timed step: with a loaded machine the wall-clock
  // rate mostly measures the other processes; this says what the work itself costs.
  auto secs = [](const timeval& t) {
    return static_cast<double>(t.tv_sec) + 1e-6 * static_cast<double>(t.tv_usec);
  };
  const double cpu = secs(ru.ru_utime) + secs(ru.ru_stime) - secs(r0.ru_utime) - secs(r0.ru_stime);
  const double cpu_per_step = cpu / (o.windows * o.steps);
  double load = -1;
  if (std::FILE* f = std::fopen("/proc/loadavg", "r")) {
    if (std::fscanf(f, "%lf", &load) != 1) load = -1;
    std::fclose(f);
  }
  return {{"arch", arch},
          {"batch", o.batch},
          {"threads", o.threads},
          {"images_per_s", sorted[sorted.size() / 2]},
          {"images_per_s_min", sorted.front()},
          {"images_per_s_max", sorted.back()},
          {"windows", rates},
          {"steps_per_window", o.steps},
          {"last_loss", loss},
          {"cpu_s_per_step", cpu_per_step},
          {"images_per_cpu_s", o.batch / cpu_per_step},
          {"loadavg_1min", load},
          {"peak_rss_mib", static_cast<double>(ru.ru_maxrss) / 1024.0}};
}

std::string git_commit() {
  std::string out;
  if (FILE* f = popen("git rev-parse --short HEAD 2>/dev/null", "r")) {
    char buf[64];
    while (fgets(buf, sizeof buf, f)) out += buf;
    pclose(f);
  }
  while (!out.empty() && (out.back() == '\n' || out.back() == ' ')) out.pop_back();
  return out.empty() ? "unknown" : out;
}

}  // namespace

int main(int argc, char** argv) {
  Options o;
  std::string command = "pconv-bench-train";
  for (int i = 1; i < argc; ++i) command += std::string(" ") + argv[i];
  for (int i = 1; i < argc; ++i) {
    const std::string a = argv[i];
    auto next = [&]() -> std::string {
      if (i + 1 >= argc) usage(a + " needs a value");
      return argv[++i];
    };
    auto num = [&]() {
      const std::string v = next();
      try {
        const int n = std::stoi(v);
        if (n <= 0) throw std::out_of_range("non-positive");
        return n;
      } catch (const std::exception&) {
        usage(a + " needs a positive integer, got '" + v + "'");
      }
    };
    if (a == "--arch")
      o.archs.push_back(next());
    else if (a == "--batch")
      o.batch = num();
    else if (a == "--threads")
      o.threads = num();
    else if (a == "--steps")
      o.steps = num();
    else if (a == "--windows")
      o.windows = num();
    else if (a == "--warmup")
      o.warmup = num();
    else if (a == "--json")
      o.json = next();
    else
      usage("unknown argument '" + a + "'");
  }
  if (o.archs.empty()) o.archs = {"vgg16_cifar", "resnet20"};
  const std::string commit = git_commit();
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
        text = bench(arch, o).dump();
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
    r["command"] = command;
    r["commit"] = commit;
    std::printf(
        "%-14s batch %d threads %d: %.1f images/s (min %.1f, max %.1f over %d windows), "
        "%.1f images per CPU-second, peak RSS %.0f MiB, load %.2f\n",
        arch.c_str(), o.batch, o.threads, r["images_per_s"].get<double>(),
        r["images_per_s_min"].get<double>(), r["images_per_s_max"].get<double>(), o.windows,
        r["images_per_cpu_s"].get<double>(), r["peak_rss_mib"].get<double>(),
        r["loadavg_1min"].get<double>());
    std::fflush(stdout);
    all.push_back(r);
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
