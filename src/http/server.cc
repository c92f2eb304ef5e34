#include "src/http/server.h"

#include <boost/asio.hpp>
#include <boost/asio/as_tuple.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <mutex>
#include <thread>
#include <unordered_set>

#include "src/http/errors.h"
#include "tokenledger/id.h"
#include "tokenledger/log.h"

namespace tokenledger::http {
namespace beast = boost::beast;
namespace bhttp = boost::beast::http;
namespace net = boost::asio;
using tcp = net::ip::tcp;

namespace {

constexpr auto kNoThrow = net::as_tuple(net::use_awaitable);
constexpr auto kAcceptRetryDelay = std::chrono::milliseconds(100);

std::chrono::microseconds Us(Micros m) { return std::chrono::microseconds(m); }

// A connection the shutdown can reach: closed at once if idle, after its response if busy.
struct Connection {
  explicit Connection(tcp::socket socket) : stream(std::move(socket)) {}
  beast::tcp_stream stream;
  bool busy = false;  // a request is being handled; touched only on the connection's strand
};

using Parser = bhttp::request_parser<bhttp::string_body>;

// Framing Beast accepts but we refuse (RFC 9112 3.2, 6.1, 6.3). Beast already refuses
// Content-Length values that differ, and Transfer-Encoding after Content-Length or after
// `chunked`; it ignores a Transfer-Encoding that does not end in `chunked` and reads no body,
// so the body would be read as the next request (smuggling). With no proxy in front of us the
// safe answer to any ambiguous length is to refuse and close. Returns why, or nothing.
std::optional<std::string> FramingProblem(const Parser& parser) {
  const auto& req = parser.get();
  const std::size_t hosts = req.count(bhttp::field::host);
  if (hosts > 1) return "the Host header is repeated";
  if (hosts == 0 && req.version() >= 11) return "an HTTP/1.1 request needs a Host header";
  if (req.count(bhttp::field::transfer_encoding) == 0) return std::nullopt;
  if (req.version() < 11) return "Transfer-Encoding is not allowed in HTTP/1.0";
  if (req.count(bhttp::field::content_length) > 0)
    return "a request may not have both Transfer-Encoding and Content-Length";
  // Only `chunked` alone: no other coding is decoded, and the last one must be chunked.
  std::size_t codings = 0;
  bool chunked = false;
  for (auto [it, end] = req.equal_range(bhttp::field::transfer_encoding); it != end; ++it) {
    for (const auto coding : bhttp::token_list{it->value()}) {
      ++codings;
      chunked = beast::iequals(coding, "chunked");
    }
  }
  if (codings != 1 || !chunked || !parser.chunked())
    return "Transfer-Encoding must be exactly 'chunked'";
  return std::nullopt;
}

}  // namespace

bool SplitHostPort(const std::string& address, std::string* host, unsigned short* port) {
  std::size_t colon = address.rfind(':');
  if (colon == std::string::npos || colon + 1 >= address.size()) return false;
  std::string h = address.substr(0, colon);
  if (h.size() >= 2 && h.front() == '[' && h.back() == ']') h = h.substr(1, h.size() - 2);
  const std::string p = address.substr(colon + 1);
  if (h.empty() || p.find_first_not_of("0123456789") != std::string::npos || p.size() > 5)
    return false;
  const unsigned long n = std::stoul(p);
  if (n > 65535) return false;
  *host = h;
  *port = static_cast<unsigned short>(n);
  return true;
}

struct Server::Impl {
  ServerOptions options;
  RequestHandler handler;
  HttpMetrics& metrics;
  net::io_context ioc;
  net::executor_work_guard<net::io_context::executor_type> work{ioc.get_executor()};
  net::signal_set signals{ioc, SIGINT, SIGTERM};
  tcp::acceptor api_acceptor{ioc};
  tcp::acceptor metrics_acceptor{ioc};
  std::atomic<bool> draining{false};
  std::mutex connections_mu;
  std::unordered_set<std::shared_ptr<Connection>> connections;  // guarded by connections_mu

  Impl(const ServerOptions& o, RequestHandler h, HttpMetrics& m)
      : options(o), handler(std::move(h)), metrics(m) {}

