#pragma once
// http::headers: the header fields of an HTTP message, in order, looked up
// without regard to case (field names are case-insensitive), a name may
// appear more than once (Set-Cookie).
//
//   http::headers h;
//   h.add("Accept", "text/html");
//   h.set("content-type", "text/plain");          // replaces every Content-Type
//   std::optional<std::string_view> ct = h.get("Content-Type");
//   for (std::string_view c : h.get_all("set-cookie")) ...
//   for (const auto& [name, value] : h) ...        // in the order they came

#include <cstddef>
#include <initializer_list>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace coring::http {

/// True if `a` and `b` are equal ignoring ASCII case (header names, tokens).
[[nodiscard]] bool iequals(std::string_view a, std::string_view b) noexcept;

class headers {
 public:
  using field = std::pair<std::string, std::string>;
  using const_iterator = std::vector<field>::const_iterator;

  headers() = default;
  /// headers{{"Accept", "*/*"}, {"X-A", "1"}}
  headers(std::initializer_list<field> fields) : fields_(fields) {}

  /// Appends a field (a repeated name is kept as another field).
  void add(std::string name, std::string value);
  /// Replaces every field named `name` with one (added at the end if absent).
  void set(std::string_view name, std::string value);
  /// Removes every field named `name`; returns how many.
  std::size_t remove(std::string_view name) noexcept;
  /// Removes every field.
  void clear() noexcept { fields_.clear(); }

  /// The first value of `name`, or nullopt.
  [[nodiscard]] std::optional<std::string_view> get(std::string_view name) const noexcept;
  /// Every value of `name`, in order.
  [[nodiscard]] std::vector<std::string_view> get_all(std::string_view name) const;
  /// True if a field named `name` exists.
  [[nodiscard]] bool contains(std::string_view name) const noexcept { return get(name).has_value(); }
  /// True if a value of `name` holds `token` in its comma-separated list,
  /// ignoring case ("Connection: keep-alive, Upgrade" has "upgrade").
  [[nodiscard]] bool has_token(std::string_view name, std::string_view token) const noexcept;

  [[nodiscard]] std::size_t size() const noexcept { return fields_.size(); }
  [[nodiscard]] bool empty() const noexcept { return fields_.empty(); }
  [[nodiscard]] const_iterator begin() const noexcept { return fields_.begin(); }
  [[nodiscard]] const_iterator end() const noexcept { return fields_.end(); }

  /// Writes "Name: value\r\n" for each field to `out`.
  void serialize_to(std::string& out) const;

 private:
  std::vector<field> fields_;  // in arrival (or insertion) order
};

}  // namespace coring::http
