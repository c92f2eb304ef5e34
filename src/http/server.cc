#include "src/http/server.h"

#include <sched.h>
#include <algorithm>
#include <array>
#include <boost/asio.hpp>
#include <boost/asio/as_tuple.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <cassert>
#include <charconv>
#include <mutex>
#include <optional>
#include <string_view>
#include <thread>
#include <unordered_set>

#include "src/http/errors.h"
#include "src/http/request_parser.h"
#include "tokenledger/id.h"
#include "tokenledger/log.h"
#include "tokenledger/thread_name.h"

namespace tokenledger::http {
namespace beast = boost::beast;
namespace bhttp = boost::beast::http;
namespace net = boost::asio;
using tcp = net::ip::tcp;

namespace {

constexpr auto kNoThrow = net::as_tuple(net::use_awaitable);
constexpr auto kAcceptRetryDelay = std::chrono::milliseconds(100);
// After a refusal the server reads and drops what the client still sends, for at most this
// long and this much (a lingering close, as nginx's lingering_time): see Linger.
constexpr auto kLingerTime = std::chrono::seconds(2);
constexpr std::size_t kLingerBytes = 16u << 20;

std::chrono::microseconds Us(Micros m) { return std::chrono::microseconds(m); }

}  // namespace

unsigned DefaultIoThreads(unsigned cores) { return cores > 1 ? cores - 1 : 1; }

unsigned UsableCores() {
  cpu_set_t set;
  if (::sched_getaffinity(0, sizeof set, &set) == 0) {
    const int n = CPU_COUNT(&set);
    if (n > 0) return static_cast<unsigned>(n);
  }
  return std::thread::hardware_concurrency();
}

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

// One event loop per I/O thread, as nginx runs one per worker: a connection lives on one
// loop from accept to close, so a request is read, handled and answered on one thread with no
// locks and no hand-offs (the loops are io_contexts with a concurrency hint of 1). Only the
// accept crosses threads, once per connection: the listeners run on loop 0 and deal
// connections round-robin. Timeouts are deadlines swept by a timer per loop (not a timer per
// read and write): a connection past its deadline has its socket operations cancelled.
struct Server::Impl {
  struct Loop;

  // A connection the shutdown can reach: closed at once if idle, after its response if busy.
  // Touched only on its loop's thread.
  struct Connection {
    Connection(tcp::socket s, Loop& l) : socket(std::move(s)), loop(l) {}
    tcp::socket socket;
    Loop& loop;
    bool busy = false;  // a request is being handled
    std::chrono::steady_clock::time_point deadline = kNoDeadline;
    std::string head;  // the response head, rebuilt in place for every response
  };

  struct Loop {
    net::io_context ioc{1};
    net::executor_work_guard<net::io_context::executor_type> work{ioc.get_executor()};
    net::steady_timer sweep{ioc};
    std::unordered_set<std::shared_ptr<Connection>> connections;
  };

  static constexpr auto kNoDeadline = std::chrono::steady_clock::time_point::max();

  ServerOptions options;
  RequestHandler handler;
  HttpMetrics& metrics;
  std::vector<std::unique_ptr<Loop>> loops;
  std::size_t next_loop = 0;  // round-robin; touched only on loop 0
  net::signal_set signals;
  tcp::acceptor api_acceptor;
  tcp::acceptor metrics_acceptor;
  std::atomic<bool> draining{false};
  std::chrono::steady_clock::duration sweep_period;

  static std::vector<std::unique_ptr<Loop>> MakeLoops(unsigned n) {
    std::vector<std::unique_ptr<Loop>> loops;
    for (unsigned i = 0; i < std::max(1u, n); ++i) loops.push_back(std::make_unique<Loop>());
    return loops;
  }

