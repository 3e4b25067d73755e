#include "pipeline/tb_events.h"

#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <atomic>
#include <chrono>
#include <cstring>
#include <filesystem>
#include <limits>
#include <map>
#include <nlohmann/json.hpp>

#include "core/error.h"
#include "core/log.h"

namespace fs = std::filesystem;
using nlohmann::json;

namespace pconv::tb {

namespace {

std::array<uint32_t, 256> make_crc_table() {
  std::array<uint32_t, 256> t{};
  for (uint32_t i = 0; i < 256; ++i) {
    uint32_t c = i;
    for (int k = 0; k < 8; ++k) c = (c & 1) ? (c >> 1) ^ 0x82F63B78u : c >> 1;
    t[i] = c;
  }
  return t;
}

void put_varint(std::string& s, uint64_t v) {
  while (v >= 0x80) {
    s.push_back(static_cast<char>((v & 0x7F) | 0x80));
    v >>= 7;
  }
  s.push_back(static_cast<char>(v));
}

void put_fixed32(std::string& s, uint32_t v) {
  for (int i = 0; i < 4; ++i) s.push_back(static_cast<char>((v >> (8 * i)) & 0xFF));
}

void put_fixed64(std::string& s, uint64_t v) {
  for (int i = 0; i < 8; ++i) s.push_back(static_cast<char>((v >> (8 * i)) & 0xFF));
}

// Field key: (number << 3) | wire type (0 varint, 1 fixed64, 2 length-delimited, 5 fixed32).
void put_key(std::string& s, uint32_t field, uint32_t wire) {
  put_varint(s, (field << 3) | wire);
}

void put_bytes(std::string& s, uint32_t field, const std::string& b) {
  put_key(s, field, 2);
  put_varint(s, b.size());
  s += b;
}

std::string event_head(double wall_time, int64_t step) {
  std::string e;
  uint64_t bits;
  std::memcpy(&bits, &wall_time, sizeof bits);
  put_key(e, 1, 1);
  put_fixed64(e, bits);
  if (step != 0) {  // proto3 default: omitted when 0
    put_key(e, 2, 0);
    put_varint(e, static_cast<uint64_t>(step));
  }
  return e;
}

double now_seconds() {
  using namespace std::chrono;
  return duration<double>(system_clock::now().time_since_epoch()).count();
}

std::string host_name() {
  char buf[256] = {0};
  if (gethostname(buf, sizeof buf - 1) != 0 || buf[0] == 0) return "localhost";
  return buf;
}

// Leading "<n>-" of a stage folder name, or a large number when there is none.
long leading_index(const std::string& name) {
  size_t i = 0;
  while (i < name.size() && name[i] >= '0' && name[i] <= '9') ++i;
  if (i == 0 || i >= name.size() || name[i] != '-') return std::numeric_limits<long>::max();
  return std::stol(name.substr(0, i));
}

std::vector<json> read_jsonl(const fs::path& p) {
  std::vector<json> out;
  std::ifstream f(p);
  std::string line;
  int n = 0;
  while (std::getline(f, line)) {
    ++n;
    if (line.find_first_not_of(" \t\r") == std::string::npos) continue;
    try {
      json j = json::parse(line);
      if (j.is_object()) out.push_back(std::move(j));
    } catch (const json::exception& e) {
      log_warn(p.string(), ":", n, ": skipped an unreadable metrics line (", e.what(), ")");
    }
  }
  return out;
}

bool number_at(const json& j, const char* key, double* v) {
  auto it = j.find(key);
  if (it == j.end() || !it->is_number()) return false;
  *v = it->get<double>();
  return true;
}

double mtime_or_now(const fs::path& p) {
  struct stat st;
  if (stat(p.c_str(), &st) == 0)
    return static_cast<double>(st.st_mtim.tv_sec) + 1e-9 * static_cast<double>(st.st_mtim.tv_nsec);
  return now_seconds();
}

// run_scalars plus the wall time of each point.
struct TimedPoint {
  ScalarPoint p;
  double seconds = 0;  // cumulative training + evaluation seconds at this point
};

std::vector<TimedPoint> collect(const std::string& run_dir) {
  std::vector<TimedPoint> pts;
  int64_t offset = 0;
  double seconds = 0;
  for (const std::string& sd : stage_dirs_in_order(run_dir)) {
    const fs::path dir = fs::path(run_dir) / sd;
    int64_t span = 0;
    for (const json& r : read_jsonl(dir / "metrics.jsonl")) {
      double e = 0;
      number_at(r, "epoch", &e);
      const int64_t epoch = std::max<int64_t>(1, static_cast<int64_t>(e));
      span = std::max(span, epoch);
      const int64_t step = offset + epoch;
      double t = 0;
      if (number_at(r, "train_seconds", &t)) seconds += t;
      if (number_at(r, "eval_seconds", &t)) seconds += t;
      auto add = [&](const std::string& tag, double v) {
        pts.push_back({ScalarPoint{tag, step, v}, seconds});
      };
      const std::string stage =
          r.contains("stage") && r["stage"].is_string() ? r["stage"].get<std::string>() : sd;
      double v = 0;
      if (number_at(r, "lr", &v)) add("lr", v);
      for (const char* k : {"train_loss", "train_top1", "test_loss", "test_top1", "test_top5",
                            "images_per_s", "penalty"})
        if (number_at(r, k, &v)) add(stage + "/" + k, v);
      for (const char* k : {"train_loss", "train_top1", "test_loss", "test_top1"})
        if (number_at(r, k, &v)) add(std::string("run/") + k, v);
      auto a = r.find("admm");
      if (a != r.end() && a->is_object()) {
        for (const char* k : {"rho", "residual_max", "z_updates"})
          if (number_at(*a, k, &v)) add(std::string("admm/") + k, v);
        auto layers = a->find("layers");
        if (layers != a->end() && layers->is_object())
          for (auto it = layers->begin(); it != layers->end(); ++it) {
            if (number_at(it.value(), "residual", &v)) add("admm/residual/" + it.key(), v);
            if (number_at(it.value(), "changed", &v)) add("admm/changed/" + it.key(), v);
          }
      }
    }
    offset += std::max<int64_t>(1, span);
  }
  return pts;
}

}  // namespace

uint32_t crc32c(const void* data, size_t n, uint32_t crc) {
  static const std::array<uint32_t, 256> table = make_crc_table();
  const auto* p = static_cast<const unsigned char*>(data);
  crc = ~crc;
  for (size_t i = 0; i < n; ++i) crc = table[(crc ^ p[i]) & 0xFF] ^ (crc >> 8);
  return ~crc;
}

uint32_t mask_crc(uint32_t crc) {
  return ((crc >> 15) | (crc << 17)) + 0xa282ead8u;
}

uint32_t masked_crc32c(const void* data, size_t n) {
  return mask_crc(crc32c(data, n));
}

std::string frame_record(const std::string& data) {
  std::string len;
  put_fixed64(len, data.size());
  std::string r = len;
  put_fixed32(r, masked_crc32c(len.data(), len.size()));
  r += data;
  put_fixed32(r, masked_crc32c(data.data(), data.size()));
  return r;
}

std::string encode_file_version_event(double wall_time) {
  std::string e = event_head(wall_time, 0);
  put_bytes(e, 3, "brain.Event:2");
  return e;
}

std::string encode_scalar_event(double wall_time, int64_t step, const std::string& tag,
                                float value) {
  std::string v;
  put_bytes(v, 1, tag);
  uint32_t bits;
  std::memcpy(&bits, &value, sizeof bits);
  put_key(v, 2, 5);
  put_fixed32(v, bits);
  std::string summary;
  put_bytes(summary, 1, v);
  std::string e = event_head(wall_time, step);
  put_bytes(e, 5, summary);
  return e;
}

EventWriter::EventWriter(const std::string& dir) {
  static std::atomic<int> counter{0};
  std::error_code ec;
  fs::create_directories(dir, ec);
  PCONV_CHECK(!ec, "cannot create ", dir, ": ", ec.message());
  const double now = now_seconds();
  path_ = (fs::path(dir) / cat("events.out.tfevents.", static_cast<int64_t>(now), ".", host_name(),
                               ".", getpid(), ".", counter++))
              .string();
  out_.open(path_, std::ios::binary | std::ios::trunc);
  PCONV_CHECK(out_.good(), "cannot write ", path_);
  write(encode_file_version_event(now));
}

EventWriter::~EventWriter() {
  if (out_.is_open()) out_.flush();
}

void EventWriter::write(const std::string& event) {
  const std::string r = frame_record(event);
  out_.write(r.data(), static_cast<std::streamsize>(r.size()));
  PCONV_CHECK(out_.good(), "cannot write ", path_);
}

void EventWriter::scalar(const std::string& tag, int64_t step, float value, double wall_time) {
  write(encode_scalar_event(wall_time < 0 ? now_seconds() : wall_time, step, tag, value));
  ++records_;
}

void EventWriter::flush() {
  out_.flush();
  PCONV_CHECK(out_.good(), "cannot write ", path_);
}

std::vector<std::string> stage_dirs_in_order(const std::string& run_dir) {
  std::vector<std::string> found;
  std::error_code ec;
  for (const fs::directory_entry& e : fs::directory_iterator(run_dir, ec))
    if (e.is_directory() && fs::exists(e.path() / "metrics.jsonl"))
      found.push_back(e.path().filename().string());
  std::vector<std::string> out;
  const fs::path summary = fs::path(run_dir) / "summary.json";
  if (fs::exists(summary)) {
    try {
      std::ifstream f(summary);
      json s = json::parse(f);
      if (s.contains("stages") && s["stages"].is_array())
        for (const json& st : s["stages"]) {
          if (!st.is_object() || !st.contains("name") || !st["name"].is_string()) continue;
          const std::string n = st["name"].get<std::string>();
          auto it = std::find(found.begin(), found.end(), n);
          if (it != found.end()) {
            out.push_back(n);
            found.erase(it);
          }
        }
    } catch (const json::exception& e) {
      log_warn(summary.string(), ": unreadable (", e.what(), "); stages ordered by folder name");
    }
  }
  std::sort(found.begin(), found.end(), [](const std::string& a, const std::string& b) {
    const long ia = leading_index(a), ib = leading_index(b);
    return ia != ib ? ia < ib : a < b;
  });
  out.insert(out.end(), found.begin(), found.end());
  return out;
}

std::vector<ScalarPoint> run_scalars(const std::string& run_dir) {
  std::vector<ScalarPoint> out;
  for (TimedPoint& t : collect(run_dir)) out.push_back(std::move(t.p));
  return out;
}

EventsExport write_run_events(const std::string& run_dir) {
  PCONV_CHECK(!stage_dirs_in_order(run_dir).empty(), run_dir,
              ": no stage folder with a metrics.jsonl (is it a pconv run folder?)");
  const std::vector<TimedPoint> pts = collect(run_dir);
  const fs::path tb = fs::path(run_dir) / "tb";
  std::error_code ec;
  for (const fs::directory_entry& e : fs::directory_iterator(tb, ec))
    if (e.is_regular_file() && e.path().filename().string().rfind("events.out.tfevents.", 0) == 0)
      fs::remove(e.path());
  const double t0 = mtime_or_now(fs::path(run_dir) / "config.json");
  EventWriter w(tb.string());
  EventsExport r;
  for (const TimedPoint& t : pts) {
    w.scalar(t.p.tag, t.p.step, static_cast<float>(t.p.value), t0 + t.seconds);
    r.steps = std::max(r.steps, t.p.step);
  }
  w.flush();
  r.path = w.path();
  r.scalars = w.records();
  return r;
}

}  // namespace pconv::tb
