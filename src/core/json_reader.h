// Typed, validated reading of JSON configs. Every error names the JSON path ("$.train.lr") and
// the file; finish() rejects keys nobody read, so a misspelt key is an error, not a silent default.
#pragma once

#include <nlohmann/json.hpp>
#include <set>
#include <string>
#include <vector>

namespace pconv {

class JsonReader {
 public:
  JsonReader(const nlohmann::json& j, std::string path, std::string file = "");

  bool has(const std::string& key) const;
  const std::string& path() const { return path_; }
  std::string where(const std::string& key) const;  // "config.json: $.train.lr"

  // Optional keys take a default; required ones throw when absent.
  bool get_bool(const std::string& key, bool def);
  int get_int(const std::string& key, int def, int lo = INT32_MIN, int hi = INT32_MAX);
  int require_int(const std::string& key, int lo = INT32_MIN, int hi = INT32_MAX);
  double get_double(const std::string& key, double def, double lo = -1e300, double hi = 1e300);
  std::string get_string(const std::string& key, const std::string& def);
  std::string require_string(const std::string& key);
  std::string get_enum(const std::string& key, const std::string& def,
                       const std::vector<std::string>& allowed);
  std::vector<double> get_double_list(const std::string& key, const std::vector<double>& def);
  std::vector<int> get_int_list(const std::string& key, const std::vector<int>& def);
  std::vector<std::string> get_string_list(const std::string& key,
                                           const std::vector<std::string>& def);

  // Sub-objects and arrays of objects; the key counts as read.
  JsonReader object(const std::string& key);  // {} when absent
  std::vector<JsonReader> object_list(const std::string& key);
  const nlohmann::json& raw(const std::string& key);  // marks read; null when absent

  void finish() const;  // throws on unknown keys

 private:
  const nlohmann::json* field(const std::string& key, const char* want);
  nlohmann::json j_;
  std::string path_, file_;
  std::set<std::string> read_;
};

nlohmann::json read_json_file(const std::string& path);  // clear error on missing/malformed

}  // namespace pconv