  Impl(const ServerOptions& o, RequestHandler h, HttpMetrics& m)
      : options(o),
        handler(std::move(h)),
        metrics(m),
        loops(MakeLoops(o.threads ? o.threads : DefaultIoThreads(UsableCores()))),
        signals(loops[0]->ioc, SIGINT, SIGTERM),
        api_acceptor(loops[0]->ioc),
        metrics_acceptor(loops[0]->ioc),
        // A timeout fires within an eighth of itself late (at most a second, at least 5 ms).
        sweep_period(std::clamp<std::chrono::steady_clock::duration>(
            Us(options.read_timeout) / 8, std::chrono::milliseconds(5), std::chrono::seconds(1))) {}

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

  // Runs on loop 0.
  net::awaitable<void> Accept(tcp::acceptor& acceptor, Listener listener) {
    for (;;) {
      Loop& loop = *loops[next_loop];
      next_loop = (next_loop + 1) % loops.size();
      auto [ec, socket] = co_await acceptor.async_accept(loop.ioc, kNoThrow);
      if (ec) {
        if (ec == net::error::operation_aborted || !acceptor.is_open()) co_return;
        Log(LogLevel::kWarn, "accept failed", {{"error", ec.message()}});
        // Out of descriptors (EMFILE/ENFILE) fails again at once: pause rather than spin, and
        // let the kernel's backlog hold the connections meanwhile (nginx does the same).
        net::steady_timer pause(acceptor.get_executor(), kAcceptRetryDelay);
        co_await pause.async_wait(kNoThrow);
        continue;
      }
      if (static_cast<std::size_t>(metrics.Connections()) >= options.max_connections) {
        metrics.ConnectionRefused();
        auto conn = std::make_shared<Connection>(std::move(socket), loop);
        net::co_spawn(loop.ioc, Refuse(conn), net::detached);
        continue;
      }
      metrics.ConnectionOpened();
      auto conn = std::make_shared<Connection>(std::move(socket), loop);
      net::post(loop.ioc, [this, conn, listener] {
        conn->loop.connections.insert(conn);
        net::co_spawn(conn->loop.ioc, Session(conn, listener), [this, conn](std::exception_ptr e) {
          if (e) {
            try {
              std::rethrow_exception(e);
            } catch (const std::exception& ex) {
              Log(LogLevel::kError, "connection failed", {{"what", ex.what()}});
            }
          }
          conn->loop.connections.erase(conn);
          metrics.ConnectionClosed();
        });
      });
    }
  }

  // Cuts what is in progress on connections past their deadline; runs on each loop.
  net::awaitable<void> Sweep(Loop& loop) {
    for (;;) {
      loop.sweep.expires_after(sweep_period);
      auto [ec] = co_await loop.sweep.async_wait(kNoThrow);
      if (ec) co_return;
      const auto now = std::chrono::steady_clock::now();
      for (const auto& conn : loop.connections) {
        if (conn->deadline <= now) {
          // Cancel what is pending, and shut the socket so that an operation started after
          // this (its completion may already be queued, the next one started at once) fails
          // too: a connection past its deadline never gets another.
          conn->deadline = kNoDeadline;
          beast::error_code ignored;
          conn->socket.cancel(ignored);
          conn->socket.shutdown(tcp::socket::shutdown_both, ignored);
        }
      }
    }
  }

  static bool Bodiless(int status) { return status < 200 || status == 204 || status == 304; }

  // The head of a response, as Beast would serialize it, into `head`.
  static void BuildHead(std::string& head, const HttpResponse& r, unsigned version,
                        bool keep_alive) {
    using namespace std::string_view_literals;
    // Every piece is appended with its length (a literal's is known): no strlen, no to_string.
    const auto number = [&head](std::size_t n) {
      char digits[20];
      head.append(digits, std::to_chars(digits, digits + sizeof digits, n).ptr);
    };
    head.clear();
    head += version == 10 ? "HTTP/1.0 "sv : "HTTP/1.1 "sv;
    number(static_cast<std::size_t>(r.status));
    head += ' ';
    const auto reason = bhttp::obsolete_reason(static_cast<bhttp::status>(r.status));
    head.append(reason.data(), reason.size());
    head += "\r\nServer: tokenledger\r\nContent-Type: "sv;
    head += r.content_type;
    head += "\r\n"sv;
    for (const auto& [name, value] : r.headers) {
      head += name;
      head += ": "sv;
      head += value;
      head += "\r\n"sv;
    }
    if (!r.request_id.empty()) {
      head += "X-Request-Id: "sv;
      head += r.request_id;
      head += "\r\n"sv;
    }
    if (version >= 11 && !keep_alive) head += "Connection: close\r\n"sv;
    if (version < 11 && keep_alive) head += "Connection: keep-alive\r\n"sv;
    // No Content-Length where a response may not have a body (RFC 9110 8.6); Write sends none.
    if (!Bodiless(r.status)) {
      head += "Content-Length: "sv;
      number(r.body.size());
      head += "\r\n"sv;
    }
    head += "\r\n"sv;
  }

