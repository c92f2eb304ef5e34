// The key ring's history and the rules of a change (src/core/key_ring.h).
#include "src/core/key_ring.h"

#include <gtest/gtest.h>

namespace tokenledger::core {
namespace {

events::EventEnvelope Event(std::uint64_t version, events::EventData data) {
  events::EventEnvelope e;
  e.stream = events::kKeyRingStream;
  e.stream_version = version;
  e.data = std::move(data);
  return e;
}

ChangeKeyRing Rotate(std::string kid, std::optional<std::string> previous) {
  return {events::SigningKeyRotated{std::move(kid), std::move(previous), "op@host"}};
}
ChangeKeyRing Retire(std::string kid) {
  return {events::SigningKeyRetired{std::move(kid), 0, "op@host"}};
}

std::string Check(const KeyRingHistory& h, const std::vector<std::string>& file,
                  const ChangeKeyRing& c) {
  auto r = CheckKeyRingChange(h, file, c);
  return r ? std::string(WireCode(r->code)) + ": " + r->message : "ok";
}

TEST(KeyRingHistoryTest, TheFileFirstKeyIsOriginalAndActiveUntilARotationNamesOthers) {
  KeyRingHistory h;
  EXPECT_EQ(ActiveKid(h, {"a", "b"}), "a");
  EXPECT_EQ(OriginalKid(h, {"a", "b"}), "a");
  EvolveKeyRing(h, Event(1, events::SigningKeyRotated{"b", "a", "op"}));
  EvolveKeyRing(h, Event(2, events::SigningKeyRotated{"c", "b", "op"}));
  EvolveKeyRing(h, Event(3, events::SigningKeyRetired{"a", 2, "op"}));
  // Once `a` is erased from the file, the history still knows it was the original.
  EXPECT_EQ(ActiveKid(h, {"b", "c"}), "c");
  EXPECT_EQ(OriginalKid(h, {"b", "c"}), "a");
  EXPECT_EQ(h.retired, std::set<std::string>{"a"});
  EXPECT_EQ(h.changes.size(), 3u);
}

TEST(KeyRingHistoryTest, ARotationAndARetirementFollowTheRules) {
  KeyRingHistory h;
  const std::vector<std::string> file = {"a", "b"};
  EXPECT_EQ(Check(h, file, Rotate("b", "a")), "ok");
  EXPECT_EQ(Check(h, file, Rotate("c", "a")), "not_found: the key file holds no key c");
  EXPECT_EQ(Check(h, file, Rotate("a", "a")), "invalid_action: key a is already active");
  EXPECT_EQ(Check(h, file, Rotate("b", "x")),
            "invalid_action: the rotation must name the active key as the previous one");
  EXPECT_EQ(Check(h, {"a", "b c"}, Rotate("b c", "a")), "invalid_value: kid 'b c' is not valid");
  EXPECT_EQ(Check(h, file, Retire("a")),
            "invalid_action: key a is the active key: rotate to a new one first (tokenledger "
            "keys rotate)");
  EXPECT_EQ(Check(h, file, Retire("z")), "not_found: no key z in the key ring");

  EvolveKeyRing(h, Event(1, events::SigningKeyRotated{"b", "a", "op"}));
  EXPECT_EQ(Check(h, file, Retire("a")), "ok");
  EvolveKeyRing(h, Event(2, events::SigningKeyRetired{"a", 0, "op"}));
  EXPECT_EQ(Check(h, {"b"}, Retire("a")), "invalid_action: key a is already retired");
  EXPECT_EQ(Check(h, {"b", "a"}, Rotate("a", "b")), "invalid_action: key a is retired");
  // A kid that was active once is never active again.
  EvolveKeyRing(h, Event(3, events::SigningKeyRotated{"c", "b", "op"}));
  EXPECT_EQ(Check(h, {"b", "c"}, Rotate("b", "c")),
            "invalid_action: key b was active before; kids are not reused");
}

TEST(KeyRingHistoryTest, KidsAreShortAndNeedNoEscaping) {
  EXPECT_TRUE(ValidKid("0123456789abcdef"));
  EXPECT_TRUE(ValidKid("key-2026_11"));
  EXPECT_FALSE(ValidKid(""));
  EXPECT_FALSE(ValidKid(std::string(65, 'a')));
  EXPECT_FALSE(ValidKid("a\"b"));
  EXPECT_FALSE(ValidKid("a/b"));
}

}  // namespace
}  // namespace tokenledger::core