  Status Bind(tcp::acceptor& acceptor, const std::string& address) {
    std::string host;
    unsigned short port = 0;
    if (!SplitHostPort(address, &host, &port)) {
      return Error{
          ErrorCode::kInvalidValue, "listen address '" + address + "' is not HOST:PORT", {}};
    }
    boost::system::error_code ec;
    const auto ip = net::ip::make_address(host == "localhost" ? "127.0.0.1" : host, ec);
    if (ec)
      return Error{ErrorCode::kInvalidValue, "listen host '" + host + "' is not an IP address", {}};
    const tcp::endpoint endpoint(ip, port);
    acceptor.open(endpoint.protocol(), ec);
    if (!ec) acceptor.set_option(net::socket_base::reuse_address(true), ec);
    if (!ec) acceptor.bind(endpoint, ec);
    if (!ec) acceptor.listen(net::socket_base::max_listen_connections, ec);
    if (ec)
      return Error{
          ErrorCode::kUnavailable, "cannot listen on " + address + ": " + ec.message(), {}};
    return Status::Ok();
  }

  net::awaitable<void> Accept(tcp::acceptor& acceptor, Listener listener) {
    for (;;) {
      auto [ec, socket] = co_await acceptor.async_accept(net::make_strand(ioc), kNoThrow);
      if (ec) {
        if (ec == net::error::operation_aborted || !acceptor.is_open()) co_return;
        Log(LogLevel::kWarn, "accept failed", {{"error", ec.message()}});
        // Out of descriptors (EMFILE/ENFILE) fails again at once: pause rather than spin, and
        // let the kernel's backlog hold the connections meanwhile (nginx does the same).
        net::steady_timer pause(acceptor.get_executor(), kAcceptRetryDelay);
        co_await pause.async_wait(kNoThrow);
        continue;
      }
      auto conn = std::make_shared<Connection>(std::move(socket));
      const auto executor = conn->stream.get_executor();
      if (static_cast<std::size_t>(metrics.Connections()) >= options.max_connections) {
        metrics.ConnectionRefused();
        net::co_spawn(executor, Refuse(conn), net::detached);
        continue;
      }
      metrics.ConnectionOpened();
      {
        std::lock_guard lock(connections_mu);
        connections.insert(conn);
      }
      net::co_spawn(executor, Session(conn, listener), [this, conn](std::exception_ptr e) {
        if (e) {
          try {
            std::rethrow_exception(e);
          } catch (const std::exception& ex) {
            Log(LogLevel::kError, "connection failed", {{"what", ex.what()}});
          }
        }
        std::lock_guard lock(connections_mu);
        connections.erase(conn);
        metrics.ConnectionClosed();
      });
    }
  }

  bhttp::response<bhttp::string_body> ToBeast(HttpResponse r, unsigned version, bool keep_alive) {
    bhttp::response<bhttp::string_body> res{static_cast<bhttp::status>(r.status), version};
    res.set(bhttp::field::server, "tokenledger");
    res.set(bhttp::field::content_type, r.content_type);
    for (auto& [name, value] : r.headers) res.set(name, value);
    res.keep_alive(keep_alive);
    res.body() = std::move(r.body);
    res.prepare_payload();
    return res;
  }

  // Writes a response; to a HEAD request only its header (with the Content-Length the body
  // would have had: RFC 9110 9.3.2), so a keep-alive client stays in step.
  net::awaitable<beast::error_code> Write(beast::tcp_stream& stream,
                                          bhttp::response<bhttp::string_body>& res, bool head) {
    if (head) {
      bhttp::response_serializer<bhttp::string_body> serializer{res};
      auto [ec, n] = co_await bhttp::async_write_header(stream, serializer, kNoThrow);
      co_return ec;
    }
    auto [ec, n] = co_await bhttp::async_write(stream, res, kNoThrow);
    co_return ec;
  }

  net::awaitable<void> Refuse(std::shared_ptr<Connection> conn) {
    auto res =
        ToBeast(ErrorResponse(ErrorCode::kUnavailable, "too many open connections; retry shortly"),
                11, false);
    conn->stream.expires_after(std::chrono::seconds(5));
    co_await bhttp::async_write(conn->stream, res, kNoThrow);
    beast::error_code ignored;
    conn->stream.socket().shutdown(tcp::socket::shutdown_send, ignored);
  }

  // Runs the handler and resumes on the connection's strand with its response, whichever
  // thread answers (an I/O thread for reads and, via HttpRequest::post, for writes too).
  template <typename Token>
  auto AsyncHandle(std::shared_ptr<HttpRequest> request, Token&& token) {
    return net::async_initiate<Token, void(HttpResponse)>(
        [this](auto completion, std::shared_ptr<HttpRequest> request) {
          auto shared = std::make_shared<decltype(completion)>(std::move(completion));
          auto executor = net::get_associated_executor(*shared);
          handler(std::move(request), [shared, executor](HttpResponse response) {
            net::post(executor, [shared, response = std::move(response)]() mutable {
              (*shared)(std::move(response));
            });
          });
        },
        token, std::move(request));
  }