  // Reads from `socket` into `buffer` and parses, until the parser has the header (with
  // `header_only`) or the whole message: what Beast's async_read_header and async_read do,
  // with one async_read_some per read and no composed operation around it (those were a fifth
  // of a ping's instructions). Returns the error and the bytes the parser took. Errors as
  // Beast's: end_of_stream when the peer closed before a byte of a message, buffer_overflow
  // when the buffer is full, the parser's own (header_limit, body_limit, bad_*), or the
  // socket's (operation_aborted when the sweep cut the read at its deadline).
  static net::awaitable<std::pair<beast::error_code, std::size_t>> ReadMessage(
      tcp::socket& socket, beast::flat_buffer& buffer, RequestParser& parser, bool header_only) {
    std::size_t parsed = 0;
    for (;;) {
      if (buffer.size() > 0) {
        beast::error_code ec;
        const std::size_t used = parser.Put(buffer.data(), ec);
        buffer.consume(used);
        parsed += used;
        if (ec && ec != bhttp::error::need_more) co_return std::pair{ec, parsed};
        if (!ec) {
          if (parser.Done() || (header_only && parser.HeaderDone()))
            co_return std::pair{ec, parsed};
          continue;  // the header is done: on with the body's bytes, if any are here
        }
      }
      const std::size_t room = beast::read_size(buffer, 65536);
      if (room == 0) co_return std::pair{beast::error_code(bhttp::error::buffer_overflow), parsed};
      auto [ec, n] = co_await socket.async_read_some(buffer.prepare(room), kNoThrow);
      buffer.commit(n);
      if (ec == net::error::eof) {
        if (!parser.GotSome())
          co_return std::pair{beast::error_code(bhttp::error::end_of_stream), parsed};
        beast::error_code eof;
        RequestParser::PutEof(eof);  // a request cannot end at the connection's end
        co_return std::pair{eof, parsed};
      }
      if (ec) co_return std::pair{beast::error_code(ec), parsed};
    }
  }

  // Writes a response; to a HEAD request only its head (with the Content-Length the body
  // would have had: RFC 9110 9.3.2), so a keep-alive client stays in step. A status that has
  // no body (1xx, 204, 304) never sends one, whatever the handler gave.
  net::awaitable<boost::system::error_code> Write(Connection& conn, const HttpResponse& r,
                                                  unsigned version, bool keep_alive, bool head) {
    BuildHead(conn.head, r, version, keep_alive);
    conn.deadline = std::chrono::steady_clock::now() + Us(options.read_timeout);
    const std::array<net::const_buffer, 2> buffers{
        net::buffer(conn.head),
        net::buffer(head || Bodiless(r.status) ? std::string_view() : std::string_view(r.body))};
    auto [ec, n] = co_await net::async_write(conn.socket, buffers, kNoThrow);
    conn.deadline = kNoDeadline;
    co_return ec;
  }

  // What is left of a refused request's body, as far as the client declared it (bytes read
  // but not parsed count as arrived); kLingerBytes when it declared no length (chunked).
  static std::size_t UnreadBody(const RequestParser& parser, const beast::flat_buffer& buffer) {
    if (!parser.HeaderDone() || !parser.ContentLength()) return kLingerBytes;
    const std::uint64_t declared = *parser.ContentLength();
    if (declared <= buffer.size()) return 0;
    return std::min<std::uint64_t>(declared - buffer.size(), kLingerBytes);
  }

