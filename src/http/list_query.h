// The query-string and path-parameter grammar of the API: which keys a route accepts, page
// parameters, ids and integers, and a list request's sorting and filters (SPEC.md, "List").
//
// Every function is pure and fails with an Error ready to answer (bad_request for the shape
// of the query, invalid_value with the offending field for a value). Checks run in a fixed
// order and the first failure answers, so the same request always gets the same error.
//
// Thread-safety: pure functions of their arguments.
#pragma once

#include <cstdint>
#include <initializer_list>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "src/http/reach.h"
#include "src/store/ledger_store.h"
#include "tokenledger/error.h"
#include "tokenledger/id.h"

namespace tokenledger::http {

// A parsed query string: percent-decoded (key, value) pairs in the order received.
using Query = std::vector<std::pair<std::string, std::string>>;

// Parses `raw` (the part after '?', possibly empty). Fails with bad_request if it is malformed,
// or has a key outside `allowed` or a key more than once.
Result<Query> ParseAllowedQuery(std::string_view raw,
                                std::initializer_list<std::string_view> allowed);

// The value of `key` in `q`, or null if absent. The pointer lives as long as `q`.
const std::string* Get(const Query& q, std::string_view key);

// An id named by a query or path parameter; fails with invalid_value on `field` ("<field> is
// not a valid id").
Result<Id> ParseIdParam(std::string_view text, std::string_view field);

// A non-negative decimal integer of at most 18 digits (no sign, no spaces); fails with
// invalid_value on `field`.
Result<std::uint64_t> ParseUint(const std::string& text, std::string_view field);

struct PageLimits {
  std::uint32_t default_size = 25;  // when pagination[page_size] is absent
  std::uint32_t max_size = 100;     // the largest pagination[page_size] allowed
};

struct PageParams {
  std::uint64_t offset = 0;
  std::uint32_t size = 25;
};

// pagination[offset] (default 0) and pagination[page_size] (default limits.default_size, from
// 1 to limits.max_size). REQUIRES: 1 <= limits.default_size <= limits.max_size.
Result<PageParams> ParsePage(const Query& q, const PageLimits& limits);

// A list request, parsed and narrowed to the caller's reach.
struct ListRequest {
  store::ListQuery query;             // account (and, for environment tokens, environment) set
  std::string field = "inserted_at";  // the sorting echoed in the answer, as asked
  std::string direction = "desc";     // "asc" or "desc"
};

// Parses the query string of a list request for `caller`: its keys (account_id,
// pagination[offset|page_size|snapshot], sorting, sorting[field|direction], status,
// token_scope, environment_id, idempotency_key), the page,
// the account (only the caller's own: see CheckListAccount), the snapshot, sorting as either
// sorting=[-]field or sorting[field]/sorting[direction] (not both), and the status, scope and
// environment filters; then narrows the query to the caller's reach (NarrowListToReach).
Result<ListRequest> ParseListRequest(std::string_view raw, const Caller& caller,
                                     const PageLimits& limits);

}  // namespace tokenledger::http