  net::awaitable<void> Session(std::shared_ptr<Connection> conn, Listener listener) {
    beast::tcp_stream& stream = conn->stream;
    beast::flat_buffer buffer(options.max_header_bytes + options.max_body_bytes + 1024);
    beast::error_code ignored;
    const std::string remote = stream.socket().remote_endpoint(ignored).address().to_string();
    for (;;) {
      conn->busy = false;
      if (draining) break;
      Parser parser;
      parser.header_limit(static_cast<std::uint32_t>(options.max_header_bytes));
      parser.body_limit(options.max_body_bytes);
      stream.expires_after(Us(options.read_timeout));
      auto [ec, n] = co_await bhttp::async_read_header(stream, buffer, parser, kNoThrow);
      if (ec == bhttp::error::end_of_stream || ec == net::error::operation_aborted ||
          ec == beast::error::timeout || ec == net::error::connection_reset ||
          ec == net::error::eof || (ec && buffer.size() == 0 && n == 0)) {
        break;  // the peer went away, the read timed out, or shutdown closed an idle connection
      }
      conn->busy = true;
      std::optional<HttpResponse> refusal;
      if (ec == bhttp::error::header_limit || ec == bhttp::error::buffer_overflow) {
        refusal = ErrorResponse(
            ErrorCode::kHeadersTooLarge,
            "request headers exceed " + std::to_string(options.max_header_bytes) + " bytes");
      } else if (ec == bhttp::error::body_limit) {
        refusal = ErrorResponse(
            ErrorCode::kPayloadTooLarge,
            "request body exceeds " + std::to_string(options.max_body_bytes) + " bytes");
      } else if (ec) {
        refusal = ErrorResponse(ErrorCode::kBadRequest, "malformed HTTP request: " + ec.message());
      } else if (auto problem = FramingProblem(parser)) {
        refusal = ErrorResponse(ErrorCode::kBadRequest, std::move(*problem));
      } else if (parser.get().target().size() > options.max_url_bytes) {
        refusal = ErrorResponse(
            ErrorCode::kUriTooLong,
            "request URL exceeds " + std::to_string(options.max_url_bytes) + " bytes");
      } else if (parser.content_length() && *parser.content_length() > options.max_body_bytes) {
        refusal = ErrorResponse(
            ErrorCode::kPayloadTooLarge,
            "request body exceeds " + std::to_string(options.max_body_bytes) + " bytes");
      }
      if (!refusal) {
        if (beast::iequals(parser.get()[bhttp::field::expect], "100-continue")) {
          bhttp::response<bhttp::empty_body> cont{bhttp::status::continue_, parser.get().version()};
          co_await bhttp::async_write(stream, cont, kNoThrow);
        }
        if (!parser.is_done()) {
          stream.expires_after(Us(options.read_timeout));
          auto [body_ec, body_n] = co_await bhttp::async_read(stream, buffer, parser, kNoThrow);
          if (body_ec == bhttp::error::body_limit) {
            refusal = ErrorResponse(
                ErrorCode::kPayloadTooLarge,
                "request body exceeds " + std::to_string(options.max_body_bytes) + " bytes");
          } else if (body_ec) {
            if (body_ec == beast::error::timeout || body_ec == net::error::operation_aborted) break;
            refusal = ErrorResponse(ErrorCode::kBadRequest,
                                    "malformed HTTP request body: " + body_ec.message());
          }
        }
      }
      if (refusal) {
        // The request was not read to its end: answer, then close (the stream is out of sync).
        thread_local IdGenerator request_ids;
        const std::string request_id = request_ids.Generate().ToString();
        refusal->headers.emplace_back("X-Request-Id", request_id);
        Log(LogLevel::kInfo, "request refused",
            {{"request_id", request_id},
             {"status", static_cast<long long>(refusal->status)},
             {"remote", remote},
             {"reason", refusal->body}});
        metrics.Observe("unparsed", "?", refusal->status, 0);
        auto res = ToBeast(std::move(*refusal), 11, false);
        const bool head = parser.is_header_done() && parser.get().method() == bhttp::verb::head;
        stream.expires_after(Us(options.read_timeout));
        co_await Write(stream, res, head);
        break;
      }

      auto& req = parser.get();
      auto request = std::make_shared<HttpRequest>();
      request->method = std::string(req.method_string());
      request->target = std::string(req.target());
      request->body = std::move(req.body());
      if (auto it = req.find(bhttp::field::authorization); it != req.end()) {
        request->has_authorization = true;
        request->authorization = std::string(it->value());
        request->repeated_authorization = req.count(bhttp::field::authorization) > 1;
      }
      if (auto it = req.find("Idempotency-Key"); it != req.end()) {
        request->has_idempotency_key = true;
        request->idempotency_key = std::string(it->value());
        request->repeated_idempotency_key = req.count("Idempotency-Key") > 1;
      }
      if (auto it = req.find("X-Request-Id"); it != req.end())
        request->request_id = std::string(it->value());
      if (auto it = req.find(bhttp::field::content_type); it != req.end())
        request->content_type = std::string(it->value());
      request->remote = remote;
      request->listener = listener;
      request->post = [executor = stream.get_executor()](std::function<void()> work) {
        net::post(executor, std::move(work));
      };
      const bool keep_alive = req.keep_alive();
      const unsigned version = req.version();
      const bool head = req.method() == bhttp::verb::head;  // the API answers it as a GET

      stream.expires_never();  // a write may wait on the committer; the handler always answers
      HttpResponse response = co_await AsyncHandle(std::move(request), net::use_awaitable);
      auto res = ToBeast(std::move(response), version, keep_alive && !draining);
      stream.expires_after(Us(options.read_timeout));
      const beast::error_code write_ec = co_await Write(stream, res, head);
      if (write_ec || !res.keep_alive()) break;
    }
    stream.socket().shutdown(tcp::socket::shutdown_send, ignored);
    stream.close();
  }

