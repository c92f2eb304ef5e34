// The memtable of every column family: a skiplist of ours behind RocksDB's MemTableRep plug-in
// interface (rocksdb/memtablerep.h), in place of RocksDB's own InlineSkipList.
//
// Why: Debian builds librocksdb with its assertions compiled in (6,392 `__assert_fail` call
// sites in librocksdb.so.7.8). InlineSkipList asserts the skiplist's order on every step of a
// search (FindSpliceForLevel: two more key comparisons per step than the search needs), and
// memtable inserts are the largest cost of a write: ~59% of a status change's instructions,
// about half of their key comparisons those assertions (docs/PERFORMANCE.md). They run on the
// one thread every commit passes through, so they bound writes/s. This list is LevelDB's
// design (one writer, lock-free readers, release/acquire links, nothing ever removed),
// compiled with the project's own flags.
//
// Contract (RocksDB's for a memtable without concurrent inserts):
// - One thread inserts at a time: DBOptions::allow_concurrent_memtable_write must be false
//   (RocksDB refuses to open otherwise, as the factory says it cannot insert concurrently).
// - Any number of threads read (Get, iterators) at the same time as the insert, without locks.
// - Entries are RocksDB's encoded memtable entries, allocated through Allocate() from the
//   memtable's arena (so its memory accounting and flush triggers see them), and never
//   removed; an entry equal to one already in the list (same user key and sequence number) is
//   refused by InsertKey.
// - The family compares keys with RocksDB's BytewiseComparator (the default; every family of
//   the store): the list orders entries itself, as RocksDB's InternalKeyComparator over it
//   would. Each new memtable checks that on a few telling keys and aborts the process if not;
//   debug builds also assert it on every comparison.
// - The family has no read-side prefix_extractor (a new memtable aborts the process if it has).
// - No experimental MemPurge (`experimental_mempurge_threshold` stays 0): the list does not
//   sample its entries (UniqueRandomSample).
// Internal to src/store.
#pragma once

#include <rocksdb/memtablerep.h>

#include <memory>

namespace tokenledger::store {

// For ColumnFamilyOptions::memtable_factory of every family.
std::shared_ptr<rocksdb::MemTableRepFactory> NewSkipListMemTableFactory();

}  // namespace tokenledger::store
