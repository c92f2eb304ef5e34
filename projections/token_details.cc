#include "projections/token_details.h"

#include <boost/json.hpp>
#include <cassert>

#include "events/event_codec.h"
#include "src/core/decider.h"

namespace tokenledger::projections {
namespace json = boost::json;
namespace {

Error Corrupt(std::string what) {
  return Error{ErrorCode::kUnexpected, "token_details row: " + std::move(what), {}};
}

}  // namespace

void ApplyUse(std::optional<TokenRow>& row, Micros used_at) {
  if (!row || !row->state.Visible()) return;
  if (!row->state.last_used_at || *row->state.last_used_at < used_at)
    row->state.last_used_at = used_at;
}

void ApplyEvent(std::optional<TokenRow>& row, const events::EventEnvelope& event) {
  if (!row) {
    row.emplace();
    row->created_seq = event.seq;
  }
  const core::TokenStatus before = row->state.status;
  const bool existed = row->state.exists;
  row->state = core::Evolve(std::move(row->state), event);
  if (!existed || row->state.status != before) row->status_changed_at = event.at;
  if (std::holds_alternative<events::TokenRevoked>(event.data)) row->revoked_at = event.at;
}

namespace {

// The row's bytes (version 4), little-endian:
//
//   version (1) | present (1) | scope (1) | status (1) | id (20) | account_id (20)
//   | expires_at (8) | inserted_at (8) | updated_at (8) | version (8) | created_seq (8)
//   | status_changed_at (8)                                     -- kFixedBytes in all
//   then, each only when its bit in `present` is set, in this order:
//   environment_id (20) | created_by_admin_user_id (20) | agent_id (20)
//   | agent_deployment_id (20) | last_used_at (8) | revoked_at (8)
//   | signing_kid (4-byte length, bytes)
//
// Binary, not JSON: rows are written on every change and read on every show, and the bulk
// tools encode (verify) or write (rebuild) one per token; the JSON row was ~470 bytes and a
// Boost.JSON parse to read, this one ~100 bytes and copies. Exactly one encoding per row
// (fixed order, no unknown bits, no trailing bytes), so equal rows are equal bytes.
constexpr std::size_t kFixedBytes = 4 + 2 * Id::kBytes + 6 * 8;
enum Present : std::uint8_t {
  kEnvironment = 1 << 0,
  kCreatedBy = 1 << 1,
  kAgent = 1 << 2,
  kAgentDeployment = 1 << 3,
  kLastUsed = 1 << 4,
  kRevoked = 1 << 5,
  kSigningKid = 1 << 6,
  kAllPresent = (1 << 7) - 1,
};
static_assert(kTokenDetails.version < 256, "the version is one byte");

void PutU64(std::string& out, std::uint64_t v) {
  char b[8];
  for (int i = 0; i < 8; ++i, v >>= 8) b[i] = static_cast<char>(v & 0xff);
  out.append(b, 8);
}
void PutId(std::string& out, const Id& id) { out.append(id.Bytes()); }

// Reads the row's bytes front to back. A read past the end gives zeros (an empty view) and
// makes ok() false for good, so a decode checks once, at the end.
class Reader {
 public:
  explicit Reader(std::string_view bytes) : rest_(bytes) {}
  bool ok() const { return ok_; }
  bool done() const { return rest_.empty(); }
  std::string_view Take(std::size_t n) {
    if (!ok_ || rest_.size() < n) {
      ok_ = false;
      return {};
    }
    const std::string_view b = rest_.substr(0, n);
    rest_.remove_prefix(n);
    return b;
  }
  std::uint8_t Byte() {
    const std::string_view b = Take(1);
    return b.empty() ? 0 : static_cast<std::uint8_t>(b[0]);
  }
  std::uint64_t Uint(std::size_t n) {
    const std::string_view b = Take(n);
    std::uint64_t v = 0;
    for (std::size_t i = b.size(); i-- > 0;) v = v << 8 | static_cast<std::uint8_t>(b[i]);
    return v;
  }
  std::uint64_t U64() { return Uint(8); }
  Micros Time() { return static_cast<Micros>(Uint(8)); }
  Id TakeId() { return Id::FromBytes(Take(Id::kBytes)).value_or(Id()); }

