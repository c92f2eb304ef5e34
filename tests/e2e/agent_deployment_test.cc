// The agent_deployment scope (SPEC.md "v1.1 additions"; the platform's own SDK and CLI create
// these tokens) against the real server: create, details and summaries, lists filtered on it,
// what such a token may do, and introspection of it.
#include <algorithm>
#include <array>
#include <cstdlib>

#include "tests/e2e/e2e_util.h"

namespace tokenledger::e2e {
namespace {
namespace json = boost::json;

class AgentDeploymentTest : public E2ETest {
 protected:
  void SetUp() override {
    E2ETest::SetUp();
    env_ = ids_.Generate();
    agent_ = ids_.Generate();
    deployment_ = ids_.Generate();
    gateway_ = SeedGateway();
    StartServer();
  }
  // Creates an agent token through the API; returns the whole answer (details and token).
  json::object CreateAgent(bool with_deployment) {
    std::string details = R"({"token_scope":"agent_deployment","environment_id":")" +
                          env_.ToString() + R"(","agent_id":")" + agent_.ToString() + "\"";
    if (with_deployment) details += R"(,"agent_deployment_id":")" + deployment_.ToString() + "\"";
    return CreateViaApi(main_.jwt, details + "}");
  }
  Response Introspect(const std::string& jwt, const std::string& caller) {
    return client_->Request("POST", "/api/v1/introspect", "token=" + jwt,
                            {{"Authorization", "Bearer " + caller},
                             {"Content-Type", "application/x-www-form-urlencoded"}});
  }
  Id env_, agent_, deployment_;
  Seeded gateway_;
};

TEST_F(AgentDeploymentTest, CreatedWithItsAgentShownInDetailsSummariesAndEvents) {
  const json::object created = CreateAgent(/*with_deployment=*/true);
  const json::object& d = created.at("details").as_object();
  EXPECT_EQ(d.at("token_scope"), "agent_deployment");
  EXPECT_EQ(d.at("environment_id"), env_.ToString());
  EXPECT_EQ(d.at("agent_id"), agent_.ToString());
  EXPECT_EQ(d.at("agent_deployment_id"), deployment_.ToString());
  const std::string id = JsonString(d.at("id"));

  const json::object bare = CreateAgent(/*with_deployment=*/false);
  EXPECT_TRUE(bare.at("details").at("agent_deployment_id").is_null()) << "null unless given";

  Response shown = Call("GET", "/api/v1/api_token/" + id, main_.jwt);
  ASSERT_EQ(shown.status, 200) << shown.body;
  EXPECT_EQ(shown.Json().at("details"), created.at("details"));

  // Lists: the scope filter, the environment filter (shared with environment tokens) and both.
  const Seeded env_token = [&] {
    StopServer();
    Seeded s = Seed(account_, env_);
    StartServer();
    return s;
  }();
  auto list = [&](const std::string& query) {
    Response r = Call("GET", "/api/v1/api_token?" + query, main_.jwt);
    EXPECT_EQ(r.status, 200) << query << " " << r.body;
    const json::value body = r.Json();
    std::vector<std::string> ids;
    for (const auto& row : body.at("summaries").as_array()) ids.push_back(JsonString(row.at("id")));
    EXPECT_EQ(body.at("pagination").at("item_count").to_number<std::size_t>(), ids.size()) << query;
    return ids;
  };
  const std::string bare_id = JsonString(bare.at("details").at("id"));
  const std::string env_token_id = env_token.token_id.ToString();
  // Two tokens created in the same millisecond are ordered by their random bits, not by
  // which came first: sort what is expected rather than assume creation order.
  auto by_id = [](std::vector<std::string> ids) {
    std::sort(ids.begin(), ids.end());
    return ids;
  };
  const std::vector<std::string> agent_ids = by_id({id, bare_id});
  EXPECT_EQ(list("token_scope=agent_deployment&sorting=id"), agent_ids);
  EXPECT_EQ(list("environment_id=" + env_.ToString() + "&sorting=id"),
            by_id({id, bare_id, env_token_id}));
  EXPECT_EQ(list("environment_id=" + env_.ToString() + "&token_scope=environment"),
            (std::vector<std::string>{env_token_id}));
  EXPECT_EQ(list("environment_id=" + env_.ToString() +
                 "&token_scope=agent_deployment&status=active&sorting=id"),
            agent_ids);
  EXPECT_TRUE(list("token_scope=account&environment_id=" + env_.ToString()).empty());
  const auto summaries =
      Call("GET", "/api/v1/api_token?token_scope=agent_deployment&sorting=id", main_.jwt).Json();
  EXPECT_EQ(summaries.at("summaries").at(0).at("agent_id"), agent_.ToString());
  // The environment's own token sees the agent tokens of its environment.
  EXPECT_EQ(Call("GET", "/api/v1/api_token/" + id, env_token.jwt).status, 200);

  // The event carries the agent (TokenCreated schema version 2).
  Response history = Call("GET", "/api/v1/api_token/" + id + "/events", main_.jwt);
  ASSERT_EQ(history.status, 200) << history.body;
  const json::value event = history.Json().at("events").at(0);
  EXPECT_EQ(event.at("schema_version"), 2);
  EXPECT_EQ(event.at("data").at("agent_id"), agent_.ToString());
  EXPECT_EQ(event.at("data").at("agent_deployment_id"), deployment_.ToString());
}

