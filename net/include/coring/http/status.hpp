#pragma once
// HTTP status codes and their reason phrases (RFC 9110).
//
//   http::reason_phrase(404)   // "Not Found"

#include <string_view>

namespace coring::http {

/// The standard reason phrase of `status`, or "" for a code without one.
[[nodiscard]] std::string_view reason_phrase(int status) noexcept;

}  // namespace coring::http