  // After refusing a body too large, which leaves it unread: stops sending, then reads and
  // drops what the client still sends, until it closes or `unread` bytes came, for at most
  // kLingerTime. Closing on unread bytes would make the kernel answer them with a reset, and
  // a client still sending its body gets a write error and may never read the refusal.
  // REQUIRES: unread <= kLingerBytes.
  net::awaitable<void> Linger(Connection& conn, std::size_t unread) {
    assert(unread <= kLingerBytes);
    if (unread == 0) co_return;  // all of it arrived: closing resets nothing
    beast::error_code ignored;
    conn.socket.shutdown(tcp::socket::shutdown_send, ignored);
    conn.busy = false;  // nothing more to answer: a shutdown may cut it at once
    conn.deadline = std::chrono::steady_clock::now() + kLingerTime;
    std::array<char, 16384> sink;
    for (std::size_t drained = 0; drained < unread;) {
      auto [ec, n] = co_await conn.socket.async_read_some(net::buffer(sink), kNoThrow);
      if (ec) break;  // the client closed, or the sweep cut the connection at its deadline
      drained += n;
    }
    conn.deadline = kNoDeadline;
  }

  net::awaitable<void> Refuse(std::shared_ptr<Connection> conn) {
    const HttpResponse r =
        ErrorResponse(ErrorCode::kUnavailable, "too many open connections; retry shortly");
    // Not in the loop's connection set: a short write deadline of its own.
    net::steady_timer timer(conn->socket.get_executor(), std::chrono::seconds(5));
    timer.async_wait([conn](boost::system::error_code ec) {
      if (!ec) conn->socket.cancel(ec);
    });
    co_await Write(*conn, r, 11, false, false);
    timer.cancel();
    beast::error_code ignored;
    conn->socket.shutdown(tcp::socket::shutdown_send, ignored);
  }

  // The handler's answer to one request: given inline by most reads (no hand-off at all), or
  // later from another thread (a write, answered after its commit), which resumes the session
  // on its loop. Reused by the session's next request once no Responder holds it.
  struct Answer {
    std::mutex mu;
    std::optional<HttpResponse> response;     // guarded by mu
    std::function<void()> resume;             // guarded by mu; set while the session waits
    net::io_context::executor_type executor;  // the session's loop
    std::atomic<bool> given{false};           // the first answer counts
    std::atomic<int> responders{0};           // copies of this request's Responder alive
    explicit Answer(net::io_context::executor_type e) : executor(std::move(e)) {}

    // Gives `r` to the session, resuming it on its loop if it waits; a second answer is dropped.
    void Give(HttpResponse r) {
      if (given.exchange(true)) return;
      std::function<void()> resume_now;
      {
        std::lock_guard lock(mu);
        response = std::move(r);
        resume_now = std::move(resume);
      }
      if (resume_now) net::post(executor, std::move(resume_now));
    }
  };

  // What a Responder holds: the request's Answer, counted. When the last copy goes without
  // having answered (a handler's bug), the request is answered 500: otherwise its connection
  // would wait, busy and without a deadline, until shutdown.
  class Responding {
   public:
    explicit Responding(std::shared_ptr<Answer> a) : answer_(std::move(a)) {
      ++answer_->responders;
    }
    Responding(const Responding& o) : answer_(o.answer_) { ++answer_->responders; }
    Responding(Responding&& o) noexcept = default;  // o is left empty and counts for nothing
    Responding& operator=(const Responding&) = delete;
    Responding& operator=(Responding&&) = delete;
    ~Responding() {
      if (!answer_ || --answer_->responders > 0 || answer_->given.load()) return;
      Log(LogLevel::kError, "a request handler returned without answering");
      answer_->Give(
          ErrorResponse(ErrorCode::kUnexpected, "internal error: the request was not answered"));
    }
    void operator()(HttpResponse r) const { answer_->Give(std::move(r)); }

   private:
    std::shared_ptr<Answer> answer_;
  };

