// A list, however large the account, never slows other requests: lists (and as_of folds) run
// on the slow-read pool, never on an I/O thread. Two clients walk deep pages of a large
// account while a third pings; the pinger's throughput must hold.
#include <atomic>
#include <chrono>
#include <thread>

#include "tests/e2e/e2e_util.h"

namespace tokenledger::e2e {
namespace {

using Clock = std::chrono::steady_clock;

// Tokens in the large account: a page at its end walks this many index entries.
constexpr int kLargeAccount = 40000;
constexpr auto kWindow = std::chrono::seconds(3);
// The pinger keeps at least this share of its throughput with two deep-list clients beside
// it. Before lists left the I/O threads it kept under 1% (issue: 19,000 -> 69-99 pings/s).
constexpr double kMinShare = 0.5;

class ListIsolationTest : public E2ETest {
 protected:
  void SetUp() override {
    E2ETest::SetUp();
    // The large account, written through the ledger before the server starts: quicker than
    // 40,000 API calls, the same rows, index and counters.
    store::testing::AppendCreates(data_dir_, account_, kLargeAccount);
    StartServer();
  }

  // Pings with a fresh keep-alive connection for kWindow; returns how many answered 200.
  int PingsInWindow() {
    HttpClient client(server_->port());
    int ok = 0;
    for (const auto end = Clock::now() + kWindow; Clock::now() < end;) {
      ok += client.Request("GET", "/api/v1/ping", "", {{"Authorization", "Bearer " + main_.jwt}})
                .status == 200;
    }
    return ok;
  }
};

TEST_F(ListIsolationTest, DeepListsOfALargeAccountDoNotSlowOtherRequests) {
  const std::string deep = "/api/v1/api_token?pagination[page_size]=25&pagination[offset]=" +
                           std::to_string(kLargeAccount - 25) + "&sorting=status";
  Response probe = Call("GET", deep, main_.jwt);
  ASSERT_EQ(probe.status, 200) << probe.body;
  EXPECT_GE(probe.Json().at("pagination").at("item_count").to_number<int>(), kLargeAccount);

  const int alone = PingsInWindow();
  ASSERT_GT(alone, 0);

  std::atomic<bool> stop{false};
  std::atomic<int> lists{0}, refused{0}, failed{0};
  std::vector<std::thread> listers;
  for (int i = 0; i < 2; ++i) {
    listers.emplace_back([&] {
      HttpClient client(server_->port());
      while (!stop) {
        const int status =
            client.Request("GET", deep, "", {{"Authorization", "Bearer " + main_.jwt}}).status;
        if (status == 200) {
          ++lists;
        } else if (status == 503) {
          ++refused;  // the slow-read queue is full: refused at once, by design
        } else {
          ++failed;
        }
      }
    });
  }
  std::this_thread::sleep_for(std::chrono::milliseconds(200));  // the listers are running
  const int beside = PingsInWindow();
  stop = true;
  for (auto& t : listers) t.join();

  RecordProperty("pings_alone", alone);
  RecordProperty("pings_beside_lists", beside);
  RecordProperty("deep_lists", lists.load());
  std::printf("pings in %llds: alone %d, beside two deep-list clients %d (%.0f%%); %d deep lists\n",
              static_cast<long long>(kWindow.count()), alone, beside, 100.0 * beside / alone,
              lists.load());
  EXPECT_EQ(failed.load(), 0);
  EXPECT_GT(lists.load(), 0) << "the deep lists were answered";
  EXPECT_GE(beside, kMinShare * alone) << "pings alone " << alone << ", beside lists " << beside;
}

}  // namespace
}  // namespace tokenledger::e2e
