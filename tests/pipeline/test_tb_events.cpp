// TensorBoard event files: CRC32C vectors, TFRecord framing and Event protobufs read back with a
// decoder written here from the wire format, the run-folder export (steps, tags, re-export), and
// — when the tensorboard Python package is installed — TensorBoard's own EventAccumulator.
#include "pipeline/tb_events.h"

#include <gtest/gtest.h>

#include <cmath>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <map>
#include <nlohmann/json.hpp>
#include <sstream>

#include "core/error.h"
#include "test_report_fixture.h"

namespace fs = std::filesystem;
using namespace pconv;
namespace fx = pconv::report_test;

namespace {

// ---- a minimal reader, independent of the writer's encoder ----

uint32_t crc32c_bitwise(const std::string& s) {
  uint32_t c = 0xFFFFFFFFu;
  for (unsigned char b : s) {
    c ^= b;
    for (int k = 0; k < 8; ++k) c = (c >> 1) ^ (0x82F63B78u & (0u - (c & 1u)));
  }
  return ~c;
}

uint32_t masked(uint32_t c) {
  return ((c >> 15) | (c << 17)) + 0xa282ead8u;
}

uint64_t le(const std::string& s, size_t at, int bytes) {
  uint64_t v = 0;
  for (int i = 0; i < bytes; ++i)
    v |= uint64_t(static_cast<unsigned char>(s.at(at + i))) << (8 * i);
  return v;
}

// Splits a TFRecord file into records, checking both CRCs of each.
std::vector<std::string> read_records(const std::string& path) {
  std::ifstream f(path, std::ios::binary);
  std::stringstream ss;
  ss << f.rdbuf();
  const std::string s = ss.str();
  std::vector<std::string> out;
  size_t at = 0;
  while (at < s.size()) {
    EXPECT_LE(at + 12, s.size()) << "truncated header at " << at;
    const uint64_t n = le(s, at, 8);
    EXPECT_EQ(le(s, at + 8, 4), masked(crc32c_bitwise(s.substr(at, 8)))) << "length crc at " << at;
    const std::string data = s.substr(at + 12, n);
    EXPECT_EQ(le(s, at + 12 + n, 4), masked(crc32c_bitwise(data))) << "data crc at " << at;
    out.push_back(data);
    at += 12 + n + 4;
  }
  EXPECT_EQ(at, s.size());
  return out;
}

struct Field {
  uint64_t num = 0;   // varint / fixed value
  std::string bytes;  // length-delimited
  int wire = 0;
};

uint64_t varint(const std::string& s, size_t& at) {
  uint64_t v = 0;
  for (int shift = 0;; shift += 7) {
    const unsigned char b = static_cast<unsigned char>(s.at(at++));
    v |= uint64_t(b & 0x7F) << shift;
    if (!(b & 0x80)) return v;
  }
}

std::multimap<int, Field> fields(const std::string& s) {
  std::multimap<int, Field> out;
  size_t at = 0;
  while (at < s.size()) {
    const uint64_t key = varint(s, at);
    Field f;
    f.wire = int(key & 7);
    if (f.wire == 0) {
      f.num = varint(s, at);
    } else if (f.wire == 1) {
      f.num = le(s, at, 8), at += 8;
    } else if (f.wire == 5) {
      f.num = le(s, at, 4), at += 4;
    } else if (f.wire == 2) {
      const uint64_t n = varint(s, at);
      f.bytes = s.substr(at, n), at += n;
    } else {
      ADD_FAILURE() << "wire type " << f.wire;
      break;
    }
    out.emplace(int(key >> 3), f);
  }
  return out;
}

struct Event {
  double wall_time = 0;
  int64_t step = 0;
  std::string file_version;
  std::vector<std::pair<std::string, float>> values;
};

Event decode_event(const std::string& s) {
  Event e;
  for (const auto& [num, f] : fields(s)) {
    if (num == 1) {
      EXPECT_EQ(f.wire, 1);
      std::memcpy(&e.wall_time, &f.num, 8);
    } else if (num == 2) {
      EXPECT_EQ(f.wire, 0);
      e.step = static_cast<int64_t>(f.num);
    } else if (num == 3) {
      e.file_version = f.bytes;
    } else if (num == 5) {
      for (const auto& [vn, vf] : fields(f.bytes)) {
        EXPECT_EQ(vn, 1);
        std::string tag;
        float value = NAN;
        for (const auto& [k, x] : fields(vf.bytes)) {
          if (k == 1) tag = x.bytes;
          if (k == 2) {
            EXPECT_EQ(x.wire, 5);
            const uint32_t bits = static_cast<uint32_t>(x.num);
            std::memcpy(&value, &bits, 4);
          }
        }
        e.values.emplace_back(tag, value);
      }
    } else {
      ADD_FAILURE() << "unexpected Event field " << num;
    }
  }
  return e;
}

std::vector<std::string> event_files(const fs::path& dir) {
  std::vector<std::string> out;
  for (const auto& e : fs::directory_iterator(dir))
    if (e.path().filename().string().rfind("events.out.tfevents.", 0) == 0)
      out.push_back(e.path().string());
  return out;
}

}  // namespace

