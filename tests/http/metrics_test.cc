// Request metrics: every Observe is counted under its own labels, whatever the order and the
// mix of label sets (Observe keeps recent label sets in a small direct-mapped table; more
// sets than its slots, colliding in them, must not be counted under one another).
#include "src/http/metrics.h"

#include <gtest/gtest.h>

#include <map>
#include <string>
#include <vector>

#include "tests/store/store_test_util.h"

namespace tokenledger::http {
namespace {

class MetricsTest : public store::testing::StoreTest {};

TEST_F(MetricsTest, EveryLabelSetIsCountedOnItsOwn) {
  Open();
  HttpMetrics metrics;
  const std::vector<std::string> routes = {
      "/api/v1/ping", "/api/v1/api_token", "/api/v1/api_token/{id}",
      "/healthz",     "unmatched",         "unparsed"};
  const std::vector<std::string> methods = {"GET", "POST", "DELETE", "PATCH", "FOO"};
  const std::vector<int> statuses = {200, 201, 400, 401, 404, 409, 503};
  std::map<std::string, std::uint64_t> expected;
  std::uint64_t x = 88172645463325252ULL;
  for (int i = 0; i < 20000; ++i) {
    x ^= x << 13;
    x ^= x >> 7;
    x ^= x << 17;
    // A temporary copy of the route: Observe may not keep the caller's pointer.
    const std::string route = routes[x % routes.size()];
    const std::string& method = methods[(x >> 8) % methods.size()];
    const int status = statuses[(x >> 16) % statuses.size()];
    metrics.Observe(route, method, status, 0.001);
    const std::string label = method == "FOO" ? "other" : method;
    ++expected["tokenledger_http_requests_total{route=\"" + route + "\",method=\"" + label +
               "\",status=\"" + std::to_string(status) + "\"}"];
  }
  const std::string text = metrics.Render(*store_);
  for (const auto& [series, n] : expected) {
    EXPECT_NE(text.find(series + " " + std::to_string(n) + "\n"), std::string::npos) << series;
  }
  std::uint64_t pings = 0;
  for (const auto& [series, n] : expected)
    if (series.find("\"/api/v1/ping\"") != std::string::npos) pings += n;
  EXPECT_NE(text.find("tokenledger_http_request_duration_seconds_count{route=\"/api/v1/ping\"} " +
                      std::to_string(pings) + "\n"),
            std::string::npos);
}

}  // namespace
}  // namespace tokenledger::http
