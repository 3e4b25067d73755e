#include "pipeline/report.h"

#include <sys/stat.h>

#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>

#include "admm/inspect.h"
#include "core/error.h"
#include "core/log.h"
#include "core/model_file.h"
#include "data/shell.h"
#include "pipeline/tb_events.h"

#ifndef PCONV_SOURCE_DIR
#define PCONV_SOURCE_DIR "."
#endif

namespace fs = std::filesystem;

namespace pconv {

namespace {

bool imports_matplotlib(const std::string& python) {
  if (python.empty()) return false;
  return data::run_shell(data::shell_quote(python) + " -c 'import matplotlib' >/dev/null 2>&1") ==
         0;
}

// Modification time in nanoseconds, -1 when the file is missing.
long long mtime_ns(const fs::path& p) {
  struct stat st;
  if (stat(p.c_str(), &st) != 0) return -1;
  return static_cast<long long>(st.st_mtim.tv_sec) * 1000000000LL + st.st_mtim.tv_nsec;
}

void write_file_atomic(const fs::path& p, const std::string& text) {
  const fs::path tmp = p.string() + ".tmp";
  {
    std::ofstream f(tmp, std::ios::binary | std::ios::trunc);
    f << text;
    PCONV_CHECK(f.good(), "cannot write ", tmp.string());
  }
  fs::rename(tmp, p);
}

}  // namespace

std::string default_report_script() {
  return (fs::path(PCONV_SOURCE_DIR) / "scripts" / "report.py").string();
}

std::string find_python_with_matplotlib(const std::string& preferred) {
  for (const std::string& p : {preferred, std::string("python3"), std::string("/usr/bin/python3")})
    if (imports_matplotlib(p)) return p;
  return "";
}

ReportResult write_report(const std::string& run_dir, const ReportOptions& opt) {
  ReportResult r;
  auto warn = [&](const std::string& w) {
    log_warn("report: ", w);
    r.warnings.push_back(w);
  };
  const fs::path dir(run_dir);
  if (!fs::is_directory(dir)) {
    warn(cat(run_dir, " is not a folder; no report written"));
    return r;
  }

  if (opt.tensorboard) {
    try {
      tb::EventsExport e = tb::write_run_events(run_dir);
      r.events_path = e.path;
      log_info("report: ", e.scalars, " scalars over ", e.steps, " epochs in ", e.path,
               " (tensorboard --logdir ", (dir / "tb").string(), ")");
    } catch (const std::exception& e) {
      warn(cat("TensorBoard events not written: ", e.what()));
    }
  }

  const fs::path model = dir / "model.h5", inspect_json = dir / "inspect.json";
  if (opt.inspect && fs::exists(model)) {
    if (mtime_ns(inspect_json) >= mtime_ns(model)) {
      r.inspect_json = inspect_json.string();
    } else {
      try {
        const ModelFile m = load_model(model.string());
        const admm::InspectReport rep = admm::inspect(m);
        write_file_atomic(inspect_json, rep.to_json().dump(2) + "\n");
        r.inspect_json = inspect_json.string();
        admm::write_pattern_pngs(m, (dir / "report" / "patterns").string());
        if (!rep.verification.ok())
          warn(cat(model.string(), ": pruning constraints violated (see ", inspect_json.string(),
                   ")"));
      } catch (const std::exception& e) {
        warn(cat("inspect.json not written: ", e.what()));
      }
    }
  } else if (fs::exists(inspect_json)) {
    r.inspect_json = inspect_json.string();
  }

  if (opt.charts) {
    const std::string script = opt.script.empty() ? default_report_script() : opt.script;
    const std::string python = fs::exists(script) ? find_python_with_matplotlib(opt.python) : "";
    if (!fs::exists(script)) {
      warn(cat("report.md not written: ", script, " not found"));
    } else if (python.empty()) {
      warn(cat("report.md not written: no python3 with matplotlib (install python3-matplotlib, ",
               "or pip install matplotlib); then run: python3 ", script, " ", run_dir));
    } else {
      const std::string cmd = cat(data::shell_quote(python), " ", data::shell_quote(script), " ",
                                  data::shell_quote(run_dir), " --quiet");
      const int rc = data::run_shell(cmd);
      if (rc == 0 && fs::exists(dir / "report.md"))
        r.report_md = (dir / "report.md").string();
      else
        warn(cat("report.md not written: `", cmd, "` exited with status ", rc));
    }
  }
  if (!r.report_md.empty()) log_info("report: ", r.report_md);
  return r;
}

}  // namespace pconv