  template <typename Token>
  static auto AwaitAnswer(std::shared_ptr<Answer> answer, Token&& token) {
    return net::async_initiate<Token, void()>(
        [](auto completion, std::shared_ptr<Answer> answer) {
          auto shared = std::make_shared<decltype(completion)>(std::move(completion));
          std::unique_lock lock(answer->mu);
          if (answer->response) {  // answered between the handler's return and this wait
            lock.unlock();
            net::post(answer->executor, [shared] { (*shared)(); });
            return;
          }
          answer->resume = [shared] { (*shared)(); };
        },
        token, std::move(answer));
  }

  net::awaitable<void> Session(std::shared_ptr<Connection> conn, Listener listener) {
    tcp::socket& socket = conn->socket;
    const auto executor = conn->loop.ioc.get_executor();
    beast::flat_buffer buffer(options.max_header_bytes + options.max_body_bytes + 1024);
    beast::error_code ignored;
    const std::string remote = socket.remote_endpoint(ignored).address().to_string();
    const PostFn post = [executor](std::function<void()> work) {
      net::post(executor, std::move(work));
    };
    std::shared_ptr<HttpRequest> request;  // reused while no handler holds on to it
    std::shared_ptr<Answer> answer;        // likewise
    std::optional<RequestParser> parser;
    for (;;) {
      conn->busy = false;
      if (draining) break;
      // Reused only once no other thread holds it; the fence orders their last reads of it
      // before the writes below (use_count() is a relaxed load).
      if (!request || request.use_count() > 1) request = std::make_shared<HttpRequest>();
      std::atomic_thread_fence(std::memory_order_acquire);
      RequestParser::Reset(*request);
      parser.emplace(*request, options.max_header_bytes, options.max_body_bytes);
      conn->deadline = std::chrono::steady_clock::now() + Us(options.read_timeout);
      auto [ec, n] = co_await ReadMessage(socket, buffer, *parser, /*header_only=*/true);
      if (ec == bhttp::error::end_of_stream || ec == net::error::operation_aborted ||
          ec == net::error::connection_reset || ec == net::error::eof ||
          (ec && buffer.size() == 0 && n == 0)) {
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
      } else if (auto problem = FramingProblem(*parser)) {
        refusal = ErrorResponse(ErrorCode::kBadRequest, std::move(*problem));
      } else if (request->target.size() > options.max_url_bytes) {
        refusal = ErrorResponse(
            ErrorCode::kUriTooLong,
            "request URL exceeds " + std::to_string(options.max_url_bytes) + " bytes");
      } else if (parser->ContentLength() && *parser->ContentLength() > options.max_body_bytes) {
        refusal = ErrorResponse(
            ErrorCode::kPayloadTooLarge,
            "request body exceeds " + std::to_string(options.max_body_bytes) + " bytes");
      }
      if (!refusal) {
        if (parser->ExpectsContinue()) {
          bhttp::response<bhttp::empty_body> cont{bhttp::status::continue_, parser->Version()};
          auto [cont_ec, cont_n] = co_await bhttp::async_write(socket, cont, kNoThrow);
          if (cont_ec) break;  // the client went away, or the sweep cut it at its deadline
        }
        if (!parser->Done()) {
          conn->deadline = std::chrono::steady_clock::now() + Us(options.read_timeout);
          auto [body_ec, body_n] = co_await ReadMessage(socket, buffer, *parser, false);
          if (body_ec == bhttp::error::body_limit) {
            refusal = ErrorResponse(
                ErrorCode::kPayloadTooLarge,
                "request body exceeds " + std::to_string(options.max_body_bytes) + " bytes");
          } else if (body_ec) {
            if (body_ec == net::error::operation_aborted) break;  // timed out or shut down
            refusal = ErrorResponse(ErrorCode::kBadRequest,
                                    "malformed HTTP request body: " + body_ec.message());
          }
        }
      }
      conn->deadline = kNoDeadline;  // a write may wait on the committer; the handler answers
      if (refusal) {
        // The request was not read to its end: answer, then close (the stream is out of sync).
        thread_local IdGenerator request_ids;
        const std::string request_id = request_ids.Generate().ToString();
        refusal->request_id = request_id;
        Log(LogLevel::kInfo, "request refused",
            {{"request_id", request_id},
             {"status", static_cast<long long>(refusal->status)},
             {"remote", remote},
             {"reason", refusal->body}});
        metrics.Observe("unparsed", "?", refusal->status, 0);
        const bool head = parser->HeaderDone() && parser->IsHead();
        co_await Write(*conn, *refusal, 11, false, head);
        // A body too large is what a client may still be sending: it gets a lingering close.
        if (refusal->status == 413) co_await Linger(*conn, UnreadBody(*parser, buffer));
        break;
      }

      HttpRequest& r = *request;
      if (r.remote.empty()) r.remote = remote;
      r.listener = listener;
      if (!r.post) r.post = post;
      const bool keep_alive = parser->KeepAlive();
      const unsigned version = parser->Version();
      const bool head = parser->IsHead();  // the API answers it as a GET

      if (!answer || answer.use_count() > 1) answer = std::make_shared<Answer>(executor);
      std::atomic_thread_fence(std::memory_order_acquire);  // as for `request` above
      answer->response.reset();
      answer->resume = nullptr;
      answer->given = false;
      handler(request, Responding(answer));
      bool answered;
      {
        std::lock_guard lock(answer->mu);
        answered = answer->response.has_value();
      }
      if (!answered) co_await AwaitAnswer(answer, net::use_awaitable);
      std::optional<HttpResponse> response;
      {
        std::lock_guard lock(answer->mu);
        response = std::move(answer->response);
      }
      assert(response);
      const bool keep = keep_alive && !draining;
      const auto write_ec = co_await Write(*conn, *response, version, keep, head);
      if (write_ec || !keep) break;
    }
    socket.shutdown(tcp::socket::shutdown_send, ignored);
    socket.close(ignored);
  }

