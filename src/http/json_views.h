// How tokens, pages and events look on the wire (SPEC.md, "Resource: api_token").
#pragma once

#include <boost/json/object.hpp>
#include <cstdint>
#include <optional>
#include <string>

#include "projections/token_details.h"
#include "src/http/http_types.h"

namespace tokenledger::http {

// ApiToken_Details, appended to `out` as JSON text: every key always present, null where
// empty; plus status_changed_at and revoked_at from the token-details projection (v2).
// Written directly, not through a DOM: a show's answer was most of its CPU (micro_bench
// BM_ShowRender). The bytes are those json::serialize gives the object with these keys in this
// order (tested against it): every string is an id, a time or a name, none needing escapes.
void AppendTokenDetailsJson(const projections::TokenRow& row, std::string& out);
// An id as a JSON string, or null: how every id of an answer is written.
void AppendIdOrNull(std::string& out, const std::optional<Id>& id);
// ApiToken_Summary: the same without status_changed_at, revoked_at and available_actions.
void AppendTokenSummaryJson(const core::TokenState& s, std::string& out);

// `{"status":"success","details":<details>}`, with `,"token":"<jwt>"` after the details when
// `jwt` is given (a create's answer). REQUIRES: `jwt` needs no escaping (base64url and dots).
HttpResponse TokenDetailsResponse(const projections::TokenRow& row,
                                  const std::optional<std::string>& jwt = std::nullopt);

// {item_count, item_start, item_end, page_count, page_index, page_offset, page_size,
//  next_page_offset, previous_page_offset} for `rows` items shown at `offset`.
boost::json::object PaginationJson(std::uint64_t item_count, std::uint64_t offset,
                                   std::uint64_t page_size, std::uint64_t rows);

// A 200 answer whose body is `body`, serialized.
HttpResponse SuccessResponse(const boost::json::object& body);

}  // namespace tokenledger::http