TEST(Crc32c, KnownVectors) {
  EXPECT_EQ(tb::crc32c("123456789", 9), 0xE3069283u);
  // RFC 3720 (iSCSI) B.4 vectors.
  const std::string zeros(32, '\0'), ones(32, '\xff');
  EXPECT_EQ(tb::crc32c(zeros.data(), zeros.size()), 0x8A9136AAu);
  EXPECT_EQ(tb::crc32c(ones.data(), ones.size()), 0x62A8AB43u);
  std::string inc;
  for (int i = 0; i < 32; ++i) inc.push_back(static_cast<char>(i));
  EXPECT_EQ(tb::crc32c(inc.data(), inc.size()), 0x46DD794Eu);
  EXPECT_EQ(tb::crc32c("", 0), 0u);
}

TEST(Crc32c, ContinuesAcrossChunksAndMasks) {
  const std::string s = "The quick brown fox jumps over the lazy dog";
  const uint32_t whole = tb::crc32c(s.data(), s.size());
  EXPECT_EQ(tb::crc32c(s.data() + 10, s.size() - 10, tb::crc32c(s.data(), 10)), whole);
  EXPECT_EQ(whole, crc32c_bitwise(s));
  EXPECT_EQ(tb::masked_crc32c(s.data(), s.size()), masked(whole));
  // The mask is a rotation right by 15 plus a constant: 0 maps to the constant.
  EXPECT_EQ(tb::mask_crc(0), 0xa282ead8u);
  EXPECT_EQ(tb::mask_crc(1u << 15), 1u + 0xa282ead8u);
}

TEST(TfRecord, FramesLengthAndBothCrcs) {
  const std::string r = tb::frame_record("abc");
  ASSERT_EQ(r.size(), 8u + 4 + 3 + 4);
  EXPECT_EQ(le(r, 0, 8), 3u);
  EXPECT_EQ(le(r, 8, 4), masked(crc32c_bitwise(r.substr(0, 8))));
  EXPECT_EQ(r.substr(12, 3), "abc");
  EXPECT_EQ(le(r, 15, 4), masked(crc32c_bitwise("abc")));
}

TEST(EventProto, ScalarAndVersionDecode) {
  Event v = decode_event(tb::encode_file_version_event(1234.5));
  EXPECT_EQ(v.file_version, "brain.Event:2");
  EXPECT_DOUBLE_EQ(v.wall_time, 1234.5);
  EXPECT_TRUE(v.values.empty());

  Event e =
      decode_event(tb::encode_scalar_event(1.7e9 + 0.25, 300, "admm/residual/layer1.0", 0.125f));
  EXPECT_DOUBLE_EQ(e.wall_time, 1.7e9 + 0.25);
  EXPECT_EQ(e.step, 300);  // 300 needs a two-byte varint
  ASSERT_EQ(e.values.size(), 1u);
  EXPECT_EQ(e.values[0].first, "admm/residual/layer1.0");
  EXPECT_EQ(e.values[0].second, 0.125f);

  EXPECT_EQ(decode_event(tb::encode_scalar_event(0, -5, "neg", 1.f)).step, -5);  // 10-byte varint
  EXPECT_EQ(decode_event(tb::encode_scalar_event(0, int64_t(1) << 40, "big", 1.f)).step, int64_t(1)
                                                                                             << 40);
  const std::string long_tag(200, 'x');  // length > 127: two-byte length prefixes
  EXPECT_EQ(decode_event(tb::encode_scalar_event(0, 1, long_tag, 2.f)).values.at(0).first,
            long_tag);
}

TEST(EventWriter, RoundTripsEveryScalar) {
  const std::string dir = fx::scratch_dir("writer") + "/tb";
  std::string path;
  {
    tb::EventWriter w(dir);
    path = w.path();
    EXPECT_EQ(fs::path(path).parent_path(), fs::path(dir));
    EXPECT_EQ(fs::path(path).filename().string().rfind("events.out.tfevents.", 0), 0u);
    for (int i = 0; i < 50; ++i) w.scalar(i % 2 ? "a/odd" : "b", i, 0.5f * i, 100.0 + i);
    w.scalar("now", 51, 3.f);  // wall time = now
    w.flush();
    EXPECT_EQ(w.records(), 51);
  }
  const std::vector<std::string> recs = read_records(path);
  ASSERT_EQ(recs.size(), 52u);
  const Event first = decode_event(recs[0]);
  EXPECT_EQ(first.file_version, "brain.Event:2");
  EXPECT_GT(first.wall_time, 1.5e9);
  for (int i = 0; i < 50; ++i) {
    const Event e = decode_event(recs[i + 1]);
    EXPECT_EQ(e.step, i);
    EXPECT_DOUBLE_EQ(e.wall_time, 100.0 + i);
    ASSERT_EQ(e.values.size(), 1u);
    EXPECT_EQ(e.values[0].first, i % 2 ? "a/odd" : "b");
    EXPECT_EQ(e.values[0].second, 0.5f * i);
  }
  EXPECT_NEAR(decode_event(recs[51]).wall_time, first.wall_time, 60.0);
}

