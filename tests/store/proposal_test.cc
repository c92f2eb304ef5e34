// The cluster message codec: what a node publishes is what every node applies.
#include "src/store/proposal.h"

#include <gtest/gtest.h>

#include "events/event_codec.h"
#include "src/store/store_impl.h"

namespace tokenledger::store {
namespace {

Proposal SampleCreate() {
  IdGenerator ids;
  Proposal p;
  p.id = "0123456789abcdef-7";
  p.stream = ids.Generate();
  p.version = 0;
  p.at = 1'790'000'000'000'000;
  p.idempotency = IdempotencyInfo{ids.Generate(), "key \"with\" quotes", {}};
  p.idempotency->fingerprint[0] = 0xab;
  p.idempotency->fingerprint[31] = 0x01;
  CommandRequest req;
  req.request_id = "req-1";
  req.idempotency = p.idempotency;
  events::TokenCreated created;
  created.account_id = p.idempotency->account_id;
  created.scope = events::TokenScope::kAccount;
  created.expires_at = p.at + kMicrosPerDay;
  p.events.push_back(NewEvent(req, p.stream, 1, p.at, created));
  return p;
}

TEST(ProposalTest, AnAppliedCommandRoundTrips) {
  const Proposal p = SampleCreate();
  auto back = DecodeProposal(EncodeProposal(p));
  ASSERT_TRUE(back) << back.error().message;
  EXPECT_EQ(back->id, p.id);
  EXPECT_EQ(back->stream, p.stream);
  EXPECT_EQ(back->version, 0u);
  EXPECT_EQ(back->at, p.at);
  ASSERT_TRUE(back->idempotency);
  EXPECT_EQ(back->idempotency->account_id, p.idempotency->account_id);
  EXPECT_EQ(back->idempotency->key, p.idempotency->key);
  EXPECT_EQ(back->idempotency->fingerprint, p.idempotency->fingerprint);
  EXPECT_TRUE(back->applied);
  ASSERT_EQ(back->events.size(), 1u);
  EXPECT_EQ(back->events[0], p.events[0]);
  EXPECT_FALSE(back->used_at);
  // Re-encoding gives the same bytes: every node reads one message the same way.
  EXPECT_EQ(EncodeProposal(*back), EncodeProposal(p));
}

TEST(ProposalTest, ARecordedRejectionAndAUseRoundTrip) {
  Proposal p = SampleCreate();
  p.events.clear();
  p.version = 3;
  p.applied = false;
  p.rejection = {ErrorCode::kInvalidAction, "cannot suspend a token that is revoked", ""};
  auto back = DecodeProposal(EncodeProposal(p));
  ASSERT_TRUE(back) << back.error().message;
  EXPECT_FALSE(back->applied);
  EXPECT_EQ(back->rejection, p.rejection);

  Proposal use = SampleCreate();
  use.events.clear();
  use.idempotency.reset();
  use.used_at = use.at - 5;
  auto use_back = DecodeProposal(EncodeProposal(use));
  ASSERT_TRUE(use_back) << use_back.error().message;
  EXPECT_EQ(use_back->used_at, use.used_at);
  EXPECT_FALSE(use_back->idempotency);
}

TEST(ProposalTest, AVerbatimRecordRoundTripsByteForByte) {
  Proposal p = SampleCreate();
  events::EventEnvelope e = p.events[0];
  e.seq = 1;
  Proposal moved;
  moved.id = "publish-1";
  moved.verbatim = events::EncodeStoredEvent(e);
  auto back = DecodeProposal(EncodeProposal(moved));
  ASSERT_TRUE(back) << back.error().message;
  EXPECT_EQ(back->verbatim, moved.verbatim);
}

TEST(ProposalTest, MalformedAndNewerMessagesAreRefusedWithAReason) {
  EXPECT_FALSE(DecodeProposal("not json"));
  EXPECT_FALSE(DecodeProposal(R"({"id":"x"})"));  // no format version
  auto newer = DecodeProposal(R"({"v":2,"id":"x"})");
  ASSERT_FALSE(newer);
  EXPECT_NE(newer.error().message.find("newer release"), std::string::npos);
  // A rejection that keys never record is not accepted from the wire.
  Proposal p = SampleCreate();
  p.events.clear();
  p.applied = false;
  p.rejection = {ErrorCode::kInvalidAction, "m", ""};
  std::string text = EncodeProposal(p);
  const std::string code = "\"invalid_action\"";
  text.replace(text.find(code), code.size(), "\"bad_request\"");
  EXPECT_FALSE(DecodeProposal(text));
  // An event this release cannot read (here: a newer schema version) stops the node rather
  // than being skipped: other nodes may be able to apply it.
  Proposal r = SampleCreate();
  std::string newer_event = EncodeProposal(r);
  const std::string version = R"(\"schema_version\":2)";
  ASSERT_NE(newer_event.find(version), std::string::npos) << newer_event;
  newer_event.replace(newer_event.find(version), version.size(), R"(\"schema_version\":9)");
  auto refused = DecodeProposal(newer_event);
  ASSERT_FALSE(refused);
  EXPECT_EQ(refused.error().code, ErrorCode::kUnavailable) << refused.error().message;
  // Events must continue the proposal's stream version.
  Proposal q = SampleCreate();
  q.version = 4;
  EXPECT_FALSE(DecodeProposal(EncodeProposal(q)));
}

// Times must fit Micros: 2^63 and above would come back negative, be encoded so, and then be
// refused by the next decode (found by the proposal fuzzer).
TEST(ProposalTest, TimesOutsideMicrosAreRefused) {
  Proposal p = SampleCreate();
  p.used_at = p.at;
  const std::string text = EncodeProposal(p);
  auto with = [&](std::string_view field, std::string value) {
    std::string t = text;
    const std::string key = "\"" + std::string(field) + "\":";
    const std::size_t at = t.find(key) + key.size();
    t.replace(at, t.find_first_of(",}", at) - at, value);
    return t;
  };
  ASSERT_TRUE(DecodeProposal(with("at", "9223372036854775807")));
  ASSERT_TRUE(DecodeProposal(with("used_at", "0")));
  for (const char* field : {"at", "used_at"}) {
    for (const char* value : {"9223372036854775808", "17960321892189000000", "-1", "1.5"}) {
      EXPECT_FALSE(DecodeProposal(with(field, value))) << field << " = " << value;
    }
  }
}

}  // namespace
}  // namespace tokenledger::store
