#include "src/http/json_views.h"

#include <boost/json/serialize.hpp>

namespace tokenledger::http {
namespace json = boost::json;
namespace {

void Key(std::string& out, std::string_view key, bool first = false) {
  out += first ? "{\"" : ",\"";
  out += key;
  out += "\":";
}
void Text(std::string& out, std::string_view v) {
  out += '"';
  out += v;
  out += '"';
}
void IdText(std::string& out, const Id& id) {
  out += '"';
  id.AppendText(out);
  out += '"';
}
void Time(std::string& out, Micros t) {
  char buf[kRfc3339Length];
  FormatRfc3339To(t, buf);
  out += '"';
  out.append(buf, sizeof buf);
  out += '"';
}
// `write` of the value, or null.
template <typename T>
void OrNull(std::string& out, const std::optional<T>& v, void (*write)(std::string&, const T&)) {
  if (v) {
    write(out, *v);
  } else {
    out += "null";
  }
}
void OptTime(std::string& out, const std::optional<Micros>& t) {
  OrNull<Micros>(out, t, [](std::string& o, const Micros& v) { Time(o, v); });
}

// The summary's keys, without the closing brace.
void AppendSummaryFields(const core::TokenState& s, std::string& out) {
  Key(out, "id", true);
  IdText(out, s.id);
  Key(out, "type");
  Text(out, "api_token");
  Key(out, "account_id");
  IdText(out, s.account_id);
  Key(out, "environment_id");
  AppendIdOrNull(out, s.environment_id);
  Key(out, "token_scope");
  Text(out, events::ScopeName(s.scope));
  Key(out, "agent_id");
  AppendIdOrNull(out, s.agent_id);
  Key(out, "agent_deployment_id");
  AppendIdOrNull(out, s.agent_deployment_id);
  Key(out, "status");
  Text(out, core::StatusName(s.status));
  Key(out, "created_by_admin_user_id");
  AppendIdOrNull(out, s.created_by_admin_user_id);
  Key(out, "expires_at");
  Time(out, s.expires_at);
  Key(out, "inserted_at");
  Time(out, s.inserted_at);
  Key(out, "updated_at");
  Time(out, s.updated_at);
  Key(out, "last_used_at");
  OptTime(out, s.last_used_at);
}

}  // namespace

void AppendIdOrNull(std::string& out, const std::optional<Id>& id) { OrNull(out, id, IdText); }

void AppendTokenSummaryJson(const core::TokenState& s, std::string& out) {
  AppendSummaryFields(s, out);
  out += '}';
}

void AppendTokenDetailsJson(const projections::TokenRow& row, std::string& out) {
  const core::TokenState& s = row.state;
  AppendSummaryFields(s, out);
  Key(out, "status_changed_at");
  Time(out, row.status_changed_at);
  Key(out, "revoked_at");
  OptTime(out, row.revoked_at);
  const core::AvailableActions a = core::ActionsFor(s.status);
  auto flag = [](bool b) { return b ? "true" : "false"; };
  Key(out, "available_actions");
  out += "{\"activate\":";
  out += flag(a.activate);
  out += ",\"delete\":";
  out += flag(a.del);
  out += ",\"revoke\":";
  out += flag(a.revoke);
  out += ",\"suspend\":";
  out += flag(a.suspend);
  out += "}}";
}

HttpResponse TokenDetailsResponse(const projections::TokenRow& row,
                                  const std::optional<std::string>& jwt) {
  HttpResponse r;
  r.body.reserve(640);
  r.body = R"({"status":"success","details":)";
  AppendTokenDetailsJson(row, r.body);
  if (jwt) {
    r.body += R"(,"token":")";
    r.body += *jwt;
    r.body += '"';
  }
  r.body += '}';
  return r;
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
