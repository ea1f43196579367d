#include <coring/http/request.hpp>

#include <coring/http/url.hpp>

namespace coring::http {

struct request::owned {
  std::string method;
  std::string target;
  http::headers fields;
};

request::request(std::string method, std::string target, http::headers fields)
    : owned_(std::make_unique<owned>(owned{std::move(method), std::move(target), std::move(fields)})),
      method_(owned_->method),
      target_(owned_->target),
      headers_(&owned_->fields) {}

request::request(std::string_view method, std::string_view target, int version_minor, const http::headers& fields,
                 const net::address* peer, detail::body_source* body, bool has_body) noexcept
    : method_(method),
      target_(target),
      headers_(&fields),
      peer_(peer),
      body_(body),
      version_minor_(version_minor),
      has_body_(has_body) {}

request::~request() = default;

std::string_view request::path() const noexcept {
  std::string_view p = target_.substr(0, target_.find('?'));
  // An absolute-form target ("http://host/path", sent to proxies; servers
  // must accept it): the path starts after the authority.
  if (!p.empty() && p.front() != '/') {
    const std::size_t scheme = p.find("://");
    if (scheme != std::string_view::npos) {
      const std::size_t slash = p.find('/', scheme + 3);
      return slash == std::string_view::npos ? std::string_view("/") : p.substr(slash);
    }
  }
  return p;
}

std::string_view request::query_string() const noexcept {
  const std::size_t q = target_.find('?');
  return q == std::string_view::npos ? std::string_view() : target_.substr(q + 1);
}

std::string_view request::param(std::string_view name) const {
  for (const auto& [n, v] : params_) {
    if (n == name) return v;
  }
  throw request_error(500, "the route has no path parameter '" + std::string(name) + "'");
}

const std::vector<std::pair<std::string, std::string>>& request::query_params() const {
  if (!query_) query_ = parse_query(query_string());
  return *query_;
}

std::optional<std::string> request::query(std::string_view name) const {
  for (const auto& [k, v] : query_params()) {
    if (k == name) return v;
  }
  return std::nullopt;
}

task<std::string_view> request::read_body() {
  if (!body_ || !has_body_) co_return std::string_view();
  co_return co_await body_->read_body();
}

task<std::string> request::body(std::size_t limit) {
  std::string all;
  if (!body_ || !has_body_) co_return all;
  if (limit == 0) limit = body_->max_body();
  for (;;) {
    std::string_view piece = co_await body_->read_body();
    if (piece.empty()) break;
    if (all.size() + piece.size() > limit)
      throw request_error(413, "the request body is larger than " + std::to_string(limit) + " bytes");
    all.append(piece);
  }
  co_return all;
}

}  // namespace coring::http
