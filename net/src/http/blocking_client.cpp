#include <coring/http/blocking_client.hpp>

#include <coring/event_loop.hpp>

namespace coring::http {

nlohmann::json blocking_response::json() const {
  std::string reason;
  try {
    return nlohmann::json::parse(body_);
  } catch (const nlohmann::json::exception& e) {
    reason = e.what();
  }
  throw protocol_error(method_ + " " + url_.to_string() + ": the body is not JSON: " + reason);
}

void blocking_response::raise_for_status() const {
  if (status_ >= 400) throw status_error(status_, method_, url_.to_string(), reason_);
}

blocking_client::blocking_client(client_options o)
    : loop_(std::make_unique<event_loop>()), client_(std::make_unique<client>(std::move(o))) {}

blocking_client::~blocking_client() {
  // The client's idle connections are closed before the loop goes.
  client_.reset();
}

blocking_response blocking_client::request(std::string_view method, std::string_view url, request_options o) {
  auto whole = [](client& c, std::string_view method, std::string_view url,
                  request_options o) -> task<blocking_response> {
    client_response r = co_await c.request(method, url, std::move(o));
    blocking_response out;
    out.status_ = r.status();
    out.reason_ = r.reason();
    out.headers_ = r.headers();
    out.url_ = r.url();
    out.method_ = r.method();
    out.body_ = co_await r.text();
    co_return out;
  };
  return loop_->run_until_complete(whole(*client_, method, url, std::move(o)));
}

std::uint64_t blocking_client::save(std::string_view url, const std::string& path, request_options o) {
  auto saving = [](client& c, std::string_view url, const std::string& path,
                   request_options o) -> task<std::uint64_t> {
    client_response r = co_await c.get(url, std::move(o));
    r.raise_for_status();
    co_return co_await r.save(path);
  };
  return loop_->run_until_complete(saving(*client_, url, path, std::move(o)));
}

}  // namespace coring::http
