#include "src/http/router.h"

#include <gtest/gtest.h>

namespace tokenledger::http {
namespace {

const Router<int> kRoutes({
    {"GET", "/api/v1/api_token", 1, Auth::kReadTokens},
    {"POST", "/api/v1/api_token", 2, Auth::kReadTokens},
    {"GET", "/api/v1/api_token/{id}", 3, Auth::kReadTokens},
    {"DELETE", "/api/v1/api_token/{id}", 4, Auth::kReadTokens},
    {"POST", "/api/v1/api_token/{id}/suspend", 5, Auth::kReadTokens},
    {"GET", "/healthz", 6, Auth::kNone},
});

TEST(RouterTest, MatchesAndCaptures) {
  auto r = kRoutes.Resolve("GET", "/api/v1/api_token/abc");
  auto* m = std::get_if<RouteMatch<int>>(&r);
  ASSERT_TRUE(m);
  EXPECT_EQ(m->route->handler, 3);
  ASSERT_EQ(m->params.size(), 1u);
  EXPECT_EQ(m->params[0], "abc");
  m = std::get_if<RouteMatch<int>>(&(r = kRoutes.Resolve("POST", "/api/v1/api_token/x/suspend")));
  ASSERT_TRUE(m);
  EXPECT_EQ(m->route->handler, 5);
  EXPECT_TRUE(std::holds_alternative<RouteMatch<int>>(kRoutes.Resolve("GET", "/healthz")));
}

TEST(RouterTest, WrongMethodListsTheAllowedOnes) {
  auto r = kRoutes.Resolve("PUT", "/api/v1/api_token/abc");
  auto* n = std::get_if<MethodNotAllowed>(&r);
  ASSERT_TRUE(n);
  EXPECT_EQ(n->allow, "GET, HEAD, DELETE");
  EXPECT_EQ(std::get<MethodNotAllowed>(kRoutes.Resolve("DELETE", "/api/v1/api_token")).allow,
            "GET, HEAD, POST");
  EXPECT_EQ(std::get<MethodNotAllowed>(kRoutes.Resolve("GET", "/api/v1/api_token/x/suspend")).allow,
            "POST");
}

TEST(RouterTest, HeadResolvesToTheGetRoute) {
  auto r = kRoutes.Resolve("HEAD", "/api/v1/api_token/abc");
  auto* m = std::get_if<RouteMatch<int>>(&r);
  ASSERT_TRUE(m);
  EXPECT_EQ(m->route->handler, 3);
  ASSERT_EQ(m->params.size(), 1u);
  EXPECT_EQ(m->params[0], "abc");
  m = std::get_if<RouteMatch<int>>(&(r = kRoutes.Resolve("HEAD", "/api/v1/api_token")));
  ASSERT_TRUE(m);
  EXPECT_EQ(m->route->handler, 1) << "the GET route, not the POST one";
  // No GET route on the path: HEAD is not allowed there either.
  auto* n =
      std::get_if<MethodNotAllowed>(&(r = kRoutes.Resolve("HEAD", "/api/v1/api_token/x/suspend")));
  ASSERT_TRUE(n);
  EXPECT_EQ(n->allow, "POST");
  EXPECT_TRUE(std::holds_alternative<NoRoute>(kRoutes.Resolve("HEAD", "/nowhere")));
}

TEST(RouterTest, UnknownPathsAreNoRoute) {
  for (const char* path : {"/", "", "/api/v1", "/api/v1/api_token/", "/api/v1/api_token//suspend",
                           "/api/v1/api_token/a/b", "healthz", "/healthz/",
                           // past PathSegments::kMaxSegments (8): refused before any pattern
                           "/api/v1/api_token/x/suspend/a/b/c/d", "/a/b/c/d/e/f/g/h/i/j"}) {
    EXPECT_TRUE(std::holds_alternative<NoRoute>(kRoutes.Resolve("GET", path))) << path;
  }
}

TEST(QueryTest, DecodesPairs) {
  std::vector<std::pair<std::string, std::string>> q;
  ASSERT_TRUE(ParseQuery("a=1&pagination%5Boffset%5D=2&b=x+y%21&flag&&c=", q));
  ASSERT_EQ(q.size(), 5u);
  EXPECT_EQ(q[0], (std::pair<std::string, std::string>{"a", "1"}));
  EXPECT_EQ(q[1].first, "pagination[offset]");
  EXPECT_EQ(q[2].second, "x y!");
  EXPECT_EQ(q[3], (std::pair<std::string, std::string>{"flag", ""}));
  EXPECT_EQ(q[4], (std::pair<std::string, std::string>{"c", ""}));
  q.clear();
  EXPECT_FALSE(ParseQuery("a=%zz", q));
  EXPECT_FALSE(ParseQuery("a=%4", q));
  EXPECT_FALSE(ParseQuery("a=%", q));
  EXPECT_FALSE(ParseQuery("abc%2", q));
}

TEST(QueryTest, LongRunsAndEscapesAtEveryEnd) {
  const std::string run(300, 'x');  // a token's worth of characters with nothing to decode
  std::vector<std::pair<std::string, std::string>> q;
  ASSERT_TRUE(ParseQuery("token=" + run + "&%41" + run + "+=" + run + "%2B&+=%20", q));
  ASSERT_EQ(q.size(), 3u);
  EXPECT_EQ(q[0], (std::pair<std::string, std::string>{"token", run}));
  EXPECT_EQ(q[1], (std::pair<std::string, std::string>{"A" + run + " ", run + "+"}));
  EXPECT_EQ(q[2], (std::pair<std::string, std::string>{" ", " "}));
}

}  // namespace
}  // namespace tokenledger::http
