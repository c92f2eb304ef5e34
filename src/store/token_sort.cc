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
#include "src/store/sorted_runs.h"
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

// One tag's runs: files, and at most one small chunk kept in memory.
class TokenSort::Runs {
 public:
  // The files by level: level 0 the runs written from chunks, level k + 1 the merges of a full
  // level k (max_runs_ runs). So each entry is rewritten once per level it climbs: merging
  // every run into one whenever max_runs_ piled up, as before, rewrote what earlier merges had
  // written each time, ~3 times over for a 10M-event rebuild's list index (~340 runs).
  std::vector<std::vector<std::string>> levels;
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

  std::size_t FileCount() const {
    std::size_t n = 0;
    for (const auto& level : levels) n += level.size();
    return n;
  }

  std::vector<std::unique_ptr<Source>> Sources() const {
    std::vector<std::unique_ptr<Source>> sources;
    for (const auto& level : levels)
      for (const auto& f : level) sources.push_back(NewFileSource(f));
    if (!order.empty()) sources.push_back(NewMemorySource(&memory, &order));
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
                                                     std::size_t chunk_bytes,
                                                     std::size_t max_runs) {
  assert(max_runs >= 2);
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
  sort->max_runs_ = max_runs;
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
  const std::size_t value = records.size();  // where the value starts
  PutU64(records, static_cast<std::uint64_t>(e.at));
  std::visit(
      [&](const auto& d) {
        using T = std::decay_t<decltype(d)>;
        if constexpr (std::is_same_v<T, events::TokenCreated>) {
          records.push_back(kCreated);
          records.append(d.account_id.Bytes());
          PutOptId(records, d.environment_id);
          records.push_back(static_cast<char>(d.scope));
          PutU64(records, static_cast<std::uint64_t>(d.expires_at));
          PutOptId(records, d.created_by_admin_user_id);
          PutOptId(records, d.agent_id);
          PutOptId(records, d.agent_deployment_id);
          PutOptString(records, d.signing_kid);
        } else if constexpr (std::is_same_v<T, events::TokenSuspended>) {
          records.push_back(kSuspended);
        } else if constexpr (std::is_same_v<T, events::TokenActivated>) {
          records.push_back(kActivated);
        } else if constexpr (std::is_same_v<T, events::TokenRevoked>) {
          records.push_back(kRevoked);
        } else if constexpr (std::is_same_v<T, events::TokenDeleted>) {
          records.push_back(kDeleted);
        } else if constexpr (std::is_same_v<T, events::TokenUsed>) {
          records.push_back(kUsed);
          PutU64(records, static_cast<std::uint64_t>(d.used_at));
        } else if constexpr (std::is_same_v<T, events::SigningKeyRotated>) {
          records.push_back(kKeyRotated);
          PutOptString(records, d.kid);
          PutOptString(records, d.previous_kid);
          PutOptString(records, d.by);
        } else {
          static_assert(std::is_same_v<T, events::SigningKeyRetired>);
          records.push_back(kKeyRetired);
          PutOptString(records, d.kid);
          PutU64(records, d.active_tokens);
          PutOptString(records, d.by);
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
  if (runs->levels.empty()) runs->levels.emplace_back();
  runs->levels[0].push_back(sp->path);
  // A full level becomes one run of the next (which may fill it in turn).
  for (std::size_t level = 0;
       level < runs->levels.size() && runs->levels[level].size() >= max_runs_; ++level) {
    if (level + 1 == runs->levels.size()) runs->levels.emplace_back();
    // The reaped spill's write buffer, just kept.
    if (Status s = MergeFiles(runs->levels[level], runs->levels[level + 1], runs->Common(),
                              spare_write_buffers_.back());
        !s) {
      return s;
    }
  }
  return Status::Ok();
}

Status TokenSort::MergeFiles(std::vector<std::string>& files, std::vector<std::string>& into,
                             std::size_t common, BulkBuffer& buffer) {
  assert(!files.empty());
  std::vector<std::unique_ptr<Source>> sources;
  for (const auto& f : files) sources.push_back(NewFileSource(f));
  const std::string merged = dir_ + "/run-" + std::to_string(next_file_++);
  std::unique_ptr<rocksdb::Iterator> it = NewMergeIterator(std::move(sources), common);
  RunWriter mw(merged, buffer);
  for (it->SeekToFirst(); it->Valid(); it->Next()) {
    if (!mw.Add(it->key().ToStringView(), it->value().ToStringView()))
      return SortError("writing '" + merged + "'");
  }
  if (!it->status().ok()) return SortError("merging runs");
  if (!mw.Close()) return SortError("writing '" + merged + "'");
  for (const auto& f : files) ::unlink(f.c_str());
  files.clear();
  into.push_back(merged);
  return Status::Ok();
}

Status TokenSort::BoundFinalMerge(Runs& runs) {
  while (runs.FileCount() > max_runs_) {
    // The lowest levels' files, max_runs_ of them (at least two: there are more), into one.
    std::vector<std::string> lowest;
    std::size_t top = 0;
    for (std::size_t level = 0; level < runs.levels.size() && lowest.size() < max_runs_; ++level) {
      auto& files = runs.levels[level];
      for (; !files.empty() && lowest.size() < max_runs_; files.pop_back()) {
        lowest.push_back(std::move(files.back()));
        top = level;
      }
    }
    assert(lowest.size() >= 2);
    BulkBuffer own;  // after ReleaseBuffers none is kept
    BulkBuffer& buffer = spare_write_buffers_.empty() ? own : spare_write_buffers_.back();
    if (Status s = MergeFiles(lowest, runs.levels[top], runs.Common(), buffer); !s) return s;
  }
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
      return NewMergeIterator({}, 0, rocksdb::Status::IOError(s.error().message));
    }
  }
  auto it = runs_.find(tag);
  if (it == runs_.end()) return NewMergeIterator({});
  if (Status s = BoundFinalMerge(*it->second); !s) {
    return NewMergeIterator({}, 0, rocksdb::Status::IOError(s.error().message));
  }
  return NewMergeIterator(it->second->Sources(), it->second->Common());
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
