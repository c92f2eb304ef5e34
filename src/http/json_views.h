// How tokens, pages and events look on the wire (SPEC.md, "Resource: api_token").
#pragma once

#include <boost/json/object.hpp>
#include <cstdint>
#include <optional>

#include "projections/token_details.h"
#include "src/http/http_types.h"

namespace tokenledger::http {

// ApiToken_Details: every key always present, null where empty; plus status_changed_at and
// revoked_at from the token-details projection (v2).
boost::json::object TokenDetailsJson(const projections::TokenRow& row);
// ApiToken_Summary: the same without available_actions.
boost::json::object TokenSummaryJson(const core::TokenState& s);

// {item_count, item_start, item_end, page_count, page_index, page_offset, page_size,
//  next_page_offset, previous_page_offset} for `rows` items shown at `offset`.
boost::json::object PaginationJson(std::uint64_t item_count, std::uint64_t offset,
                                   std::uint64_t page_size, std::uint64_t rows);

// A 200 answer whose body is `body`, serialized.
HttpResponse SuccessResponse(const boost::json::object& body);

}  // namespace tokenledger::http
