#include "projections/token_details.h"

#include <boost/json.hpp>

#include "src/core/decider.h"

namespace tokenledger::projections {
namespace json = boost::json;
namespace {

json::value OptId(const std::optional<Id>& id) {
  return id ? json::value(id->ToString()) : json::value(nullptr);
}

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

std::string EncodeTokenRow(const TokenRow& row) {
  const core::TokenState& s = row.state;
  json::object o;
  o["v"] = kTokenDetails.version;
  o["id"] = s.id.ToString();
  o["account_id"] = s.account_id.ToString();
  o["environment_id"] = OptId(s.environment_id);
  o["token_scope"] = events::ScopeName(s.scope);
  o["status"] = core::StatusName(s.status);
  o["created_by_admin_user_id"] = OptId(s.created_by_admin_user_id);
  o["expires_at"] = s.expires_at;
  o["inserted_at"] = s.inserted_at;
  o["updated_at"] = s.updated_at;
  o["last_used_at"] = s.last_used_at ? json::value(*s.last_used_at) : json::value(nullptr);
  o["version"] = s.version;
  o["created_seq"] = row.created_seq;
  o["status_changed_at"] = row.status_changed_at;
  o["revoked_at"] = row.revoked_at ? json::value(*row.revoked_at) : json::value(nullptr);
  return json::serialize(o);
}

Result<TokenRow> DecodeTokenRow(std::string_view bytes) {
  boost::system::error_code ec;
  json::value v = json::parse(bytes, ec);
  if (ec || !v.is_object()) return Corrupt("not a JSON object");
  const json::object& o = v.get_object();
  try {
    if (o.at("v").to_number<std::uint32_t>() != kTokenDetails.version) {
      return Corrupt("schema version differs from this release's");
    }
    TokenRow row;
    core::TokenState& s = row.state;
    s.exists = true;
    auto id = [](const json::value& x) -> std::optional<Id> {
      if (x.is_null()) return std::nullopt;
      return Id::Parse(x.as_string());
    };
    auto must_id = [&](std::string_view key) {
      auto parsed = id(o.at(key));
      if (!parsed) throw std::invalid_argument(std::string(key));
      return *parsed;
    };
    s.id = must_id("id");
    s.account_id = must_id("account_id");
    s.environment_id = id(o.at("environment_id"));
    auto scope = events::ParseScope(o.at("token_scope").as_string());
    auto status = core::ParseStatus(o.at("status").as_string());
    if (!scope || !status) return Corrupt("unknown scope or status");
    s.scope = *scope;
    s.status = *status;
    s.created_by_admin_user_id = id(o.at("created_by_admin_user_id"));
    s.expires_at = o.at("expires_at").to_number<Micros>();
    s.inserted_at = o.at("inserted_at").to_number<Micros>();
    s.updated_at = o.at("updated_at").to_number<Micros>();
    if (!o.at("last_used_at").is_null()) s.last_used_at = o.at("last_used_at").to_number<Micros>();
    s.version = o.at("version").to_number<std::uint64_t>();
    row.created_seq = o.at("created_seq").to_number<std::uint64_t>();
    row.status_changed_at = o.at("status_changed_at").to_number<Micros>();
    if (!o.at("revoked_at").is_null()) row.revoked_at = o.at("revoked_at").to_number<Micros>();
    return row;
  } catch (const std::exception& e) {
    // Boost.JSON's accessors throw on a wrong type; a row is ours, so this is corruption.
    return Corrupt(std::string("bad field: ") + e.what());
  }
}

}  // namespace tokenledger::projections