 private:
  std::string_view rest_;
  bool ok_ = true;
};

}  // namespace

void EncodeTokenRowInto(const TokenRow& row, std::string& out) {
  const core::TokenState& s = row.state;
  out.clear();
  std::uint8_t present = 0;
  if (s.environment_id) present |= kEnvironment;
  if (s.created_by_admin_user_id) present |= kCreatedBy;
  if (s.agent_id) present |= kAgent;
  if (s.agent_deployment_id) present |= kAgentDeployment;
  if (s.last_used_at) present |= kLastUsed;
  if (row.revoked_at) present |= kRevoked;
  if (s.signing_kid) present |= kSigningKid;
  out.push_back(static_cast<char>(kTokenDetails.version));
  out.push_back(static_cast<char>(present));
  out.push_back(static_cast<char>(s.scope));
  out.push_back(static_cast<char>(s.status));
  PutId(out, s.id);
  PutId(out, s.account_id);
  PutU64(out, static_cast<std::uint64_t>(s.expires_at));
  PutU64(out, static_cast<std::uint64_t>(s.inserted_at));
  PutU64(out, static_cast<std::uint64_t>(s.updated_at));
  PutU64(out, s.version);
  PutU64(out, row.created_seq);
  PutU64(out, static_cast<std::uint64_t>(row.status_changed_at));
  assert(out.size() == kFixedBytes);
  if (s.environment_id) PutId(out, *s.environment_id);
  if (s.created_by_admin_user_id) PutId(out, *s.created_by_admin_user_id);
  if (s.agent_id) PutId(out, *s.agent_id);
  if (s.agent_deployment_id) PutId(out, *s.agent_deployment_id);
  if (s.last_used_at) PutU64(out, static_cast<std::uint64_t>(*s.last_used_at));
  if (row.revoked_at) PutU64(out, static_cast<std::uint64_t>(*row.revoked_at));
  if (s.signing_kid) {
    const std::string& kid = *s.signing_kid;
    std::uint32_t n = static_cast<std::uint32_t>(kid.size());
    assert(n == kid.size());
    char b[4];
    for (int i = 0; i < 4; ++i, n >>= 8) b[i] = static_cast<char>(n & 0xff);
    out.append(b, 4);
    out += kid;
  }
}

std::string EncodeTokenRow(const TokenRow& row) {
  std::string out;
  EncodeTokenRowInto(row, out);
  return out;
}

Result<TokenRow> DecodeTokenRow(std::string_view bytes) {
  if (bytes.empty() || static_cast<std::uint8_t>(bytes[0]) != kTokenDetails.version) {
    return Corrupt("schema version differs from this release's");
  }
  if (bytes.size() < kFixedBytes) return Corrupt("truncated");
  Reader in(bytes.substr(1));
  const std::uint8_t present = in.Byte();
  if (present & ~kAllPresent) return Corrupt("unknown fields");
  TokenRow row;
  core::TokenState& s = row.state;
  s.exists = true;
  const std::uint8_t scope = in.Byte(), status = in.Byte();
  if (scope < static_cast<std::uint8_t>(events::TokenScope::kAccount) ||
      scope > static_cast<std::uint8_t>(events::TokenScope::kAgentDeployment) ||
      status < static_cast<std::uint8_t>(core::TokenStatus::kActive) ||
      status > static_cast<std::uint8_t>(core::TokenStatus::kRevoked)) {
    return Corrupt("unknown scope or status");
  }
  s.scope = static_cast<events::TokenScope>(scope);
  s.status = static_cast<core::TokenStatus>(status);
  s.id = in.TakeId();
  s.account_id = in.TakeId();
  s.expires_at = in.Time();
  s.inserted_at = in.Time();
  s.updated_at = in.Time();
  s.version = in.U64();
  row.created_seq = in.U64();
  row.status_changed_at = in.Time();
  if (present & kEnvironment) s.environment_id = in.TakeId();
  if (present & kCreatedBy) s.created_by_admin_user_id = in.TakeId();
  if (present & kAgent) s.agent_id = in.TakeId();
  if (present & kAgentDeployment) s.agent_deployment_id = in.TakeId();
  if (present & kLastUsed) s.last_used_at = in.Time();
  if (present & kRevoked) row.revoked_at = in.Time();
  if (present & kSigningKid) {
    const std::size_t n = in.Uint(4);
    s.signing_kid = std::string(in.Take(n));
    // A kid comes from an event's JSON string: anything else was never written by us.
    if (!events::IsWellFormedUtf8(*s.signing_kid)) return Corrupt("signing_kid is not UTF-8");
  }
  if (!in.ok()) return Corrupt("truncated");
  if (!in.done()) return Corrupt("trailing bytes");
  return row;
}

std::string DescribeTokenRow(const TokenRow& row) {
  const core::TokenState& s = row.state;
  auto opt_id = [](const std::optional<Id>& id) {
    return id ? json::value(id->ToString()) : json::value(nullptr);
  };
  auto opt_micros = [](const std::optional<Micros>& t) {
    return t ? json::value(*t) : json::value(nullptr);
  };
  return json::serialize(json::object{
      {"id", s.id.ToString()},
      {"account_id", s.account_id.ToString()},
      {"environment_id", opt_id(s.environment_id)},
      {"token_scope", events::ScopeName(s.scope)},
      {"status", core::StatusName(s.status)},
      {"created_by_admin_user_id", opt_id(s.created_by_admin_user_id)},
      {"agent_id", opt_id(s.agent_id)},
      {"agent_deployment_id", opt_id(s.agent_deployment_id)},
      {"signing_kid", s.signing_kid ? json::value(*s.signing_kid) : json::value(nullptr)},
      {"expires_at", s.expires_at},
      {"inserted_at", s.inserted_at},
      {"updated_at", s.updated_at},
      {"last_used_at", opt_micros(s.last_used_at)},
      {"version", s.version},
      {"created_seq", row.created_seq},
      {"status_changed_at", row.status_changed_at},
      {"revoked_at", opt_micros(row.revoked_at)},
  });
}

}  // namespace tokenledger::projections