TEST(EventWriter, TwoWritersInOneFolderGetTwoFiles) {
  const std::string dir = fx::scratch_dir("two");
  tb::EventWriter a(dir), b(dir);
  EXPECT_NE(a.path(), b.path());
}

TEST(RunEvents, StageOrderFromSummaryThenIndex) {
  const std::string dir = fx::scratch_dir("order");
  for (const char* s : {"10-retrain", "2-admm", "1-pretrain", "dense"})
    fx::write_text(fs::path(dir) / s / "metrics.jsonl", "");
  fs::create_directories(fs::path(dir) / "3-empty");  // no metrics.jsonl: not a stage
  EXPECT_EQ(tb::stage_dirs_in_order(dir),
            (std::vector<std::string>{"1-pretrain", "2-admm", "10-retrain", "dense"}));
  fx::write_text(fs::path(dir) / "summary.json",
                 R"({"stages": [{"name": "dense"}, {"name": "2-admm"}, {"name": "gone"}]})");
  EXPECT_EQ(tb::stage_dirs_in_order(dir),
            (std::vector<std::string>{"dense", "2-admm", "1-pretrain", "10-retrain"}));
}

TEST(RunEvents, GlobalStepsAndTags) {
  const std::string dir = fx::scratch_dir("scalars");
  fx::write_synthetic_run(dir);
  std::map<std::string, std::map<int64_t, double>> by_tag;
  for (const tb::ScalarPoint& p : tb::run_scalars(dir)) {
    EXPECT_EQ(by_tag[p.tag].count(p.step), 0u) << p.tag << " twice at step " << p.step;
    by_tag[p.tag][p.step] = p.value;
  }
  auto steps = [&](const std::string& tag) {
    std::vector<int64_t> s;
    for (const auto& kv : by_tag[tag]) s.push_back(kv.first);
    return s;
  };
  EXPECT_EQ(steps("pretrain/test_top1"), (std::vector<int64_t>{1, 2, 3}));
  EXPECT_EQ(steps("admm/rho"), (std::vector<int64_t>{4, 5, 6}));
  EXPECT_EQ(steps("prune/test_top1"), (std::vector<int64_t>{7}));
  EXPECT_EQ(steps("retrain/test_top1"), (std::vector<int64_t>{8, 9}));
  EXPECT_EQ(steps("run/test_top1"), (std::vector<int64_t>{1, 2, 3, 4, 5, 6, 7, 8, 9}));
  EXPECT_EQ(steps("lr"), (std::vector<int64_t>{1, 2, 3, 4, 5, 6, 8, 9}));  // prune has no lr
  EXPECT_EQ(steps("run/train_loss").size(), 8u);
  EXPECT_DOUBLE_EQ(by_tag["pretrain/test_top1"][2], 0.7);
  EXPECT_DOUBLE_EQ(by_tag["prune/test_top1"][7], 0.61);
  EXPECT_DOUBLE_EQ(by_tag["retrain/test_top1"][9], 0.78);
  for (int e = 1; e <= 3; ++e) {
    EXPECT_DOUBLE_EQ(by_tag["admm/residual/conv2"][3 + e], fx::synthetic_residual(0, e));
    EXPECT_DOUBLE_EQ(by_tag["admm/residual/conv3"][3 + e], fx::synthetic_residual(1, e));
    EXPECT_DOUBLE_EQ(by_tag["admm/changed/conv2"][3 + e], 0.1 / e);
    EXPECT_DOUBLE_EQ(by_tag["admm/rho"][3 + e], 1e-3 * e);
    EXPECT_DOUBLE_EQ(by_tag["admm/z_updates"][3 + e], e);
    EXPECT_DOUBLE_EQ(by_tag["admm/penalty"][3 + e], 0.3 / e);
  }
  EXPECT_DOUBLE_EQ(by_tag["admm/residual_max"][4], 0.8);
  EXPECT_EQ(by_tag.count("pretrain/penalty"), 0u);
}

