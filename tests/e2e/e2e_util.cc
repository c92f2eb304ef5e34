#include "tests/e2e/e2e_util.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <signal.h>
#include <strings.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <chrono>
#include <fstream>
#include <regex>
#include <sstream>
#include <thread>

namespace tokenledger::e2e {
namespace json = boost::json;

std::string JsonString(const json::value& v) {
  return v.is_string() ? std::string(v.get_string()) : json::serialize(v);
}

json::value Response::Json() const {
  boost::system::error_code ec;
  json::value v = json::parse(body, ec);
  EXPECT_FALSE(ec) << "response body is not JSON: " << body;
  return v;
}

std::string Response::Header(const std::string& name) const {
  std::string lower = name;
  for (auto& c : lower) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  auto it = headers.find(lower);
  return it == headers.end() ? "" : it->second;
}

HttpClient::~HttpClient() { Close(); }

void HttpClient::Close() {
  if (fd_ >= 0) ::close(fd_);
  fd_ = -1;
  buffer_.clear();
}

int ConnectLoopback(unsigned short port, int timeout_s) {
  const int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) return -1;
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_port = htons(port);
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  timeval tv{timeout_s, 0};
  ::setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
  ::setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
  int one = 1;
  ::setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
  if (::connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0) {
    ::close(fd);
    return -1;
  }
  return fd;
}

bool HttpClient::Connect() {
  Close();
  fd_ = ConnectLoopback(port_, 10);
  return fd_ >= 0;
}

std::optional<Response> HttpClient::ReadResponse(bool head, bool* eof) {
  auto fill = [&]() {
    char buf[16384];
    const ssize_t n = ::recv(fd_, buf, sizeof buf, 0);
    if (n <= 0) {
      if (eof) *eof = n == 0 || errno == ECONNRESET;
      return false;
    }
    buffer_.append(buf, static_cast<std::size_t>(n));
    return true;
  };
  std::size_t header_end;
  while ((header_end = buffer_.find("\r\n\r\n")) == std::string::npos) {
    if (!fill()) return std::nullopt;
  }
  Response r;
  std::istringstream lines(buffer_.substr(0, header_end));
  std::string line;
  std::getline(lines, line);
  if (line.size() < 12 || line.rfind("HTTP/1.", 0) != 0 ||
      line.find_first_not_of("0123456789", 9) != 12) {
    return std::nullopt;  // not a status line: e.g. body bytes of a response that had none
  }
  r.status = std::stoi(line.substr(9, 3));
  while (std::getline(lines, line)) {
    if (!line.empty() && line.back() == '\r') line.pop_back();
    const auto colon = line.find(':');
    if (colon == std::string::npos) continue;
    std::string name = line.substr(0, colon);
    for (auto& c : name) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
    std::string value = line.substr(colon + 1);
    while (!value.empty() && value.front() == ' ') value.erase(0, 1);
    r.headers[name] = value;
  }
  const std::size_t length =
      !head && r.headers.count("content-length") ? std::stoul(r.headers["content-length"]) : 0;
  while (buffer_.size() < header_end + 4 + length) {
    if (!fill()) return std::nullopt;
  }
  r.body = buffer_.substr(header_end + 4, length);
  r.raw = buffer_.substr(0, header_end + 4 + length);
  buffer_.erase(0, header_end + 4 + length);
  if (r.Header("connection") == "close" && !keep_closed_) Close();
  return r;
}

std::vector<Response> HttpClient::Raw(const std::string& bytes, int responses, bool head) {
  std::vector<Response> out;
  if (fd_ < 0 && !Connect()) return out;
  if (::send(fd_, bytes.data(), bytes.size(), MSG_NOSIGNAL) != static_cast<ssize_t>(bytes.size()))
    return out;
  for (int i = 0; i < responses; ++i) {
    auto r = ReadResponse(head);
    if (!r) break;
    out.push_back(std::move(*r));
  }
  return out;
}

