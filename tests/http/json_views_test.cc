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

json::object TokenDetailsJson(const projections::TokenRow& row) {
  std::string text;
  AppendTokenDetailsJson(row, text);
  return json::parse(text).as_object();
}
json::object TokenSummaryJson(const core::TokenState& s) {
  std::string text;
  AppendTokenSummaryJson(s, text);
  return json::parse(text).as_object();
}

// The DOM encoding the direct writers replaced (release 1 to this one): their bytes must stay
// these, or an idempotent replay would differ from the first answer across an upgrade.
json::object ReferenceSummary(const core::TokenState& s) {
  auto opt_id = [](const std::optional<Id>& id) {
    return id ? json::value(id->ToString()) : json::value(nullptr);
  };
  json::object o;
  o["id"] = s.id.ToString();
  o["type"] = "api_token";
  o["account_id"] = s.account_id.ToString();
  o["environment_id"] = opt_id(s.environment_id);
  o["token_scope"] = events::ScopeName(s.scope);
  o["agent_id"] = opt_id(s.agent_id);
  o["agent_deployment_id"] = opt_id(s.agent_deployment_id);
  o["status"] = core::StatusName(s.status);
  o["created_by_admin_user_id"] = opt_id(s.created_by_admin_user_id);
  o["expires_at"] = FormatRfc3339(s.expires_at);
  o["inserted_at"] = FormatRfc3339(s.inserted_at);
  o["updated_at"] = FormatRfc3339(s.updated_at);
  o["last_used_at"] =
      s.last_used_at ? json::value(FormatRfc3339(*s.last_used_at)) : json::value(nullptr);
  return o;
}
json::object ReferenceDetails(const projections::TokenRow& row) {
  json::object o = ReferenceSummary(row.state);
  const core::AvailableActions a = core::ActionsFor(row.state.status);
  o["status_changed_at"] = FormatRfc3339(row.status_changed_at);
  o["revoked_at"] =
      row.revoked_at ? json::value(FormatRfc3339(*row.revoked_at)) : json::value(nullptr);
  o["available_actions"] = json::object{
      {"activate", a.activate}, {"delete", a.del}, {"revoke", a.revoke}, {"suspend", a.suspend}};
  return o;
}

TEST(TokenJsonTest, TheDirectWritersGiveTheDomsBytes) {
  std::vector<projections::TokenRow> rows;
  projections::TokenRow r;
  r.state.exists = true;
  r.state.id = *Id::Parse("013xrzp12g3nqk8n7f8f9jbg8d18q7tm");
  r.state.account_id = *Id::Parse("013xrzp12g3nqk8ngskn1wtxgka5b0nf");
  rows.push_back(r);  // every optional null, times at the epoch
  for (auto status :
       {core::TokenStatus::kActive, core::TokenStatus::kSuspended, core::TokenStatus::kRevoked}) {
    for (auto scope : {events::TokenScope::kAccount, events::TokenScope::kEnvironment,
                       events::TokenScope::kIntrospection, events::TokenScope::kAgentDeployment}) {
      projections::TokenRow x = r;
      x.state.status = status;
      x.state.scope = scope;
      x.state.environment_id = *Id::Parse("013xrzp12g3nqk8nzxvq7jm2arsfg5h1");
      x.state.agent_id = x.state.account_id;
      x.state.agent_deployment_id = x.state.id;
      x.state.created_by_admin_user_id = x.state.account_id;
      x.state.expires_at = 1'798'761'600'123'456;
      x.state.inserted_at = -1;                      // before the epoch
      x.state.updated_at = 253'402'300'799'999'999;  // 9999-12-31T23:59:59.999999Z
      x.state.last_used_at = 1'764'460'800'000'001;
      x.status_changed_at = 1'764'460'800'000'000;
      x.revoked_at = 1'764'460'800'999'999;
      rows.push_back(x);
    }
  }
  std::string out = "reused";
  for (const auto& row : rows) {
    out.clear();
    AppendTokenDetailsJson(row, out);
    EXPECT_EQ(out, json::serialize(ReferenceDetails(row)));
    // The writers size their buffer for 1024 bytes (kMaxTokenJson); the longest rows are here.
    EXPECT_LE(out.size(), 760u);
    out.clear();
    AppendTokenSummaryJson(row.state, out);
    EXPECT_EQ(out, json::serialize(ReferenceSummary(row.state)));
    const HttpResponse shown = TokenDetailsResponse(row, std::string("a.b.c"));
    EXPECT_EQ(shown.body,
              json::serialize(json::object{
                  {"status", "success"}, {"details", ReferenceDetails(row)}, {"token", "a.b.c"}}));
    EXPECT_EQ(
        TokenDetailsResponse(row).body,
        json::serialize(json::object{{"status", "success"}, {"details", ReferenceDetails(row)}}));
  }
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
