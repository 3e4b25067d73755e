#include "core/json_reader.h"

#include <fstream>
#include <sstream>

#include "core/error.h"

namespace pconv {

using nlohmann::json;

JsonReader::JsonReader(const json& j, std::string path, std::string file)
    : j_(j.is_null() ? json::object() : j), path_(std::move(path)), file_(std::move(file)) {
  PCONV_CHECK(j_.is_object(), where(""), ": expected an object, got ", j_.type_name());
}

bool JsonReader::has(const std::string& key) const {
  return j_.contains(key);
}

std::string JsonReader::where(const std::string& key) const {
  std::string p = key.empty() ? path_ : path_ + "." + key;
  return file_.empty() ? p : file_ + ": " + p;
}

const json* JsonReader::field(const std::string& key, const char* want) {
  read_.insert(key);
  auto it = j_.find(key);
  if (it == j_.end() || it->is_null()) return nullptr;
  (void)want;
  return &*it;
}

bool JsonReader::get_bool(const std::string& key, bool def) {
  const json* v = field(key, "bool");
  if (!v) return def;
  PCONV_CHECK(v->is_boolean(), where(key), ": expected true or false, got ", v->dump());
  return v->get<bool>();
}

int JsonReader::get_int(const std::string& key, int def, int lo, int hi) {
  const json* v = field(key, "int");
  if (!v) return def;
  bool integral =
      v->is_number_integer() ||
      (v->is_number_float() && v->get<double>() == static_cast<int64_t>(v->get<double>()));
  PCONV_CHECK(integral, where(key), ": expected an integer, got ", v->dump());
  int64_t x = v->is_number_integer() ? v->get<int64_t>() : static_cast<int64_t>(v->get<double>());
  PCONV_CHECK(x >= lo && x <= hi, where(key), ": ", x, " is out of range [", lo, ", ", hi, "]");
  return static_cast<int>(x);
}

int JsonReader::require_int(const std::string& key, int lo, int hi) {
  PCONV_CHECK(has(key), where(key), ": required key is missing");
  return get_int(key, 0, lo, hi);
}

double JsonReader::get_double(const std::string& key, double def, double lo, double hi) {
  const json* v = field(key, "number");
  if (!v) return def;
  PCONV_CHECK(v->is_number(), where(key), ": expected a number, got ", v->dump());
  double x = v->get<double>();
  PCONV_CHECK(x >= lo && x <= hi, where(key), ": ", x, " is out of range [", lo, ", ", hi, "]");
  return x;
}

std::string JsonReader::get_string(const std::string& key, const std::string& def) {
  const json* v = field(key, "string");
  if (!v) return def;
  PCONV_CHECK(v->is_string(), where(key), ": expected a string, got ", v->dump());
  return v->get<std::string>();
}

std::string JsonReader::require_string(const std::string& key) {
  PCONV_CHECK(has(key), where(key), ": required key is missing");
  return get_string(key, "");
}

std::string JsonReader::get_enum(const std::string& key, const std::string& def,
                                 const std::vector<std::string>& allowed) {
  std::string s = get_string(key, def);
  for (const auto& a : allowed)
    if (a == s) return s;
  std::string list;
  for (const auto& a : allowed) list += (list.empty() ? "" : ", ") + a;
  throw Error(cat(where(key), ": \"", s, "\" is not one of: ", list));
}

std::vector<double> JsonReader::get_double_list(const std::string& key,
                                                const std::vector<double>& def) {
  const json* v = field(key, "list");
  if (!v) return def;
  PCONV_CHECK(v->is_array(), where(key), ": expected a list of numbers, got ", v->dump());
  std::vector<double> out;
  for (size_t i = 0; i < v->size(); ++i) {
    PCONV_CHECK((*v)[i].is_number(), where(key), "[", i, "]: expected a number, got ",
                (*v)[i].dump());
    out.push_back((*v)[i].get<double>());
  }
  return out;
}

std::vector<int> JsonReader::get_int_list(const std::string& key, const std::vector<int>& def) {
  const json* v = field(key, "list");
  if (!v) return def;
  PCONV_CHECK(v->is_array(), where(key), ": expected a list of integers, got ", v->dump());
  std::vector<int> out;
  for (size_t i = 0; i < v->size(); ++i) {
    PCONV_CHECK((*v)[i].is_number_integer(), where(key), "[", i, "]: expected an integer, got ",
                (*v)[i].dump());
    out.push_back((*v)[i].get<int>());
  }
  return out;
}

std::vector<std::string> JsonReader::get_string_list(const std::string& key,
                                                     const std::vector<std::string>& def) {
  const json* v = field(key, "list");
  if (!v) return def;
  PCONV_CHECK(v->is_array(), where(key), ": expected a list of strings, got ", v->dump());
  std::vector<std::string> out;
  for (size_t i = 0; i < v->size(); ++i) {
    PCONV_CHECK((*v)[i].is_string(), where(key), "[", i, "]: expected a string, got ",
                (*v)[i].dump());
    out.push_back((*v)[i].get<std::string>());
  }
  return out;
}

JsonReader JsonReader::object(const std::string& key) {
  const json* v = field(key, "object");
  if (!v) return JsonReader(json::object(), path_ + "." + key, file_);
  PCONV_CHECK(v->is_object(), where(key), ": expected an object, got ", v->dump());
  return JsonReader(*v, path_ + "." + key, file_);
}

std::vector<JsonReader> JsonReader::object_list(const std::string& key) {
  const json* v = field(key, "list");
  std::vector<JsonReader> out;
  if (!v) return out;
  PCONV_CHECK(v->is_array(), where(key), ": expected a list of objects, got ", v->dump());
  for (size_t i = 0; i < v->size(); ++i) {
    std::string p = cat(path_, ".", key, "[", i, "]");
    PCONV_CHECK((*v)[i].is_object(), file_.empty() ? p : file_ + ": " + p,
                ": expected an object, got ", (*v)[i].dump());
    out.emplace_back((*v)[i], p, file_);
  }
  return out;
}

const json& JsonReader::raw(const std::string& key) {
  static const json kNull;
  const json* v = field(key, "any");
  return v ? *v : kNull;
}

void JsonReader::finish() const {
  for (auto it = j_.begin(); it != j_.end(); ++it) {
    if (!read_.count(it.key())) throw Error(cat(where(it.key()), ": unknown key"));
  }
}

json read_json_file(const std::string& path) {
  std::ifstream f(path);
  PCONV_CHECK(f.good(), path, ": cannot open file");
  std::stringstream ss;
  ss << f.rdbuf();
  try {
    return json::parse(ss.str());
  } catch (const json::parse_error& e) {
    throw Error(cat(path, ": malformed JSON: ", e.what()));
  }
}

}  // namespace pconv
