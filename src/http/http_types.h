// Plain request/response values passed between the Beast server (server.cc, the only file
// that sees Beast) and the handlers, so handlers compile without Beast or Asio.
#pragma once

#include <functional>
#include <memory>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace tokenledger::http {

enum class Listener { kApi, kMetrics };

// Runs a piece of work on another thread (see HttpRequest::post).
using PostFn = std::function<void(std::function<void()>)>;

struct HttpRequest {
  std::string method;  // "GET", "POST", ...
  std::string target;  // as received: path and query
  std::string body;
  std::string authorization;  // empty when absent; the first one when repeated
  bool has_authorization = false;
  bool repeated_authorization = false;  // more than one Authorization field (refused)
  std::string idempotency_key;          // Idempotency-Key header; the first one when repeated
  bool has_idempotency_key = false;
  bool repeated_idempotency_key = false;  // more than one Idempotency-Key field (refused)
  std::string content_type;               // Content-Type header as received; empty when absent
  std::string request_id;  // X-Request-Id header as received (validated by the handler)
  std::string remote;      // peer address, for logs
  Listener listener = Listener::kApi;
  // Runs work on this request's connection I/O thread (its event loop): a handler answered from
  // another thread (the store's writer) renders there. Empty: run inline.
  PostFn post;
};

struct HttpResponse {
  int status = 200;
  std::string body;
  // REQUIRES: text that outlives the response (every one is a literal).
  std::string_view content_type = "application/json; charset=utf-8";
  std::vector<std::pair<std::string, std::string>> headers;  // extra headers
  std::string request_id;  // sent as X-Request-Id (after `headers`) unless empty
};

// Called once per request, from any thread. A second call is ignored; a request whose
// Responder is dropped unanswered is answered 500 by the server (a handler's bug).
using Responder = std::function<void(HttpResponse)>;
using RequestHandler = std::function<void(std::shared_ptr<HttpRequest>, Responder)>;

}  // namespace tokenledger::http