std::vector<Response> HttpClient::RawUntilClose(const std::string& bytes, bool* closed,
                                                int wait_ms) {
  std::vector<Response> out;
  *closed = false;
  if (fd_ < 0 && !Connect()) return out;
  timeval tv{wait_ms / 1000, (wait_ms % 1000) * 1000};
  ::setsockopt(fd_, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
  if (::send(fd_, bytes.data(), bytes.size(), MSG_NOSIGNAL) != static_cast<ssize_t>(bytes.size()))
    return out;
  keep_closed_ = true;  // see for ourselves whether the server closes after Connection: close
  bool eof = false;
  for (;;) {
    auto r = ReadResponse(false, &eof);
    if (!r) break;
    out.push_back(std::move(*r));
  }
  keep_closed_ = false;
  // Bytes that are not a response: read on to the end of the stream.
  while (!eof && !buffer_.empty()) {
    char buf[16384];
    const ssize_t n = ::recv(fd_, buf, sizeof buf, 0);
    if (n > 0) {
      buffer_.append(buf, static_cast<std::size_t>(n));
    } else {
      eof = n == 0 || errno == ECONNRESET;
      break;
    }
  }
  *closed = eof;
  return out;
}

Response HttpClient::Request(const std::string& method, const std::string& target,
                             const std::string& body,
                             const std::vector<std::pair<std::string, std::string>>& headers) {
  std::string req = method + " " + target + " HTTP/1.1\r\nHost: 127.0.0.1\r\n";
  bool typed = false;
  for (const auto& [k, v] : headers) {
    req += k + ": " + v + "\r\n";
    typed = typed || strcasecmp(k.c_str(), "Content-Type") == 0;
  }
  if (!body.empty() || method == "POST" || method == "DELETE") {
    if (!typed) req += "Content-Type: application/json\r\n";
    req += "Content-Length: " + std::to_string(body.size()) + "\r\n";
  }
  req += "\r\n" + body;
  for (int attempt = 0; attempt < 2; ++attempt) {
    // A kept-alive connection may have been closed by the server (timeout): retry once.
    auto responses = Raw(req, 1);
    if (!responses.empty()) return responses[0];
    Close();
  }
  ADD_FAILURE() << "no response to " << method << " " << target;
  return {};
}

ServerProcess::ServerProcess(std::string data_dir, std::vector<std::string> extra_args)
    : data_dir_(std::move(data_dir)), args_(std::move(extra_args)) {
  // Each process gets its own output files, so a start never reads an earlier one's log.
  static std::atomic<int> counter{0};
  const std::string suffix = "." + std::to_string(::getpid()) + "." + std::to_string(counter++);
  out_path_ = data_dir_ + suffix + ".stdout";
  err_path_ = data_dir_ + suffix + ".stderr";
}

ServerProcess::~ServerProcess() {
  if (pid_ > 0) Kill();
  CloseStderrPipe();
}

void ServerProcess::CloseStderrPipe() {
  if (err_pipe_ >= 0) ::close(err_pipe_);
  err_pipe_ = -1;
}

void ServerProcess::ReadStderrPipe() {
  if (err_pipe_ < 0) return;
  pollfd p{err_pipe_, POLLIN, 0};
  while (::poll(&p, 1, 0) == 1 && (p.revents & (POLLIN | POLLHUP))) {
    char buf[16384];
    const ssize_t n = ::read(err_pipe_, buf, sizeof buf);
    if (n <= 0) return;
    err_read_.append(buf, static_cast<std::size_t>(n));
  }
}

bool ServerProcess::Start(bool expect_success) {
  std::vector<std::string> args = {
      TOKENLEDGERD_PATH, "--listen", "127.0.0.1:0", "--data-dir", data_dir_, "--threads", "2"};
  args.insert(args.end(), args_.begin(), args_.end());
  int err_pipe[2] = {-1, -1};
  if (stderr_pipe_) {
    CloseStderrPipe();
    err_read_.clear();
    if (::pipe2(err_pipe, O_CLOEXEC) != 0) {
      ADD_FAILURE() << "pipe2 failed";
      return false;
    }
  }
  pid_ = ::fork();
  if (pid_ == 0) {
    const int out = ::open(out_path_.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0600);
    const int err =
        stderr_pipe_ ? err_pipe[1] : ::open(err_path_.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0600);
    // As a shell would start it: SIGPIPE at its default, whatever this test process does.
    if (stderr_pipe_) ::signal(SIGPIPE, SIG_DFL);
    ::dup2(out, STDOUT_FILENO);
    ::dup2(err, STDERR_FILENO);
    std::vector<char*> argv;
    for (auto& a : args) argv.push_back(a.data());
    argv.push_back(nullptr);
    ::execv(argv[0], argv.data());
    ::_exit(127);
  }
  if (stderr_pipe_) {
    ::close(err_pipe[1]);
    err_pipe_ = err_pipe[0];
  }
  const std::regex listening(R"re("msg":"listening".*"port":([0-9]+),"metrics_port":([0-9]+))re");
  for (int i = 0; i < 1000; ++i) {
    std::smatch m;
    ReadStderrPipe();
    const std::string err = Stderr();
    if (std::regex_search(err, m, listening)) {
      port_ = static_cast<unsigned short>(std::stoi(m[1]));
      metrics_port_ = static_cast<unsigned short>(std::stoi(m[2]));
      return true;
    }
    int status;
    if (::waitpid(pid_, &status, WNOHANG) == pid_) {
      pid_ = -1;
      if (expect_success) ADD_FAILURE() << "tokenledgerd exited at start: " << err;
      return false;
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  ADD_FAILURE() << "tokenledgerd did not start: " << Stderr();
  return false;
}

int ServerProcess::Stop(int signal) {
  if (pid_ <= 0) return -1;
  ::kill(pid_, signal);
  int status = 0;
  ::waitpid(pid_, &status, 0);
  pid_ = -1;
  return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
}

void ServerProcess::Kill() { Stop(SIGKILL); }

bool ServerProcess::Alive() {
  if (pid_ <= 0) return false;
  int status;
  if (::waitpid(pid_, &status, WNOHANG) == pid_) {
    pid_ = -1;
    return false;
  }
  return true;
}

static std::string ReadFile(const std::string& path) {
  std::ifstream in(path);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

std::string ServerProcess::Stdout() const { return ReadFile(out_path_); }
std::string ServerProcess::Stderr() const { return stderr_pipe_ ? err_read_ : ReadFile(err_path_); }

E2ETest::E2ETest() : data_dir_(dir_.path() + "/data") {}

E2ETest::~E2ETest() = default;

void E2ETest::SetUp() {
  // The signing key, as the server would create it; tests sign tokens with it like mint does.
  FillSecureRandom(key_.data(), key_.size());
  ::mkdir(data_dir_.c_str(), 0700);
  std::string hex;
  for (auto b : key_) {
    static constexpr char kHex[] = "0123456789abcdef";
    hex += kHex[b >> 4];
    hex += kHex[b & 15];
  }
  const std::string key_path = data_dir_ + "/signing.key";
  const int fd = ::open(key_path.c_str(), O_WRONLY | O_CREAT | O_EXCL, 0600);
  ASSERT_GE(fd, 0);
  ASSERT_EQ(::write(fd, hex.data(), hex.size()), static_cast<ssize_t>(hex.size()));
  ::close(fd);
  signer_ = std::make_unique<auth::JwtSigner>(key_);
  main_ = Seed(account_);
}

Seeded E2ETest::Seed(const Id& account, std::optional<Id> environment,
                     std::optional<Micros> expires_at, std::optional<Id> admin,
                     std::optional<events::TokenScope> scope) {
  StoreOptions options;
  options.data_dir = data_dir_;
  auto opened = store::LedgerStore::Open(options);
  EXPECT_TRUE(opened.store) << opened.message;
  if (!opened.store) return {};
  core::CreateToken c{
      account, environment,
      scope.value_or(environment ? events::TokenScope::kEnvironment : events::TokenScope::kAccount),
      expires_at, admin};
  store::CommandRequest req;
  req.command = c;
  req.request_id = "e2e-seed";
  req.actor.admin_user_id = admin;
  auto r = opened.store->Submit(std::move(req)).get();
  EXPECT_EQ(r.outcome, store::Outcome::kApplied) << r.rejection.message;
  const auto& s = r.after->state;
  return {account, s.id,
          signer_->Sign(
              auth::MakeClaims(s.id, s.inserted_at, s.expires_at, s.account_id, s.environment_id))};
}

void E2ETest::StartServer(std::vector<std::string> extra_args) {
  server_ = std::make_unique<ServerProcess>(data_dir_, std::move(extra_args));
  ASSERT_TRUE(server_->Start());
  client_ = std::make_unique<HttpClient>(server_->port());
}

int E2ETest::StopServer(int signal) {
  client_.reset();
  const int rc = server_->Stop(signal);
  server_.reset();
  return rc;
}

void E2ETest::RestartServer() {
  EXPECT_EQ(StopServer(), 0);
  StartServer();
}

Response E2ETest::Call(const std::string& method, const std::string& target, const std::string& jwt,
                       const std::string& body,
                       std::vector<std::pair<std::string, std::string>> headers) {
  if (!jwt.empty()) headers.emplace_back("Authorization", "Bearer " + jwt);
  return client_->Request(method, target, body, headers);
}

json::object E2ETest::CreateViaApi(const std::string& jwt, const std::string& details_json) {
  Response r = Call("POST", "/api/v1/api_token", jwt, R"({"details":)" + details_json + "}");
  EXPECT_EQ(r.status, 200) << r.body;
  json::value v = r.Json();
  return v.is_object() ? v.as_object() : json::object{};
}

}  // namespace tokenledger::e2e
