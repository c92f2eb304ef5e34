// Decider tests read as: given these events, when this command, then these events (or this
// rejection).
#include "src/core/decider.h"

#include <gtest/gtest.h>

namespace tokenledger::core {
namespace {

using events::EventData;
using events::TokenScope;

const Id kToken = *Id::Parse("013xrzp12g3nqk8n7f8f9jbg8d18q7tm");
const Id kAccount = *Id::Parse("013xrzp12g3nqk8ngskn1wtxgka5b0nf");
const Id kEnv = *Id::Parse("013xrzp12g3nqk8nzxvq7jm2arsfg5h1");
const Id kAdmin = *Id::Parse("013xrzp12g3nqk8nh0qrc2b1jfanmvb9");
constexpr Micros kT0 = 1'704'067'200'000'000;  // 2024-01-01

events::TokenCreated Created() {
  return {kAccount, std::nullopt, TokenScope::kAccount, kT0 + 30 * kMicrosPerDay, std::nullopt};
}

// Folds `history` (one event per second from kT0) into a state.
TokenState Given(const std::vector<EventData>& history) {
  TokenState s;
  std::uint64_t version = 0;
  for (const auto& data : history) {
    events::EventEnvelope e;
    e.seq = ++version;
    e.stream = kToken;
    e.stream_version = version;
    e.at = kT0 + static_cast<Micros>(version) * kMicrosPerSecond;
    e.data = data;
    s = Evolve(s, e);
  }
  return s;
}

DecideContext Context(Micros now = kT0 + kMicrosPerHour) {
  return DecideContext{.now = now, .new_token_id = kToken, .policy = TokenPolicy{}};
}

std::vector<EventData> Events(const Decision& d) {
  const auto* e = std::get_if<std::vector<EventData>>(&d);
  EXPECT_NE(e, nullptr) << "expected events, got rejection: " << std::get<Rejection>(d).message;
  return e ? *e : std::vector<EventData>{};
}

ErrorCode RejectionCode(const Decision& d) {
  const auto* r = std::get_if<Rejection>(&d);
  EXPECT_NE(r, nullptr) << "expected a rejection";
  return r ? r->code : ErrorCode::kUnexpected;
}

Command Action(std::string_view name) {
  if (name == "suspend") return SuspendToken{kToken};
  if (name == "activate") return ActivateToken{kToken};
  if (name == "revoke") return RevokeToken{kToken};
  return DeleteToken{kToken};
}

EventData EventOf(std::string_view name) {
  if (name == "suspend") return events::TokenSuspended{};
  if (name == "activate") return events::TokenActivated{};
  if (name == "revoke") return events::TokenRevoked{};
  return events::TokenDeleted{};
}

TEST(AvailableActionsTest, MatchTheSpecTable) {
  EXPECT_EQ(ActionsFor(TokenStatus::kActive),
            (AvailableActions{.activate = false, .del = false, .revoke = true, .suspend = true}));
  EXPECT_EQ(ActionsFor(TokenStatus::kSuspended),
            (AvailableActions{.activate = true, .del = false, .revoke = true, .suspend = false}));
  EXPECT_EQ(ActionsFor(TokenStatus::kRevoked),
            (AvailableActions{.activate = false, .del = true, .revoke = false, .suspend = false}));
}

// Every (status, action) pair: allowed ones produce exactly their event, refused ones
// invalid_action.
TEST(DeciderTest, EveryTransitionOfTheStateMachine) {
  struct Case {
    std::vector<EventData> history;
    TokenStatus status;
  };
  const std::vector<Case> cases = {
      {{Created()}, TokenStatus::kActive},
      {{Created(), events::TokenSuspended{}}, TokenStatus::kSuspended},
      {{Created(), events::TokenRevoked{}}, TokenStatus::kRevoked},
      {{Created(), events::TokenSuspended{}, events::TokenActivated{}}, TokenStatus::kActive},
      {{Created(), events::TokenSuspended{}, events::TokenRevoked{}}, TokenStatus::kRevoked},
  };
  for (const auto& c : cases) {
    const TokenState state = Given(c.history);
    ASSERT_EQ(state.status, c.status);
    const AvailableActions allowed = ActionsFor(c.status);
    const std::pair<std::string_view, bool> actions[] = {{"suspend", allowed.suspend},
                                                         {"activate", allowed.activate},
                                                         {"revoke", allowed.revoke},
                                                         {"delete", allowed.del}};
    for (const auto& [action, ok] : actions) {
      const Decision d = Decide(Action(action), state, Context());
      SCOPED_TRACE(std::string(StatusName(c.status)) + " " + std::string(action));
      if (ok) {
        EXPECT_EQ(Events(d), std::vector<EventData>{EventOf(action)});
      } else {
        EXPECT_EQ(RejectionCode(d), ErrorCode::kInvalidAction);
      }
    }
  }
}

TEST(DeciderTest, EvolveFollowsEachEvent) {
  TokenState s = Given({Created()});
  EXPECT_TRUE(s.Visible());
  EXPECT_EQ(s.id, kToken);
  EXPECT_EQ(s.account_id, kAccount);
  EXPECT_EQ(s.status, TokenStatus::kActive);
  EXPECT_EQ(s.inserted_at, kT0 + kMicrosPerSecond);
  EXPECT_EQ(s.updated_at, s.inserted_at);
  EXPECT_FALSE(s.last_used_at);
  EXPECT_EQ(s.version, 1u);

  s = Given({Created(), events::TokenSuspended{}});
  EXPECT_EQ(s.status, TokenStatus::kSuspended);
  EXPECT_EQ(s.updated_at, kT0 + 2 * kMicrosPerSecond);

  s = Given({Created(), events::TokenUsed{kT0 + 5}});
  EXPECT_EQ(s.last_used_at, kT0 + 5);
  EXPECT_EQ(s.updated_at, s.inserted_at) << "a use is not a state change";
  EXPECT_EQ(s.version, 2u);

  s = Given({Created(), events::TokenRevoked{}, events::TokenDeleted{}});
  EXPECT_TRUE(s.exists);
  EXPECT_TRUE(s.deleted);
  EXPECT_FALSE(s.Visible());
  EXPECT_EQ(s.status, TokenStatus::kRevoked);
}

TEST(DeciderTest, DeletedAndUnknownTokensAreNotFound) {
  const TokenState deleted = Given({Created(), events::TokenRevoked{}, events::TokenDeleted{}});
  for (const char* action : {"suspend", "activate", "revoke", "delete"}) {
    EXPECT_EQ(RejectionCode(Decide(Action(action), deleted, Context())), ErrorCode::kNotFound);
    EXPECT_EQ(RejectionCode(Decide(Action(action), TokenState{}, Context())), ErrorCode::kNotFound);
  }
  EXPECT_EQ(RejectionCode(Decide(RecordUse{kToken, kT0}, deleted, Context())),
            ErrorCode::kNotFound);
}

TEST(DeciderTest, AnotherAccountsTokenIsNotFound) {
  const TokenState revoked = Given({Created(), events::TokenRevoked{}});
  const Id other = *Id::Parse("013xrzp12g3nqk8nh0qrc2b1jfanmvb9");
  EXPECT_EQ(RejectionCode(Decide(SuspendToken{kToken, other}, Given({Created()}), Context())),
            ErrorCode::kNotFound);
  EXPECT_EQ(RejectionCode(Decide(ActivateToken{kToken, other},
                                 Given({Created(), events::TokenSuspended{}}), Context())),
            ErrorCode::kNotFound);
  EXPECT_EQ(RejectionCode(Decide(RevokeToken{kToken, other}, Given({Created()}), Context())),
            ErrorCode::kNotFound);
  EXPECT_EQ(RejectionCode(Decide(DeleteToken{kToken, other}, revoked, Context())),
            ErrorCode::kNotFound);
  // The owner (or an operator, who names no account) decides as usual.
  EXPECT_EQ(Events(Decide(DeleteToken{kToken, kAccount}, revoked, Context())).size(), 1u);
  EXPECT_EQ(Events(Decide(DeleteToken{kToken}, revoked, Context())).size(), 1u);
}

TEST(DeciderTest, CreateAccountToken) {
  CreateToken c{kAccount, std::nullopt, TokenScope::kAccount, std::nullopt, kAdmin};
  const Micros now = kT0 + kMicrosPerHour;
  auto events = Events(Decide(c, TokenState{}, Context(now)));
  ASSERT_EQ(events.size(), 1u);
  const auto& created = std::get<events::TokenCreated>(events[0]);
  EXPECT_EQ(created.account_id, kAccount);
  EXPECT_EQ(created.scope, TokenScope::kAccount);
  EXPECT_EQ(created.expires_at, now + 365 * kMicrosPerDay) << "default lifetime";
  EXPECT_EQ(created.created_by_admin_user_id, kAdmin);
}

TEST(DeciderTest, CreateEnvironmentTokenWithExpiry) {
  const Micros now = kT0;
  CreateToken c{kAccount, kEnv, TokenScope::kEnvironment, now + kMicrosPerDay, std::nullopt};
  auto events = Events(Decide(c, TokenState{}, Context(now)));
  ASSERT_EQ(events.size(), 1u);
  const auto& created = std::get<events::TokenCreated>(events[0]);
  EXPECT_EQ(created.environment_id, kEnv);
  EXPECT_EQ(created.expires_at, now + kMicrosPerDay);
}

TEST(DeciderTest, CreateValidation) {
  const Micros now = kT0;
  auto reject = [&](CreateToken c, TokenPolicy policy = {}) {
    DecideContext ctx = Context(now);
    ctx.policy = policy;
    return std::get<Rejection>(Decide(c, TokenState{}, ctx));
  };
  auto r = reject({kAccount, std::nullopt, TokenScope::kEnvironment, std::nullopt, std::nullopt});
  EXPECT_EQ(r.code, ErrorCode::kRequiredValue);
  EXPECT_EQ(r.field, "environment_id");
  r = reject({kAccount, kEnv, TokenScope::kAccount, std::nullopt, std::nullopt});
  EXPECT_EQ(r.code, ErrorCode::kInvalidValue);
  EXPECT_EQ(r.field, "environment_id");
  r = reject({kAccount, std::nullopt, TokenScope::kAccount, now, std::nullopt});
  EXPECT_EQ(r.code, ErrorCode::kInvalidValue) << "expires_at must be strictly in the future";
  EXPECT_EQ(r.field, "expires_at");
  r = reject({kAccount, std::nullopt, TokenScope::kAccount, now - 1, std::nullopt});
  EXPECT_EQ(r.code, ErrorCode::kInvalidValue);

  TokenPolicy capped;
  capped.max_lifetime = 30 * kMicrosPerDay;
  capped.default_lifetime = 7 * kMicrosPerDay;
  r = reject({kAccount, std::nullopt, TokenScope::kAccount, now + 31 * kMicrosPerDay, std::nullopt},
             capped);
  EXPECT_EQ(r.code, ErrorCode::kInvalidValue);
  DecideContext ctx = Context(now);
  ctx.policy = capped;
  EXPECT_EQ(Events(Decide(CreateToken{kAccount, std::nullopt, TokenScope::kAccount,
                                      now + 30 * kMicrosPerDay, std::nullopt},
                          TokenState{}, ctx))
                .size(),
            1u);
  // Creating onto an existing id is a bug, never silently accepted.
  EXPECT_EQ(RejectionCode(Decide(CreateToken{kAccount}, Given({Created()}), Context())),
            ErrorCode::kUnexpected);
}

// agent_deployment (SPEC.md, v1.1): environment_id and agent_id required, agent_deployment_id
// optional; no other scope takes either agent field. All three reach the event, and the kid
// the service signs with too.
TEST(DeciderTest, AgentDeploymentNeedsAnAgentAndAnEnvironment) {
  const Micros now = kT0;
  const Id agent = kAdmin, deployment = kEnv;
  auto reject = [&](const CreateToken& c) {
    return std::get<Rejection>(Decide(c, TokenState{}, Context(now)));
  };
  auto r =
      reject({.account_id = kAccount, .scope = TokenScope::kAgentDeployment, .agent_id = agent});
  EXPECT_EQ(r.code, ErrorCode::kRequiredValue);
  EXPECT_EQ(r.field, "environment_id");
  r = reject(
      {.account_id = kAccount, .environment_id = kEnv, .scope = TokenScope::kAgentDeployment});
  EXPECT_EQ(r.code, ErrorCode::kRequiredValue);
  EXPECT_EQ(r.field, "agent_id");
  EXPECT_EQ(r.message, "agent_id is required for agent_deployment scope");
  r = reject({.account_id = kAccount,
              .environment_id = kEnv,
              .scope = TokenScope::kEnvironment,
              .agent_id = agent});
  EXPECT_EQ(r.code, ErrorCode::kInvalidValue);
  EXPECT_EQ(r.field, "agent_id");
  r = reject(
      {.account_id = kAccount, .scope = TokenScope::kAccount, .agent_deployment_id = deployment});
  EXPECT_EQ(r.code, ErrorCode::kInvalidValue);
  EXPECT_EQ(r.field, "agent_deployment_id");

  const CreateToken ok{.account_id = kAccount,
                       .environment_id = kEnv,
                       .scope = TokenScope::kAgentDeployment,
                       .agent_id = agent,
                       .agent_deployment_id = deployment,
                       .signing_kid = "k2"};
  const auto events = Events(Decide(ok, TokenState{}, Context(now)));
  ASSERT_EQ(events.size(), 1u);
  const auto& created = std::get<events::TokenCreated>(events[0]);
  EXPECT_EQ(created.agent_id, agent);
  EXPECT_EQ(created.agent_deployment_id, deployment);
  EXPECT_EQ(created.signing_kid, "k2");
  EXPECT_EQ(created.environment_id, kEnv);
  CreateToken without_deployment = ok;
  without_deployment.agent_deployment_id.reset();
  EXPECT_EQ(Events(Decide(without_deployment, TokenState{}, Context(now))).size(), 1u);
}

// ValidateCreate is the stateless half of a create's decision: the HTTP handler's precheck and
// `tokenledger mint` call it, so it must give exactly the rejection Decide gives, or none.
TEST(DeciderTest, ValidateCreateGivesDecidesRejectionOfAFreshCreate) {
  const Micros now = kT0;
  TokenPolicy capped;
  capped.max_lifetime = 30 * kMicrosPerDay;
  capped.default_lifetime = 7 * kMicrosPerDay;
  TokenPolicy long_default;
  long_default.max_lifetime = 30 * kMicrosPerDay;  // the default lifetime (365 days) exceeds it
  const std::vector<std::pair<CreateToken, TokenPolicy>> cases = {
      {{kAccount, std::nullopt, TokenScope::kAccount, std::nullopt, kAdmin}, {}},
      {{kAccount, kEnv, TokenScope::kEnvironment, now + kMicrosPerDay, std::nullopt}, {}},
      {{kAccount, std::nullopt, TokenScope::kEnvironment, std::nullopt, std::nullopt}, {}},
      {{kAccount, kEnv, TokenScope::kAccount, std::nullopt, std::nullopt}, {}},
      {{kAccount, kEnv, TokenScope::kAccount, now - 1, std::nullopt}, {}},
      {{kAccount, std::nullopt, TokenScope::kAccount, now, std::nullopt}, {}},
      {{kAccount, std::nullopt, TokenScope::kAccount, now + 31 * kMicrosPerDay, std::nullopt},
       capped},
      {{kAccount, std::nullopt, TokenScope::kAccount, now + 30 * kMicrosPerDay, std::nullopt},
       capped},
      {{kAccount, std::nullopt, TokenScope::kAccount, std::nullopt, std::nullopt}, capped},
      {{kAccount, std::nullopt, TokenScope::kAccount, std::nullopt, std::nullopt}, long_default},
  };
  int rejected = 0;
  for (const auto& [create, policy] : cases) {
    DecideContext ctx = Context(now);
    ctx.policy = policy;
    const std::optional<Rejection> invalid = ValidateCreate(create, ctx);
    const Decision decision = Decide(create, TokenState{}, ctx);
    if (invalid) {
      ++rejected;
      ASSERT_TRUE(std::holds_alternative<Rejection>(decision));
      EXPECT_EQ(*invalid, std::get<Rejection>(decision));
    } else {
      EXPECT_TRUE(std::holds_alternative<std::vector<EventData>>(decision));
    }
  }
  EXPECT_EQ(rejected, 6);
  DecideContext ctx = Context(now);
  ctx.policy = long_default;
  const auto r = ValidateCreate(CreateToken{kAccount}, ctx);
  ASSERT_TRUE(r);
  EXPECT_EQ(r->message, "expires_at is past the maximum token lifetime");
  EXPECT_EQ(r->field, "expires_at");
  // The first check that fails answers: a missing environment before a past expiry.
  const auto first = ValidateCreate(
      CreateToken{kAccount, std::nullopt, TokenScope::kEnvironment, now - 1, std::nullopt},
      Context(now));
  ASSERT_TRUE(first);
  EXPECT_EQ(first->message, "environment_id is required for environment scope");
}

TEST(DeciderTest, RecordUseAtMostOncePerGranularity) {
  const TokenState fresh = Given({Created()});
  EXPECT_EQ(Events(Decide(RecordUse{kToken, kT0 + 10}, fresh, Context())),
            std::vector<EventData>{events::TokenUsed{kT0 + 10}});
  const TokenState used = Given({Created(), events::TokenUsed{kT0 + 10}});
  EXPECT_TRUE(
      Events(Decide(RecordUse{kToken, kT0 + 10 + kMicrosPerMinute - 1}, used, Context())).empty());
  // A minute later last_used_at moves, but within the same audit interval (a UTC day by
  // default) through a usage record, not an event.
  EXPECT_TRUE(
      Events(Decide(RecordUse{kToken, kT0 + 10 + kMicrosPerMinute}, used, Context())).empty());
  EXPECT_EQ(DecideUse(used, kT0 + 10 + kMicrosPerMinute, {}), (UseEffect{true, false}));
  // Any visible status records a use that happened (the authentication already succeeded).
  const TokenState suspended = Given({Created(), events::TokenSuspended{}});
  EXPECT_EQ(Events(Decide(RecordUse{kToken, kT0}, suspended, Context())).size(), 1u);
}

TEST(DeciderTest, TheFirstUseOfEachAuditIntervalIsAudited) {
  TokenPolicy policy;  // granularity 1 min, audit interval 1 day
  TokenState s = Given({Created()});
  EXPECT_EQ(DecideUse(s, kT0 + 5, policy), (UseEffect{true, true})) << "never used: audited";
  s.last_used_at = kT0 + 5;
  EXPECT_EQ(DecideUse(s, kT0 + 6, policy), (UseEffect{false, false})) << "within granularity";
  EXPECT_EQ(DecideUse(s, kT0 + kMicrosPerDay - 1, policy), (UseEffect{true, false}));
  s.last_used_at = kT0 + kMicrosPerDay - 1;
  EXPECT_EQ(DecideUse(s, kT0 + kMicrosPerDay + kMicrosPerMinute, policy), (UseEffect{true, true}))
      << "the first use of the next UTC day";
  policy.usage_audit_interval = 0;
  EXPECT_EQ(DecideUse(s, kT0 + 9 * kMicrosPerDay, policy), (UseEffect{true, false}))
      << "0: no use is audited";
  policy.usage_audit_interval = kMicrosPerMinute;  // the behaviour before usage records
  EXPECT_EQ(DecideUse(s, kT0 + kMicrosPerDay + kMicrosPerMinute, policy), (UseEffect{true, true}));
}

TEST(DeciderTest, IsDeterministic) {
  const TokenState s = Given({Created(), events::TokenSuspended{}});
  for (int i = 0; i < 3; ++i) {
    EXPECT_EQ(Events(Decide(ActivateToken{kToken}, s, Context())),
              std::vector<EventData>{events::TokenActivated{}});
  }
  EXPECT_EQ(Given({Created(), events::TokenSuspended{}}), s);
}

}  // namespace
}  // namespace tokenledger::core
