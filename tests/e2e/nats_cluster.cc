#include "tests/e2e/nats_cluster.h"

#include <fcntl.h>
#include <netinet/in.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <fstream>
#include <random>
#include <set>
#include <sstream>
#include <thread>

#include "tests/e2e/e2e_util.h"

namespace tokenledger::e2e {
namespace json = boost::json;

std::optional<std::string> MonitorGet(unsigned short port, const std::string& path) {
  const int fd = ConnectLoopback(port, 5);
  if (fd < 0) return std::nullopt;
  const std::string req = "GET " + path + " HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n";
  if (::send(fd, req.data(), req.size(), MSG_NOSIGNAL) != static_cast<ssize_t>(req.size())) {
    ::close(fd);
    return std::nullopt;
  }
  std::string in;
  char buf[16384];
  for (ssize_t n; (n = ::recv(fd, buf, sizeof buf, 0)) > 0;) in.append(buf, n);
  ::close(fd);
  const auto end = in.find("\r\n\r\n");
  if (end == std::string::npos || in.rfind("HTTP/1.", 0) != 0) return std::nullopt;
  return in.substr(end + 4);
}

namespace {

bool PortFree(unsigned short port) {
  const int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) return false;
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_port = htons(port);
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  const bool ok = ::bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) == 0;
  ::close(fd);
  return ok;
}

std::string NatsServerPath() {
  if (const char* env = std::getenv("NATS_SERVER")) return env;
  for (const char* p :
       {"/usr/sbin/nats-server", "/usr/bin/nats-server", "/usr/local/bin/nats-server"})
    if (::access(p, X_OK) == 0) return p;
  return "nats-server";  // execvp searches PATH
}

}  // namespace

std::vector<unsigned short> PickFreePorts(int n) {
  int ephemeral_low = 32768;
  std::ifstream range("/proc/sys/net/ipv4/ip_local_port_range");
  range >> ephemeral_low;
  const int low = 10000;
  const int high = std::max(low + 1000, ephemeral_low - 1);
  std::mt19937 rng(std::random_device{}() ^ static_cast<unsigned>(::getpid()));
  std::uniform_int_distribution<int> pick(low, high);
  std::set<unsigned short> chosen;
  std::vector<unsigned short> out;
  while (static_cast<int>(out.size()) < n) {
    const auto p = static_cast<unsigned short>(pick(rng));
    if (chosen.count(p) || !PortFree(p)) continue;
    chosen.insert(p);
    out.push_back(p);
  }
  return out;
}

NatsCluster::NatsCluster(std::string dir, int size) : dir_(std::move(dir)), servers_(size) {
  for (int i = 0; i < size; ++i) {
    servers_[i].conf = dir_ + "/" + name(i) + ".conf";
    servers_[i].store = dir_ + "/" + name(i);
    servers_[i].log = dir_ + "/" + name(i) + ".log";
  }
}

NatsCluster::~NatsCluster() {
  for (int i = 0; i < size(); ++i) Kill(i);
}

void NatsCluster::WriteConfig(int i) {
  const Server& s = servers_[i];
  std::ostringstream c;
  c << "server_name: " << name(i) << "\n"
    << "listen: 127.0.0.1:" << s.client_port << "\n"
    << "http: 127.0.0.1:" << s.http_port << "\n"
    << "jetstream {\n  store_dir: \"" << s.store << "\"\n}\n"
    << "cluster {\n  name: tokenledger_test\n  listen: 127.0.0.1:" << s.cluster_port
    << "\n  routes: [";
  bool first = true;
  for (int j = 0; j < size(); ++j) {
    if (j == i) continue;
    c << (first ? "" : ", ") << "\"nats-route://127.0.0.1:" << servers_[j].cluster_port << "\"";
    first = false;
  }
  c << "]\n}\n";
  std::ofstream(s.conf) << c.str();
}

