#include "core/hdf5_util.h"

#include <algorithm>
#include <cstdio>
#include <cstring>

namespace pconv::h5 {
namespace {

// HDF5 prints its own error stack to stderr by default; we report errors ourselves.
void silence() {
  static bool done = [] {
    H5Eset_auto2(H5E_DEFAULT, nullptr, nullptr);
    return true;
  }();
  (void)done;
}

Handle link_props() {
  Handle lcpl(H5Pcreate(H5P_LINK_CREATE), H5Pclose);
  H5Pset_create_intermediate_group(lcpl.get(), 1);
  return lcpl;
}

}  // namespace

File File::create(const std::string& path) {
  silence();
  File f;
  f.path_ = path;
  f.h_ = Handle(H5Fcreate(path.c_str(), H5F_ACC_TRUNC, H5P_DEFAULT, H5P_DEFAULT), H5Fclose);
  PCONV_CHECK(f.h_.valid(), path,
              ": cannot create HDF5 file (check the folder exists and is writable)");
  return f;
}

File File::open_read(const std::string& path) {
  silence();
  File f;
  f.path_ = path;
  FILE* probe = std::fopen(path.c_str(), "rb");
  PCONV_CHECK(probe, path, ": file not found or not readable");
  std::fclose(probe);
  PCONV_CHECK(H5Fis_hdf5(path.c_str()) > 0, path, ": not an HDF5 file, or truncated/corrupt");
  f.h_ = Handle(H5Fopen(path.c_str(), H5F_ACC_RDONLY, H5P_DEFAULT), H5Fclose);
  PCONV_CHECK(f.h_.valid(), path, ": cannot open as HDF5 (truncated or corrupt?)");
  return f;
}

bool File::exists(const std::string& obj) const {
  // H5Lexists needs every parent to exist; walk the path one component at a time.
  size_t pos = 0;
  while (true) {
    pos = obj.find('/', pos + 1);
    std::string part = obj.substr(0, pos);
    if (H5Lexists(h_.get(), part.c_str(), H5P_DEFAULT) <= 0) return false;
    if (pos == std::string::npos) return true;
  }
}

void File::write_array(const std::string& obj, hid_t type, const void* data, const Shape& shape) {
  std::vector<hsize_t> dims(shape.begin(), shape.end());
  Handle space(H5Screate_simple(static_cast<int>(dims.size()), dims.data(), nullptr), H5Sclose);
  Handle lcpl = link_props();
  Handle ds(
      H5Dcreate2(h_.get(), obj.c_str(), type, space.get(), lcpl.get(), H5P_DEFAULT, H5P_DEFAULT),
      H5Dclose);
  PCONV_CHECK(ds.valid(), where(obj), ": cannot create dataset");
  if (numel(shape) > 0)
    PCONV_CHECK(H5Dwrite(ds.get(), type, H5S_ALL, H5S_ALL, H5P_DEFAULT, data) >= 0, where(obj),
                ": write failed (disk full?)");
}

Handle File::open_dataset(const std::string& obj, H5T_class_t cls, size_t elem,
                          Shape* shape) const {
  PCONV_CHECK(exists(obj), where(obj), ": missing");
  Handle ds(H5Dopen2(h_.get(), obj.c_str(), H5P_DEFAULT), H5Dclose);
  PCONV_CHECK(ds.valid(), where(obj), ": is not a dataset");
  Handle type(H5Dget_type(ds.get()), H5Tclose);
  PCONV_CHECK(H5Tget_class(type.get()) == cls && (elem == 0 || H5Tget_size(type.get()) == elem),
              where(obj), ": unexpected element type");
  Handle space(H5Dget_space(ds.get()), H5Sclose);
  int rank = H5Sget_simple_extent_ndims(space.get());
  PCONV_CHECK(rank >= 0, where(obj), ": unreadable dataspace");
  std::vector<hsize_t> dims(static_cast<size_t>(rank));
  H5Sget_simple_extent_dims(space.get(), dims.data(), nullptr);
  if (shape) shape->assign(dims.begin(), dims.end());
  return ds;
}

void File::read_all(const Handle& ds, const std::string& obj, hid_t type, void* buf) const {
  PCONV_CHECK(H5Dread(ds.get(), type, H5S_ALL, H5S_ALL, H5P_DEFAULT, buf) >= 0, where(obj),
              ": read failed (truncated or corrupt file?)");
}

void File::write_string(const std::string& obj, const std::string& s) {
  Handle type(H5Tcopy(H5T_C_S1), H5Tclose);
  H5Tset_size(type.get(), std::max<size_t>(1, s.size()));
  Handle space(H5Screate(H5S_SCALAR), H5Sclose);
  Handle lcpl = link_props();
  Handle ds(H5Dcreate2(h_.get(), obj.c_str(), type.get(), space.get(), lcpl.get(), H5P_DEFAULT,
                       H5P_DEFAULT),
            H5Dclose);
  PCONV_CHECK(ds.valid(), where(obj), ": cannot create dataset");
  std::string padded = s.empty() ? std::string(1, '\0') : s;
  PCONV_CHECK(H5Dwrite(ds.get(), type.get(), H5S_ALL, H5S_ALL, H5P_DEFAULT, padded.data()) >= 0,
              where(obj), ": write failed (disk full?)");
}

std::string File::read_string(const std::string& obj) const {
  Shape shape;
  Handle ds = open_dataset(obj, H5T_STRING, 0, &shape);
  Handle type(H5Dget_type(ds.get()), H5Tclose);
  PCONV_CHECK(H5Tis_variable_str(type.get()) <= 0, where(obj),
              ": variable-length strings are not supported");
  size_t n = H5Tget_size(type.get());
  std::string s(n, '\0');
  Handle mem(H5Tcopy(H5T_C_S1), H5Tclose);
  H5Tset_size(mem.get(), n);
  read_all(ds, obj, mem.get(), s.data());
  s.resize(std::strlen(s.c_str()));
  return s;
}

void File::write_tensor(const std::string& obj, const Tensor& t) {
  write_array(obj, H5T_NATIVE_FLOAT, t.data(), t.shape());
}

Tensor File::read_tensor(const std::string& obj) const {
  Shape shape;
  Handle ds = open_dataset(obj, H5T_FLOAT, 0, &shape);
  Tensor t(shape);
  if (t.size() > 0) read_all(ds, obj, H5T_NATIVE_FLOAT, t.data());
  return t;
}

void File::write_u8(const std::string& obj, const std::vector<uint8_t>& v, const Shape& shape) {
  PCONV_CHECK(static_cast<int64_t>(v.size()) == numel(shape), where(obj), ": size mismatch");
  write_array(obj, H5T_NATIVE_UINT8, v.data(), shape);
}

std::vector<uint8_t> File::read_u8(const std::string& obj, Shape* shape) const {
  Handle ds = open_dataset(obj, H5T_INTEGER, 1, shape);
  std::vector<uint8_t> v(static_cast<size_t>(numel(*shape)));
  if (!v.empty()) read_all(ds, obj, H5T_NATIVE_UINT8, v.data());
  return v;
}

void File::write_i8(const std::string& obj, const std::vector<int8_t>& v, const Shape& shape) {
  PCONV_CHECK(static_cast<int64_t>(v.size()) == numel(shape), where(obj), ": size mismatch");
  write_array(obj, H5T_NATIVE_INT8, v.data(), shape);
}

std::vector<int8_t> File::read_i8(const std::string& obj, Shape* shape) const {
  Handle ds = open_dataset(obj, H5T_INTEGER, 1, shape);
  std::vector<int8_t> v(static_cast<size_t>(numel(*shape)));
  if (!v.empty()) read_all(ds, obj, H5T_NATIVE_INT8, v.data());
  return v;
}

void File::flush() {
  H5Fflush(h_.get(), H5F_SCOPE_GLOBAL);
}

}  // namespace pconv::h5
