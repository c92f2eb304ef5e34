// `tokenledger mint`: a token created offline, its JWT printed once.

#include <cstdio>
#include <optional>

#include "src/app/signing_keys.h"
#include "src/auth/signing_key.h"
#include "src/core/decider.h"
#include "tools/tokenledger/cli.h"
#include "tools/tokenledger/commands.h"

namespace tokenledger::cli {
int Mint(const Flags& flags) {
  if (!flags.Has("account")) {
    std::fprintf(stderr, "tokenledger mint: --account is required\n");
    return kUsage;
  }
  core::CreateToken c;
  auto account = IdFlag(flags, "account");
  if (!account) return kUsage;
  c.account_id = *account;
  auto scope = events::ParseScope(flags.Get("scope"));
  if (!scope) {
    std::fprintf(stderr,
                 "tokenledger mint: --scope must be account, environment, agent_deployment or "
                 "introspection\n");
    return kUsage;
  }
  c.scope = *scope;
  if (flags.Has("environment") && !(c.environment_id = IdFlag(flags, "environment"))) return kUsage;
  if (flags.Has("agent") && !(c.agent_id = IdFlag(flags, "agent"))) return kUsage;
  if (flags.Has("agent-deployment") && !(c.agent_deployment_id = IdFlag(flags, "agent-deployment")))
    return kUsage;
  if (flags.Has("expires-at") && !(c.expires_at = TimeFlag(flags, "expires-at"))) return kUsage;
  if (flags.Has("admin-user") && !(c.created_by_admin_user_id = IdFlag(flags, "admin-user")))
    return kUsage;
  // The create rules the API applies too (core::ValidateCreate), checked before the ledger is
  // opened: a refusal is a usage error. The policy is the one the store decides with
  // (OpenExclusive opens it with default StoreOptions).
  const core::DecideContext ctx{.now = NowMicros(), .policy = StoreOptions().policy};
  if (const std::optional<core::Rejection> invalid = core::ValidateCreate(c, ctx)) {
    // The flag that sets the refused field, named after the API's message.
    const std::string flag = invalid->field == "environment_id"        ? " (--environment)"
                             : invalid->field == "agent_id"            ? " (--agent)"
                             : invalid->field == "agent_deployment_id" ? " (--agent-deployment)"
                             : invalid->field == "expires_at"          ? " (--expires-at)"
                                                                       : "";
    std::fprintf(stderr, "tokenledger mint: %s%s\n", invalid->message.c_str(), flag.c_str());
    return kUsage;
  }

  const std::string data_dir = flags.Get("data-dir");
  Opened opened = OpenExclusive(data_dir, "mint");
  if (!opened.store) return opened.exit_code;
  auto keys =
      app::OpenKeyRing(*opened.store, app::KeyFilePath(data_dir, flags.Get("signing-key-file")),
                       /*create_if_missing=*/!flags.Has("signing-key-file"));
  if (!keys) {
    std::fprintf(stderr, "tokenledger mint: %s\n", keys.error().message.c_str());
    return kFinding;
  }
  c.signing_kid = keys->ring.active_kid();
  store::CommandRequest req;
  req.command = c;
  req.request_id = "tokenledger-mint";
  req.actor.admin_user_id = c.created_by_admin_user_id;
  store::CommandResult r = opened.store->Submit(std::move(req)).get();
  if (r.outcome != store::Outcome::kApplied) {
    std::fprintf(stderr, "tokenledger mint: %s\n", r.rejection.message.c_str());
    return kFinding;
  }
  const core::TokenState& s = r.after->state;
  std::fprintf(
      stderr,
      "minted token %s for account %s (%s scope), expires %s; the token is shown only now:\n",
      s.id.ToString().c_str(), s.account_id.ToString().c_str(),
      std::string(events::ScopeName(s.scope)).c_str(), FormatRfc3339(s.expires_at).c_str());
  auto jwt = keys->ring.Sign(
      auth::MakeClaims(s.id, s.inserted_at, s.expires_at, s.account_id, s.environment_id),
      s.signing_kid);
  if (!jwt) {  // the key was just read: a bug
    std::fprintf(stderr, "tokenledger mint: %s\n", jwt.error().message.c_str());
    return kFinding;
  }
  std::printf("%s\n", jwt->c_str());
  return kOk;
}

}  // namespace tokenledger::cli
