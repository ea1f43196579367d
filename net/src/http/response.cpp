#include <coring/http/response.hpp>

#include <nlohmann/json.hpp>

#include <array>

namespace coring::http {

response response::text(std::string body, int status) {
  response r(status);
  r.body_ = std::move(body);
  r.fixed_content_type_ = "text/plain; charset=utf-8";
  return r;
}

response response::json(const nlohmann::json& value, int status) {
  response r(status);
  r.body_ = value.dump();
  r.fixed_content_type_ = "application/json";
  return r;
}

response response::bytes(std::string body, std::string content_type, int status) {
  response r(status);
  r.body_ = std::move(body);
  r.content_type_ = std::move(content_type);
  return r;
}

response response::file(std::string path) {
  response r(200);
  r.body_ = std::move(path);
  r.kind_ = body_kind::file;
  return r;
}

response response::stream(producer produce, std::string content_type, int status) {
  response r(status);
  r.produce_ = std::move(produce);
  r.content_type_ = std::move(content_type);
  r.kind_ = body_kind::stream;
  return r;
}

namespace {
struct mime_entry {
  std::string_view extension;
  std::string_view type;
};
// Sorted by extension (binary search); what browsers and curl users expect.
constexpr std::array<mime_entry, 40> mime_table = {{
    {"avif", "image/avif"},
    {"bmp", "image/bmp"},
    {"css", "text/css; charset=utf-8"},
    {"csv", "text/csv; charset=utf-8"},
    {"gif", "image/gif"},
    {"gz", "application/gzip"},
    {"htm", "text/html; charset=utf-8"},
    {"html", "text/html; charset=utf-8"},
    {"ico", "image/x-icon"},
    {"jpeg", "image/jpeg"},
    {"jpg", "image/jpeg"},
    {"js", "text/javascript; charset=utf-8"},
    {"json", "application/json"},
    {"md", "text/markdown; charset=utf-8"},
    {"mjs", "text/javascript; charset=utf-8"},
    {"mp3", "audio/mpeg"},
    {"mp4", "video/mp4"},
    {"oga", "audio/ogg"},
    {"ogg", "audio/ogg"},
    {"ogv", "video/ogg"},
    {"otf", "font/otf"},
    {"pdf", "application/pdf"},
    {"png", "image/png"},
    {"svg", "image/svg+xml"},
    {"tar", "application/x-tar"},
    {"tif", "image/tiff"},
    {"tiff", "image/tiff"},
    {"ts", "video/mp2t"},
    {"ttf", "font/ttf"},
    {"txt", "text/plain; charset=utf-8"},
    {"wasm", "application/wasm"},
    {"wav", "audio/wav"},
    {"webm", "video/webm"},
    {"webmanifest", "application/manifest+json"},
    {"webp", "image/webp"},
    {"woff", "font/woff"},
    {"woff2", "font/woff2"},
    {"xml", "application/xml"},
    {"yaml", "application/yaml"},
    {"zip", "application/zip"},
}};
}  // namespace

std::string_view mime_type(std::string_view file_name) noexcept {
  constexpr std::string_view fallback = "application/octet-stream";
  const std::size_t slash = file_name.find_last_of('/');
  if (slash != std::string_view::npos) file_name.remove_prefix(slash + 1);
  const std::size_t dot = file_name.find_last_of('.');
  if (dot == std::string_view::npos || dot == 0 || dot + 1 == file_name.size()) return fallback;
  std::string_view ext = file_name.substr(dot + 1);
  if (ext.size() > 16) return fallback;
  char lower[16];
  for (std::size_t i = 0; i < ext.size(); ++i) {
    const char c = ext[i];
    lower[i] = (c >= 'A' && c <= 'Z') ? static_cast<char>(c - 'A' + 'a') : c;
  }
  const std::string_view key(lower, ext.size());
  std::size_t lo = 0, hi = mime_table.size();
  while (lo < hi) {
    const std::size_t mid = (lo + hi) / 2;
    if (mime_table[mid].extension < key) {
      lo = mid + 1;
    } else {
      hi = mid;
    }
  }
  if (lo < mime_table.size() && mime_table[lo].extension == key) return mime_table[lo].type;
  return fallback;
}

}  // namespace coring::http
