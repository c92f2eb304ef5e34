#include "src/store/token_sort.h"

#include <fcntl.h>
#include <stdlib.h>
#include <unistd.h>

#include <algorithm>
#include <cassert>
#include <cerrno>
#include <cstdint>
#include <span>
#include <thread>
#include <utility>

#include <cstring>
#include <filesystem>

#include "src/store/keys.h"
#include "src/store/store_impl.h"

namespace tokenledger::store {
namespace {

void PutU64(std::string& out, std::uint64_t v) {
  char b[8];
  for (int i = 7; i >= 0; --i, v >>= 8) b[i] = static_cast<char>(v & 0xff);
  out.append(b, 8);
}

std::uint64_t GetU64(const char*& p) {
  std::uint64_t v = 0;
  for (int i = 0; i < 8; ++i) v = (v << 8) | static_cast<unsigned char>(p[i]);
  p += 8;
  return v;
}

void PutOptId(std::string& out, const std::optional<Id>& id) {
  out.push_back(id ? 1 : 0);
  if (id) out.append(id->Bytes());
}

// A presence byte, then the length (u64) and the bytes.
void PutOptString(std::string& out, const std::optional<std::string>& s) {
  out.push_back(s ? 1 : 0);
  if (!s) return;
  PutU64(out, s->size());
  out.append(*s);
}

enum Tag : char {
  kCreated = 1,
  kSuspended,
  kActivated,
  kRevoked,
  kDeleted,
  kUsed,
  kKeyRotated,
  kKeyRetired,
};

}  // namespace

// ---------------------------------------------------------------------------------------
// Sorted runs and their merge.

namespace {

// A chunk's record offsets in key order.
using SortOrder = std::vector<std::uint32_t, HugePageAllocator<std::uint32_t>>;

Error SortError(const std::string& what) {
  return Error{
      ErrorCode::kUnavailable, "temporary sort: " + what + ": " + std::strerror(errno), {}};
}

std::uint32_t GetU32(const char* p) {
  std::uint32_t v;
  std::memcpy(&v, p, 4);
  return v;
}

// One sorted sequence of records; Next() moves to the next one (false at the end or on error).
class Source {
 public:
  virtual ~Source() = default;
  virtual bool Next() = 0;
  virtual bool failed() const { return false; }
  std::string_view key, value;
  // Key bytes [p, p + 8) of the merge's common prefix length p, as in SortRef.
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

// A run in memory: the chunk's records, in the order of `order` (record offsets).
class MemorySource : public Source {
 public:
  MemorySource(const BulkBuffer* data, const SortOrder* order) : data_(data), order_(order) {}
  bool Next() override {
    if (i_ == order_->size()) return false;
    const char* r = data_->data() + (*order_)[i_++];
    const std::uint32_t k = GetU32(r), v = GetU32(r + 4);
    key = std::string_view(r + 8, k);
    value = std::string_view(r + 8 + k, v);
    return true;
  }

 private:
  const BulkBuffer* data_;
  const SortOrder* order_;
  std::size_t i_ = 0;
};

// A run in a file, read through a buffer of kTokenSortReadBytes (more for a larger record).
class FileSource : public Source {
 public:
  explicit FileSource(const std::string& path) : fd_(::open(path.c_str(), O_RDONLY | O_CLOEXEC)) {
    failed_ = fd_ < 0;
    if (!failed_) ::posix_fadvise(fd_, 0, 0, POSIX_FADV_SEQUENTIAL);
  }
  ~FileSource() override {
    if (fd_ >= 0) ::close(fd_);
  }
  bool failed() const override { return failed_; }
  bool Next() override {
    // [u32 shared][u32 rest][u32 value size][key bytes past the shared prefix][value]
    if (failed_) return false;
    if (!Have(12)) {
      failed_ = len_ > pos_;  // the end of the file inside a header: it was cut short
      return false;
    }
    const char* h = buf_.data() + pos_;
    const std::uint32_t shared = GetU32(h), rest = GetU32(h + 4), v = GetU32(h + 8);
    if (shared > key.size() || !Have(12 + std::size_t{rest} + v)) {
      failed_ = true;  // a record cut short (the file was truncated), or corrupt
      return false;
    }
    // The key's buffer only grows: resize and append cost more than the copy (~11M keys in a
    // rebuild at 1M events).
    const std::size_t size = std::size_t{shared} + rest;
    if (key_.size() < size) key_.resize(std::max(size, 2 * key_.size()));
    std::memcpy(key_.data() + shared, buf_.data() + pos_ + 12, rest);
    key = std::string_view(key_.data(), size);
    value = std::string_view(buf_.data() + pos_ + 12 + rest, v);
    pos_ += 12 + std::size_t{rest} + v;
    return true;
  }

