#include "tests/store/store_test_util.h"

#include <filesystem>
#include <random>

#include "events/hash_chain.h"
#include "src/store/store_impl.h"

namespace tokenledger::store::testing {

TempDir::TempDir() {
  std::random_device rd;
  path_ = (std::filesystem::temp_directory_path() /
           ("tokenledger-test-" + std::to_string(rd()) + std::to_string(rd())))
              .string();
  std::filesystem::create_directories(path_);
}

TempDir::~TempDir() {
  std::error_code ec;
  std::filesystem::remove_all(path_, ec);
}

StoreTest::StoreTest() { options_.data_dir = dir_.path() + "/data"; }

StoreHooks StoreTest::Hooks() {
  StoreHooks hooks;
  hooks.clock = [this] { return now_.load(); };
  return hooks;
}

void StoreTest::Open(OpenMode mode) {
  auto opened = LedgerStore::Open(options_, mode, Hooks());
  ASSERT_TRUE(opened.store) << opened.message;
  store_ = std::move(opened.store);
}

void WithRawDb(const std::string& path, const std::function<void(rocksdb::DB*, RawFamilies&)>& fn) {
  std::vector<std::string> names;
  ASSERT_TRUE(rocksdb::DB::ListColumnFamilies(rocksdb::DBOptions(), path, &names).ok());
  std::vector<rocksdb::ColumnFamilyDescriptor> descriptors;
  rocksdb::ColumnFamilyOptions cf;
  cf.merge_operator = NewListCountMergeOperator();  // the list counters
  for (const auto& n : names) descriptors.emplace_back(n, cf);
  std::vector<rocksdb::ColumnFamilyHandle*> handles;
  rocksdb::DB* db = nullptr;
  ASSERT_TRUE(rocksdb::DB::Open(rocksdb::Options(), path, descriptors, &handles, &db).ok());
  RawFamilies by_name;
  for (auto* h : handles) by_name[h->GetName()] = h;
  fn(db, by_name);
  for (auto& [name, h] : by_name) db->DestroyColumnFamilyHandle(h);
  delete db;
}

rocksdb::ColumnFamilyHandle* Family(RawFamilies& families, std::string_view prefix) {
  for (auto& [name, h] : families)
    if (name.rfind(prefix, 0) == 0) return h;
  return nullptr;
}

void AppendCreates(const std::string& data_dir, const Id& account, int n) {
  StoreOptions options;
  options.data_dir = data_dir;
  options.sync = false;
  auto opened = LedgerStore::Open(options);
  ASSERT_TRUE(opened.store) << opened.message;
  std::vector<std::future<CommandResult>> pending;
  for (int i = 0; i < n; ++i) {
    pending.push_back(opened.store->Submit(CommandRequest{core::CreateToken{account}}));
    if (pending.size() == 4096 || i + 1 == n) {
      for (auto& f : pending) ASSERT_EQ(f.get().outcome, Outcome::kApplied);
      pending.clear();
    }
  }
}

CommandResult StoreTest::Run(core::Command command, std::optional<IdempotencyInfo> idem) {
  CommandRequest req;
  req.command = std::move(command);
  req.request_id = "req-test";
  req.idempotency = std::move(idem);
  return store_->Submit(std::move(req)).get();
}

Id StoreTest::Create(const Id& account, std::optional<Id> environment) {
  core::CreateToken c;
  c.account_id = account;
  c.environment_id = environment;
  c.scope = environment ? events::TokenScope::kEnvironment : events::TokenScope::kAccount;
  auto r = Run(c);
  EXPECT_EQ(r.outcome, Outcome::kApplied) << r.rejection.message;
  return r.after ? r.after->state.id : Id();
}

projections::TokenRow StoreTest::Row(const Id& token) {
  auto row = store_->GetToken(token);
  EXPECT_TRUE(row) << row.error().message;
  EXPECT_TRUE(row && *row) << "token " << token.ToString() << " not found";
  return row && *row ? **row : projections::TokenRow{};
}

IdempotencyInfo StoreTest::Idem(const Id& account, std::string key, std::string_view request) {
  IdempotencyInfo info;
  info.account_id = account;
  info.key = std::move(key);
  info.fingerprint = events::Sha256(request);
  return info;
}

}  // namespace tokenledger::store::testing
