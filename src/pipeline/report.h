// The report of a finished (or running) run folder (docs/reports.md): TensorBoard event files in
// <run>/tb/, <run>/inspect.json + pattern PNGs from model.h5, and <run>/report.md with charts in
// <run>/report/ drawn by scripts/report.py (python3 + matplotlib). run_pipeline's caller invokes
// write_report at the end of a run; each part that cannot be made is skipped with a warning, and
// write_report never throws, so a report problem never fails a training run.
#pragma once

#include <string>
#include <vector>

namespace pconv {

struct ReportOptions {
  bool tensorboard = true;  // <run>/tb/events.out.tfevents.*
  bool inspect = true;      // <run>/inspect.json and <run>/report/patterns/*.png from model.h5
  bool charts = true;       // run scripts/report.py -> <run>/report.md, <run>/report/*.png
  std::string python;       // interpreter; "" = the first of python3, /usr/bin/python3 that
                            // imports matplotlib
  std::string script;       // "" = <source dir>/scripts/report.py
};

struct ReportResult {
  std::string events_path;            // "" when no event file was written
  std::string inspect_json;           // "" when none was written or found
  std::string report_md;              // "" when the script did not run or failed
  std::vector<std::string> warnings;  // each also logged
};

// The default: TensorBoard events, inspect.json (when model.h5 exists and inspect.json is absent
// or older than it), then report.md when python3 with matplotlib is found.
ReportResult write_report(const std::string& run_dir, const ReportOptions& opt = {});

// The interpreter write_report would use: `preferred` if it imports matplotlib, else python3,
// else /usr/bin/python3; "" when none does.
std::string find_python_with_matplotlib(const std::string& preferred = "");

// <source dir>/scripts/report.py (the source tree this library was built from).
std::string default_report_script();

}  // namespace pconv
