#include <algorithm>

#include "core/error.h"
#include "data/dataset.h"

namespace pconv::data {

std::vector<int64_t> balanced_subset(const std::vector<int32_t>& labels, int num_classes,
                                     int64_t limit) {
  const auto n = static_cast<int64_t>(labels.size());
  std::vector<int64_t> out;
  if (limit >= n) {
    out.resize(static_cast<size_t>(n));
    for (int64_t i = 0; i < n; ++i) out[static_cast<size_t>(i)] = i;
    return out;
  }
  std::vector<std::vector<int64_t>> by_class(static_cast<size_t>(num_classes));
  for (int64_t i = 0; i < n; ++i) {
    const int32_t c = labels[static_cast<size_t>(i)];
    PCONV_CHECK(c >= 0 && c < num_classes, "label ", c, " of sample ", i, " is out of range");
    by_class[static_cast<size_t>(c)].push_back(i);
  }
  for (size_t round = 0; static_cast<int64_t>(out.size()) < limit; ++round) {
    for (const auto& members : by_class) {
      if (round < members.size() && static_cast<int64_t>(out.size()) < limit) {
        out.push_back(members[round]);
      }
    }
  }
  std::sort(out.begin(), out.end());
  return out;
}

namespace {

class SubsetDataset : public Dataset {
 public:
  SubsetDataset(std::shared_ptr<const Dataset> base, std::vector<int64_t> indices)
      : base_(std::move(base)), indices_(std::move(indices)) {
    for (int64_t i : indices_) {
      PCONV_CHECK(i >= 0 && i < base_->size(), "subset index ", i, " is outside ",
                  base_->describe());
    }
  }
  int64_t size() const override { return static_cast<int64_t>(indices_.size()); }
  const std::vector<std::string>& class_names() const override { return base_->class_names(); }
  Shape sample_shape() const override { return base_->sample_shape(); }
  int32_t label(int64_t i) const override { return base_->label(at(i)); }
  bool augments() const override { return base_->augments(); }
  void load(int64_t i, bool augment, uint64_t seed, float* out) const override {
    base_->load(at(i), augment, seed, out);
  }
  std::string describe() const override {
    return cat(base_->describe(), " (subset of ", size(), ")");
  }

 private:
  int64_t at(int64_t i) const { return indices_[static_cast<size_t>(i)]; }
  std::shared_ptr<const Dataset> base_;
  std::vector<int64_t> indices_;
};

}  // namespace

std::unique_ptr<Dataset> make_subset(std::shared_ptr<const Dataset> base,
                                     std::vector<int64_t> indices) {
  return std::make_unique<SubsetDataset>(std::move(base), std::move(indices));
}

}  // namespace pconv::data