 private:
  // Whether `n` bytes from pos_ are buffered, reading more if not (false at the end of file).
  bool Have(std::size_t n) {
    if (len_ - pos_ >= n) return true;
    std::memmove(buf_.data(), buf_.data() + pos_, len_ - pos_);
    len_ -= pos_;
    pos_ = 0;
    if (buf_.size() < std::max(n, kTokenSortReadBytes))
      buf_.resize(std::max(n, kTokenSortReadBytes));
    while (len_ < n) {
      const ssize_t r = ::read(fd_, buf_.data() + len_, buf_.size() - len_);
      if (r < 0 && errno == EINTR) continue;
      if (r < 0) failed_ = true;
      if (r <= 0) return false;
      len_ += static_cast<std::size_t>(r);
    }
    return true;
  }

  int fd_;
  bool failed_ = false;
  std::string buf_;
  std::string key_;  // holds `key`: the previous one's shared prefix and the record's rest
  std::size_t pos_ = 0, len_ = 0;
};

// The k-way merge of sources, smallest key first, through a tree of losers: each internal
// node holds the source that lost the match played there, so advancing the winner replays only
// its path to the root, one comparison a level (a binary heap's pop and push took about twice
// as many: ~9% of a rebuild's last phase, with ~30 runs).
class MergeIterator final : public rocksdb::Iterator {
 public:
  // `common`: a length every key of every source shares a prefix of (compared as words
  // past it first).
  explicit MergeIterator(std::vector<std::unique_ptr<Source>> sources, std::size_t common = 0,
                         rocksdb::Status status = rocksdb::Status::OK())
      : sources_(std::move(sources)),
        status_(std::move(status)),
        common_(common),
        live_(sources_.size(), 0) {}
  bool Valid() const override { return valid_; }
  void SeekToFirst() override {
    if (started_) {
      status_ = rocksdb::Status::NotSupported("the temporary sort is read once");
      valid_ = false;
      return;
    }
    started_ = true;
    for (std::size_t i = 0; i < sources_.size(); ++i) Advance(i);
    if (!sources_.empty()) {
      tree_.assign(sources_.size(), 0);
      tree_[0] = Build(1);
    }
    valid_ = status_.ok() && !sources_.empty() && live_[tree_[0]];
  }
  void Next() override {
    std::size_t winner = tree_[0];
    Advance(winner);
    for (std::size_t node = (winner + sources_.size()) / 2; node >= 1; node /= 2) {
      if (Less(tree_[node], winner)) std::swap(tree_[node], winner);
    }
    tree_[0] = winner;
    valid_ = status_.ok() && live_[winner];
  }
  rocksdb::Slice key() const override { return Slice(sources_[tree_[0]]->key); }
  rocksdb::Slice value() const override { return Slice(sources_[tree_[0]]->value); }
  rocksdb::Status status() const override { return status_; }
  void SeekToLast() override { Unsupported(); }
  void Seek(const rocksdb::Slice&) override { Unsupported(); }
  void SeekForPrev(const rocksdb::Slice&) override { Unsupported(); }
  void Prev() override { Unsupported(); }

