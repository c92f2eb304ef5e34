// The bodies of write requests (SPEC.md, "Create" and the lifecycle actions): shape first, no
// state. Unknown fields are refused (bad_request) so a misspelt one is never silently ignored.
//
// What is checked here is only what the request says; whether the caller may do it (scope,
// reach) and the create's own rules (core::ValidateCreate) are the handler's next steps.
//
// Thread-safety: pure functions of their arguments.
#pragma once

#include <optional>
#include <string>

#include "src/core/commands.h"
#include "src/http/http_types.h"
#include "tokenledger/error.h"
#include "tokenledger/id.h"

namespace tokenledger::http {

struct CreateRequest {
  // account_id, environment_id, scope and expires_at as asked; created_by_admin_user_id unset.
  core::CreateToken command;
  std::optional<std::string> key;  // the idempotency key (ResolveKey)
};

// Parses the body of a create, {"details": {...}, "idempotency_key": ...}, and resolves its
// key with the Idempotency-Key header. An absent or null details.account_id is
// `caller_account`. Fails, in this order, with: bad_request if the body is not a JSON object
// or has a field other than details and idempotency_key; the key's error (BodyKey,
// ResolveKey); required_value or invalid_value on details; bad_request for a field of details
// other than token_scope, account_id, environment_id and expires_at; required_value or
// invalid_value on token_scope; invalid_value on account_id, environment_id or expires_at
// (an RFC 3339 time).
Result<CreateRequest> ParseCreateRequest(const HttpRequest& request, const Id& caller_account);

// The idempotency key of a lifecycle action (suspend, activate, revoke, delete), whose body is
// empty (or blank), null, {} or {"idempotency_key": ...}: the key from the body or the
// Idempotency-Key header, or nullopt. Fails with bad_request for any other body, or the key's
// error (BodyKey, ResolveKey).
Result<std::optional<std::string>> ParseActionRequest(const HttpRequest& request);

}  // namespace tokenledger::http
