// A dense float32 tensor: a shape and a 64-byte aligned buffer (AVX-512 loads stay aligned).
// Layout is row-major in the order of the shape; conv weights are OIHW, activations NCHW.
#pragma once

#include <cstddef>
#include <cstdint>
#include <new>
#include <string>
#include <vector>

namespace pconv {

using Shape = std::vector<int64_t>;

int64_t numel(const Shape& shape);
std::string shape_str(const Shape& shape);  // "[64, 3, 3, 3]"

template <typename T, std::size_t Align = 64>
struct AlignedAllocator {
  using value_type = T;
  AlignedAllocator() = default;
  template <typename U>
  AlignedAllocator(const AlignedAllocator<U, Align>&) {}
  template <typename U>
  struct rebind {
    using other = AlignedAllocator<U, Align>;
  };
  T* allocate(std::size_t n) {
    return static_cast<T*>(::operator new(n * sizeof(T), std::align_val_t(Align)));
  }
  void deallocate(T* p, std::size_t) { ::operator delete(p, std::align_val_t(Align)); }
  bool operator==(const AlignedAllocator&) const { return true; }
  bool operator!=(const AlignedAllocator&) const { return false; }
};

class Tensor {
 public:
  Tensor() = default;
  explicit Tensor(Shape shape, float fill = 0.f);

  const Shape& shape() const { return shape_; }
  int64_t dim(int i) const { return shape_.at(static_cast<size_t>(i)); }
  int rank() const { return static_cast<int>(shape_.size()); }
  int64_t size() const { return static_cast<int64_t>(data_.size()); }
  bool empty() const { return data_.empty(); }

  float* data() { return data_.data(); }
  const float* data() const { return data_.data(); }
  float& operator[](int64_t i) { return data_[static_cast<size_t>(i)]; }
  float operator[](int64_t i) const { return data_[static_cast<size_t>(i)]; }

  void fill(float v);
  // Same element count, new shape; throws on a count mismatch.
  void reshape(Shape shape);

 private:
  Shape shape_;
  std::vector<float, AlignedAllocator<float>> data_;
};

// Sum of squares and Frobenius norm, in double so long reductions stay accurate.
double sum_squares(const float* x, int64_t n);
double norm2(const Tensor& t);

}  // namespace pconv
