// Thin RAII and error-checking helpers over the HDF5 C API, private to src/core.
#pragma once

#include <hdf5.h>

#include <string>
#include <vector>

#include "core/error.h"
#include "core/tensor.h"

namespace pconv::h5 {

// Owns one HDF5 identifier and closes it with the matching H5?close.
class Handle {
 public:
  using Closer = herr_t (*)(hid_t);
  Handle() = default;
  Handle(hid_t id, Closer close) : id_(id), close_(close) {}
  ~Handle() { reset(); }
  Handle(Handle&& o) noexcept : id_(o.id_), close_(o.close_) { o.id_ = -1; }
  Handle& operator=(Handle&& o) noexcept {
    if (this != &o) {
      reset();
      id_ = o.id_;
      close_ = o.close_;
      o.id_ = -1;
    }
    return *this;
  }
  Handle(const Handle&) = delete;
  Handle& operator=(const Handle&) = delete;
  hid_t get() const { return id_; }
  bool valid() const { return id_ >= 0; }
  void reset() {
    if (id_ >= 0 && close_) close_(id_);
    id_ = -1;
  }

 private:
  hid_t id_ = -1;
  Closer close_ = nullptr;
};

// Error messages carry the file name and the object path.
class File {
 public:
  static File create(const std::string& path);
  static File open_read(const std::string& path);
  hid_t id() const { return h_.get(); }
  const std::string& path() const { return path_; }

  bool exists(const std::string& obj) const;
  void write_string(const std::string& obj, const std::string& s);
  std::string read_string(const std::string& obj) const;
  void write_tensor(const std::string& obj, const Tensor& t);
  Tensor read_tensor(const std::string& obj) const;
  void write_u8(const std::string& obj, const std::vector<uint8_t>& v, const Shape& shape);
  std::vector<uint8_t> read_u8(const std::string& obj, Shape* shape) const;
  void write_i8(const std::string& obj, const std::vector<int8_t>& v, const Shape& shape);
  std::vector<int8_t> read_i8(const std::string& obj, Shape* shape) const;
  void flush();

 private:
  void write_array(const std::string& obj, hid_t type, const void* data, const Shape& shape);
  // Opens a dataset, checks its element class and size, returns its shape.
  Handle open_dataset(const std::string& obj, H5T_class_t cls, size_t elem, Shape* shape) const;
  void read_all(const Handle& ds, const std::string& obj, hid_t type, void* buf) const;
  std::string where(const std::string& obj) const { return path_ + ":" + obj; }
  Handle h_;
  std::string path_;
};

}  // namespace pconv::h5