  net::awaitable<void> Drain() {
    net::steady_timer timer(ioc);
    const auto deadline = std::chrono::steady_clock::now() + Us(options.shutdown_grace);
    while (metrics.Connections() > 0 && std::chrono::steady_clock::now() < deadline) {
      timer.expires_after(std::chrono::milliseconds(10));
      co_await timer.async_wait(kNoThrow);
      CloseIdle(false);  // connections that finished a request since the last look
    }
    if (metrics.Connections() > 0) {
      Log(LogLevel::kWarn, "shutdown grace period over; closing busy connections",
          {{"connections", metrics.Connections()}});
      CloseIdle(true);
    }
    work.reset();
    ioc.stop();
  }

  void CloseIdle(bool all) {
    std::lock_guard lock(connections_mu);
    for (const auto& conn : connections) {
      net::post(conn->stream.get_executor(), [conn, all] {
        if (all || !conn->busy) {
          beast::error_code ignored;
          conn->stream.socket().cancel(ignored);
          conn->stream.socket().shutdown(tcp::socket::shutdown_both, ignored);
        }
      });
    }
  }

  void BeginShutdown() {
    if (draining.exchange(true)) return;
    Log(LogLevel::kInfo, "shutting down: no new connections, finishing in-flight requests");
    beast::error_code ignored;
    api_acceptor.close(ignored);
    metrics_acceptor.close(ignored);
    signals.cancel(ignored);
    CloseIdle(false);
    net::co_spawn(ioc, Drain(), net::detached);
  }
};

Server::Server(const ServerOptions& options, RequestHandler handler, HttpMetrics& metrics)
    : impl_(std::make_unique<Impl>(options, std::move(handler), metrics)) {}

Server::~Server() = default;

Status Server::Listen() {
  if (Status s = impl_->Bind(impl_->api_acceptor, impl_->options.listen); !s) return s;
  if (!impl_->options.metrics_listen.empty()) {
    if (Status s = impl_->Bind(impl_->metrics_acceptor, impl_->options.metrics_listen); !s)
      return s;
  }
  return Status::Ok();
}

unsigned short Server::ApiPort() const {
  beast::error_code ec;
  return impl_->api_acceptor.local_endpoint(ec).port();
}

unsigned short Server::MetricsPort() const {
  beast::error_code ec;
  return impl_->metrics_acceptor.is_open() ? impl_->metrics_acceptor.local_endpoint(ec).port() : 0;
}

void Server::Run() {
  Impl& m = *impl_;
  net::co_spawn(m.ioc, m.Accept(m.api_acceptor, Listener::kApi), net::detached);
  if (m.metrics_acceptor.is_open())
    net::co_spawn(m.ioc, m.Accept(m.metrics_acceptor, Listener::kMetrics), net::detached);
  m.signals.async_wait([&m](const boost::system::error_code& ec, int signal) {
    if (ec) return;
    Log(LogLevel::kInfo, "signal received", {{"signal", static_cast<long long>(signal)}});
    m.BeginShutdown();
  });
  unsigned threads =
      m.options.threads ? m.options.threads : std::max(1u, std::thread::hardware_concurrency());
  std::vector<std::thread> pool;
  for (unsigned i = 1; i < threads; ++i) pool.emplace_back([&m] { m.ioc.run(); });
  m.ioc.run();
  for (auto& t : pool) t.join();
}

void Server::Shutdown() {
  net::post(impl_->ioc, [this] { impl_->BeginShutdown(); });
}

}  // namespace tokenledger::http
