// Shared fixture for store tests: a temporary data directory, a manual clock and helpers that
// submit commands and wait for their results.
#pragma once

#include <gtest/gtest.h>
#include <rocksdb/db.h>

#include <functional>
#include <map>

#include <atomic>
#include <memory>
#include <string>

#include "src/store/ledger_store.h"
#include "tests/store/outcome_text.h"

namespace tokenledger::store::testing {

// A fresh directory under the system temp dir, removed with everything in it.
class TempDir {
 public:
  TempDir();
  ~TempDir();
  const std::string& path() const { return path_; }

 private:
  std::string path_;
};

constexpr Micros kStart = 1'704'067'200'000'000;  // 2024-01-01T00:00:00Z

class StoreTest : public ::testing::Test {
 protected:
  StoreTest();
  void Open(OpenMode mode = OpenMode::kServe);
  void Close() { store_.reset(); }
  void Reopen() {
    Close();
    Open();
  }
  StoreHooks Hooks();

  CommandResult Run(core::Command command, std::optional<IdempotencyInfo> idem = std::nullopt);
  // Creates an account-scoped token for `account` and returns its id.
  Id Create(const Id& account, std::optional<Id> environment = std::nullopt);
  projections::TokenRow Row(const Id& token);

  static IdempotencyInfo Idem(const Id& account, std::string key, std::string_view request);

  TempDir dir_;
  StoreOptions options_;
  std::atomic<Micros> now_{kStart};
  std::unique_ptr<LedgerStore> store_;
  IdGenerator ids_;
};

// Opens a ledger's RocksDB directly, every column family by name (to damage it in tests as a
// broken disk or an attacker would, or to shape it as an older release left it).
using RawFamilies = std::map<std::string, rocksdb::ColumnFamilyHandle*>;
void WithRawDb(const std::string& path, const std::function<void(rocksdb::DB*, RawFamilies&)>& fn);
// The first family whose name starts with `prefix`.
rocksdb::ColumnFamilyHandle* Family(RawFamilies& families, std::string_view prefix);

// Creates `n` account-scoped tokens of `account` in the ledger at `data_dir` through the
// committer (sync off, in large batches): a large account in seconds, with the same rows,
// index and counters as the API would write. REQUIRES: the ledger is not open elsewhere.
void AppendCreates(const std::string& data_dir, const Id& account, int n);

}  // namespace tokenledger::store::testing
