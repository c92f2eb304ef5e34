// Verify finds tampering precisely; rebuild equals the inline projections, resumes after an
// interruption, and is what a projection version mismatch asks for.
#include <rocksdb/db.h>

#include <map>
#include <set>

#include "events/event_codec.h"
#include "events/hash_chain.h"
#include "src/store/keys.h"
#include "tests/store/store_test_util.h"

namespace tokenledger::store::testing {
namespace {

// AppendVerbatim takes views of records held elsewhere (import keeps a batch in one buffer).
std::vector<std::string_view> Views(const std::vector<std::string>& records) {
  return {records.begin(), records.end()};
}

// A ledger of `n` TokenCreated events of `account`, one token each, as stored records.
std::vector<std::string> CreatedRecords(const Id& account, std::uint64_t n) {
  std::vector<std::string> records;
  events::Hash prev = events::kGenesisHash;
  for (std::uint64_t seq = 1; seq <= n; ++seq) {
    events::EventEnvelope e;
    e.seq = seq;
    e.stream = Id::FromParts(1'700'000'000'000 + seq, 7, {static_cast<std::uint8_t>(seq)});
    e.stream_version = 1;
    e.schema_version = events::CurrentSchemaVersion("TokenCreated");
    e.at = static_cast<Micros>(1'700'000'000'000'000 + seq);
    e.prev_hash = prev;
    e.data = events::TokenCreated{account, std::nullopt, events::TokenScope::kAccount,
                                  e.at + kMicrosPerDay, std::nullopt};
    records.push_back(events::EncodeStoredEvent(e));
    prev = e.hash;
  }
  return records;
}

class RebuildVerifyTest : public StoreTest {
 protected:
  void SetUp() override {
    Open();
    for (int i = 0; i < 12; ++i) {
      tokens_.push_back(Create(account_));
      now_ += kMicrosPerSecond;
    }
    for (int i = 0; i < 12; i += 3)
      ASSERT_EQ(Run(core::SuspendToken{tokens_[i]}).outcome, Outcome::kApplied);
    ASSERT_EQ(Run(core::RevokeToken{tokens_[1]}).outcome, Outcome::kApplied);
    ASSERT_EQ(Run(core::DeleteToken{tokens_[1]}).outcome, Outcome::kApplied);
    ASSERT_EQ(Run(core::RecordUse{tokens_[2], now_.load()}).outcome, Outcome::kApplied);
  }

  std::vector<std::optional<projections::TokenRow>> Rows() {
    std::vector<std::optional<projections::TokenRow>> rows;
    for (const Id& t : tokens_) {
      auto r = store_->GetToken(t);
      EXPECT_TRUE(r);
      rows.push_back(r ? *r : std::nullopt);
    }
    return rows;
  }

  std::vector<VerifyFinding> Findings() {
    auto report = store_->Verify();
    EXPECT_TRUE(report) << report.error().message;
    return report ? report->findings : std::vector<VerifyFinding>{};
  }

  const Id account_ = ids_.Generate();
  std::vector<Id> tokens_;
};

TEST_F(RebuildVerifyTest, CleanLedgerHasNoFindings) { EXPECT_TRUE(Findings().empty()); }

TEST_F(RebuildVerifyTest, OneChangedByteOfOneEventIsNamedBySequence) {
  Close();
  WithRawDb(options_.data_dir, [](rocksdb::DB* db, auto& cfs) {
    std::string value;
    ASSERT_TRUE(db->Get(rocksdb::ReadOptions(), cfs[kEventsCf], EventKey(5), &value).ok());
    const auto pos = value.find("\"request_id\":\"req-test\"");
    ASSERT_NE(pos, std::string::npos);
    value[pos + 15] = 'X';  // req-test -> rXq-test
    ASSERT_TRUE(db->Put(rocksdb::WriteOptions(), cfs[kEventsCf], EventKey(5), value).ok());
  });
  Open();
  const auto findings = Findings();
  ASSERT_FALSE(findings.empty());
  EXPECT_EQ(findings[0].kind, "chain");
  EXPECT_EQ(findings[0].seq, 5u);
  EXPECT_NE(findings[0].expected, findings[0].found);
  for (const auto& f : findings) EXPECT_EQ(f.seq, 5u) << f.message;
}

TEST_F(RebuildVerifyTest, ADeletedProjectionRowIsNamed) {
  Close();
  const Id victim = tokens_[4];
  WithRawDb(options_.data_dir, [&](rocksdb::DB* db, auto& cfs) {
    ASSERT_TRUE(
        db->Delete(rocksdb::WriteOptions(), Family(cfs, "token_details"), victim.Bytes()).ok());
  });
  Open();
  const auto findings = Findings();
  ASSERT_EQ(findings.size(), 1u);
  EXPECT_EQ(findings[0].kind, "projection");
  EXPECT_EQ(findings[0].token, victim);
  EXPECT_EQ(findings[0].found, "missing");
  // A rebuild repairs it.
  ASSERT_TRUE(store_->RebuildProjections());
  EXPECT_TRUE(Findings().empty());
}

TEST_F(RebuildVerifyTest, AStrayIndexEntryIsNamed) {
  Close();
  WithRawDb(options_.data_dir, [&](rocksdb::DB* db, auto& cfs) {
    projections::TokenRow ghost;
    ghost.state.exists = true;
    ghost.state.id = ids_.Generate();
    ghost.state.account_id = account_;
    const projections::ListIndexEntrySet entries(ghost);
    ASSERT_TRUE(db->Put(rocksdb::WriteOptions(), Family(cfs, "token_list_index"), entries[0].Key(),
                        entries[0].Value())
                    .ok());
  });
  Open();
  const auto findings = Findings();
  ASSERT_EQ(findings.size(), 1u);
  EXPECT_EQ(findings[0].kind, "index");
}

// item_count comes from counters: one that is off is named, and a rebuild restores it.
TEST_F(RebuildVerifyTest, AWrongListCounterIsNamedAndRebuilt) {
  const auto before = store_->ListTokens({.account_id = account_});
  ASSERT_TRUE(before);
  Close();
  WithRawDb(options_.data_dir, [&](rocksdb::DB* db, auto& cfs) {
    projections::TokenRow any;
    any.state.exists = true;
    any.state.account_id = account_;
    const std::string all = projections::ListCountKeys(any)[0];
    ASSERT_TRUE(db->Merge(rocksdb::WriteOptions(), Family(cfs, "token_list_index"), all,
                          projections::EncodeListCount(5))
                    .ok());
  });
  Open();
  EXPECT_EQ(store_->ListTokens({.account_id = account_})->item_count, before->item_count + 5);
  const auto findings = Findings();
  ASSERT_EQ(findings.size(), 1u);
  EXPECT_EQ(findings[0].kind, "index");
  EXPECT_NE(findings[0].message.find("list counter"), std::string::npos) << findings[0].message;
  Close();
  Open(OpenMode::kMaintenance);
  ASSERT_TRUE(store_->RebuildProjections());
  EXPECT_TRUE(Findings().empty());
  EXPECT_EQ(store_->ListTokens({.account_id = account_})->item_count, before->item_count);
}

// Rebuild writes each family as SST files of bounded size (so the table builder's memory does
// not grow with the ledger); with a tiny size every family spans many files.
TEST_F(RebuildVerifyTest, RebuildAcrossManySstFilesEqualsTheInlineProjections) {
  const auto before = Rows();
  const auto listed = store_->ListTokens({.account_id = account_});
  ASSERT_TRUE(listed);
  ASSERT_TRUE(store_->RebuildProjections({}, 4096, {}, /*sst_file_bytes=*/1024));
  EXPECT_EQ(Rows(), before);
  EXPECT_TRUE(Findings().empty());
  EXPECT_EQ(store_->ListTokens({.account_id = account_})->item_count, listed->item_count);
  Reopen();
  EXPECT_EQ(Rows(), before);
  EXPECT_TRUE(Findings().empty());
}

TEST_F(RebuildVerifyTest, RebuildEqualsTheInlineProjections) {
  const auto before = Rows();
  ASSERT_TRUE(store_->RebuildProjections({}, 5));
  EXPECT_EQ(Rows(), before);
  EXPECT_TRUE(Findings().empty());
  Reopen();
  EXPECT_EQ(Rows(), before);
}

TEST_F(RebuildVerifyTest, AnInterruptedRebuildLeavesTheOldProjectionsAndStartsOver) {
  const auto before = Rows();
  int calls = 0;
  struct Interrupted {};
  EXPECT_THROW(
      {
        auto ignored = store_->RebuildProjections(
            [&](const RebuildProgress&) {
              if (++calls == 2) throw Interrupted{};
            },
            4);
      },
      Interrupted);
  EXPECT_EQ(Rows(), before) << "the old projections are still the ones in use";
  EXPECT_TRUE(Findings().empty());
  Close();
  Open(OpenMode::kMaintenance);
  // The partial families were written with the WAL off: the next rebuild starts over.
  std::optional<RebuildProgress> first;
  ASSERT_TRUE(store_->RebuildProjections(
      [&](const RebuildProgress& p) {
        if (!first) first = p;
      },
      4));
  ASSERT_TRUE(first);
  EXPECT_EQ(first->phase, "sort");
  EXPECT_EQ(Rows(), before);
  EXPECT_TRUE(Findings().empty());
  Close();
  std::size_t projection_families = 0;
  WithRawDb(options_.data_dir, [&](rocksdb::DB*, auto& cfs) {
    for (auto& [name, h] : cfs) projection_families += name.rfind("token_", 0) == 0;
  });
  EXPECT_EQ(projection_families, 2u) << "old and partial families are dropped";
}

TEST_F(RebuildVerifyTest, AStreamEntryPointingElsewhereAndAStrayOneAreNamed) {
  Close();
  WithRawDb(options_.data_dir, [&](rocksdb::DB* db, auto& cfs) {
    ASSERT_TRUE(
        db->Put(rocksdb::WriteOptions(), cfs[kStreamsCf], StreamKey(tokens_[3], 1), EncodeU64(2))
            .ok());
    ASSERT_TRUE(
        db->Put(rocksdb::WriteOptions(), cfs[kStreamsCf], StreamKey(tokens_[3], 9), EncodeU64(99))
            .ok());
  });
  Open();
  const auto findings = Findings();
  ASSERT_EQ(findings.size(), 2u);
  EXPECT_EQ(findings[0].kind, "stream");
  EXPECT_EQ(findings[0].token, tokens_[3]);
  EXPECT_EQ(findings[0].found, "2");
  EXPECT_EQ(findings[1].kind, "stream");
  EXPECT_NE(findings[1].message.find("do not exist"), std::string::npos) << findings[1].message;
}

TEST_F(RebuildVerifyTest, AChangedListEntryAndAStrayUsageRecordAreNamed) {
  Close();
  const Id victim = tokens_[5];
  WithRawDb(options_.data_dir, [&](rocksdb::DB* db, auto& cfs) {
    auto* list = Family(cfs, "token_list_index");
    std::unique_ptr<rocksdb::Iterator> it(db->NewIterator(rocksdb::ReadOptions(), list));
    for (it->SeekToFirst(); it->Valid(); it->Next()) {
      auto v =
          projections::DecodeListIndexEntry(it->key().ToStringView(), it->value().ToStringView());
      ASSERT_TRUE(v);
      if (v->token_id != victim) continue;
      std::string value(it->value().ToStringView());
      value.back() ^= 0x01;
      ASSERT_TRUE(db->Put(rocksdb::WriteOptions(), list, it->key(), value).ok());
      break;
    }
    it.reset();
    ASSERT_TRUE(
        db->Put(rocksdb::WriteOptions(), cfs[kUsageCf], ids_.Generate().Bytes(), EncodeU64(1))
            .ok());
  });
  Open();
  const auto findings = Findings();
  ASSERT_EQ(findings.size(), 2u);
  std::map<std::string, const VerifyFinding*> by_kind;
  for (const auto& f : findings) by_kind[f.kind] = &f;
  ASSERT_TRUE(by_kind.count("usage"));
  ASSERT_TRUE(by_kind.count("index"));
  EXPECT_EQ(by_kind["index"]->token, victim);
}

// Rows are compared by a digest first; a difference is then named as before: a changed row
// (both shown as JSON), a row that does not decode, and a row of no token.
TEST_F(RebuildVerifyTest, AChangedAnUnreadableAndAStrayRowAreNamed) {
  auto changed = store_->GetToken(tokens_[4]);
  ASSERT_TRUE(changed && *changed);
  (*changed)->state.expires_at += 1;
  const Id stray = ids_.Generate();
  Close();
  WithRawDb(options_.data_dir, [&](rocksdb::DB* db, auto& cfs) {
    auto* details = Family(cfs, "token_details");
    const rocksdb::WriteOptions w;
    ASSERT_TRUE(
        db->Put(w, details, tokens_[4].Bytes(), projections::EncodeTokenRow(**changed)).ok());
    std::string unreadable = projections::EncodeTokenRow(**changed);
    unreadable.pop_back();
    ASSERT_TRUE(db->Put(w, details, tokens_[6].Bytes(), unreadable).ok());
    ASSERT_TRUE(db->Put(w, details, stray.Bytes(), projections::EncodeTokenRow(**changed)).ok());
  });
  Open();
  auto findings = Findings();
  ASSERT_EQ(findings.size(), 3u);
  std::sort(findings.begin(), findings.end(), [&](const auto& a, const auto& b) {
    auto rank = [&](const VerifyFinding& f) {
      return f.token == tokens_[4] ? 0 : f.token == tokens_[6] ? 1 : 2;
    };
    return rank(a) < rank(b);
  });
  for (const auto& f : findings) EXPECT_EQ(f.kind, "projection");
  EXPECT_EQ(findings[0].token, tokens_[4]);
  EXPECT_NE(findings[0].message.find("differs"), std::string::npos) << findings[0].message;
  EXPECT_NE(findings[0].expected.find("\"expires_at\""), std::string::npos) << findings[0].expected;
  EXPECT_NE(findings[0].found.find(std::to_string((*changed)->state.expires_at)), std::string::npos)
      << findings[0].found;
  EXPECT_EQ(findings[1].token, tokens_[6]);
  EXPECT_NE(findings[1].message.find("truncated"), std::string::npos) << findings[1].message;
  EXPECT_EQ(findings[2].token, stray);
  EXPECT_NE(findings[2].message.find("does not exist"), std::string::npos) << findings[2].message;
  EXPECT_NE(findings[2].found.find("\"id\":\"" + tokens_[4].ToString()), std::string::npos)
      << "a stray row is shown decoded: " << findings[2].found;
}

TEST_F(RebuildVerifyTest, AMissingStreamEntryIsNamed) {
  Close();
  WithRawDb(options_.data_dir, [&](rocksdb::DB* db, auto& cfs) {
    ASSERT_TRUE(
        db->Delete(rocksdb::WriteOptions(), cfs[kStreamsCf], StreamKey(tokens_[7], 1)).ok());
  });
  Open();
  const auto findings = Findings();
  ASSERT_EQ(findings.size(), 1u);
  EXPECT_EQ(findings[0].kind, "stream");
  EXPECT_EQ(findings[0].token, tokens_[7]);
  EXPECT_EQ(findings[0].found, "missing");
}

// The list index is scanned in key ranges on two threads; an account's counters are recounted
// across the ranges it spans, so a clean ledger has no findings however it is cut, and damage
// in any range is named.
TEST_F(RebuildVerifyTest, TheListIndexIsCheckedAcrossScanParts) {
  const Id other = ids_.Generate();
  Close();
  AppendCreates(options_.data_dir, account_, 700);
  AppendCreates(options_.data_dir, other, 700);
  std::uint64_t list_bytes = 0;
  WithRawDb(options_.data_dir, [&](rocksdb::DB* db, auto& cfs) {
    for (auto& [name, cf] : cfs) ASSERT_TRUE(db->CompactRange({}, cf, nullptr, nullptr).ok());
    // Big enough that its index has many blocks to cut at (the cuts come from it).
    rocksdb::SizeApproximationOptions so;
    so.include_files = true;
    const std::string all(1, '\0'), end(64, '\xff');
    rocksdb::Range r(all, end);
    ASSERT_TRUE(
        db->GetApproximateSizes(so, Family(cfs, "token_list_index"), &r, 1, &list_bytes).ok());
  });
  EXPECT_GT(list_bytes, 64u << 10);
  Open();
  for (int parts : {1, 7, 64}) {
    auto report = store_->Verify({.list_parts = parts});
    ASSERT_TRUE(report) << report.error().message;
    EXPECT_TRUE(report->findings.empty()) << parts << " parts: " << report->findings[0].message;
    EXPECT_EQ(report->tokens_checked, 11u + 1400u);
  }
  Close();
  WithRawDb(options_.data_dir, [&](rocksdb::DB* db, auto& cfs) {
    auto* list = Family(cfs, "token_list_index");
    for (const Id& account : {account_, other}) {
      projections::TokenRow any;
      any.state.exists = true;
      any.state.account_id = account;
      ASSERT_TRUE(db->Merge(rocksdb::WriteOptions(), list, projections::ListCountKeys(any)[0],
                            projections::EncodeListCount(3))
                      .ok());
    }
  });
  Open();
  for (int parts : {1, 64}) {
    auto report = store_->Verify({.list_parts = parts});
    ASSERT_TRUE(report) << report.error().message;
    ASSERT_EQ(report->findings.size(), 2u) << parts << " parts";
    std::set<std::optional<Id>> accounts;
    for (const auto& f : report->findings) {
      EXPECT_EQ(f.kind, "index");
      EXPECT_NE(f.message.find("list counter"), std::string::npos) << f.message;
      EXPECT_EQ(f.found, std::to_string(std::stoll(f.expected) + 3));
      accounts.insert(f.token);
    }
    EXPECT_EQ(accounts, (std::set<std::optional<Id>>{account_, other}));
  }
}

// Key ring events live in the key ring's stream and token events never do: an import of a
// history that mixes them (crafted, or damaged before it was hashed) is refused.
TEST_F(RebuildVerifyTest, AnImportRefusesAnEventInAStreamNotOfItsKind) {
  std::vector<std::string> records;
  ASSERT_TRUE(store_->ScanStoredEvents(1, [&](std::uint64_t, std::string_view r) {
    records.emplace_back(r);
    return true;
  }));
  auto last = events::DecodeStoredEvent(records.back());
  ASSERT_TRUE(last);
  for (const bool key_event_in_token_stream : {false, true}) {
    events::EventEnvelope e;
    e.seq = last->seq + 1;
    e.stream = key_event_in_token_stream ? last->stream : events::kKeyRingStream;
    e.stream_version = key_event_in_token_stream ? last->stream_version + 1 : 1;
    e.schema_version = 1;
    e.at = last->at + 1;
    e.prev_hash = last->hash;
    if (key_event_in_token_stream) {
      e.data = events::SigningKeyRotated{"k2", "k1", "op@host"};
    } else {
      e.schema_version = events::CurrentSchemaVersion("TokenCreated");
      e.data = events::TokenCreated{account_, std::nullopt, events::TokenScope::kAccount,
                                    e.at + kMicrosPerDay, std::nullopt};
    }
    std::vector<std::string> crafted = records;
    crafted.push_back(events::EncodeStoredEvent(e));
    StoreOptions options = options_;
    options.data_dir = options_.data_dir + (key_event_in_token_stream ? "-key" : "-token");
    auto opened = LedgerStore::Open(options, OpenMode::kMaintenance, Hooks());
    ASSERT_TRUE(opened.store) << opened.message;
    ASSERT_TRUE(opened.store->BeginImport());
    Status refused = opened.store->AppendVerbatim(Views(crafted));
    ASSERT_FALSE(refused);
    EXPECT_NE(refused.error().message.find("never share one"), std::string::npos)
        << refused.error().message;
  }
}

TEST_F(RebuildVerifyTest, AnUnfinishedImportIsRefusedAndAFinishedOneServes) {
  std::vector<std::string> records;
  ASSERT_TRUE(store_->ScanStoredEvents(1, [&](std::uint64_t, std::string_view r) {
    records.emplace_back(r);
    return true;
  }));
  for (const bool finish : {false, true}) {
    StoreOptions options = options_;
    options.data_dir = options_.data_dir + (finish ? "-finished" : "-partial");
    {
      auto opened = LedgerStore::Open(options, OpenMode::kMaintenance, Hooks());
      ASSERT_TRUE(opened.store) << opened.message;
      ASSERT_TRUE(opened.store->BeginImport());
      ASSERT_TRUE(opened.store->AppendVerbatim(Views(records)));
      if (finish) {
        ASSERT_TRUE(opened.store->RebuildProjections());
        ASSERT_TRUE(opened.store->FinishImport());
      }
    }
    auto served = LedgerStore::Open(options, OpenMode::kServe, Hooks());
    if (!finish) {
      ASSERT_FALSE(served.store);
      EXPECT_EQ(served.failure, OpenFailure::kCorrupt);
      EXPECT_NE(served.message.find("import_in_progress"), std::string::npos) << served.message;
      EXPECT_NE(served.message.find("tokenledger import"), std::string::npos) << served.message;
      continue;
    }
    ASSERT_TRUE(served.store) << served.message;
    EXPECT_EQ(served.store->LastSeq(), records.size());
    auto report = served.store->Verify();
    ASSERT_TRUE(report);
    EXPECT_TRUE(report->findings.empty());
    for (const Id& t : tokens_) EXPECT_EQ(*served.store->GetToken(t), *store_->GetToken(t));
  }
}

// An import writes its events as SST files and leaves their stream index to the rebuild: it
// cannot finish without that rebuild, each append is still all or nothing (a batch refused in
// its middle leaves none of it, and the batches before it import fine), and the result verifies
// clean.
TEST_F(RebuildVerifyTest, ImportAppendsAreAllOrNothingAndNeedTheRebuildToFinish) {
  std::vector<std::string> records;
  ASSERT_TRUE(store_->ScanStoredEvents(1, [&](std::uint64_t, std::string_view r) {
    records.emplace_back(r);
    return true;
  }));
  ASSERT_GE(records.size(), 6u);
  const std::size_t half = records.size() / 2;
  const std::vector<std::string> first(records.begin(), records.begin() + half);
  std::vector<std::string> second(records.begin() + half, records.end());
  second[1].back() ^= 1;  // its hash no longer matches its body
  StoreOptions options = options_;
  options.data_dir = options_.data_dir + "-batches";
  {
    auto opened = LedgerStore::Open(options, OpenMode::kMaintenance, Hooks());
    ASSERT_TRUE(opened.store) << opened.message;
    LedgerStore& imported = *opened.store;
    ASSERT_TRUE(imported.BeginImport());
    ASSERT_TRUE(imported.AppendVerbatim(Views(first)));
    Status refused = imported.AppendVerbatim(Views(second));
    ASSERT_FALSE(refused);
    EXPECT_NE(refused.error().message.find("hash"), std::string::npos) << refused.error().message;
    EXPECT_EQ(imported.LastSeq(), half);
    Status early = imported.FinishImport();
    ASSERT_FALSE(early);
    EXPECT_NE(early.error().message.find("RebuildProjections"), std::string::npos)
        << early.error().message;
    ASSERT_TRUE(imported.RebuildProjections());
    ASSERT_TRUE(imported.FinishImport());
  }
  auto served = LedgerStore::Open(options, OpenMode::kServe, Hooks());
  ASSERT_TRUE(served.store) << served.message;
  EXPECT_EQ(served.store->LastSeq(), half);
  auto report = served.store->Verify();
  ASSERT_TRUE(report) << report.error().message;
  EXPECT_TRUE(report->findings.empty()) << report->findings[0].message;
  std::vector<std::string> stored;
  ASSERT_TRUE(served.store->ScanStoredEvents(1, [&](std::uint64_t, std::string_view r) {
    stored.emplace_back(r);
    return true;
  }));
  EXPECT_EQ(stored, first);
}

// The bulk append of an import looks up no stream; its rebuild checks the versions instead.
// Here a forged history whose chain is intact (hashes recomputed) but whose stream skips a
// version is refused before the import could finish.
TEST_F(RebuildVerifyTest, AnImportWithAStreamVersionGapFailsItsRebuild) {
  std::vector<events::EventEnvelope> history;
  ASSERT_TRUE(store_->ScanStoredEvents(1, [&](std::uint64_t, std::string_view r) {
    history.push_back(*events::DecodeStoredEvent(r));
    return true;
  }));
  ASSERT_GE(history.size(), 3u);
  for (const bool forge : {false, true}) {
    std::vector<std::string> records;
    events::Hash prev = events::kGenesisHash;
    for (events::EventEnvelope e : history) {
      if (forge && e.stream == history.back().stream && e.seq == history.back().seq)
        e.stream_version += 1;  // the token's last event skips a version
      e.prev_hash = prev;
      records.push_back(events::EncodeStoredEvent(e));
      prev = e.hash;
    }
    StoreOptions options = options_;
    options.data_dir = options_.data_dir + (forge ? "-forged" : "-clean");
    auto opened = LedgerStore::Open(options, OpenMode::kMaintenance, Hooks());
    ASSERT_TRUE(opened.store) << opened.message;
    ASSERT_TRUE(opened.store->BeginImport());
    ASSERT_TRUE(opened.store->AppendVerbatim(Views(records)));
    Status rebuilt = opened.store->RebuildProjections();
    if (!forge) {
      ASSERT_TRUE(rebuilt) << rebuilt.error().message;
      continue;
    }
    ASSERT_FALSE(rebuilt);
    EXPECT_NE(rebuilt.error().message.find("stream version"), std::string::npos)
        << rebuilt.error().message;
  }
}

// A store closed in the middle of an import (a later batch refused, a signal) while the
// events' SST file is still being built on its thread: the thread is joined before the DB's
// handles are destroyed, and the directory stays refused. The race this guards (a file's thread
// that had not yet started when the DB closed, then opened its SstFileWriter on a destroyed
// column family handle: SIGSEGV, once in a loaded CI run) needs that thread to be scheduled
// late, so this test does not reproduce it on demand; it runs the path. 40,000 events are more
// than one SST file's worth (kRebuildSstFileBytes).
TEST_F(RebuildVerifyTest, AStoreClosedMidImportWaitsForTheFilesBeingBuilt) {
  const std::vector<std::string> records = CreatedRecords(account_, 40000);
  std::size_t bytes = 0;
  for (const auto& r : records) bytes += r.size();
  ASSERT_GT(bytes, kRebuildSstFileBytes);
  StoreOptions options = options_;
  options.data_dir = options_.data_dir + "-closed-mid-import";
  {
    auto opened = LedgerStore::Open(options, OpenMode::kMaintenance, Hooks());
    ASSERT_TRUE(opened.store) << opened.message;
    ASSERT_TRUE(opened.store->BeginImport());
    ASSERT_TRUE(opened.store->AppendVerbatim(Views(records)));
  }  // closed at once: a file is still being built
  auto served = LedgerStore::Open(options, OpenMode::kServe, Hooks());
  ASSERT_FALSE(served.store);
  EXPECT_NE(served.message.find("import_in_progress"), std::string::npos) << served.message;
}

// A rebuild reads the ledger in batches that a second thread decodes while the next is read:
// 20,000 events are three batches. The rebuilt projections equal what the import built, and an
// event that cannot be decoded, in the third batch, fails the rebuild naming its seq, with the
// projections in use left as they were.
TEST_F(RebuildVerifyTest, ARebuildDecodesTheLedgerInBatchesAndNamesAnUndecodableEvent) {
  StoreOptions options = options_;
  options.data_dir = options_.data_dir + "-batches";
  const auto records = CreatedRecords(account_, 20000);
  {
    auto opened = LedgerStore::Open(options, OpenMode::kMaintenance, Hooks());
    ASSERT_TRUE(opened.store) << opened.message;
    ASSERT_TRUE(opened.store->BeginImport());
    ASSERT_TRUE(opened.store->AppendVerbatim(Views(records)));
    ASSERT_TRUE(opened.store->RebuildProjections());
    ASSERT_TRUE(opened.store->FinishImport());
  }
  auto opened = LedgerStore::Open(options, OpenMode::kMaintenance, Hooks());
  ASSERT_TRUE(opened.store) << opened.message;
  std::vector<std::uint64_t> sorted;  // progress while reading the ledger: one per batch
  Status rebuilt = opened.store->RebuildProjections([&](const RebuildProgress& p) {
    if (p.phase == "sort") sorted.push_back(p.events_done);
  });
  ASSERT_TRUE(rebuilt) << rebuilt.error().message;
  // Read from the ledger in batches of at most 8,192 events (fewer if they reach 4 MiB): at
  // least three, then the sort's end. (An import's own sort would report 20,000 at once.)
  ASSERT_GE(sorted.size(), 4u);
  EXPECT_EQ(sorted.back(), 20000u);
  for (std::size_t i = 0; i + 1 < sorted.size(); ++i) {
    EXPECT_LE(sorted[i + 1] - sorted[i], 8192u);
    EXPECT_GT(sorted[i], i == 0 ? 0u : sorted[i - 1]);
  }
  auto report = opened.store->Verify();
  ASSERT_TRUE(report) << report.error().message;
  EXPECT_TRUE(report->findings.empty()) << report->findings[0].message;
  EXPECT_EQ(opened.store->ListTokens({.account_id = account_})->item_count, 20000);
  opened.store.reset();

  WithRawDb(options.data_dir, [](rocksdb::DB* db, auto& cfs) {
    ASSERT_TRUE(
        db->Put(rocksdb::WriteOptions(), cfs[kEventsCf], EventKey(17000), "{not json").ok());
  });
  opened = LedgerStore::Open(options, OpenMode::kMaintenance, Hooks());
  ASSERT_TRUE(opened.store) << opened.message;
  rebuilt = opened.store->RebuildProjections();
  ASSERT_FALSE(rebuilt);
  EXPECT_NE(rebuilt.error().message.find("event 17000: "), std::string::npos)
      << rebuilt.error().message;
  EXPECT_EQ(opened.store->ListTokens({.account_id = account_})->item_count, 20000)
      << "the projections in use are untouched";
}

TEST_F(RebuildVerifyTest, VersionMismatchRefusesToServeUntilRebuilt) {
  const auto before = Rows();
  Close();
  WithRawDb(options_.data_dir, [](rocksdb::DB* db, auto& cfs) {
    std::string meta;
    ASSERT_TRUE(db->Get(rocksdb::ReadOptions(), cfs[kMetaCf], kMetaProjections, &meta).ok());
    const std::string current =
        "\"version\":" + std::to_string(projections::kTokenListIndex.version);
    const auto pos = meta.find(current);
    ASSERT_NE(pos, std::string::npos);
    meta.replace(pos, current.size(), "\"version\":0");  // as if written by an older release
    ASSERT_TRUE(db->Put(rocksdb::WriteOptions(), cfs[kMetaCf], kMetaProjections, meta).ok());
  });
  auto refused = LedgerStore::Open(options_, OpenMode::kServe, Hooks());
  ASSERT_FALSE(refused.store);
  EXPECT_EQ(refused.failure, OpenFailure::kProjectionVersionMismatch);
  EXPECT_NE(refused.message.find("tokenledger rebuild"), std::string::npos) << refused.message;

  Open(OpenMode::kMaintenance);
  EXPECT_FALSE(store_->ProjectionsCurrent());
  ASSERT_TRUE(store_->RebuildProjections());
  EXPECT_TRUE(store_->ProjectionsCurrent());
  Close();
  Open(OpenMode::kServe);
  EXPECT_EQ(Rows(), before);
}

}  // namespace
}  // namespace tokenledger::store::testing

namespace tokenledger::store::testing {
namespace {

// A kill during the very first open can leave only some column families created and no meta.
TEST(FirstOpenTest, AnInterruptedFirstOpenIsCompletedByTheNext) {
  TempDir dir;
  const std::string path = dir.path() + "/data";
  {
    rocksdb::Options options;
    options.create_if_missing = true;
    options.create_missing_column_families = true;
    std::vector<rocksdb::ColumnFamilyDescriptor> families = {
        {rocksdb::kDefaultColumnFamilyName, {}}, {kEventsCf, {}}, {kMetaCf, {}}};
    std::vector<rocksdb::ColumnFamilyHandle*> handles;
    rocksdb::DB* db = nullptr;
    ASSERT_TRUE(rocksdb::DB::Open(options, path, families, &handles, &db).ok());
    for (auto* h : handles) db->DestroyColumnFamilyHandle(h);
    delete db;
  }
  StoreOptions options;
  options.data_dir = path;
  auto opened = LedgerStore::Open(options);
  ASSERT_TRUE(opened.store) << opened.message;
  CommandRequest req;
  req.command = core::CreateToken{IdGenerator().Generate()};
  EXPECT_EQ(opened.store->Submit(std::move(req)).get().outcome, Outcome::kApplied);
  auto report = opened.store->Verify();
  ASSERT_TRUE(report);
  EXPECT_TRUE(report->findings.empty());
}

}  // namespace
}  // namespace tokenledger::store::testing
