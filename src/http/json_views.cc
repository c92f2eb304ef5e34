#include "src/http/json_views.h"

#include <boost/json/serialize.hpp>

namespace tokenledger::http {
namespace json = boost::json;
namespace {

json::value OptId(const std::optional<Id>& id) {
  return id ? json::value(id->ToString()) : json::value(nullptr);
}

}  // namespace

json::object TokenSummaryJson(const core::TokenState& s) {
  json::object o;
  o["id"] = s.id.ToString();
  o["type"] = "api_token";
  o["account_id"] = s.account_id.ToString();
  o["environment_id"] = OptId(s.environment_id);
  o["token_scope"] = events::ScopeName(s.scope);
  o["agent_id"] = OptId(s.agent_id);
  o["agent_deployment_id"] = OptId(s.agent_deployment_id);
  o["status"] = core::StatusName(s.status);
  o["created_by_admin_user_id"] = OptId(s.created_by_admin_user_id);
  o["expires_at"] = FormatRfc3339(s.expires_at);
  o["inserted_at"] = FormatRfc3339(s.inserted_at);
  o["updated_at"] = FormatRfc3339(s.updated_at);
  o["last_used_at"] =
      s.last_used_at ? json::value(FormatRfc3339(*s.last_used_at)) : json::value(nullptr);
  return o;
}

json::object TokenDetailsJson(const projections::TokenRow& row) {
  const core::TokenState& s = row.state;
  json::object o = TokenSummaryJson(s);
  const core::AvailableActions a = core::ActionsFor(s.status);
  o["status_changed_at"] = FormatRfc3339(row.status_changed_at);
  o["revoked_at"] =
      row.revoked_at ? json::value(FormatRfc3339(*row.revoked_at)) : json::value(nullptr);
  o["available_actions"] = json::object{
      {"activate", a.activate}, {"delete", a.del}, {"revoke", a.revoke}, {"suspend", a.suspend}};
  return o;
}

json::object PaginationJson(std::uint64_t count, std::uint64_t offset, std::uint64_t page_size,
                            std::uint64_t rows) {
  json::object p;
  p["item_count"] = count;
  p["item_start"] = rows == 0 ? 0 : offset + 1;
  p["item_end"] = rows == 0 ? 0 : offset + rows;
  p["page_count"] = (count + page_size - 1) / page_size;
  p["page_index"] = offset / page_size + 1;
  p["page_offset"] = offset;
  p["page_size"] = page_size;
  p["next_page_offset"] =
      offset + page_size < count ? json::value(offset + page_size) : json::value(nullptr);
  p["previous_page_offset"] =
      offset > 0 ? json::value(offset > page_size ? offset - page_size : 0) : json::value(nullptr);
  return p;
}

HttpResponse SuccessResponse(const json::object& body) {
  HttpResponse r;
  r.body = json::serialize(body);
  return r;
}

}  // namespace tokenledger::http
