// The query grammar: each refusal with its exact code, field and message (they are answered
// verbatim), the defaults, and that the first failing check in the documented order answers.
#include "src/http/list_query.h"
#include "tests/http/outcome.h"

#include <gtest/gtest.h>

namespace tokenledger::http {
namespace {

const Id kAccount = *Id::Parse("013xrzp12g3nqk8ngskn1wtxgka5b0nf");
const Id kOther = *Id::Parse("013xrzp12g3nqk8nh0qrc2b1jfanmvb9");
const Id kEnv = *Id::Parse("013xrzp12g3nqk8nzxvq7jm2arsfg5h1");
const Id kToken = *Id::Parse("013xrzp12g3nqk8n7f8f9jbg8d18q7tm");

Caller AccountCaller() { return Caller{kToken, kAccount, events::TokenScope::kAccount, {}, {}}; }
Caller EnvironmentCaller() {
  return Caller{kToken, kAccount, events::TokenScope::kEnvironment, kEnv, {}};
}

using http::testing::Outcome;

Result<ListRequest> List(std::string_view query, const Caller& caller = AccountCaller()) {
  return ParseListRequest(query, caller, PageLimits{25, 100});
}

TEST(QueryTest, AllowedKeysOnlyOnceEach) {
  auto q = ParseAllowedQuery("a=1&b=x%20y", {"a", "b"});
  ASSERT_TRUE(q);
  ASSERT_EQ(q->size(), 2u);
  EXPECT_EQ(*Get(*q, "b"), "x y");
  EXPECT_EQ(Get(*q, "c"), nullptr);
  EXPECT_TRUE(ParseAllowedQuery("", {}));
  EXPECT_EQ(Outcome(ParseAllowedQuery("a=1&c=2", {"a", "b"})),
            "bad_request||unknown query parameter 'c'");
  EXPECT_EQ(Outcome(ParseAllowedQuery("a=1&a=2", {"a"})),
            "bad_request||query parameter 'a' is repeated");
  EXPECT_EQ(Outcome(ParseAllowedQuery("a=%zz", {"a"})), "bad_request||malformed query string");
}

TEST(QueryTest, IdsAndIntegers) {
  EXPECT_EQ(*ParseIdParam(kToken.ToString(), "api_token_id"), kToken);
  EXPECT_EQ(Outcome(ParseIdParam("nope", "api_token_id")),
            "invalid_value|api_token_id|api_token_id is not a valid id");
  EXPECT_EQ(*ParseUint("0", "n"), 0u);
  EXPECT_EQ(*ParseUint("999999999999999999", "n"), 999999999999999999u);
  for (const char* bad : {"", "-1", "+1", " 1", "1.0", "1e3", "1234567890123456789"}) {
    EXPECT_EQ(Outcome(ParseUint(bad, "n")), "invalid_value|n|n must be a non-negative integer")
        << bad;
  }
}

TEST(QueryTest, PageDefaultsAndBounds) {
  const PageLimits limits{25, 100};
  auto page = ParsePage(Query{}, limits);
  ASSERT_TRUE(page);
  EXPECT_EQ(page->offset, 0u);
  EXPECT_EQ(page->size, 25u);
  page = ParsePage(Query{{"pagination[offset]", "40"}, {"pagination[page_size]", "100"}}, limits);
  ASSERT_TRUE(page);
  EXPECT_EQ(page->offset, 40u);
  EXPECT_EQ(page->size, 100u);
  const std::string too_big =
      "invalid_value|pagination[page_size]|pagination[page_size] must be an integer from 1 to 100";
  EXPECT_EQ(Outcome(ParsePage(Query{{"pagination[page_size]", "0"}}, limits)), too_big);
  EXPECT_EQ(Outcome(ParsePage(Query{{"pagination[page_size]", "101"}}, limits)), too_big);
  EXPECT_EQ(Outcome(ParsePage(Query{{"pagination[page_size]", "x"}}, limits)), too_big);
  EXPECT_EQ(Outcome(ParsePage(Query{{"pagination[offset]", "-1"}}, limits)),
            "invalid_value|pagination[offset]|pagination[offset] must be a non-negative integer");
}

TEST(ListQueryTest, Defaults) {
  auto r = List("");
  ASSERT_TRUE(r) << Outcome(r);
  EXPECT_EQ(r->query.account_id, kAccount);
  EXPECT_EQ(r->query.sort, projections::SortField::kInsertedAt);
  EXPECT_TRUE(r->query.descending);
  EXPECT_EQ(r->query.page_size, 25u);
  EXPECT_EQ(r->query.offset, 0u);
  EXPECT_FALSE(r->query.snapshot_seq);
  EXPECT_FALSE(r->query.status);
  EXPECT_FALSE(r->query.scope);
  EXPECT_FALSE(r->query.environment_id);
  EXPECT_EQ(r->field, "inserted_at");
  EXPECT_EQ(r->direction, "desc");
}

TEST(ListQueryTest, SortingInBothFormsButNotBoth) {
  auto r = List("sorting=id");
  ASSERT_TRUE(r);
  EXPECT_EQ(r->query.sort, projections::SortField::kId);
  EXPECT_FALSE(r->query.descending);
  EXPECT_EQ(r->direction, "asc");
  r = List("sorting=-expires_at");
  ASSERT_TRUE(r);
  EXPECT_EQ(r->query.sort, projections::SortField::kExpiresAt);
  EXPECT_TRUE(r->query.descending);
  EXPECT_EQ(r->field, "expires_at");
  r = List("sorting[field]=status&sorting[direction]=asc");
  ASSERT_TRUE(r);
  EXPECT_EQ(r->query.sort, projections::SortField::kStatus);
  EXPECT_FALSE(r->query.descending);
  r = List("sorting[direction]=asc");
  ASSERT_TRUE(r);
  EXPECT_EQ(r->field, "inserted_at");
  EXPECT_EQ(Outcome(List("sorting=id&sorting[direction]=asc")),
            "bad_request||use either sorting=[-]field or sorting[field]/sorting[direction]");
  EXPECT_EQ(Outcome(List("sorting=-")),
            "invalid_value|sorting[field]|sorting field must be one of inserted_at, id, status, "
            "expires_at, last_used_at, updated_at");
  EXPECT_EQ(Outcome(List("sorting[direction]=up")),
            "invalid_value|sorting[direction]|sorting direction must be asc or desc");
}

TEST(ListQueryTest, Filters) {
  auto r = List("status=suspended&token_scope=environment&environment_id=" + kEnv.ToString() +
                "&pagination[snapshot]=7&idempotency_key=ignored");
  ASSERT_TRUE(r) << Outcome(r);
  EXPECT_EQ(r->query.status, core::TokenStatus::kSuspended);
  EXPECT_EQ(r->query.scope, events::TokenScope::kEnvironment);
  EXPECT_EQ(r->query.environment_id, kEnv);
  EXPECT_EQ(r->query.snapshot_seq, 7u);
  EXPECT_EQ(Outcome(List("status=gone")),
            "invalid_value|status|status must be active, suspended or revoked");
  EXPECT_EQ(
      Outcome(List("token_scope=x")),
      "invalid_value|token_scope|token_scope must be account, environment, agent_deployment or "
      "introspection");
  EXPECT_EQ(Outcome(List("environment_id=x")),
            "invalid_value|environment_id|environment_id is not a valid id");
  EXPECT_EQ(Outcome(List("pagination[snapshot]=x")),
            "invalid_value|pagination[snapshot]|pagination[snapshot] must be a non-negative "
            "integer");
  EXPECT_EQ(Outcome(List("limit=3")), "bad_request||unknown query parameter 'limit'");
}

TEST(ListQueryTest, NarrowedToTheCallersReach) {
  EXPECT_TRUE(List("account_id=" + kAccount.ToString()));
  EXPECT_EQ(Outcome(List("account_id=" + kOther.ToString())),
            "not_permitted||the token may not list another account's tokens");
  EXPECT_EQ(Outcome(List("account_id=x")), "invalid_value|account_id|account_id is not a valid id");
  // An environment token lists its own environment, asked for or not.
  auto r = List("", EnvironmentCaller());
  ASSERT_TRUE(r);
  EXPECT_EQ(r->query.environment_id, kEnv);
  EXPECT_TRUE(List("environment_id=" + kEnv.ToString(), EnvironmentCaller()));
  EXPECT_EQ(Outcome(List("environment_id=" + kOther.ToString(), EnvironmentCaller())),
            "not_permitted||the token may only list its own environment's tokens");
  // An account token may filter on any environment of its account.
  r = List("environment_id=" + kOther.ToString());
  ASSERT_TRUE(r);
  EXPECT_EQ(r->query.environment_id, kOther);
}

TEST(ListQueryTest, TheFirstFailingCheckAnswers) {
  // Keys, then the page, then the account, then the snapshot, sorting, filters, environment.
  EXPECT_EQ(Outcome(List("x=1&pagination[page_size]=0")),
            "bad_request||unknown query parameter 'x'");
  EXPECT_EQ(Outcome(List("pagination[page_size]=0&account_id=" + kOther.ToString())),
            "invalid_value|pagination[page_size]|pagination[page_size] must be an integer from 1 "
            "to 100");
  EXPECT_EQ(Outcome(List("sorting=nope&account_id=" + kOther.ToString())),
            "not_permitted||the token may not list another account's tokens");
  EXPECT_EQ(Outcome(List("status=nope&sorting=nope")),
            "invalid_value|sorting[field]|sorting field must be one of inserted_at, id, status, "
            "expires_at, last_used_at, updated_at");
  EXPECT_EQ(
      Outcome(List("environment_id=" + kOther.ToString() + "&status=nope", EnvironmentCaller())),
      "invalid_value|status|status must be active, suspended or revoked");
}

TEST(ReachTest, OwnAccountAndForEnvironmentTokensOwnEnvironment) {
  const Caller account = AccountCaller(), environment = EnvironmentCaller();
  EXPECT_TRUE(InReach(account, kAccount, std::nullopt));
  EXPECT_TRUE(InReach(account, kAccount, kOther));
  EXPECT_FALSE(InReach(account, kOther, std::nullopt));
  EXPECT_TRUE(InReach(environment, kAccount, kEnv));
  EXPECT_FALSE(InReach(environment, kAccount, kOther));
  EXPECT_FALSE(InReach(environment, kAccount, std::nullopt));
  EXPECT_FALSE(InReach(environment, kOther, kEnv));

  store::ListQuery q;
  q.environment_id = kOther;
  EXPECT_FALSE(NarrowListToReach(environment, q));
  EXPECT_EQ(q.environment_id, kOther) << "left unchanged on failure";
  EXPECT_TRUE(NarrowListToReach(account, q));
  EXPECT_EQ(q.account_id, kAccount);
  EXPECT_EQ(q.environment_id, kOther);
  EXPECT_TRUE(CheckListAccount(environment, kAccount));
  EXPECT_FALSE(CheckListAccount(environment, kOther));
}

}  // namespace
}  // namespace tokenledger::http
