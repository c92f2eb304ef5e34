// Sorted runs of the temporary sort (TokenSort, token_sort.h). A run is a flat file of records
// in key order, each [u32 shared][u32 rest][u32 value size][key bytes past the prefix it shares
// with the previous key][value], written by RunWriter. Sources read runs back (from a file, or
// from a small chunk kept in memory), and NewMergeIterator merges any number of them.
// Internal to src/store.
#pragma once

#include <rocksdb/iterator.h>

#include <cstdint>
#include <cstring>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "src/store/bulk_buffer.h"
#include "tokenledger/error.h"

namespace tokenledger::store {

// A chunk's record offsets in key order.
using SortOrder = std::vector<std::uint32_t, HugePageAllocator<std::uint32_t>>;

// The record headers' sizes (native byte order: the files never leave the process).
inline std::uint32_t GetU32(const char* p) {
  std::uint32_t v;
  std::memcpy(&v, p, 4);
  return v;
}

// kUnavailable: "temporary sort: <what>: <errno's text>".
Error SortError(const std::string& what);

// One sorted sequence of records; Next() moves to the next one (false at the end or on error).
class Source {
 public:
  virtual ~Source() = default;
  virtual bool Next() = 0;
  virtual bool failed() const { return false; }
  std::string_view key, value;
  // Key bytes [p, p + 8) of the merge's common prefix length p, as in the chunk sort's SortRef
  // (token_sort.cc).
  std::uint64_t word = 0;
  std::uint32_t rest = 0;
  void SetWord(std::size_t p) {
    const std::size_t n = key.size() > p ? key.size() - p : 0;
    if (n >= 8) {
      std::memcpy(&word, key.data() + p, 8);
      word = __builtin_bswap64(word);
      rest = n > 8 ? 9 : 8;
    } else {
      word = 0;
      for (std::size_t i = 0; i < 8; ++i)
        word = word << 8 | (i < n ? static_cast<unsigned char>(key[p + i]) : 0u);
      rest = static_cast<std::uint32_t>(n);
    }
  }
};

// A run in memory: a chunk's records ([u32 key size][u32 value size][key][value]) in the
// order of `order`. Both must outlive the source.
std::unique_ptr<Source> NewMemorySource(const BulkBuffer* data, const SortOrder* order);
// A run in a file (RunWriter's), read through a buffer of kTokenSortReadBytes (more for a
// larger record). A file cut short or corrupt fails the source (failed()).
std::unique_ptr<Source> NewFileSource(const std::string& path);

// The k-way merge of `sources`, smallest key first (equal keys in no particular order), through
// a tree of losers. `common`: a length every key of every source shares a prefix of (compared
// as words past it first). Supports SeekToFirst (once) and Next only; `status`: an error to
// report from the start (no sources then).
std::unique_ptr<rocksdb::Iterator> NewMergeIterator(std::vector<std::unique_ptr<Source>> sources,
                                                    std::size_t common = 0,
                                                    rocksdb::Status status = rocksdb::Status::OK());

inline constexpr std::size_t kRunWriteBytes = 1u << 20;

// Writes records to a new file through a 1 MiB buffer. Keys are written as their prefix shared
// with the previous key (a length) and the rest: sorted list index keys share ~2/3 of their
// bytes with their neighbour (account, partition, field), so a run is ~half the bytes to copy
// into the page cache and back.
class RunWriter {
 public:
  // `buffer`: the writer's, while it lives (reused from run to run: a fresh one is a huge page
  // to fault in and zero).
  RunWriter(const std::string& path, BulkBuffer& buffer);
  ~RunWriter();
  RunWriter(const RunWriter&) = delete;
  RunWriter& operator=(const RunWriter&) = delete;
  // REQUIRES: keys in key order. False if writing failed.
  bool Add(std::string_view key, std::string_view value);
  bool Close();  // writes what is buffered; false if anything failed

 private:
  bool Flush();
  int fd_;
  BulkBuffer& buf_;
  std::string last_;  // the last key written
};

}  // namespace tokenledger::store
