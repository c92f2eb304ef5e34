// The subcommands of `tokenledger`: their names, help and flags. Each command's code is in its
// own file (commands.h).
#include "tools/tokenledger/commands.h"
#include "tools/tokenledger/cli.h"
#include "tools/tokenledger/cluster_publish.h"
#include "tools/tokenledger/keys.h"

namespace tokenledger::cli {
namespace {

const FlagSpec kDataDir{"data-dir", "DIR", "the ledger's data directory", "./data"};
const FlagSpec kQuiet{"quiet", "", "no progress bar (it is drawn only when stderr is a terminal)",
                      ""};
const FlagSpec kSigningKeyFile{"signing-key-file", "PATH",
                               "the signing key file (default <data-dir>/signing.key)", ""};
const FlagSpec kTempDir{"temp-dir", "DIR",
                        "where the temporary sort goes (default: $TMPDIR or /tmp); needs about "
                        "the ledger's size free",
                        ""};
}  // namespace

std::vector<Command> AllCommands() {
  return {
      {"replay",
       "print the audit history",
       "Prints the ledger's events, oldest first: JSON Lines (the default when stdout is not a\n"
       "terminal) or an aligned table. Reads beside a running server without blocking it.",
       {kDataDir,
        {"token", "ID", "only this token's events", ""},
        {"account", "ID", "only this account's tokens' events", ""},
        {"type", "TYPE", "only this event type (TokenCreated, TokenUsed, ...)", ""},
        {"since", "TIME", "only events at or after this RFC 3339 time", ""},
        {"until", "TIME", "only events at or before this RFC 3339 time", ""},
        {"from-seq", "N", "start at this sequence number", ""},
        {"to-seq", "N", "stop after this sequence number", ""},
        {"follow", "", "keep printing new events as they are committed (until SIGINT)", ""},
        {"format", "json|table", "output format (default: table on a terminal, else json)", ""},
        kQuiet},
       Replay},
      {"rebuild",
       "rebuild the projections from the ledger",
       "Rebuilds the token-details and list-index projections from the ledger alone, beside the\n"
       "current ones, then switches to them in one atomic step. Streams: the events are sorted by\n"
       "token on disk (--temp-dir), so memory does not grow with the ledger. A killed rebuild\n"
       "starts over when run again; the old projections stay in use until the switch. Needs\n"
       "exclusive access: stop the server first (or start it with --rebuild-projections).",
       {kDataDir,
        {"chunk-events", "N", "events between progress reports", "4096"},
        kTempDir,
        kQuiet},
       Rebuild},
      {"verify",
       "check the hash chain, streams, projections and idempotency records",
       "Recomputes the hash chain, checks stream versions have no gaps, compares every projection\n"
       "row and list-index entry with a fresh fold of the ledger, and checks that idempotency\n"
       "records point at their events. Prints each finding; exits 1 if there is any. Works beside\n"
       "a running server. Streams: memory does not grow with the ledger (the per-token checks\n"
       "sort the events by token on disk, in --temp-dir).",
       {kDataDir, kTempDir, kQuiet},
       Verify},
      {"mint",
       "create a token offline and print its JWT once",
       "Appends a real TokenCreated event (audited like any other) for any account, and prints\n"
       "the token's JWT once on stdout. Needs exclusive access: stop the server first.\n"
       "An introspection token is a gateway's credential: it may only call\n"
       "POST /api/v1/introspect (for tokens of any account), and only this command makes one.",
       {kDataDir,
        {"account", "ID", "the account (required; for introspection, the one that owns it)", ""},
        {"scope", "account|environment|agent_deployment|introspection", "token scope", "account"},
        {"environment", "ID", "the environment (environment and agent_deployment scope)", ""},
        {"agent", "ID", "the agent (agent_deployment scope, required there)", ""},
        {"agent-deployment", "ID", "the agent deployment (agent_deployment scope, optional)", ""},
        {"expires-at", "TIME", "expiry, RFC 3339 (default: now + 365 days)", ""},
        {"admin-user", "ID", "admin user recorded as created_by_admin_user_id and as the actor",
         ""},
        {"signing-key-file", "PATH",
         "signing key (default <data-dir>/signing.key, created if missing)", ""},
        kQuiet},
       Mint},
      {"export",
       "write every event as JSON Lines",
       "Writes every event, oldest first, one JSON object per line: {\"hash\":..,\"event\":..} "
       "with\n"
       "the stored event exactly as stored. A backup and a migration format; works beside a\n"
       "running server. Idempotency records are not exported (they expire within a day).",
       {kDataDir,
        {"output", "FILE", "output file, written atomically (default stdout)", ""},
        kQuiet},
       Export},
      {"import",
       "load an export into an empty data directory",
       "Reads an export, checks every hash, link, sequence number and stream version, writes the\n"
       "events (bulk, WAL off), rebuilds the projections (checking every stream's versions on\n"
       "the way), optionally runs a full verify (--verify), and only then makes the\n"
       "directory servable (one synced write). On a failure, SIGINT or SIGTERM the directory is\n"
       "removed; after SIGKILL or a crash it stays marked import_in_progress and the server\n"
       "refuses it (delete it and import again). The tokens in an export are JWTs signed with the\n"
       "exporting server's key: --signing-key copies that key into the new directory (0600).",
       {kDataDir,
        {"input", "FILE", "input file (default stdin)", ""},
        {"signing-key", "FILE",
         "the exported server's signing key (its <data-dir>/signing.key); required unless "
         "--new-signing-key",
         ""},
        {"new-signing-key", "",
         "import without the key: the server creates a new one and every existing token fails "
         "authentication",
         ""},
        {"verify", "",
         "also run a full verify before finishing (every check is already made on the way; this "
         "re-reads the whole ledger once more)",
         ""},
        kTempDir,
        kQuiet},
       Import},
      {"cluster-publish",
       "move an export into an empty cluster stream",
       "Publishes an export (of a single-node ledger) to a cluster's JetStream stream, one\n"
       "message per event in order, each expecting the previous one as the stream's last, so\n"
       "every node appends the events exactly as exported: same ids, times and hashes (compare\n"
       "`tokenledger stats` chain heads). The stream must be empty: publish before the nodes'\n"
       "first start, or start them with --no-first-token. Give the nodes the exported server's\n"
       "signing key file (--signing-key-file): the tokens are JWTs signed with it.",
       {{"cluster", "URLS", "NATS servers, comma-separated nats://HOST:PORT", ""},
        {"cluster-stream", "NAME", "the stream", "TOKENLEDGER"},
        {"cluster-replicas", "N", "replicas if the stream is created", "3"},
        {"input", "FILE", "input file (default stdin)", ""},
        kQuiet},
       ClusterPublish},
      {"stats",
       "events by type, tokens by status and scope, size on disk",
       "Counts events by type and tokens by status and scope, and shows the last sequence number\n"
       "and the size on disk. Works beside a running server.",
       {kDataDir, {"format", "table|json", "output format", "table"}, kQuiet},
       Stats},
      {"keys list",
       "the signing keys: which signs, which verify, which are retired",
       "Lists every key of the signing key ring by kid: its state (active: signs new tokens;\n"
       "verify: only verifies the tokens it signed; retired: verifies nothing; spare: in the key\n"
       "file but never active, left by an interrupted rotate; missing: named by the ledger but\n"
       "not in the key file), whether it is the original key (the one tokens without a kid\n"
       "verify with), since when and by whom, and how many active tokens it signed. Reads the\n"
       "ledger's record of the ring and the key file; works beside a running server.",
       {kDataDir, kSigningKeyFile},
       KeysList},
      {"keys rotate",
       "make a new signing key the active one",
       "Adds a new random key to the key file and records the rotation in the ledger (who,\n"
       "when, which kid; never the key). New tokens are signed by it from the next server\n"
       "start; every earlier key keeps verifying the tokens it signed until retired. Prints the\n"
       "new kid. Offline: needs exclusive access, stop the server first. Back up the key file\n"
       "afterwards: a ledger whose active key is lost cannot sign tokens.",
       {kDataDir,
        kSigningKeyFile,
        {"admin-user", "ID", "admin user recorded as the event's actor", ""}},
       KeysRotate},
      {"keys retire",
       "retire a signing key: its tokens stop authenticating",
       "usage: tokenledger keys retire KID [--force]\n"
       "Records the retirement in the ledger, then erases the key from the key file. Tokens\n"
       "signed by it answer 401 bad_authtoken from then on. Refused for the active key (rotate\n"
       "first), and, unless --force, while active tokens signed by it remain (it says how\n"
       "many). Offline: needs exclusive access, stop the server first.",
       {kDataDir,
        kSigningKeyFile,
        {"force", "", "retire even though active tokens were signed by the key", ""},
        {"admin-user", "ID", "admin user recorded as the event's actor", ""}},
       KeysRetire,
       "KID"},
  };
}

}  // namespace tokenledger::cli
