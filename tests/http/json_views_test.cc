#include "src/http/json_views.h"

#include <gtest/gtest.h>

#include <boost/json.hpp>

namespace tokenledger::http {
namespace {
namespace json = boost::json;

json::value P(std::uint64_t count, std::uint64_t offset, std::uint64_t size, std::uint64_t rows) {
  return PaginationJson(count, offset, size, rows);
}

TEST(PaginationTest, Edges) {
  EXPECT_EQ(
      P(0, 0, 25, 0),
      json::parse(R"({"item_count":0,"item_start":0,"item_end":0,"page_count":0,"page_index":1,
      "page_offset":0,"page_size":25,"next_page_offset":null,"previous_page_offset":null})"));
  EXPECT_EQ(
      P(7, 0, 3, 3),
      json::parse(R"({"item_count":7,"item_start":1,"item_end":3,"page_count":3,"page_index":1,
      "page_offset":0,"page_size":3,"next_page_offset":3,"previous_page_offset":null})"));
  EXPECT_EQ(
      P(7, 6, 3, 1),
      json::parse(R"({"item_count":7,"item_start":7,"item_end":7,"page_count":3,"page_index":3,
      "page_offset":6,"page_size":3,"next_page_offset":null,"previous_page_offset":3})"));
  // An offset between pages, and one past the end.
  EXPECT_EQ(P(7, 2, 3, 3).at("previous_page_offset"), 0);
  EXPECT_EQ(P(7, 2, 3, 3).at("page_index"), 1);
  EXPECT_EQ(P(7, 50, 3, 0).at("item_start"), 0);
  EXPECT_EQ(P(7, 50, 3, 0).at("item_end"), 0);
  EXPECT_EQ(P(7, 50, 3, 0).at("next_page_offset"), nullptr);
  EXPECT_EQ(P(1, 0, 1, 1).at("page_count"), 1);
  EXPECT_EQ(P(100, 0, 100, 100).at("next_page_offset"), nullptr);
}

TEST(TokenJsonTest, DetailsHaveEveryKeyAndSummariesNoActions) {
  core::TokenState s;
  s.exists = true;
  s.id = *Id::Parse("013xrzp12g3nqk8n7f8f9jbg8d18q7tm");
  s.account_id = *Id::Parse("013xrzp12g3nqk8ngskn1wtxgka5b0nf");
  s.status = core::TokenStatus::kSuspended;
  projections::TokenRow row{s, 1, 5, std::nullopt};
  const auto d = TokenDetailsJson(row);
  EXPECT_EQ(d.size(), 16u);
  EXPECT_TRUE(d.at("agent_id").is_null());
  EXPECT_TRUE(d.at("agent_deployment_id").is_null());
  EXPECT_EQ(d.at("status_changed_at"), "1970-01-01T00:00:00.000005Z");
  EXPECT_TRUE(d.at("revoked_at").is_null());
  EXPECT_TRUE(d.at("environment_id").is_null());
  EXPECT_TRUE(d.at("last_used_at").is_null());
  EXPECT_TRUE(d.at("created_by_admin_user_id").is_null());
  EXPECT_EQ(d.at("available_actions"),
            json::parse(R"({"activate":true,"delete":false,"revoke":true,"suspend":false})"));
  EXPECT_EQ(d.at("expires_at"), "1970-01-01T00:00:00.000000Z");
  const auto summary = TokenSummaryJson(s);
  EXPECT_EQ(summary.size(), 13u);
  EXPECT_FALSE(summary.contains("available_actions"));
  s.scope = events::TokenScope::kAgentDeployment;
  s.agent_id = s.account_id;
  const auto agent = TokenSummaryJson(s);
  EXPECT_EQ(agent.at("token_scope"), "agent_deployment");
  EXPECT_EQ(agent.at("agent_id").as_string(), s.account_id.ToString());
  EXPECT_TRUE(agent.at("agent_deployment_id").is_null()) << "null unless given";
}

}  // namespace
}  // namespace tokenledger::http
