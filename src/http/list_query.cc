#include "src/http/list_query.h"

#include <algorithm>
#include <cassert>

#include "src/http/router.h"

namespace tokenledger::http {
namespace {

Error Err(ErrorCode code, std::string message, std::string field = {}) {
  return Error{code, std::move(message), std::move(field)};
}

}  // namespace

Result<Query> ParseAllowedQuery(std::string_view raw,
                                std::initializer_list<std::string_view> allowed) {
  Query q;
  if (!ParseQuery(raw, q)) return Err(ErrorCode::kBadRequest, "malformed query string");
  for (std::size_t i = 0; i < q.size(); ++i) {
    if (std::find(allowed.begin(), allowed.end(), q[i].first) == allowed.end()) {
      return Err(ErrorCode::kBadRequest, "unknown query parameter '" + q[i].first + "'");
    }
    for (std::size_t j = 0; j < i; ++j) {
      if (q[j].first == q[i].first)
        return Err(ErrorCode::kBadRequest, "query parameter '" + q[i].first + "' is repeated");
    }
  }
  return q;
}

const std::string* Get(const Query& q, std::string_view key) {
  for (const auto& [k, v] : q)
    if (k == key) return &v;
  return nullptr;
}

Result<Id> ParseIdParam(std::string_view text, std::string_view field) {
  auto id = Id::Parse(text);
  if (!id)
    return Err(ErrorCode::kInvalidValue, std::string(field) + " is not a valid id",
               std::string(field));
  return *id;
}

Result<std::uint64_t> ParseUint(const std::string& text, std::string_view field) {
  if (text.empty() || text.size() > 18 ||
      text.find_first_not_of("0123456789") != std::string::npos) {
    return Err(ErrorCode::kInvalidValue, std::string(field) + " must be a non-negative integer",
               std::string(field));
  }
  return std::stoull(text);
}

Result<PageParams> ParsePage(const Query& q, const PageLimits& limits) {
  assert(limits.default_size >= 1 && limits.default_size <= limits.max_size);
  PageParams p{0, limits.default_size};
  if (const auto* v = Get(q, "pagination[offset]")) {
    auto n = ParseUint(*v, "pagination[offset]");
    if (!n) return n.error();
    p.offset = *n;
  }
  if (const auto* v = Get(q, "pagination[page_size]")) {
    auto n = ParseUint(*v, "pagination[page_size]");
    if (!n || *n < 1 || *n > limits.max_size) {
      return Err(
          ErrorCode::kInvalidValue,
          "pagination[page_size] must be an integer from 1 to " + std::to_string(limits.max_size),
          "pagination[page_size]");
    }
    p.size = static_cast<std::uint32_t>(*n);
  }
  return p;
}

Result<ListRequest> ParseListRequest(std::string_view raw, const Caller& caller,
                                     const PageLimits& limits) {
  auto q = ParseAllowedQuery(
      raw, {"account_id", "pagination[offset]", "pagination[page_size]", "pagination[snapshot]",
            "sorting[field]", "sorting[direction]", "sorting", "status", "token_scope",
            "environment_id", "idempotency_key"});
  if (!q) return q.error();
  auto page = ParsePage(*q, limits);
  if (!page) return page.error();
  ListRequest r;
  store::ListQuery& lq = r.query;
  lq.offset = page->offset;
  lq.page_size = page->size;
  if (const auto* v = Get(*q, "account_id")) {
    auto id = ParseIdParam(*v, "account_id");
    if (!id) return id.error();
    if (Status s = CheckListAccount(caller, *id); !s) return s.error();
  }
  if (const auto* v = Get(*q, "pagination[snapshot]")) {
    auto n = ParseUint(*v, "pagination[snapshot]");
    if (!n) return n.error();
    lq.snapshot_seq = *n;
  }
  const auto* short_form = Get(*q, "sorting");
  if (short_form && (Get(*q, "sorting[field]") || Get(*q, "sorting[direction]"))) {
    return Err(ErrorCode::kBadRequest,
               "use either sorting=[-]field or sorting[field]/sorting[direction]");
  }
  if (short_form) {
    r.direction = !short_form->empty() && short_form->front() == '-' ? "desc" : "asc";
    r.field = r.direction == "desc" ? short_form->substr(1) : *short_form;
  }
  if (const auto* v = Get(*q, "sorting[field]")) r.field = *v;
  if (const auto* v = Get(*q, "sorting[direction]")) r.direction = *v;
  const auto sort = projections::ParseSortField(r.field);
  if (!sort) {
    return Err(ErrorCode::kInvalidValue,
               "sorting field must be one of inserted_at, id, status, expires_at, "
               "last_used_at, updated_at",
               "sorting[field]");
  }
  if (r.direction != "asc" && r.direction != "desc") {
    return Err(ErrorCode::kInvalidValue, "sorting direction must be asc or desc",
               "sorting[direction]");
  }
  lq.sort = *sort;
  lq.descending = r.direction == "desc";
  if (const auto* v = Get(*q, "status")) {
    lq.status = core::ParseStatus(*v);
    if (!lq.status)
      return Err(ErrorCode::kInvalidValue, "status must be active, suspended or revoked", "status");
  }
  if (const auto* v = Get(*q, "token_scope")) {
    lq.scope = events::ParseScope(*v);
    if (!lq.scope)
      return Err(ErrorCode::kInvalidValue,
                 "token_scope must be account, environment, agent_deployment or introspection",
                 "token_scope");
  }
  if (const auto* v = Get(*q, "environment_id")) {
    auto id = ParseIdParam(*v, "environment_id");
    if (!id) return id.error();
    lq.environment_id = *id;
  }
  if (Status s = NarrowListToReach(caller, lq); !s) return s.error();
  return r;
}

}  // namespace tokenledger::http