 private:
  static rocksdb::Slice Slice(std::string_view s) { return {s.data(), s.size()}; }
  void Advance(std::size_t i) {
    Source& s = *sources_[i];
    live_[i] = s.Next();
    if (live_[i]) s.SetWord(common_);
    if (s.failed()) Fail();
  }
  // Whether source a's key sorts before b's; a source at its end sorts after every other.
  bool Less(std::size_t a, std::size_t b) const {
    if (!live_[a] || !live_[b]) return live_[a];
    const Source &x = *sources_[a], &y = *sources_[b];
    if (x.word != y.word) return x.word < y.word;
    if (x.rest != y.rest || x.rest < 9) return x.rest < y.rest;
    return x.key.substr(common_ + 8) < y.key.substr(common_ + 8);
  }
  // The winner of the subtree at `node` (leaves: nodes k..2k-1 are sources 0..k-1); the losers
  // stay in its internal nodes.
  std::size_t Build(std::size_t node) {
    const std::size_t k = sources_.size();
    if (node >= k) return node - k;
    const std::size_t a = Build(2 * node), b = Build(2 * node + 1);
    if (Less(b, a)) {
      tree_[node] = a;
      return b;
    }
    tree_[node] = b;
    return a;
  }
  void Fail() { status_ = rocksdb::Status::IOError("reading a run of the temporary sort"); }
  void Unsupported() {
    status_ = rocksdb::Status::NotSupported("the temporary sort only iterates forwards");
    valid_ = false;
  }
  std::vector<std::unique_ptr<Source>> sources_;
  rocksdb::Status status_;
  std::size_t common_;
  std::vector<bool> live_;         // whether source i has a current record
  std::vector<std::size_t> tree_;  // [0]: the winner; [1, k): the loser of each match
  bool valid_ = false, started_ = false;
};

constexpr std::size_t kRunWriteBytes = 1u << 20;

// Writes records to a new file through a 1 MiB buffer. Keys are written as their prefix shared
// with the previous key (a length) and the rest: sorted list index keys share ~2/3 of their
// bytes with their neighbour (account, partition, field), so a run is ~half the bytes to copy
// into the page cache and back.
class RunWriter {
 public:
  // `buffer`: the writer's, while it lives (reused from run to run: a fresh one is a huge page
  // to fault in and zero).
  RunWriter(const std::string& path, BulkBuffer& buffer)
      : fd_(::open(path.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600)), buf_(buffer) {
    // One huge page: a write's worth and room for the record that crosses it.
    static_assert(kRunWriteBytes < kHugePageBytes);
    buf_.clear();
    if (buf_.capacity() < kHugePageBytes - 1) buf_.reserve(kHugePageBytes - 1);
  }
  ~RunWriter() {
    if (fd_ >= 0) ::close(fd_);
  }
  bool Add(std::string_view key, std::string_view value) {
    std::size_t shared = 0;
    const std::size_t n = std::min(key.size(), last_.size());
    for (std::uint64_t a, b; shared + 8 <= n; shared += 8) {
      std::memcpy(&a, key.data() + shared, 8);
      std::memcpy(&b, last_.data() + shared, 8);
      if (a != b) break;
    }
    while (shared < n && key[shared] == last_[shared]) ++shared;
    const std::uint32_t h[3] = {static_cast<std::uint32_t>(shared),
                                static_cast<std::uint32_t>(key.size() - shared),
                                static_cast<std::uint32_t>(value.size())};
    buf_.append(reinterpret_cast<const char*>(h), sizeof(h));
    buf_.append(key.substr(shared));
    buf_.append(value);
    last_.assign(key);
    return buf_.size() < kRunWriteBytes || Flush();
  }
  bool Close() {
    const bool ok = fd_ >= 0 && Flush() && ::close(fd_) == 0;
    fd_ = -1;
    return ok;
  }

 private:
  bool Flush() {
    if (fd_ < 0) return false;
    std::size_t done = 0;
    while (done < buf_.size()) {
      const ssize_t w = ::write(fd_, buf_.data() + done, buf_.size() - done);
      if (w < 0 && errno == EINTR) continue;
      if (w <= 0) return false;
      done += static_cast<std::size_t>(w);
    }
    buf_.clear();
    return true;
  }
  int fd_;
  BulkBuffer& buf_;
  std::string last_;  // the last key written
};

}  // namespace

// One tag's runs: files, and at most one small chunk kept in memory.
class TokenSort::Runs {
 public:
  std::vector<std::string> files;
  BulkBuffer memory;  // records, as in the chunk
  SortOrder order;
  // A prefix length all keys of all runs share: the least of each chunk's common prefix and of
  // its first key's common prefix with the first run's first key.
  std::size_t common = std::string::npos;
  std::string first;

  void Note(std::size_t chunk_common, std::string_view first_key) {
    if (common == std::string::npos) {
      first = std::string(first_key);
      common = chunk_common;
      return;
    }
    std::size_t i = 0;
    const std::size_t n = std::min({common, chunk_common, first_key.size(), first.size()});
    while (i < n && first_key[i] == first[i]) ++i;
    common = i;
  }
  std::size_t Common() const { return common == std::string::npos ? 0 : common; }