TEST_F(AgentDeploymentTest, BothIdsAreRequiredAndOtherScopesTakeNoAgent) {
  auto create = [&](const std::string& details) {
    Response r = Call("POST", "/api/v1/api_token", main_.jwt, R"({"details":)" + details + "}");
    if (r.status != 400) return std::to_string(r.status) + " " + r.body;
    const json::value e = r.Json();
    return JsonString(e.at("code")) + " " + JsonString(e.at("message"));
  };
  const std::string agent = R"("agent_id":")" + agent_.ToString() + "\"";
  const std::string env = R"("environment_id":")" + env_.ToString() + "\"";
  EXPECT_EQ(create(R"({"token_scope":"agent_deployment",)" + agent + "}"),
            "required_value environment_id is required for agent_deployment scope");
  EXPECT_EQ(create(R"({"token_scope":"agent_deployment",)" + env + "}"),
            "required_value agent_id is required for agent_deployment scope");
  EXPECT_EQ(create(R"({"token_scope":"environment",)" + env + "," + agent + "}"),
            "invalid_value agent_id must be null for environment scope");
  EXPECT_EQ(create(R"({"token_scope":"account","agent_deployment_id":")" + deployment_.ToString() +
                   "\"}"),
            "invalid_value agent_deployment_id must be null for account scope");
  EXPECT_EQ(create(R"({"token_scope":"agent_deployment",)" + env + R"(,"agent_id":"a1"})"),
            "invalid_value agent_id is not a valid id");
}

TEST_F(AgentDeploymentTest, MayPingAndIntrospectItselfAndNothingElse) {
  const json::object created = CreateAgent(/*with_deployment=*/false);
  const std::string jwt = JsonString(created.at("token"));
  const std::string id = JsonString(created.at("details").at("id"));
  EXPECT_EQ(Call("GET", "/api/v1/ping", jwt).status, 200);
  for (const auto& [method, target, body] : std::vector<std::array<std::string, 3>>{
           {"GET", "/api/v1/api_token", ""},
           {"GET", "/api/v1/api_token/" + id, ""},
           {"GET", "/api/v1/api_token/" + id + "/events", ""},
           {"POST", "/api/v1/api_token", R"({"details":{"token_scope":"account"}})"},
           {"POST", "/api/v1/api_token/" + id + "/suspend", ""},
           {"DELETE", "/api/v1/api_token/" + id, ""},
       }) {
    Response r = Call(method, target, jwt, body);
    EXPECT_EQ(r.status, 403) << method << " " << target << " " << r.body;
    EXPECT_EQ(r.Json().at("code"), "not_permitted") << r.body;
  }
  // Itself: active, with its agent. Any other token, valid or not: inactive, as RFC 7662 §4
  // says, and nothing is recorded for it.
  Response self = Introspect(jwt, jwt);
  ASSERT_EQ(self.status, 200) << self.body;
  EXPECT_EQ(self.Json().at("active"), json::value(true));
  EXPECT_EQ(self.Json().at("scope"), "agent_deployment");
  EXPECT_EQ(self.Json().at("agent_id"), agent_.ToString());
  EXPECT_EQ(self.Json().at("environment_id"), env_.ToString());
  EXPECT_EQ(self.Header("x-token-agent-id"), agent_.ToString());
  Response other = Introspect(main_.jwt, jwt);
  EXPECT_EQ(other.status, 200);
  EXPECT_EQ(other.body, R"({"active":false})");
  // A gateway sees the agent too; an account token may not introspect at all.
  Response by_gateway = Introspect(jwt, gateway_.jwt);
  EXPECT_EQ(by_gateway.Json().at("agent_id"), agent_.ToString());
  EXPECT_EQ(Introspect(jwt, main_.jwt).status, 403);

  // Suspended, it neither pings nor introspects (itself included).
  ASSERT_EQ(Call("POST", "/api/v1/api_token/" + id + "/suspend", main_.jwt).status, 200);
  EXPECT_EQ(Call("GET", "/api/v1/ping", jwt).status, 401);
  EXPECT_EQ(Introspect(jwt, jwt).status, 401);
  EXPECT_EQ(Introspect(jwt, gateway_.jwt).body, R"({"active":false})");
}

// The agent fields are folded from the event: a rebuild of every projection gives the same
// answer, and verify finds the rebuilt projections equal to a fresh fold.
TEST_F(AgentDeploymentTest, AgentFieldsSurviveARestartAndARebuild) {
  const json::object created = CreateAgent(/*with_deployment=*/true);
  const std::string id = JsonString(created.at("details").at("id"));
  const std::string before = Call("GET", "/api/v1/api_token/" + id, main_.jwt).body;
  StopServer();
  for (const char* tool : {"rebuild", "verify"}) {
    const std::string command = std::string(TOKENLEDGER_CLI_PATH) + " " + tool + " --data-dir '" +
                                data_dir_ + "' --quiet >/dev/null 2>&1";
    ASSERT_EQ(std::system(command.c_str()), 0) << command;
  }
  StartServer();
  EXPECT_EQ(Call("GET", "/api/v1/api_token/" + id, main_.jwt).body, before);
}

}  // namespace
}  // namespace tokenledger::e2e