bool NatsCluster::Spawn(int i) {
  Server& s = servers_[i];
  ::mkdir(s.store.c_str(), 0700);
  const std::string exe = NatsServerPath();
  const pid_t pid = ::fork();
  if (pid == 0) {
    const int log = ::open(s.log.c_str(), O_WRONLY | O_CREAT | O_APPEND, 0600);
    ::dup2(log, STDOUT_FILENO);
    ::dup2(log, STDERR_FILENO);
    ::execlp(exe.c_str(), exe.c_str(), "-c", s.conf.c_str(), static_cast<char*>(nullptr));
    ::_exit(127);
  }
  if (pid < 0) return false;
  s.pid = pid;
  // Wait for the monitoring port: the server has parsed its configuration and bound its ports.
  for (int t = 0; t < 500; ++t) {
    int status;
    if (::waitpid(pid, &status, WNOHANG) == pid) {
      s.pid = -1;
      return false;
    }
    if (MonitorGet(s.http_port, "/varz")) return true;
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  return false;
}

bool NatsCluster::Start(std::chrono::seconds timeout) {
  for (int attempt = 0; attempt < 3; ++attempt) {
    const auto ports = PickFreePorts(3 * size());
    for (int i = 0; i < size(); ++i) {
      servers_[i].client_port = ports[3 * i];
      servers_[i].cluster_port = ports[3 * i + 1];
      servers_[i].http_port = ports[3 * i + 2];
    }
    for (int i = 0; i < size(); ++i) WriteConfig(i);
    bool spawned = true;
    for (int i = 0; i < size() && spawned; ++i) spawned = Spawn(i);
    if (spawned && WaitHealthy(timeout)) return true;
    // A port taken meanwhile, or no quorum in time: start over on other ports.
    for (int i = 0; i < size(); ++i) Kill(i);
  }
  return false;
}

void NatsCluster::Kill(int i) {
  Server& s = servers_[i];
  if (s.pid <= 0) return;
  ::kill(s.pid, SIGKILL);
  int status;
  ::waitpid(s.pid, &status, 0);
  s.pid = -1;
}

bool NatsCluster::Restart(int i) {
  Kill(i);
  return Spawn(i);
}

std::optional<json::value> NatsCluster::Jsz(int i, bool streams) {
  if (!running(i)) return std::nullopt;
  auto body = MonitorGet(servers_[i].http_port, streams ? "/jsz?streams=true" : "/jsz");
  if (!body) return std::nullopt;
  boost::system::error_code ec;
  json::value v = json::parse(*body, ec);
  if (ec) return std::nullopt;
  return v;
}

bool NatsCluster::Healthy(int i) {
  if (!running(i)) return false;
  auto health = MonitorGet(servers_[i].http_port, "/healthz");
  if (!health || health->find("\"ok\"") == std::string::npos) return false;
  auto jsz = Jsz(i);
  if (!jsz || !jsz->is_object()) return false;
  const auto* meta = jsz->as_object().if_contains("meta_cluster");
  if (!meta || !meta->is_object()) return false;
  const auto* leader = meta->as_object().if_contains("leader");
  return leader && leader->is_string() && !leader->get_string().empty();
}

bool NatsCluster::WaitHealthy(std::chrono::seconds timeout) {
  const auto deadline = std::chrono::steady_clock::now() + timeout;
  while (std::chrono::steady_clock::now() < deadline) {
    bool all = true;
    for (int i = 0; i < size() && all; ++i) all = !running(i) || Healthy(i);
    if (all) return true;
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
  }
  return false;
}

int NatsCluster::IndexOf(const std::string& server_name) const {
  for (int i = 0; i < size(); ++i)
    if (name(i) == server_name) return i;
  return -1;
}

std::string NatsCluster::ClientUrl(int i) const {
  return "nats://127.0.0.1:" + std::to_string(servers_[i].client_port);
}

std::string NatsCluster::ClientUrls() const {
  std::string out;
  for (int i = 0; i < size(); ++i) {
    if (i) out += ',';
    out += ClientUrl(i);
  }
  return out;
}

std::string NatsCluster::Log(int i) const {
  std::ifstream in(servers_[i].log);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

std::optional<NatsCluster::StreamView> NatsCluster::Stream(int i, const std::string& stream) {
  auto jsz = Jsz(i, /*streams=*/true);
  if (!jsz || !jsz->is_object()) return std::nullopt;
  const auto* accounts = jsz->as_object().if_contains("account_details");
  if (!accounts || !accounts->is_array()) return std::nullopt;
  for (const auto& account : accounts->as_array()) {
    const auto* details = account.as_object().if_contains("stream_detail");
    if (!details || !details->is_array()) continue;
    for (const auto& d : details->as_array()) {
      const auto& o = d.as_object();
      if (!o.contains("name") || o.at("name") != stream) continue;
      StreamView view;
      if (const auto* cluster = o.if_contains("cluster"); cluster && cluster->is_object()) {
        if (const auto* l = cluster->as_object().if_contains("leader"); l && l->is_string())
          view.leader = std::string(l->get_string());
      }
      if (const auto* state = o.if_contains("state"); state && state->is_object()) {
        view.last_seq = state->as_object().at("last_seq").to_number<std::uint64_t>();
        view.messages = state->as_object().at("messages").to_number<std::uint64_t>();
      }
      return view;
    }
  }
  return std::nullopt;
}

}  // namespace tokenledger::e2e