  std::vector<std::unique_ptr<Source>> Sources() const {
    std::vector<std::unique_ptr<Source>> sources;
    for (const auto& f : files) sources.push_back(std::make_unique<FileSource>(f));
    if (!order.empty()) sources.push_back(std::make_unique<MemorySource>(&memory, &order));
    return sources;
  }
};

namespace {

// Record offsets of `chunk` (holding `entries` records) in key order: a most-significant-word
// radix sort. The keys share a prefix (the tag, usually an account or a token), and list index
// keys hold long runs of equal bytes (an environment id, a time's high bytes); so the records
// are sorted on one big-endian 8-byte word of their key at a time, starting past the chunk's
// common prefix, and each group of equal words is sorted on the next word. The records are read
// once per level.
struct SortRef {
  std::uint64_t word;    // key bytes [depth, depth + 8), zero-padded
  std::uint32_t offset;  // of the record in the chunk
  std::uint32_t rest;    // key bytes left at depth, capped at 9 (9: more than the word)
};
// How many records ahead the passes that read records through the refs (each radix level, and
// writing the run: past the first level the refs are in key order, not the chunk's, so each
// record is a cache miss) ask for the next one's cache line.
constexpr std::size_t kPrefetchAhead = 8;
// Below this many refs a comparison sort is faster than the radix passes' histograms.
constexpr std::size_t kRadixSortMinRefs = 256;
constexpr std::size_t kSortBytesPerEntry = 2 * sizeof(SortRef);

// Sorts [begin, end) by (word, rest): a shorter key sorts before a longer one with the same
// (zero-padded) word. A least-significant-digit radix sort, stable, over `rest` and then the
// word's 8 bytes from the lowest: one pass of 256 buckets for each digit that is not the same
// in all refs (most are the same: sorted keys share long runs of bytes). `word_diff` has the
// bits set that differ between some refs' words, `rest_differs` whether their rests do: the
// caller found them while filling the refs, so digits that do not vary are not even counted.
// It replaced std::sort on the same pairs, ~14% of a rebuild's CPU (comparisons: ~20 per ref at
// a chunk's ~400,000 refs). `tmp`: room for end - begin refs.
void SortWords(SortRef* begin, SortRef* end, SortRef* tmp, std::uint64_t word_diff,
               bool rest_differs) {
  const std::size_t n = static_cast<std::size_t>(end - begin);
  if (n < kRadixSortMinRefs) {
    std::sort(begin, end, [](const SortRef& a, const SortRef& b) {
      return a.word != b.word ? a.word < b.word : a.rest < b.rest;
    });
    return;
  }
  assert(n <= UINT32_MAX);
  // The digits that vary, least significant first: 0 is `rest`, d > 0 the word's byte d - 1
  // from the least significant.
  int digits[9];
  int k = 0;
  if (rest_differs) digits[k++] = 0;
  for (int d = 1; d <= 8; ++d)
    if ((word_diff >> (8 * (d - 1))) & 0xffu) digits[k++] = d;
  auto digit = [](const SortRef& r, int d) -> unsigned {
    return d == 0 ? r.rest : static_cast<unsigned>(r.word >> (8 * (d - 1))) & 0xffu;
  };
  std::uint32_t counts[9][256];
  std::memset(counts, 0, sizeof(counts[0]) * static_cast<std::size_t>(k));
  for (const SortRef* r = begin; r != end; ++r)
    for (int i = 0; i < k; ++i) ++counts[i][digit(*r, digits[i])];
  SortRef* src = begin;
  SortRef* dst = tmp;
  for (int i = 0; i < k; ++i) {
    std::uint32_t* c = counts[i];
    std::uint32_t sum = 0;
    for (int b = 0; b < 256; ++b) sum += std::exchange(c[b], sum);
    const int d = digits[i];
    for (const SortRef* r = src; r != src + n; ++r) dst[c[digit(*r, d)]++] = *r;
    std::swap(src, dst);
  }
  if (src != begin) std::copy(src, src + n, begin);
}

// `tmp`: room for end - begin refs (the recursion uses the part beside each group).
void SortLevel(const char* base, SortRef* begin, SortRef* end, std::size_t depth, SortRef* tmp) {
  assert(begin != end);
  for (;;) {
    std::uint64_t first_word = 0, word_diff = 0;
    std::uint32_t first_rest = 0;
    bool rest_differs = false;
    for (SortRef* r = begin; r != end; ++r) {
      if (end - r > static_cast<std::ptrdiff_t>(kPrefetchAhead))
        __builtin_prefetch(base + r[kPrefetchAhead].offset + 8 + depth);  // the word read below
      const char* rec = base + r->offset;
      const std::uint32_t k = GetU32(rec);
      const char* key = rec + 8;
      std::uint64_t w = 0;
      if (k >= depth + 8) {
        std::memcpy(&w, key + depth, 8);
        w = __builtin_bswap64(w);
        r->rest = k > depth + 8 ? 9 : 8;
      } else {
        const std::size_t n = k > depth ? k - depth : 0;
        for (std::size_t i = 0; i < 8; ++i)
          w = w << 8 | (i < n ? static_cast<unsigned char>(key[depth + i]) : 0u);
        r->rest = static_cast<std::uint32_t>(n);
      }
      r->word = w;
      if (r == begin) {
        first_word = w;
        first_rest = r->rest;
      }
      word_diff |= w ^ first_word;
      rest_differs |= r->rest != first_rest;
    }
    if (word_diff == 0 && !rest_differs) {
      // One word for all (an environment id, a time's high bytes): no sort, no groups.
      if (first_rest < 9) return;  // equal keys
      depth += 8;
      continue;
    }
    SortWords(begin, end, tmp, word_diff, rest_differs);
    for (SortRef* g = begin; g != end;) {
      SortRef* h = g + 1;
      while (h != end && h->word == g->word && h->rest == g->rest) ++h;
      if (h - g > 1 && g->rest == 9)  // else: equal keys
        SortLevel(base, g, h, depth + 8, tmp + (g - begin));
      g = h;
    }
    return;
  }
}

// Fills `refs` (room for `entries`) with the records of `chunk` [base, base + bytes) in key
// order; `tmp`: room for as many.
void SortChunk(const char* base, std::size_t bytes, [[maybe_unused]] std::size_t entries,
               SortRef* refs, SortRef* tmp, std::size_t* common_out) {
  std::size_t filled = 0;
  std::size_t common = std::string::npos;
  std::string_view first;
  for (std::size_t at = 0; at < bytes;) {
    const std::uint32_t k = GetU32(base + at), v = GetU32(base + at + 4);
    const std::string_view key(base + at + 8, k);
    if (common == std::string::npos) {
      first = key;
      common = key.size();
    } else {
      std::size_t i = 0;
      const std::size_t n = std::min(common, key.size());
      while (i < n && key[i] == first[i]) ++i;
      common = i;
    }
    assert(filled < entries);
    refs[filled++] = {0, static_cast<std::uint32_t>(at), 0};
    at += 8 + std::size_t{k} + v;
  }
  assert(filled == entries);
  if (common == std::string::npos) common = 0;
  *common_out = common;
  if (filled > 0) SortLevel(base, refs, refs + filled, common, tmp);
}

// Where a chunk of `record_bytes` puts its refs, and what it then takes in all.
std::size_t RefsOffset(std::size_t record_bytes) {
  return (record_bytes + alignof(SortRef) - 1) / alignof(SortRef) * alignof(SortRef);
}
std::size_t SortedChunkBytes(std::size_t record_bytes, std::size_t entries) {
  return RefsOffset(record_bytes) + kSortBytesPerEntry * entries;
}

// Sorts a chunk's records in place of its buffer's free tail: TokenSort::Put adds a record only
// while SortedChunkBytes fits the buffer's capacity (but for a chunk of one record larger than
// that), so the refs take no memory of their own. Allocated per spill, they were mapped and
// faulted in ~40 times in a 1M-event rebuild; the resize still zero-fills them (~13 MiB per
// spill, no faults). Returns the refs, in key order; valid until the chunk is cleared.
std::span<const SortRef> SortChunkInPlace(BulkBuffer& chunk, std::size_t entries,
                                          std::size_t* common_out) {
  const std::size_t records = chunk.size();
  chunk.resize(SortedChunkBytes(records, entries));
  auto* refs = reinterpret_cast<SortRef*>(chunk.data() + RefsOffset(records));
  assert(reinterpret_cast<std::uintptr_t>(refs) % alignof(SortRef) == 0);
  SortChunk(chunk.data(), records, entries, refs, refs + entries, common_out);
  return {refs, entries};
}

}  // namespace

// A chunk being sorted and written as a run on a thread of its own.
struct TokenSort::Spilling {
  char tag = 0;
  BulkBuffer chunk;
  BulkBuffer write_buffer;  // the run writer's
  std::size_t entries = 0;
  std::string path;
  std::thread thread;
  // Set by the thread: the run's common prefix length and first key (Runs::Note), its status.
  std::size_t common = 0;
  std::string first_key;
  Status status = Status::Ok();
};

Result<std::unique_ptr<TokenSort>> TokenSort::Create(const std::string& parent,
                                                     std::size_t chunk_bytes) {
  std::error_code ec;
  const std::filesystem::path base =
      parent.empty() ? std::filesystem::temp_directory_path(ec) : std::filesystem::path(parent);
  std::string tmpl = (base / "tokenledger-sort-XXXXXX").string();
  if (!::mkdtemp(tmpl.data())) {
    return Error{ErrorCode::kUnavailable,
                 "cannot create a temporary directory in '" + base.string() +
                     "' (choose another with --temp-dir)",
                 {}};
  }
  std::unique_ptr<TokenSort> sort(new TokenSort());
  sort->dir_ = tmpl;
  sort->chunk_bytes_ = chunk_bytes;
  return sort;
}

TokenSort::~TokenSort() {
  for (auto& sp : spilling_) sp->thread.join();
  runs_.clear();
  std::error_code ec;
  if (!dir_.empty()) std::filesystem::remove_all(dir_, ec);
}

void TokenSort::EncodeEvent(const events::EventEnvelope& e, std::string& records) {
  const std::size_t header = records.size();
  records.append(8, '\0');  // the sizes, filled in below
  records.append(e.stream.Bytes());
  PutU64(records, e.stream_version);
  PutU64(records, e.seq);
  const std::size_t value = records.size();
  std::string& v = records;
  PutU64(v, static_cast<std::uint64_t>(e.at));
  std::visit(
      [&](const auto& d) {
        using T = std::decay_t<decltype(d)>;
        if constexpr (std::is_same_v<T, events::TokenCreated>) {
          v.push_back(kCreated);
          v.append(d.account_id.Bytes());
          PutOptId(v, d.environment_id);
          v.push_back(static_cast<char>(d.scope));
          PutU64(v, static_cast<std::uint64_t>(d.expires_at));
          PutOptId(v, d.created_by_admin_user_id);
          PutOptId(v, d.agent_id);
          PutOptId(v, d.agent_deployment_id);
          PutOptString(v, d.signing_kid);
        } else if constexpr (std::is_same_v<T, events::TokenSuspended>) {
          v.push_back(kSuspended);
        } else if constexpr (std::is_same_v<T, events::TokenActivated>) {
          v.push_back(kActivated);
        } else if constexpr (std::is_same_v<T, events::TokenRevoked>) {
          v.push_back(kRevoked);
        } else if constexpr (std::is_same_v<T, events::TokenDeleted>) {
          v.push_back(kDeleted);
        } else if constexpr (std::is_same_v<T, events::TokenUsed>) {
          v.push_back(kUsed);
          PutU64(v, static_cast<std::uint64_t>(d.used_at));
        } else if constexpr (std::is_same_v<T, events::SigningKeyRotated>) {
          v.push_back(kKeyRotated);
          PutOptString(v, d.kid);
          PutOptString(v, d.previous_kid);
          PutOptString(v, d.by);
        } else {
          static_assert(std::is_same_v<T, events::SigningKeyRetired>);
          v.push_back(kKeyRetired);
          PutOptString(v, d.kid);
          PutU64(v, d.active_tokens);
          PutOptString(v, d.by);
        }
      },
      e.data);
  const auto k = static_cast<std::uint32_t>(kEventKeyBytes);
  const auto n = static_cast<std::uint32_t>(records.size() - value);
  std::memcpy(records.data() + header, &k, 4);
  std::memcpy(records.data() + header + 4, &n, 4);
}

Status TokenSort::Add(const events::EventEnvelope& e) {
  encoded_.clear();
  EncodeEvent(e, encoded_);
  return AddEncoded(encoded_);
}

Status TokenSort::AddEncoded(std::string_view records) {
  while (!records.empty()) {
    assert(records.size() >= 8);
    std::uint32_t k, v;
    std::memcpy(&k, records.data(), 4);
    std::memcpy(&v, records.data() + 4, 4);
    assert(k == kEventKeyBytes && records.size() >= 8 + std::size_t{k} + v);
    ++count_;
    if (Status s = Put(kEventsTag, records.substr(8, k), records.substr(8 + k, v)); !s) return s;
    records.remove_prefix(8 + std::size_t{k} + v);
  }
  return Status::Ok();
}

Status TokenSort::AddRaw(char tag, std::string_view key, std::string_view value) {
  return Put(tag, key, value);
}

Status TokenSort::Put(char tag, std::string_view key_tail, std::string_view value) {
  // A chunk's share of the memory, as its buffer's capacity (a std::string asks for one byte
  // more than its capacity: a whole number of huge pages). The records and their refs
  // (SortChunkInPlace) stay within it: a record that would not fit spills the chunk first.
  const std::size_t share = chunk_bytes_ / kTokenSortChunkBuffers - 1;
  const std::size_t record = 9 + key_tail.size() + value.size();
  if (chunk_entries_ &&
      (tag != chunk_tag_ || SortedChunkBytes(chunk_.size() + record, chunk_entries_ + 1) > share)) {
    if (Status s = Spill(); !s) return s;
  }
  if (chunk_.capacity() < share) chunk_.reserve(share);
  chunk_tag_ = tag;
  const auto k = static_cast<std::uint32_t>(key_tail.size() + 1);
  const auto v = static_cast<std::uint32_t>(value.size());
  char header[9];
  std::memcpy(header, &k, 4);
  std::memcpy(header + 4, &v, 4);
  header[8] = tag;  // the key starts with its tag, as RawKey expects
  chunk_.append(header, 9);
  chunk_.append(key_tail);
  chunk_.append(value);
  ++chunk_entries_;
  return Status::Ok();
}

Status TokenSort::Spill() {
  if (chunk_entries_ == 0) return Status::Ok();
  if (spilling_.size() + 1 >= kTokenSortChunkBuffers) {
    if (Status s = ReapOldest(); !s) return s;
  }
  auto sp = std::make_unique<Spilling>();
  sp->tag = chunk_tag_;
  sp->chunk.swap(chunk_);
  sp->entries = chunk_entries_;
  sp->path = dir_ + "/run-" + std::to_string(next_file_++);
  // Buffers of chunks already written, reused (each fresh one is tens of MiB to fault in).
  if (!spare_chunks_.empty()) {
    chunk_.swap(spare_chunks_.back());
    spare_chunks_.pop_back();
  }
  if (!spare_write_buffers_.empty()) {
    sp->write_buffer.swap(spare_write_buffers_.back());
    spare_write_buffers_.pop_back();
  }
  chunk_.clear();
  chunk_entries_ = 0;
  Spilling* raw = sp.get();
  raw->thread = std::thread([raw] { raw->status = WriteRun(*raw); });
  spilling_.push_back(std::move(sp));
  return Status::Ok();
}

Status TokenSort::ReapOldest() {
  std::unique_ptr<Spilling> sp = std::move(spilling_.front());
  spilling_.pop_front();
  sp->thread.join();
  spare_chunks_.push_back(std::move(sp->chunk));
  spare_write_buffers_.push_back(std::move(sp->write_buffer));
  if (!sp->status) return sp->status;
  // Runs are registered here, in the order they were started, by this thread only.
  auto& runs = runs_[sp->tag];
  if (!runs) runs = std::make_unique<Runs>();
  runs->Note(sp->common, sp->first_key);
  runs->files.push_back(sp->path);
  if (runs->files.size() < kTokenSortMaxRuns) return Status::Ok();
  // Merge them into one, bounding the read buffers of the final merge.
  const std::string merged = dir_ + "/run-" + std::to_string(next_file_++);
  MergeIterator it(runs->Sources(), runs->Common());
  BulkBuffer& merge_buffer = spare_write_buffers_.back();  // the reaped spill's, just kept
  RunWriter mw(merged, merge_buffer);
  for (it.SeekToFirst(); it.Valid(); it.Next()) {
    if (!mw.Add(it.key().ToStringView(), it.value().ToStringView()))
      return SortError("writing '" + merged + "'");
  }
  if (!it.status().ok()) return SortError("merging runs");
  if (!mw.Close()) return SortError("writing '" + merged + "'");
  for (const auto& f : runs->files) ::unlink(f.c_str());
  runs->files = {merged};
  return Status::Ok();
}

Status TokenSort::Wait() {
  Status first = Status::Ok();
  while (!spilling_.empty()) {
    if (Status s = ReapOldest(); !s && first) first = s;
  }
  return first;
}

Status TokenSort::WriteRun(Spilling& sp) {
  const std::span<const SortRef> order = SortChunkInPlace(sp.chunk, sp.entries, &sp.common);
  sp.first_key.assign(sp.chunk.data() + 8, GetU32(sp.chunk.data()));
  RunWriter w(sp.path, sp.write_buffer);
  for (std::size_t i = 0; i < order.size(); ++i) {
    // Records are visited in key order, so each is a cache miss: ask for one a few ahead.
    if (i + kPrefetchAhead < order.size())
      __builtin_prefetch(sp.chunk.data() + order[i + kPrefetchAhead].offset);
    const char* r = sp.chunk.data() + order[i].offset;
    const std::uint32_t k = GetU32(r), v = GetU32(r + 4);
    if (!w.Add(std::string_view(r + 8, k), std::string_view(r + 8 + k, v)))
      return SortError("writing '" + sp.path + "'");
  }
  if (!w.Close()) return SortError("writing '" + sp.path + "'");
  return Status::Ok();
}

Status TokenSort::Finish() {
  if (Status s = Wait(); !s) return s;
  if (chunk_entries_ == 0) return Status::Ok();
  auto& runs = runs_[chunk_tag_];
  if (!runs) runs = std::make_unique<Runs>();
  if (SortedChunkBytes(chunk_.size(), chunk_entries_) <=
          std::min(kTokenSortSmallChunkBytes, chunk_bytes_ / kTokenSortChunkBuffers) &&
      runs->order.empty()) {
    // A small last chunk is iterated from memory (a copy of its size: the chunk's buffer is
    // reused for the next tag).
    std::size_t common = 0;
    [[maybe_unused]] const std::size_t records = chunk_.size();
    runs->memory.assign(chunk_);  // before the refs take the chunk's tail
    runs->order.reserve(chunk_entries_);
    for (const SortRef& r : SortChunkInPlace(chunk_, chunk_entries_, &common))
      runs->order.push_back(r.offset);
    runs->Note(common, std::string_view(chunk_.data() + 8, GetU32(chunk_.data())));
    assert(runs->memory.size() == records);
    chunk_.clear();
    chunk_entries_ = 0;
  } else if (Status s = Spill(); !s) {
    return s;
  }
  return Wait();
}

void TokenSort::ReleaseBuffers() {
  assert(spilling_.empty() && chunk_entries_ == 0);
  BulkBuffer().swap(chunk_);
  spare_chunks_.clear();
  spare_write_buffers_.clear();
}

std::unique_ptr<rocksdb::Iterator> TokenSort::NewIterator(char tag) {
  const bool writing = std::any_of(spilling_.begin(), spilling_.end(),
                                   [tag](const auto& sp) { return sp->tag == tag; });
  if (chunk_tag_ == tag || writing) {  // its last runs may still be being written
    if (Status s = Finish(); !s) {
      return std::make_unique<MergeIterator>(std::vector<std::unique_ptr<Source>>{}, 0,
                                             rocksdb::Status::IOError(s.error().message));
    }
  }
  auto it = runs_.find(tag);
  if (it == runs_.end())
    return std::make_unique<MergeIterator>(std::vector<std::unique_ptr<Source>>{});
  return std::make_unique<MergeIterator>(it->second->Sources(), it->second->Common());
}

bool TokenSort::Decode(rocksdb::Slice key, rocksdb::Slice value, events::EventEnvelope* out) {
  if (key.size() != 1 + kEventKeyBytes || key[0] != kEventsTag || value.size() < 9) return false;
  auto id = Id::FromBytes(std::string_view(key.data() + 1, Id::kBytes));
  if (!id) return false;
  out->stream = *id;
  const char* k = key.data() + 1 + Id::kBytes;
  out->stream_version = GetU64(k);
  out->seq = GetU64(k);
  const char* p = value.data();
  const char* end = value.data() + value.size();
  out->at = static_cast<Micros>(GetU64(p));
  const char tag = *p++;
  auto opt_id = [&](std::optional<Id>& dst) {
    if (p >= end) return false;
    const bool has = *p++ != 0;
    if (!has) {
      dst.reset();
      return true;
    }
    if (end - p < static_cast<std::ptrdiff_t>(Id::kBytes)) return false;
    dst = Id::FromBytes(std::string_view(p, Id::kBytes));
    p += Id::kBytes;
    return dst.has_value();
  };
  auto opt_string = [&](std::optional<std::string>& dst) {
    if (p >= end) return false;
    if (*p++ == 0) {
      dst.reset();
      return true;
    }
    if (end - p < 8) return false;
    const std::uint64_t size = GetU64(p);
    if (static_cast<std::uint64_t>(end - p) < size) return false;
    dst.emplace(p, size);
    p += size;
    return true;
  };
  switch (tag) {
    case kCreated: {
      events::TokenCreated c;
      if (end - p < static_cast<std::ptrdiff_t>(Id::kBytes)) return false;
      auto account = Id::FromBytes(std::string_view(p, Id::kBytes));
      if (!account) return false;
      c.account_id = *account;
      p += Id::kBytes;
      if (!opt_id(c.environment_id) || end - p < 9) return false;
      c.scope = static_cast<events::TokenScope>(*p++);
      c.expires_at = static_cast<Micros>(GetU64(p));
      if (!opt_id(c.created_by_admin_user_id) || !opt_id(c.agent_id) ||
          !opt_id(c.agent_deployment_id) || !opt_string(c.signing_kid))
        return false;
      out->data = std::move(c);
      return true;
    }
    case kSuspended:
      out->data = events::TokenSuspended{};
      return true;
    case kActivated:
      out->data = events::TokenActivated{};
      return true;
    case kRevoked:
      out->data = events::TokenRevoked{};
      return true;
    case kDeleted:
      out->data = events::TokenDeleted{};
      return true;
    case kUsed:
      if (end - p < 8) return false;
      out->data = events::TokenUsed{static_cast<Micros>(GetU64(p))};
      return true;
    case kKeyRotated: {
      events::SigningKeyRotated k;
      std::optional<std::string> kid, by;
      if (!opt_string(kid) || !opt_string(k.previous_kid) || !opt_string(by) || !kid || !by)
        return false;
      k.kid = std::move(*kid);
      k.by = std::move(*by);
      out->data = std::move(k);
      return true;
    }
    case kKeyRetired: {
      events::SigningKeyRetired k;
      std::optional<std::string> kid, by;
      if (!opt_string(kid) || !kid || end - p < 8) return false;
      k.active_tokens = GetU64(p);
      if (!opt_string(by) || !by) return false;
      k.kid = std::move(*kid);
      k.by = std::move(*by);
      out->data = std::move(k);
      return true;
    }
    default:
      return false;
  }
}

}  // namespace tokenledger::store
