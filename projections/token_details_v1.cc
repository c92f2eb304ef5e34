#include "projections/token_details_v1.h"

#include <boost/json.hpp>

namespace tokenledger::projections::v1 {
namespace json = boost::json;

std::string EncodeTokenRow(const TokenRow& row) {
  const core::TokenState& s = row.state;
  auto opt_id = [](const std::optional<Id>& id) {
    return id ? json::value(id->ToString()) : json::value(nullptr);
  };
  json::object o;
  o["v"] = kVersion;
  o["id"] = s.id.ToString();
  o["account_id"] = s.account_id.ToString();
  o["environment_id"] = opt_id(s.environment_id);
  o["token_scope"] = events::ScopeName(s.scope);
  o["status"] = core::StatusName(s.status);
  o["created_by_admin_user_id"] = opt_id(s.created_by_admin_user_id);
  o["expires_at"] = s.expires_at;
  o["inserted_at"] = s.inserted_at;
  o["updated_at"] = s.updated_at;
  o["last_used_at"] = s.last_used_at ? json::value(*s.last_used_at) : json::value(nullptr);
  o["version"] = s.version;
  o["created_seq"] = row.created_seq;
  return json::serialize(o);
}

}  // namespace tokenledger::projections::v1
