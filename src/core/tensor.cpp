#include "core/tensor.h"

#include <algorithm>
#include <cmath>

#include "core/error.h"

namespace pconv {

int64_t numel(const Shape& shape) {
  int64_t n = 1;
  for (int64_t d : shape) n *= d;
  return n;
}

std::string shape_str(const Shape& shape) {
  std::string s = "[";
  for (size_t i = 0; i < shape.size(); ++i) {
    if (i) s += ", ";
    s += std::to_string(shape[i]);
  }
  return s + "]";
}

Tensor::Tensor(Shape shape, float fill) : shape_(std::move(shape)) {
  for (int64_t d : shape_) PCONV_CHECK(d >= 0, "negative dimension in shape ", shape_str(shape_));
  data_.assign(static_cast<size_t>(numel(shape_)), fill);
}

void Tensor::fill(float v) {
  std::fill(data_.begin(), data_.end(), v);
}

void Tensor::reshape(Shape shape) {
  PCONV_CHECK(numel(shape) == size(), "cannot reshape ", shape_str(shape_), " to ",
              shape_str(shape));
  shape_ = std::move(shape);
}

double sum_squares(const float* x, int64_t n) {
  double s = 0;
  for (int64_t i = 0; i < n; ++i) s += static_cast<double>(x[i]) * x[i];
  return s;
}

double norm2(const Tensor& t) {
  return std::sqrt(sum_squares(t.data(), t.size()));
}

}  // namespace pconv
