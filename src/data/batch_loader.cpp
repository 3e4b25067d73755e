#include "data/batch_loader.h"

#include <algorithm>
#include <numeric>

#include "core/error.h"
#include "data/rng.h"

namespace pconv::data {

namespace {

int count_batches(int64_t n, const LoaderOptions& o) {
  return static_cast<int>(o.drop_last ? n / o.batch_size : (n + o.batch_size - 1) / o.batch_size);
}

const LoaderOptions& checked(const LoaderOptions& o, const Dataset& ds) {
  PCONV_CHECK(o.batch_size >= 1, "loader: batch_size must be >= 1, got ", o.batch_size);
  PCONV_CHECK(o.workers >= 1, "loader: workers must be >= 1, got ", o.workers);
  PCONV_CHECK(o.prefetch >= 1, "loader: prefetch must be >= 1, got ", o.prefetch);
  PCONV_CHECK(!o.drop_last || ds.size() >= o.batch_size, "loader: batch_size ", o.batch_size,
              " exceeds the ", ds.size(), " samples of ", ds.describe(),
              " (with drop_last no batch would remain)");
  return o;
}

// Distinct streams for the order and for each sample's transform.
constexpr uint64_t kOrderStream = ~uint64_t{0};

}  // namespace

BatchLoader::BatchLoader(const Dataset& ds, const LoaderOptions& opt)
    : ds_(ds),
      opt_(checked(opt, ds)),
      augment_(opt.augment && ds.augments()),
      batches_(count_batches(ds.size(), opt)),
      slots_(static_cast<size_t>(opt.prefetch)) {
  for (int i = 0; i < opt_.workers; ++i) workers_.emplace_back([this] { worker_loop(); });
}

BatchLoader::~BatchLoader() {
  {
    std::lock_guard<std::mutex> lock(mu_);
    stop_ = true;
    live_generation_ = ++generation_;
  }
  work_cv_.notify_all();
  for (auto& t : workers_) t.join();
}

std::vector<int64_t> BatchLoader::epoch_order(int epoch) const {
  std::vector<int64_t> order(static_cast<size_t>(ds_.size()));
  std::iota(order.begin(), order.end(), int64_t{0});
  if (opt_.shuffle) {  // Fisher-Yates with our own generator: the same on every platform
    Rng rng(mix_seed(opt_.seed, static_cast<uint64_t>(epoch), kOrderStream));
    for (size_t i = order.size(); i > 1; --i) std::swap(order[i - 1], order[rng.below(i)]);
  }
  return order;
}

void BatchLoader::start_epoch(int epoch, int first_batch) {
  PCONV_CHECK(first_batch >= 0 && first_batch <= batches_, "loader: first_batch ", first_batch,
              " is outside 0..", batches_);
  std::vector<int64_t> order = epoch_order(epoch);
  std::unique_lock<std::mutex> lock(mu_);
  active_ = false;
  live_generation_ = ++generation_;
  // Half-made batches of the old epoch stop within one sample; wait for them to let go.
  ready_cv_.wait(lock, [&] {
    return std::none_of(slots_.begin(), slots_.end(),
                        [](const Slot& s) { return s.state == SlotState::Filling; });
  });
  for (auto& s : slots_) {
    s.state = SlotState::Free;
    s.error = nullptr;
  }
  order_ = std::move(order);
  epoch_ = epoch;
  next_claim_ = next_out_ = first_batch;
  active_ = true;
  work_cv_.notify_all();
}

bool BatchLoader::next(Batch& out) {
  std::unique_lock<std::mutex> lock(mu_);
  PCONV_CHECK(active_, "loader: call start_epoch() before next()");
  if (next_out_ >= batches_) return false;
  Slot& s = slots_[static_cast<size_t>(next_out_ % opt_.prefetch)];
  ready_cv_.wait(lock, [&] { return s.state == SlotState::Ready && s.index == next_out_; });
  s.state = SlotState::Free;
  ++next_out_;
  if (s.error) {
    active_ = false;
    std::exception_ptr e = s.error;
    s.error = nullptr;
    std::rethrow_exception(e);
  }
  std::swap(out.images, s.batch.images);
  std::swap(out.labels, s.batch.labels);
  work_cv_.notify_all();
  return true;
}

void BatchLoader::worker_loop() {
  std::unique_lock<std::mutex> lock(mu_);
  for (;;) {
    work_cv_.wait(lock, [&] {
      return stop_ ||
             (active_ && next_claim_ < batches_ && next_claim_ < next_out_ + opt_.prefetch);
    });
    if (stop_) return;
    const int index = next_claim_++;
    // Batch index - prefetch was consumed (next_out_ passed it), so this slot is free.
    Slot& s = slots_[static_cast<size_t>(index % opt_.prefetch)];
    s.state = SlotState::Filling;
    s.index = index;
    const uint64_t generation = generation_;
    const int epoch = epoch_;
    lock.unlock();
    bool done = true;
    std::exception_ptr error;
    try {
      done = fill(s.batch, index, epoch, generation);
    } catch (...) {
      error = std::current_exception();
    }
    lock.lock();
    if (done && generation == generation_) {
      s.state = SlotState::Ready;
      s.error = error;
    } else {
      s.state = SlotState::Free;
    }
    ready_cv_.notify_all();
  }
}

bool BatchLoader::fill(Batch& b, int index, int epoch, uint64_t generation) {
  const int64_t first = int64_t{index} * opt_.batch_size;
  const int n = static_cast<int>(std::min<int64_t>(opt_.batch_size, ds_.size() - first));
  Shape shape = ds_.sample_shape();
  const int64_t per = numel(shape);
  shape.insert(shape.begin(), n);
  if (b.images.size() == numel(shape)) {
    if (b.images.shape() != shape) b.images.reshape(shape);
  } else {
    b.images = Tensor(shape);  // first use, or the short last batch: reused afterwards
  }
  b.labels.resize(static_cast<size_t>(n));
  for (int i = 0; i < n; ++i) {
    if (live_generation_.load(std::memory_order_relaxed) != generation) return false;
    const int64_t pos = first + i;
    const int64_t sample = order_[static_cast<size_t>(pos)];
    b.labels[static_cast<size_t>(i)] = ds_.label(sample);
    const uint64_t seed =
        mix_seed(opt_.seed, static_cast<uint64_t>(epoch), static_cast<uint64_t>(pos));
    ds_.load(sample, augment_, seed, b.images.data() + i * per);
  }
  return true;
}

}  // namespace pconv::data
