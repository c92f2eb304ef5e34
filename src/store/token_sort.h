// TokenSort: the external sort under verify and rebuild. Events are read once in sequence
// order and added keyed by (token id, stream version, seq); iterating the sort then yields
// every token's events together and in stream order, so each token can be folded on its own.
// Other entries (idempotency pointers, list index entries) are sorted the same way, each tag in
// its own key space.
//
// How: entries are appended to one in-memory chunk (a kTokenSortChunkBuffers-th of
// kTokenSortChunkBytes); a full chunk is sorted (an 8-byte integer prefix of each key past the
// chunk's common prefix, a radix sort a word at a time) and written as a sorted run to a flat file
// in the sort's directory (sorted_runs.h), on a thread of its own while the next chunk fills (up to
// kTokenSortChunkBuffers - 1 spills in flight: with one, the adding thread waited for it ~2 s of
// a 1M-event rebuild, the second core half idle); iteration is a k-way merge of the runs
// through a tree of losers. No RocksDB, no WAL, no memtable: the earlier temporary RocksDB spent
// most of its time in the memtable flush's key comparisons (internal keys, varint lengths,
// virtual comparator). A tag's runs are kept in levels: kTokenSortMaxRuns runs of one level are
// merged into one run of the next, so an entry is rewritten once per level (one level up to
// ~2 GiB of entries, two up to ~128 GiB); if the levels together still hold more than
// kTokenSortMaxRuns when a tag is iterated, its lowest levels are merged first, so the final
// merge's read buffers stay bounded too.
//
// Memory, whatever the ledger's size (kTokenSortMemoryBytes): the chunk buffers (one being
// filled, the others being sorted and written), the read buffers of the runs of one tag being
// iterated (kTokenSortMaxRuns x kTokenSortReadBytes), and a small last chunk iterated in memory
// instead of written (at most kTokenSortSmallChunkBytes). The chunk buffers are kept from tag
// to tag (until ReleaseBuffers), within that bound.
// At most one tag is filled while another is iterated (verify: idempotency pointers while
// adding events; rebuild and verify: events while adding list entries).
//
// Only the fields the projections fold are kept (not actor, request id or idempotency key).
// Equal keys are all kept (in no particular order). Thread-safety: one thread at a time (the
// spill threads are internal).
// Internal to src/store.
#pragma once

#include <rocksdb/iterator.h>

#include <deque>
#include <map>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "events/events.h"
#include "src/store/bulk_buffer.h"
#include "tokenledger/error.h"

namespace tokenledger::store {

inline constexpr std::size_t kTokenSortChunkBytes = 96u << 20;
inline constexpr std::size_t kTokenSortChunkBuffers = 3;
// 64 runs of 32 MiB: ~2 GiB of entries (rebuild's list index at 1,000,000 events: ~1 GiB)
// before a merge pass; also the most runs one merge reads at once.
inline constexpr std::size_t kTokenSortMaxRuns = 64;
inline constexpr std::size_t kTokenSortReadBytes = 256u << 10;
inline constexpr std::size_t kTokenSortSmallChunkBytes = 8u << 20;
// The chunk buffers (each with room for its sort's refs) + one tag's run read buffers + a small
// in-memory chunk + the run writers' buffers (a huge page each, one per spill that can be in
// flight, kept from run to run; a merge of runs borrows a kept one, or has one of its own once
// they are released).
inline constexpr std::size_t kTokenSortMemoryBytes =
    kTokenSortChunkBytes + kTokenSortMaxRuns * kTokenSortReadBytes + kTokenSortSmallChunkBytes +
    (kTokenSortChunkBuffers - 1) * kHugePageBytes;  // 124 MiB

class TokenSort {
 public:
  // Creates a fresh private directory under `parent` (empty: the system's temporary
  // directory). Fails (kUnavailable) if it cannot be created.
  // `chunk_bytes`: all chunk buffers' size; `max_runs`: the most runs a merge reads at once
  // (tests make both small to exercise runs and merges). REQUIRES: max_runs >= 2.
  static Result<std::unique_ptr<TokenSort>> Create(const std::string& parent,
                                                   std::size_t chunk_bytes = kTokenSortChunkBytes,
                                                   std::size_t max_runs = kTokenSortMaxRuns);
  ~TokenSort();  // removes its directory

