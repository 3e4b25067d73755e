// Batches prepared by background worker threads while the caller computes. Sample order and
// augmentation are pure functions of (seed, epoch, position in the epoch), so any worker count
// gives bit-identical batches and an epoch can resume at any batch.
#pragma once

#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <exception>
#include <mutex>
#include <thread>
#include <vector>

#include "core/tensor.h"
#include "data/dataset.h"

namespace pconv::data {

struct Batch {
  Tensor images;                // {N, C, H, W}, normalised
  std::vector<int32_t> labels;  // N
  int size() const { return static_cast<int>(labels.size()); }
};

struct LoaderOptions {
  int batch_size = 128;
  bool shuffle = true;
  bool augment = true;    // applied only where the data set augments (train split, config augment)
  bool drop_last = true;  // false: the last batch of the epoch may be smaller
  uint64_t seed = 0;
  int workers = 1;   // background threads; each prepares whole batches
  int prefetch = 3;  // batches prepared ahead (bounded queue)
};

class BatchLoader {
 public:
  // `ds` must outlive the loader. Throws when batch_size exceeds the data set with drop_last.
  BatchLoader(const Dataset& ds, const LoaderOptions& opt);
  ~BatchLoader();  // stops the workers, abandoning any half-made batch
  BatchLoader(const BatchLoader&) = delete;
  BatchLoader& operator=(const BatchLoader&) = delete;

  int batches_per_epoch() const { return batches_; }
  const Dataset& dataset() const { return ds_; }
  const LoaderOptions& options() const { return opt_; }

  // Begins `epoch` at batch `first_batch` (0 .. batches_per_epoch()); discards what was prefetched.
  void start_epoch(int epoch, int first_batch = 0);
  // The next batch into `out` (its buffers are swapped with the loader's, so after the first
  // epoch's warm-up no memory is allocated). False at the end of the epoch. Rethrows a worker's
  // error (a file that fails to decode), after which start_epoch must be called again.
  bool next(Batch& out);

  // The dataset index order of an epoch (identity without shuffle).
  std::vector<int64_t> epoch_order(int epoch) const;

 private:
  enum class SlotState { Free, Filling, Ready };
  struct Slot {
    SlotState state = SlotState::Free;
    int index = -1;
    Batch batch;
    std::exception_ptr error;
  };

  void worker_loop();
  bool fill(Batch& b, int index, int epoch, uint64_t generation);  // false: abandoned

  const Dataset& ds_;
  const LoaderOptions opt_;
  const bool augment_;
  const int batches_;

  std::mutex mu_;
  std::condition_variable work_cv_, ready_cv_;
  std::vector<Slot> slots_;
  std::vector<int64_t> order_;
  int epoch_ = 0;
  int next_claim_ = 0, next_out_ = 0;
  bool active_ = false, stop_ = false;
  uint64_t generation_ = 0;  // bumped by start_epoch and the destructor; stale fills stop
  std::atomic<uint64_t> live_generation_{0};
  std::vector<std::thread> workers_;
};

}  // namespace pconv::data
