// Micro-benchmarks of the work under every request: decide, event codec and hash, and the
// pieces of an authenticated show (parse, JWT verify, look-up, render, the request log line),
// a list page as an account grows (the one read whose cost depends on the account size), and
// a memtable insert into a full memtable (the largest cost of a write).
// Run: build/bench/micro_bench  (see docs/PERFORMANCE.md)
#include <benchmark/benchmark.h>

#include <rocksdb/db.h>

#include <filesystem>
#include <random>

#include "events/event_codec.h"
#include "events/hash_chain.h"
#include "src/auth/jwt.h"
#include "src/auth/key_ring.h"
#include "src/auth/verified_tokens.h"
#include "src/core/decider.h"
#include "src/http/json_views.h"
#include "src/http/request_parser.h"
#include "src/store/ledger_store.h"
#include "src/store/skiplist_memtable.h"
#include "tokenledger/log.h"

namespace tokenledger {
namespace {

const Id kToken = *Id::Parse("013xrzp12g3nqk8n7f8f9jbg8d18q7tm");
const Id kAccount = *Id::Parse("013xrzp12g3nqk8ngskn1wtxgka5b0nf");

void BM_Decide(benchmark::State& state) {
  core::TokenState s;
  s.exists = true;
  s.id = kToken;
  s.account_id = kAccount;
  const core::DecideContext ctx{.now = 1, .new_token_id = {}, .policy = {}};
  for (auto _ : state) benchmark::DoNotOptimize(core::Decide(core::SuspendToken{kToken}, s, ctx));
}
BENCHMARK(BM_Decide);

events::EventEnvelope Created() {
  events::EventEnvelope e;
  e.seq = 12345;
  e.stream = kToken;
  e.stream_version = 1;
  e.schema_version = events::CurrentSchemaVersion("TokenCreated");
  e.at = 1'704'067'200'000'000;
  e.actor.token_id = kToken;
  e.request_id = "06h24tgvd0cp275vsj0g6xzeq643gwqf";
  e.data = events::TokenCreated{kAccount, std::nullopt, events::TokenScope::kAccount, e.at + 1,
                                std::nullopt};
  return e;
}

void BM_EncodeAndHashEvent(benchmark::State& state) {
  events::EventEnvelope e = Created();
  for (auto _ : state) benchmark::DoNotOptimize(events::EncodeStoredEvent(e));
}
BENCHMARK(BM_EncodeAndHashEvent);

void BM_DecodeEvent(benchmark::State& state) {
  events::EventEnvelope e = Created();
  const std::string stored = events::EncodeStoredEvent(e);
  for (auto _ : state) benchmark::DoNotOptimize(events::DecodeStoredEvent(stored));
}
BENCHMARK(BM_DecodeEvent);

// The two paths under DecodeStoredEvent (the fast one reuses the envelope, as the tools do).
void BM_DecodeEventCanonical(benchmark::State& state) {
  events::EventEnvelope e = Created();
  const std::string body = events::EncodeEventBody(e);
  events::EventEnvelope out;
  for (auto _ : state) benchmark::DoNotOptimize(events::DecodeCanonicalEventBody(body, &out));
}
BENCHMARK(BM_DecodeEventCanonical);

void BM_DecodeEventGeneric(benchmark::State& state) {
  events::EventEnvelope e = Created();
  const std::string body = events::EncodeEventBody(e);
  for (auto _ : state) benchmark::DoNotOptimize(events::DecodeEventBodyGeneric(body));
}
BENCHMARK(BM_DecodeEventGeneric);

void BM_Sha256StoredBody(benchmark::State& state) {
  events::EventEnvelope e = Created();
  const std::string stored = events::EncodeStoredEvent(e);
  for (auto _ : state) benchmark::DoNotOptimize(events::StoredHashMatches(stored));
}
BENCHMARK(BM_Sha256StoredBody);

void BM_JwtVerify(benchmark::State& state) {
  auth::SigningKey key{};
  key.fill(3);
  const auth::JwtSigner signer(key);
  const std::string token =
      signer.Sign(auth::MakeClaims(kToken, 1, 2'000'000'000'000'000, kAccount, std::nullopt));
  for (auto _ : state) benchmark::DoNotOptimize(signer.Verify(token));
}
BENCHMARK(BM_JwtVerify);

// What an authenticated request pays for its token when the same token came before: a hash,
// a constant-time comparison and a copy of the claims (src/auth/verified_tokens.h).
void BM_JwtVerifyKept(benchmark::State& state) {
  auth::SigningKey key{};
  key.fill(3);
  const auth::KeyRing ring = auth::KeyRing::Single(key);
  auth::VerifiedTokens kept(ring, 1024);
  const std::string token =
      *ring.Sign(auth::MakeClaims(kToken, 1, 2'000'000'000'000'000, kAccount, std::nullopt),
                 ring.active_kid());
  for (auto _ : state) benchmark::DoNotOptimize(kept.Verify(token));
}
BENCHMARK(BM_JwtVerifyKept);

// A ledger on disk (real RocksDB, in a temporary directory removed at the end) holding `n`
// account-scoped tokens of kAccount, for the benchmarks that read.
class BenchLedger {
 public:
  explicit BenchLedger(std::int64_t n)
      : dir_((std::filesystem::temp_directory_path() /
              ("tokenledger-bench-" + std::to_string(std::random_device{}())))
                 .string()) {
    StoreOptions options;
    options.data_dir = dir_;
    options.sync = false;  // set-up only; the measured part is a read
    store_ = std::move(store::LedgerStore::Open(options).store);
    std::vector<std::future<store::CommandResult>> pending;
    for (std::int64_t i = 0; i < n; ++i)
      pending.push_back(store_->Submit(store::CommandRequest{core::CreateToken{kAccount}}));
    for (auto& f : pending) ids_.push_back(f.get().after->state.id);
  }
  ~BenchLedger() {
    store_.reset();
    std::filesystem::remove_all(dir_);
  }
  store::LedgerStore& store() { return *store_; }
  const std::vector<Id>& ids() const { return ids_; }

 private:
  std::string dir_;
  std::unique_ptr<store::LedgerStore> store_;
  std::vector<Id> ids_;
};

// One page of 25, newest first, from an account of state.range(0) tokens.
void BM_ListPage(benchmark::State& state) {
  BenchLedger ledger(state.range(0));
  store::ListQuery q;
  q.account_id = kAccount;
  for (auto _ : state) benchmark::DoNotOptimize(ledger.store().ListTokens(q));
}
BENCHMARK(BM_ListPage)->Arg(100)->Arg(1000)->Arg(10000)->Arg(100000)->Unit(benchmark::kMicrosecond);

// The pieces of an authenticated show (issue 10): parse, look-up and render here; the JWT
// verify is BM_JwtVerify, the log line BM_LogRequestLine.
//
// A show request as a client sends it, parsed as the server does (its RequestParser, one per
// request, into a reused HttpRequest).
void BM_ShowParse(benchmark::State& state) {
  const std::string bytes =
      "GET /api/v1/api_token/013xrzp12g3nqk8n7f8f9jbg8d18q7tm HTTP/1.1\r\nHost: 127.0.0.1:8080\r\n"
      "Authorization: Bearer "
      "eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9."
      "eyJqdGkiOiIwMTN4cnpwMTJnM25xazhuN2Y4ZjlqYmc4ZDE4cTd0bSJ9."
      "c2lnbmF0dXJlc2lnbmF0dXJlc2lnbmF0dXJlc2lnbmF0dXJl\r\nUser-Agent: sdk/1.0\r\n"
      "Accept: application/json\r\n\r\n";
  http::HttpRequest request;
  for (auto _ : state) {
    http::RequestParser::Reset(request);
    http::RequestParser parser(request, 8192, 65536);
    boost::system::error_code ec;
    parser.Put(boost::asio::buffer(bytes), ec);
    benchmark::DoNotOptimize(parser.Done());
    benchmark::DoNotOptimize(request.authorization.data());
  }
}
BENCHMARK(BM_ShowParse);

// One point read of a token's row, round-robin over 4,096 tokens as scripts/bench-http's show
// (rows in the block cache).
void BM_ShowLookUp(benchmark::State& state) {
  BenchLedger ledger(4096);
  const std::vector<Id>& ids = ledger.ids();
  std::size_t i = 0;
  for (auto _ : state) benchmark::DoNotOptimize(ledger.store().GetToken(ids[i++ % ids.size()]));
}
BENCHMARK(BM_ShowLookUp);

// The row to its JSON answer, serialized.
void BM_ShowRender(benchmark::State& state) {
  projections::TokenRow row;
  row.state.exists = true;
  row.state.id = kToken;
  row.state.account_id = kAccount;
  row.state.inserted_at = 1'764'460'800'000'000;
  row.state.updated_at = row.state.inserted_at;
  row.state.expires_at = row.state.inserted_at + 365 * kMicrosPerDay;
  row.state.last_used_at = row.state.inserted_at + 5;
  row.created_seq = 42;
  for (auto _ : state) benchmark::DoNotOptimize(http::TokenDetailsResponse(row));
}
BENCHMARK(BM_ShowRender);

// One request-log line with the fields Api logs per request, as the I/O thread pays for it:
// format and hand to the background writer (the server's mode). Run with stderr sent to
// /dev/null (`2>/dev/null`); dropped lines (buffer full) are reported, as they cost less.
void BM_LogRequestLine(benchmark::State& state) {
  StartLogWriter();
  const LogStats before = GetLogStats();
  const std::string request_id = "06h24tgvd0cp275vsj0g6xzeq643gwqf";
  const std::string remote = "127.0.0.1";
  double latency_ms = 0.25;
  for (auto _ : state) {
    Log(LogLevel::kInfo, "request",
        {{"request_id", request_id},
         {"method", "GET"},
         {"route", "/api/v1/api_token/{id}"},
         {"status", 200LL},
         {"latency_ms", latency_ms},
         {"remote", remote}});
    latency_ms += 0.001;
  }
  StopLogWriter();
  state.counters["dropped"] =
      static_cast<double>(GetLogStats().lines_dropped_full - before.lines_dropped_full);
}
BENCHMARK(BM_LogRequestLine);

// One key into a memtable already holding state.range(0) entries, by a search from the top
// (no insert hint): what a status change's list-index deletes and moves cost the writer
// thread. Keys as the list index's: one account's 20 bytes, a partition, a field, a random
// 8-byte sort value and a 20-byte id. One put a WriteBatch, no write-ahead log.
void BM_MemtableInsert(benchmark::State& state) {
  const std::string dir = (std::filesystem::temp_directory_path() /
                           ("tokenledger-bench-memtable-" + std::to_string(std::random_device{}())))
                              .string();
  rocksdb::Options options;
  options.create_if_missing = true;
  options.memtable_factory = store::NewSkipListMemTableFactory();
  options.allow_concurrent_memtable_write = false;
  options.write_buffer_size = 1u << 30;  // no flush while measuring
  rocksdb::DB* raw = nullptr;
  if (!rocksdb::DB::Open(options, dir, &raw).ok()) {
    state.SkipWithError("cannot open RocksDB");
    return;
  }
  std::unique_ptr<rocksdb::DB> db(raw);
  rocksdb::WriteOptions wo;
  wo.disableWAL = true;
  std::mt19937_64 rng(42);
  const std::string prefix = std::string(kAccount.Bytes()) + "sai";
  auto next_key = [&] {
    std::string key = prefix;
    for (int i = 0; i < 4; ++i) {  // 8-byte sort value + 20-byte id, 28 random bytes
      const std::uint64_t r = rng();
      key.append(reinterpret_cast<const char*>(&r), i < 3 ? 8 : 4);
    }
    return key;
  };
  for (std::int64_t i = 0; i < state.range(0); ++i) db->Put(wo, next_key(), "12345678");
  std::vector<std::string> keys(static_cast<std::size_t>(state.max_iterations));
  for (auto& k : keys) k = next_key();
  std::size_t i = 0;
  for (auto _ : state) db->Put(wo, keys[i++], "12345678");
  db.reset();
  std::filesystem::remove_all(dir);
}
BENCHMARK(BM_MemtableInsert)->Arg(1000)->Arg(1000000)->Iterations(200000);

}  // namespace
}  // namespace tokenledger

BENCHMARK_MAIN();