TEST(RunEvents, SkipsBadLinesAndNulls) {
  const std::string dir = fx::scratch_dir("bad");
  fx::write_text(fs::path(dir) / "1-pretrain" / "metrics.jsonl",
                 "{\"stage\":\"pretrain\",\"epoch\":1,\"test_top1\":0.5}\n"
                 "{not json\n"
                 "\n"
                 "{\"stage\":\"pretrain\",\"epoch\":2,\"test_top1\":null,\"lr\":0.1}\n");
  std::vector<std::string> tags;
  for (const tb::ScalarPoint& p : tb::run_scalars(dir))
    tags.push_back(p.tag + "@" + std::to_string(p.step));
  EXPECT_EQ(tags, (std::vector<std::string>{"pretrain/test_top1@1", "run/test_top1@1", "lr@2"}));
}

TEST(RunEvents, WritesOneFileUnderTbAndReplacesItOnRerun) {
  const std::string dir = fx::scratch_dir("export");
  fx::write_synthetic_run(dir);
  const fs::path tbdir = fs::path(dir) / "tb";
  fx::write_text(tbdir / "notes.txt", "kept");
  tb::EventsExport a = tb::write_run_events(dir);
  EXPECT_EQ(a.steps, 9);
  EXPECT_EQ(a.scalars, static_cast<int64_t>(tb::run_scalars(dir).size()));
  std::vector<std::string> recs = read_records(a.path);
  ASSERT_EQ(recs.size(), size_t(a.scalars) + 1);
  EXPECT_EQ(decode_event(recs[0]).file_version, "brain.Event:2");
  // Wall times: config.json's mtime + cumulative (train + eval) seconds: 11 s per trained epoch.
  double prev = 0;
  int n_top1 = 0;
  for (size_t i = 1; i < recs.size(); ++i) {
    const Event e = decode_event(recs[i]);
    EXPECT_GE(e.wall_time, prev);
    prev = e.wall_time;
    if (e.values.at(0).first == "pretrain/test_top1") ++n_top1;
  }
  EXPECT_EQ(n_top1, 3);
  const Event last = decode_event(recs.back());
  const Event first = decode_event(recs[1]);
  EXPECT_NEAR(last.wall_time - first.wall_time, 11.0 * 7,
              1e-3);  // 8 trained epochs, 7 after the first

  tb::EventsExport b = tb::write_run_events(dir);
  EXPECT_EQ(event_files(tbdir), std::vector<std::string>{b.path});
  EXPECT_TRUE(fs::exists(tbdir / "notes.txt"));
  EXPECT_EQ(b.scalars, a.scalars);
}

TEST(RunEvents, NoMetricsIsAnError) {
  const std::string dir = fx::scratch_dir("empty");
  EXPECT_THROW(tb::write_run_events(dir), Error);
}

// TensorBoard's own reader (EventAccumulator, as `tensorboard --logdir` uses), when installed.
TEST(RunEvents, TensorBoardReadsTheExport) {
  if (std::system("python3 -c 'import tensorboard' >/dev/null 2>&1") != 0)
    GTEST_SKIP() << "the tensorboard Python package is not installed (pip install tensorboard)";
  const std::string dir = fx::scratch_dir("tensorboard");
  fx::write_synthetic_run(dir);
  tb::write_run_events(dir);
  const std::string py = dir + "/read.py", out = dir + "/read.json";
  fx::write_text(py, R"(import json, sys
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
acc = EventAccumulator(sys.argv[1], size_guidance={"scalars": 0})
acc.Reload()
res = {t: [[e.step, e.value] for e in acc.Scalars(t)] for t in acc.Tags()["scalars"]}
json.dump(res, open(sys.argv[2], "w"))
)");
  const std::string cmd =
      "python3 '" + py + "' '" + dir + "/tb' '" + out + "' >'" + dir + "/read.log' 2>&1";
  ASSERT_EQ(std::system(cmd.c_str()), 0) << cmd;
  std::ifstream f(out);
  const nlohmann::json j = nlohmann::json::parse(f);
  std::map<std::string, std::vector<std::pair<int64_t, double>>> expected;
  for (const tb::ScalarPoint& p : tb::run_scalars(dir))
    expected[p.tag].emplace_back(p.step, static_cast<float>(p.value));
  ASSERT_EQ(j.size(), expected.size());
  for (const auto& [tag, pts] : expected) {
    ASSERT_TRUE(j.contains(tag)) << tag;
    ASSERT_EQ(j[tag].size(), pts.size()) << tag;
    for (size_t i = 0; i < pts.size(); ++i) {
      EXPECT_EQ(j[tag][i][0].get<int64_t>(), pts[i].first) << tag;
      EXPECT_FLOAT_EQ(j[tag][i][1].get<float>(), static_cast<float>(pts[i].second)) << tag;
    }
  }
  EXPECT_EQ(j["admm/residual/conv3"].size(), 3u);
  EXPECT_FLOAT_EQ(j["retrain/test_top1"][1][1].get<float>(), 0.78f);
}
