#include <coring/http/headers.hpp>

#include <algorithm>

namespace coring::http {

namespace {
constexpr char lower(char c) noexcept { return (c >= 'A' && c <= 'Z') ? static_cast<char>(c - 'A' + 'a') : c; }

std::string_view trim(std::string_view s) noexcept {
  while (!s.empty() && (s.front() == ' ' || s.front() == '\t')) s.remove_prefix(1);
  while (!s.empty() && (s.back() == ' ' || s.back() == '\t')) s.remove_suffix(1);
  return s;
}
}  // namespace

bool iequals(std::string_view a, std::string_view b) noexcept {
  if (a.size() != b.size()) return false;
  for (std::size_t i = 0; i < a.size(); ++i) {
    if (lower(a[i]) != lower(b[i])) return false;
  }
  return true;
}

void headers::add(std::string name, std::string value) { fields_.emplace_back(std::move(name), std::move(value)); }

void headers::set(std::string_view name, std::string value) {
  auto it = std::find_if(fields_.begin(), fields_.end(), [&](const field& f) { return iequals(f.first, name); });
  if (it == fields_.end()) {
    fields_.emplace_back(std::string(name), std::move(value));
    return;
  }
  it->second = std::move(value);
  fields_.erase(std::remove_if(std::next(it), fields_.end(), [&](const field& f) { return iequals(f.first, name); }),
                fields_.end());
}

std::size_t headers::remove(std::string_view name) noexcept {
  const std::size_t before = fields_.size();
  fields_.erase(std::remove_if(fields_.begin(), fields_.end(), [&](const field& f) { return iequals(f.first, name); }),
                fields_.end());
  return before - fields_.size();
}

std::optional<std::string_view> headers::get(std::string_view name) const noexcept {
  for (const field& f : fields_) {
    if (iequals(f.first, name)) return std::string_view(f.second);
  }
  return std::nullopt;
}

std::vector<std::string_view> headers::get_all(std::string_view name) const {
  std::vector<std::string_view> out;
  for (const field& f : fields_) {
    if (iequals(f.first, name)) out.emplace_back(f.second);
  }
  return out;
}

bool headers::has_token(std::string_view name, std::string_view token) const noexcept {
  for (const field& f : fields_) {
    if (!iequals(f.first, name)) continue;
    std::string_view rest = f.second;
    while (!rest.empty()) {
      const std::size_t comma = rest.find(',');
      std::string_view item = trim(rest.substr(0, comma));
      if (iequals(item, token)) return true;
      if (comma == std::string_view::npos) break;
      rest.remove_prefix(comma + 1);
    }
  }
  return false;
}

void headers::serialize_to(std::string& out) const {
  for (const field& f : fields_) {
    out.append(f.first);
    out.append(": ");
    out.append(f.second);
    out.append("\r\n");
  }
}

}  // namespace coring::http
