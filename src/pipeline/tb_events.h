// TensorBoard event files without TensorFlow or protobuf: TFRecord framing around hand-encoded
// `Event` protobufs holding scalar summaries, and the export of a run folder's metrics.jsonl files
// into runs/<name>/tb/ (docs/reports.md).
//
// Record framing (TFRecord): uint64 length (little endian), uint32 masked CRC32C of those 8 bytes,
// `length` bytes of data, uint32 masked CRC32C of the data; mask(c) = ((c >> 15) | (c << 17)) +
// 0xa282ead8. Event fields written: wall_time (double, 1), step (int64, 2), file_version (string,
// 3; first record "brain.Event:2"), summary (Summary, 5) = {repeated Value value = 1}, Value =
// {tag string = 1, simple_value float = 2}.
#pragma once

#include <cstddef>
#include <cstdint>
#include <fstream>
#include <string>
#include <vector>

namespace pconv::tb {

// CRC-32C (Castagnoli, reflected polynomial 0x82F63B78), as TFRecord uses. `crc` continues a
// previous value (0 to start). crc32c("123456789") == 0xE3069283.
uint32_t crc32c(const void* data, size_t n, uint32_t crc = 0);
uint32_t mask_crc(uint32_t crc);
uint32_t masked_crc32c(const void* data, size_t n);

// One TFRecord: length, masked CRC of the length, data, masked CRC of the data.
std::string frame_record(const std::string& data);

// Serialised Event protobufs.
std::string encode_file_version_event(double wall_time);  // file_version "brain.Event:2"
std::string encode_scalar_event(double wall_time, int64_t step, const std::string& tag,
                                float value);

// Appends scalar events to a new file `<dir>/events.out.tfevents.<unix time>.<host>.<pid>.<n>`
// (created with `dir`; its first record is the file_version event). Throws pconv::Error when the
// file cannot be written.
class EventWriter {
 public:
  explicit EventWriter(const std::string& dir);
  ~EventWriter();
  EventWriter(const EventWriter&) = delete;
  EventWriter& operator=(const EventWriter&) = delete;

  // wall_time < 0: the current time.
  void scalar(const std::string& tag, int64_t step, float value, double wall_time = -1);
  void flush();
  const std::string& path() const { return path_; }
  int64_t records() const { return records_; }  // scalar events written (not the version record)

 private:
  void write(const std::string& event);
  std::string path_;
  std::ofstream out_;
  int64_t records_ = 0;
};

// One point of the export, in the order written.
struct ScalarPoint {
  std::string tag;
  int64_t step = 0;
  double value = 0;
};

// The run's stage folders (holding metrics.jsonl) in run order: the order of summary.json's
// "stages" where it lists them, then the others by their leading "<index>-" number, then name.
std::vector<std::string> stage_dirs_in_order(const std::string& run_dir);

// The scalars of a run's metrics, without writing anything. Global step = cumulative epoch across
// stages: a record of epoch e in a stage that follows stages spanning S epochs in all has step
// S + max(e, 1) (the prune stage's single epoch-0 record takes one step); a stage spans
// max(1, its largest epoch). Tags:
//   "lr"                                   every record with lr
//   "<stage>/<key>"                        train_loss, train_top1, test_loss, test_top1,
//                                          test_top5, images_per_s, penalty (stage = the record's
//                                          "stage" field, else the folder name)
//   "run/<key>"                            train_loss, train_top1, test_loss, test_top1 across
//                                          all stages, to see the whole run on one chart
//   "admm/rho", "admm/residual_max", "admm/z_updates",
//   "admm/residual/<layer>", "admm/changed/<layer>"   ADMM records
std::vector<ScalarPoint> run_scalars(const std::string& run_dir);

struct EventsExport {
  std::string path;     // the event file written
  int64_t scalars = 0;  // scalar events in it
  int64_t steps = 0;    // largest global step
};

// Writes run_scalars(run_dir) into a new event file under <run_dir>/tb/, after removing the
// event files (events.out.tfevents.*) an earlier export left there, so re-running it never
// duplicates points. Wall times: config.json's modification time plus the cumulative
// train_seconds + eval_seconds of the records, so TensorBoard's "relative" axis shows training
// time. Throws pconv::Error when the run folder holds no metrics.jsonl.
EventsExport write_run_events(const std::string& run_dir);

}  // namespace pconv::tb
