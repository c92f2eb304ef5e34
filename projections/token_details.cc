#include "projections/token_details.h"

#include <boost/json.hpp>
#include <charconv>

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

// Written by hand, not through a json::object: verify and rebuild encode a row per token, and
// the DOM's allocations and hashing were most of that. The bytes are those json::serialize
// gives an object with these keys in this order (tested against it): every string here but
// the signing kid is an id's text, a scope or a status name, none of which needs escaping.
void EncodeTokenRowInto(const TokenRow& row, std::string& out) {
  const core::TokenState& s = row.state;
  out.clear();
  auto key = [&](std::string_view k) {
    out += out.empty() ? "{\"" : ",\"";
    out += k;
    out += "\":";
  };
  auto text = [&](std::string_view v) {
    out += '"';
    out += v;
    out += '"';
  };
  auto id = [&](const Id& v) {
    out += '"';
    v.AppendText(out);
    out += '"';
  };
  auto opt_id = [&](const std::optional<Id>& v) {
    if (v) {
      id(*v);
    } else {
      out += "null";
    }
  };
  auto number = [&](auto v) {
    char buf[24];
    const auto r = std::to_chars(buf, buf + sizeof(buf), v);
    // (pointer, count), not the iterator pair: GCC 12 at -O3 reports a false -Wrestrict on
    // that overload (GCC bug 105329), which stops the Release build under -Werror.
    out.append(buf, static_cast<std::size_t>(r.ptr - buf));
  };
  auto opt_number = [&](const std::optional<Micros>& v) {
    if (v) {
      number(*v);
    } else {
      out += "null";
    }
  };
  key("v");
  number(kTokenDetails.version);
  key("id");
  id(s.id);
  key("account_id");
  id(s.account_id);
  key("environment_id");
  opt_id(s.environment_id);
  key("token_scope");
  text(events::ScopeName(s.scope));
  key("status");
  text(core::StatusName(s.status));
  key("created_by_admin_user_id");
  opt_id(s.created_by_admin_user_id);
  key("agent_id");
  opt_id(s.agent_id);
  key("agent_deployment_id");
  opt_id(s.agent_deployment_id);
  key("signing_kid");
  if (s.signing_kid) {
    out += json::serialize(json::string_view(*s.signing_kid));  // escaped as the DOM would
  } else {
    out += "null";
  }
  key("expires_at");
  number(s.expires_at);
  key("inserted_at");
  number(s.inserted_at);
  key("updated_at");
  number(s.updated_at);
  key("last_used_at");
  opt_number(s.last_used_at);
  key("version");
  number(s.version);
  key("created_seq");
  number(row.created_seq);
  key("status_changed_at");
  number(row.status_changed_at);
  key("revoked_at");
  opt_number(row.revoked_at);
  out += '}';
}

std::string EncodeTokenRow(const TokenRow& row) {
  std::string out;
  EncodeTokenRowInto(row, out);
  return out;
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
    s.agent_id = id(o.at("agent_id"));
    s.agent_deployment_id = id(o.at("agent_deployment_id"));
    if (!o.at("signing_kid").is_null())
      s.signing_kid = std::string(o.at("signing_kid").as_string());
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
