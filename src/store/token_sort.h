// TokenSort: the external sort under verify and rebuild. Events are read once in sequence
// order and written into a private, temporary RocksDB (WAL off, no compaction) keyed by
// (token id, stream version, seq); iterating it then yields every token's events together and
// in stream order, so each token can be folded on its own. Memory is bounded by the temporary
// database's write buffers (kTokenSortMemoryBytes), not by the ledger's size: RocksDB spills
// sorted runs to disk and merges them on iteration.
//
// Only the fields the projections fold are kept (not actor, request id or idempotency key).
// Thread-safety: one thread at a time. Internal to src/store.
#pragma once

#include <rocksdb/db.h>

#include <memory>
#include <string>

#include "events/events.h"
#include "tokenledger/error.h"

namespace tokenledger::store {

// Write buffers (2 x 64 MiB) + the write batch under construction (4 MiB) + iterator
// read-ahead: the most a sort holds in memory, whatever the ledger's size.
inline constexpr std::size_t kTokenSortWriteBufferBytes = 64u << 20;
inline constexpr std::size_t kTokenSortMemoryBytes = 2 * kTokenSortWriteBufferBytes + (8u << 20);

class TokenSort {
 public:
  // Creates the temporary database in a fresh directory under `parent` (empty: the system's
  // temporary directory). Fails (kUnavailable) if it cannot be created.
  static Result<std::unique_ptr<TokenSort>> Create(const std::string& parent);
  ~TokenSort();  // closes the database and removes its directory

  // Adds one event. May write (and so fail).
  Status Add(const events::EventEnvelope& event);
  // Adds any other entry to sort, in its own key space `tag` (not 'e': the events).
  Status AddRaw(char tag, std::string_view key, std::string_view value);
  // Writes what is buffered; call before NewIterator.
  Status Finish();
  std::uint64_t Count() const { return count_; }
  // The sort's private directory (removed with it): room for other temporary files.
  const std::string& Dir() const { return dir_; }

  // Iterates the events in (token, stream version, seq) order (see Decode), or the entries
  // added with AddRaw(tag) in key order (keys without the tag byte: use RawKey).
  std::unique_ptr<rocksdb::Iterator> NewIterator(char tag = kEventsTag);
  static rocksdb::Slice RawKey(rocksdb::Slice key) { return {key.data() + 1, key.size() - 1}; }
  static constexpr char kEventsTag = 'e';
  // Decodes an entry back into an envelope holding the folded fields (seq, stream,
  // stream_version, at, data). False if malformed (cannot happen unless the disk lies).
  static bool Decode(rocksdb::Slice key, rocksdb::Slice value, events::EventEnvelope* out);

 private:
  TokenSort() = default;
  std::string dir_;
  std::unique_ptr<rocksdb::DB> db_;
  rocksdb::WriteBatch batch_;
  std::uint64_t count_ = 0;
  bool unflushed_ = false;
};

}  // namespace tokenledger::store