  net::awaitable<void> Drain() {
    net::steady_timer timer(loops[0]->ioc);
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
    for (auto& loop : loops) {
      net::post(loop->ioc, [&loop = *loop] {
        loop.sweep.cancel();
        loop.work.reset();
        loop.ioc.stop();
      });
    }
  }

  void CloseIdle(bool all) {
    for (auto& loop : loops) {
      net::post(loop->ioc, [&loop = *loop, all] {
        for (const auto& conn : loop.connections) {
          if (all || !conn->busy) {
            beast::error_code ignored;
            conn->socket.cancel(ignored);
            conn->socket.shutdown(tcp::socket::shutdown_both, ignored);
          }
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
    net::co_spawn(loops[0]->ioc, Drain(), net::detached);
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

unsigned Server::IoThreads() const { return static_cast<unsigned>(impl_->loops.size()); }

void Server::Run() {
  Impl& m = *impl_;
  net::io_context& first = m.loops[0]->ioc;
  net::co_spawn(first, m.Accept(m.api_acceptor, Listener::kApi), net::detached);
  if (m.metrics_acceptor.is_open())
    net::co_spawn(first, m.Accept(m.metrics_acceptor, Listener::kMetrics), net::detached);
  m.signals.async_wait([&m](const boost::system::error_code& ec, int signal) {
    if (ec) return;
    Log(LogLevel::kInfo, "signal received", {{"signal", static_cast<long long>(signal)}});
    m.BeginShutdown();
  });
  for (auto& loop : m.loops) net::co_spawn(loop->ioc, m.Sweep(*loop), net::detached);
  std::vector<std::thread> threads;
  // The first loop runs on the calling thread, which keeps the process's name (pgrep).
  for (std::size_t i = 1; i < m.loops.size(); ++i) {
    threads.emplace_back([&loop = *m.loops[i], i] {
      NameThisThread(("tl-io-" + std::to_string(i)).c_str());
      loop.ioc.run();
    });
  }
  m.loops[0]->ioc.run();
  for (auto& t : threads) t.join();
}

void Server::Shutdown() {
  net::post(impl_->loops[0]->ioc, [this] { impl_->BeginShutdown(); });
}

}  // namespace tokenledger::http