  // Adds one event. May write a run (and so fail).
  Status Add(const events::EventEnvelope& event);
  // What Add adds, split in two so that events can be encoded on other threads: EncodeEvent
  // appends an event's record to `records` (thread-safe: touches no sort), AddEncoded adds
  // every record of such a string, exactly as Add would have added their events.
  static void EncodeEvent(const events::EventEnvelope& event, std::string& records);
  Status AddEncoded(std::string_view records);
  // Adds any other entry to sort, in its own key space `tag` (not 'e': the events).
  Status AddRaw(char tag, std::string_view key, std::string_view value);
  // Sorts what is buffered (writing a run, or keeping a small last chunk in memory); call
  // before NewIterator, which does it too for its own tag. May write (and so fail).
  Status Finish();
  std::uint64_t Count() const { return count_; }
  // The sort's private directory (removed with it): room for other temporary files.
  const std::string& Dir() const { return dir_; }

  // Iterates the events in (token, stream version, seq) order (see Decode), or the entries
  // added with AddRaw(tag) in key order (keys keep the tag byte: use RawKey). Supports
  // SeekToFirst and Next only; key() and value() stay valid until the next Next().
  std::unique_ptr<rocksdb::Iterator> NewIterator(char tag = kEventsTag);
  // Frees the chunk and run-writer buffers kept for reuse (from run to run and tag to tag: a
  // fresh one is huge pages to fault in); a later add allocates new ones. For when the adding
  // is done. REQUIRES: Finish() since the last add.
  void ReleaseBuffers();
  static rocksdb::Slice RawKey(rocksdb::Slice key) { return {key.data() + 1, key.size() - 1}; }
  static constexpr char kEventsTag = 'e';
  // Decodes an entry back into an envelope holding the folded fields (seq, stream,
  // stream_version, at, data). False if malformed (cannot happen unless the disk lies).
  static bool Decode(rocksdb::Slice key, rocksdb::Slice value, events::EventEnvelope* out);

  class Runs;  // one tag's sorted runs (token_sort.cc)

 private:
  TokenSort() = default;
  struct Spilling;
  Status Put(char tag, std::string_view key_tail, std::string_view value);
  // Hands the chunk to a thread of its own, which sorts it and writes it as a run of its tag
  // (after the oldest spill in flight is done, if kTokenSortChunkBuffers - 1 are).
  Status Spill();
  // Waits for the oldest spill in flight and adds its run to its tag's level 0 (merging a
  // level that holds max_runs_ runs into one run of the next).
  Status ReapOldest();
  // Merges `files` (whose keys share `common` bytes) into one new run appended to `into`, and
  // removes them.
  Status MergeFiles(std::vector<std::string>& files, std::vector<std::string>& into,
                    std::size_t common, BulkBuffer& buffer);
  // Merges files of the lowest levels until `runs` holds at most max_runs_ files.
  Status BoundFinalMerge(Runs& runs);
  Status Wait();  // for every spill in flight; the first error
  static Status WriteRun(Spilling& spill);

  std::string dir_;
  std::map<char, std::unique_ptr<Runs>> runs_;
  // The chunk: records [u32 key size][u32 value size][key][value], all of tag `chunk_tag_`.
  BulkBuffer chunk_;
  std::size_t chunk_entries_ = 0;
  std::size_t chunk_bytes_ = kTokenSortChunkBytes;
  std::size_t max_runs_ = kTokenSortMaxRuns;
  char chunk_tag_ = 0;
  std::deque<std::unique_ptr<Spilling>> spilling_;  // oldest first
  // Buffers of runs written, reused (until ReleaseBuffers) for the next chunks and runs.
  std::vector<BulkBuffer> spare_chunks_, spare_write_buffers_;
  std::uint64_t count_ = 0;
  std::uint64_t next_file_ = 0;
  std::string encoded_;  // Add's record, reused: it keeps its capacity
  // An event's key past its tag: token id, stream version, seq.
  static constexpr std::size_t kEventKeyBytes = Id::kBytes + 16;
};

}  // namespace tokenledger::store
