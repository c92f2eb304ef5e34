// A full disk, for real: the data directory on a small tmpfs, the real server writing until
// the disk is full. Writes must answer 503 (never 500, never a crash), reads and /healthz keep
// answering, /readyz says why; once space is freed writes succeed again without a restart,
// and `tokenledger verify` passes. Needs permission to mount a tmpfs (root); skipped if not.
#include <fcntl.h>
#include <sys/mount.h>
#include <sys/statvfs.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <thread>

#include "tests/e2e/e2e_util.h"

namespace tokenledger::e2e {
namespace {

using namespace std::chrono_literals;

constexpr std::size_t kDiskBytes = 24u << 20;     // the tmpfs
constexpr std::uint64_t kLeaveFree = 256u << 10;  // the filler leaves this much to the ledger

class DiskFullTest : public E2ETest {
 protected:
  void SetUp() override {
    // The mount point is the data directory itself, so the server's stdout/stderr files (kept
    // beside the data directory) are not on the small disk.
    mount_ = dir_.path() + "/small-disk";
    std::filesystem::create_directories(mount_);
    const std::string size = "size=" + std::to_string(kDiskBytes);
    if (::mount("tmpfs", mount_.c_str(), "tmpfs", 0, size.c_str()) != 0) {
      GTEST_SKIP() << "cannot mount a " << (kDiskBytes >> 20)
                   << " MiB tmpfs here (needs root or CAP_SYS_ADMIN): " << std::strerror(errno);
    }
    mounted_ = true;
    data_dir_ = mount_;
    E2ETest::SetUp();
  }
  void TearDown() override {
    client_.reset();
    server_.reset();  // kills the server if still running
    if (mounted_) ::umount2(mount_.c_str(), MNT_DETACH);
  }

  std::uint64_t FreeBytes() {
    struct statvfs st {};
    if (::statvfs(mount_.c_str(), &st) != 0) return 0;
    return static_cast<std::uint64_t>(st.f_bavail) * st.f_frsize;
  }
  // Fills the disk but for `leave` bytes.
  void Fill(std::uint64_t leave) {
    const int fd = ::open(filler_.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
    ASSERT_GE(fd, 0);
    const std::string chunk(1 << 16, 'f');
    while (FreeBytes() > leave + chunk.size()) {
      if (::write(fd, chunk.data(), chunk.size()) <= 0) break;
    }
    ::close(fd);
  }
  Response Create() {
    return Call("POST", "/api/v1/api_token", main_.jwt, R"({"details":{"token_scope":"account"}})");
  }

  std::string mount_;
  bool mounted_ = false;
  std::string filler_ = dir_.path() + "/small-disk/filler";
};

TEST_F(DiskFullTest, WritesAnswer503UntilSpaceIsFreedThenResumeWithoutARestart) {
  StartServer();
  const std::string earlier = JsonString(CreateViaApi(main_.jwt).at("details").at("id"));
  filler_ = mount_ + "/filler";
  Fill(kLeaveFree);

  // Write until the disk is full: bounded by count and time.
  int created = 0, refused = 0;
  Response last;
  const auto deadline = std::chrono::steady_clock::now() + 60s;
  for (int i = 0; i < 20000 && refused < 3 && std::chrono::steady_clock::now() < deadline; ++i) {
    last = Create();
    ASSERT_NE(last.status, 0) << "the server stopped answering (crashed?) after " << created
                              << " creates:\n"
                              << server_->Stderr();
    ASSERT_NE(last.status, 500) << last.body;
    if (last.status == 200) {
      ++created;
    } else {
      ASSERT_EQ(last.status, 503) << last.body;
      ++refused;
    }
  }
  ASSERT_GT(refused, 0) << "the disk never filled up (" << created << " creates)";

  // Reads, liveness and readiness while the disk is full.
  EXPECT_EQ(Call("GET", "/api/v1/api_token/" + earlier, main_.jwt).status, 200);
  EXPECT_EQ(Call("GET", "/api/v1/api_token", main_.jwt).status, 200);
  EXPECT_EQ(Call("GET", "/healthz", "").status, 200);
  Response ready = Call("GET", "/readyz", "");
  EXPECT_EQ(ready.status, 503) << ready.body;
  EXPECT_NE(ready.body.find("space"), std::string::npos) << ready.body;
  Response metrics = Call("GET", "/metrics", "");
  EXPECT_NE(metrics.body.find("tokenledger_store_degraded 1"), std::string::npos);

  // Free the space; the server recovers by itself.
  std::filesystem::remove(filler_);
  bool is_ready = false;
  for (auto until = std::chrono::steady_clock::now() + 30s;
       !is_ready && std::chrono::steady_clock::now() < until;) {
    is_ready = Call("GET", "/readyz", "").status == 200;
    if (!is_ready) std::this_thread::sleep_for(100ms);
  }
  ASSERT_TRUE(is_ready) << Call("GET", "/readyz", "").body << "\n" << server_->Stderr();
  for (int i = 0; i < 5; ++i) {
    Response r = Create();
    EXPECT_EQ(r.status, 200) << r.body;
  }
  EXPECT_EQ(Call("GET", "/api/v1/api_token/" + earlier, main_.jwt).status, 200);

  EXPECT_EQ(StopServer(), 0);
  const std::string verify = std::string(TOKENLEDGER_CLI_PATH) + " verify --data-dir '" +
                             data_dir_ + "' > '" + dir_.path() + "/verify.out' 2>&1";
  const int rc = std::system(verify.c_str());
  EXPECT_TRUE(WIFEXITED(rc) && WEXITSTATUS(rc) == 0) << "tokenledger verify failed";
}

}  // namespace
}  // namespace tokenledger::e2e
