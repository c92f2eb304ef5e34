#include "src/store/skiplist_memtable.h"

#include <algorithm>
#include <atomic>
#include <bit>
#include <cassert>
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <new>
#include <string>
#include <string_view>
#include <unordered_map>

namespace tokenledger::store {
namespace {

using rocksdb::Slice;
using KeyComparator = rocksdb::MemTableRep::KeyComparator;

// RocksDB's InlineSkipList defaults: a node has height h with probability 4^-(h-1), so a
// search looks at ~4 nodes per level over log4(entries) levels; 12 levels serve 4^12 (16M)
// entries, far more than a memtable holds.
constexpr int kMaxHeight = 12;
constexpr std::uint32_t kBranching = 4;

static_assert(std::endian::native == std::endian::little, "RocksDB's fixed64 is little-endian");

// The internal key a memtable entry starts with, after its varint32 length (MemTable::Add).
Slice EntryKey(const char* entry) {
  std::uint32_t length = static_cast<unsigned char>(*entry++);
  if (length >= 128) {
    length &= 127;
    for (int shift = 7; shift <= 28; shift += 7) {
      const std::uint32_t byte = static_cast<unsigned char>(*entry++);
      length |= (byte & 127) << shift;
      if (byte < 128) break;
    }
  }
  return {entry, length};
}

// The memtable's order (InternalKeyComparator::CompareKeySeq over RocksDB's
// BytewiseComparator): user keys bytewise, then the newer sequence number first. An internal
// key is the user key and 8 bytes, (sequence << 8 | type), little-endian; the type is not
// compared.
int CompareInternalKeys(const Slice& a, const Slice& b) {
  const std::size_t a_user = a.size() - 8, b_user = b.size() - 8;
  const int r = std::memcmp(a.data(), b.data(), std::min(a_user, b_user));
  if (r != 0) return r;
  if (a_user != b_user) return a_user < b_user ? -1 : 1;
  std::uint64_t a_tag, b_tag;
  std::memcpy(&a_tag, a.data() + a_user, 8);
  std::memcpy(&b_tag, b.data() + b_user, 8);
  a_tag >>= 8;
  b_tag >>= 8;
  return a_tag > b_tag ? -1 : a_tag < b_tag ? 1 : 0;
}

// A node and its entry, one allocation from the memtable's arena:
//   [key][height][next[0]] ... [next[height - 1]] [entry: varint32 length, internal key, value]
// `next` is a trailing array of `height` links (LevelDB's layout; the allocation has room).
struct Node {
  const char* key;  // the entry, right after the links
  int height;
  std::atomic<Node*> next[1];

  // Readers load with acquire and the writer links with release, so a reader that reaches
  // a node sees it fully initialised (LevelDB's skiplist).
  Node* Next(int level) const { return next[level].load(std::memory_order_acquire); }
  void SetNext(int level, Node* x) { next[level].store(x, std::memory_order_release); }
  // Only before the node is reachable, or for the writer's own reads.
  Node* RelaxedNext(int level) const { return next[level].load(std::memory_order_relaxed); }
  void RelaxedSetNext(int level, Node* x) { next[level].store(x, std::memory_order_relaxed); }
};

class SkipListRep;

// Memory for iterators. RocksDB places a memtable iterator in the arena of the read asking for
// it (GetIterator(arena)) and later only runs its destructor; the arena's allocation API is
// not among the installed headers. So an iterator's block comes from a small cache per thread
// and its destructor gives the block back to the cache of the thread it runs on, which reuses
// it only in a later GetIterator, after the destructor has returned. `delete` (RocksDB's Get,
// through an iterator made without an arena) runs the same destructor; the class's operator
// delete then has nothing to free.
class IteratorBlocks {
 public:
  static constexpr int kKept = 16;  // per thread; more are freed
  static void* Take(std::size_t size);
  static void Give(void* block);

 private:
  ~IteratorBlocks();
  static IteratorBlocks& Mine();
  void* blocks_[kKept] = {};
  int count_ = 0;
  static thread_local bool gone_;  // this thread's cache was destroyed (thread exit)
};

thread_local bool IteratorBlocks::gone_ = false;

class ListIterator final : public rocksdb::MemTableRep::Iterator {
 public:
  // `pooled`: its memory is a block of IteratorBlocks, given back by the destructor.
  ListIterator(const SkipListRep* list, bool pooled) : list_(list), pooled_(pooled) {}
  ~ListIterator() override {
    if (pooled_) IteratorBlocks::Give(this);
  }
  // Its memory is never the heap's: a pooled block, which the destructor gave back, or the
  // per-thread buffer of GetDynamicPrefixIterator. So `delete` frees nothing.
  static void operator delete(void*) noexcept {}
  // Made only in memory of ours (placement); a plain `new` would leak, so there is none.
  static void* operator new(std::size_t) = delete;
  static void* operator new(std::size_t, void* where) noexcept { return where; }

  bool Valid() const override { return node_ != nullptr; }
  const char* key() const override {
    assert(Valid());
    return node_->key;
  }
  void Next() override;
  void Prev() override;
  void Seek(const Slice& internal_key, const char* memtable_key) override;
  void SeekForPrev(const Slice& internal_key, const char* memtable_key) override;
  void SeekToFirst() override;
  void SeekToLast() override;

 private:
  const SkipListRep* list_;
  const Node* node_ = nullptr;
  bool pooled_;
};

class SkipListRep final : public rocksdb::MemTableRep {
 public:
  // `transform`: the family's read-side prefix extractor, which must be null (see
  // GetDynamicPrefixIterator).
  SkipListRep(const KeyComparator& compare, rocksdb::Allocator* allocator,
              const rocksdb::SliceTransform* transform)
      : MemTableRep(allocator), compare_(compare), head_(NewNode(kMaxHeight, 0)) {
    // Checked in every build, once per memtable: a mistake here would corrupt the family.
    if (transform != nullptr) {
      Die("a family with this memtable may not have a read-side prefix extractor");
    }
    if (!ComparesAsBytewise()) {
      Die("a family with this memtable must compare keys with RocksDB's BytewiseComparator");
    }
  }

  rocksdb::KeyHandle Allocate(const std::size_t len, char** buf) override {
    Node* x = NewNode(RandomHeight(), len);
    *buf = const_cast<char*>(x->key);
    return x;
  }

  // REQUIRES (RocksDB): nothing equal to the entry is in the list.
  void Insert(rocksdb::KeyHandle handle) override {
    [[maybe_unused]] const bool inserted = InsertKey(handle);
    assert(inserted);
  }

  bool InsertKey(rocksdb::KeyHandle handle) override {
    Node* x = static_cast<Node*>(handle);
    const Slice key = Decode(x->key);
    Node* prev[kMaxHeight];
    Node* next = FindGreaterOrEqual(key, prev);
    if (next != nullptr && Compare(next->key, key) == 0) return false;  // same key and seq
    const int height = x->height;
    const int max_height = MaxHeight();
    if (height > max_height) {
      for (int i = max_height; i < height; ++i) prev[i] = head_;
      // A reader that sees the new height before the links finds null at those levels of
      // the head and goes down a level: harmless (LevelDB).
      max_height_.store(height, std::memory_order_relaxed);
    }
    for (int i = 0; i < height; ++i) {
      x->RelaxedSetNext(i, prev[i]->RelaxedNext(i));
      prev[i]->SetNext(i, x);  // publishes x at level i
    }
    return true;
  }

  // With a family's memtable_insert_with_hint_prefix_extractor, RocksDB gives each key range
  // of this memtable its own `hint` slot; the list keeps, by the slot's address, the node last
  // inserted in that range. A node of height 1 (3 in 4 are) whose key falls right after that
  // one (the next entry of a range that grows at its end: a list range sorted by `id`,
  // `inserted_at` or `updated_at`) needs only its link on level 0: two comparisons instead of
  // a search from the top. Any other goes in by InsertKey. Sound because this thread is the
  // only one inserting: the two nodes compared stay neighbours until the link is published.
  // The slot itself is left alone: RocksDB 7.8 hands the same slots to the memtable's
  // range-deletion table, RocksDB's own skiplist, which keeps its splice there
  // (facebook/rocksdb#5118), so a DeleteRange on the family stays safe.
  void InsertWithHint(rocksdb::KeyHandle handle, void** hint) override {
    [[maybe_unused]] const bool inserted = InsertKeyWithHint(handle, hint);
    assert(inserted);
  }
  bool InsertKeyWithHint(rocksdb::KeyHandle handle, void** hint) override {
    Node* x = static_cast<Node*>(handle);
    Node*& last = last_in_range_[hint];
    if (last != nullptr && x->height == 1) {
      const Slice key = Decode(x->key);
      if (Compare(last->key, key) < 0) {
        Node* next = last->RelaxedNext(0);
        if (next == nullptr || Compare(next->key, key) > 0) {
          x->RelaxedSetNext(0, next);
          last->SetNext(0, x);
          last = x;
          return true;
        }
      }
    }
    if (!InsertKey(handle)) return false;  // refused: not in the list, so not a hint either
    last = x;
    return true;
  }

  bool Contains(const char* key) const override {
    const Slice k = Decode(key);
    const Node* x = FindGreaterOrEqual(k, nullptr);
    return x != nullptr && Compare(x->key, k) == 0;
  }

  // Everything is allocated from the memtable's arena, which RocksDB counts itself.
  std::size_t ApproximateMemoryUsage() override { return 0; }

  std::uint64_t ApproximateNumEntries(const Slice& start_ikey, const Slice& end_ikey) override {
    const std::uint64_t start = EstimateCount(start_ikey);
    const std::uint64_t end = EstimateCount(end_ikey);
    return end >= start ? end - start : 0;
  }

  rocksdb::MemTableRep::Iterator* GetIterator(rocksdb::Arena* /*arena*/) override {
    return new (IteratorBlocks::Take(sizeof(ListIterator))) ListIterator(this, true);
  }

  // RocksDB asks for this iterator in two places (a third, MemTableIterator's, needs a
  // read-side prefix extractor, which the constructor refuses), each done with it before it
  // returns: MemTableRep::Get (every memtable look-up; RocksDB's own lists override Get,
  // which the installed headers do not let us do, LookupKey not being among them), which
  // never destroys it (the default Get leaks it), and MemTable::CountSuccessiveMergeEntries
  // (a merge's `max_successive_merges`), which deletes it. So each call makes a fresh iterator
  // in one buffer per thread: nothing to free, and `delete` frees nothing.
  rocksdb::MemTableRep::Iterator* GetDynamicPrefixIterator(rocksdb::Arena* /*arena*/) override {
    alignas(ListIterator) static thread_local unsigned char one_at_a_time[sizeof(ListIterator)];
    return new (one_at_a_time) ListIterator(this, false);
  }

  Slice Decode(const char* entry) const {
    const Slice key = EntryKey(entry);
    assert(key == compare_.decode_key(entry));
    return key;
  }
  // RocksDB's comparison, done here: through its comparator each was ~105 instructions
  // (two virtual calls, a thread-local performance counter, the length decoded again).
  int Compare(const char* entry, const Slice& key) const {
    const int r = CompareInternalKeys(EntryKey(entry), key);
    assert((r < 0) == (compare_(entry, key) < 0) && (r > 0) == (compare_(entry, key) > 0) &&
           "every family of the store compares keys with RocksDB's BytewiseComparator");
    return r;
  }
  const Node* First() const { return head_->Next(0); }

  // The first node at or after `key` (null if none); with `prev`, the last node before it on
  // every level below MaxHeight().
  Node* FindGreaterOrEqual(const Slice& key, Node** prev) const {
    Node* x = head_;
    int level = MaxHeight() - 1;
    while (true) {
      Node* next = x->Next(level);
      if (next != nullptr && Compare(next->key, key) < 0) {
        x = next;  // key is after next: keep going on this level
      } else {
        if (prev != nullptr) prev[level] = x;
        if (level == 0) return next;
        --level;
      }
    }
  }

  // The last node before `key`; null if there is none.
  const Node* FindLessThan(const Slice& key) const {
    const Node* x = head_;
    int level = MaxHeight() - 1;
    while (true) {
      const Node* next = x->Next(level);
      if (next == nullptr || Compare(next->key, key) >= 0) {
        if (level == 0) return x == head_ ? nullptr : x;
        --level;
      } else {
        x = next;
      }
    }
  }

  // The last node; null if the list is empty.
  const Node* FindLast() const {
    const Node* x = head_;
    int level = MaxHeight() - 1;
    while (true) {
      const Node* next = x->Next(level);
      if (next == nullptr) {
        if (level == 0) return x == head_ ? nullptr : x;
        --level;
      } else {
        x = next;
      }
    }
  }

 private:
  int MaxHeight() const { return max_height_.load(std::memory_order_relaxed); }

  // Node and entry in one allocation, its links null. Allocations are rounded up to whole
  // links, so the arena (which hands out unaligned memory from a block's end, and here to this
  // list only) keeps them aligned; if it ever did not, the node moves to the next aligned byte.
  Node* NewNode(int height, std::size_t len) {
    assert(height >= 1 && height <= kMaxHeight);
    const std::size_t links = sizeof(Node) + sizeof(std::atomic<Node*>) * (height - 1);
    const std::size_t bytes = (links + len + alignof(Node) - 1) / alignof(Node) * alignof(Node);
    char* raw = nullptr;
    MemTableRep::Allocate(bytes, &raw);
    if (reinterpret_cast<std::uintptr_t>(raw) % alignof(Node) != 0) {
      MemTableRep::Allocate(bytes + alignof(Node) - 1, &raw);
      raw +=
          (alignof(Node) - reinterpret_cast<std::uintptr_t>(raw) % alignof(Node)) % alignof(Node);
    }
    Node* x = new (raw) Node;
    x->key = raw + links;
    x->height = height;
    for (int i = 0; i < height; ++i) new (&x->next[i]) std::atomic<Node*>(nullptr);
    return x;
  }

  // Called by the inserting thread only (through Allocate).
  int RandomHeight() {
    int height = 1;
    while (height < kMaxHeight && NextRandom() % kBranching == 0) ++height;
    return height;
  }
  std::uint32_t NextRandom() {  // xorshift32: the height needs no more
    random_ ^= random_ << 13;
    random_ ^= random_ >> 17;
    random_ ^= random_ << 5;
    return random_;
  }

  // About how many entries are before `key` (InlineSkipList::EstimateCount): each step along
  // a level skips ~kBranching^level entries.
  std::uint64_t EstimateCount(const Slice& key) const {
    std::uint64_t count = 0;
    const Node* x = head_;
    int level = MaxHeight() - 1;
    while (true) {
      const Node* next = x->Next(level);
      if (next == nullptr || Compare(next->key, key) >= 0) {
        if (level == 0) return count;
        count *= kBranching;
        --level;
      } else {
        x = next;
        ++count;
      }
    }
  }

  [[noreturn]] static void Die(const char* why) {
    std::fprintf(stderr, "tokenledger: memtable: %s\n", why);
    std::abort();
  }

  // Whether the memtable's comparator orders as CompareInternalKeys does, on entries that
  // tell a bytewise comparator from others (unsigned bytes, prefixes, sequence numbers).
  bool ComparesAsBytewise() const {
    auto entry = [](std::string_view user_key, std::uint64_t sequence) {
      std::string e(1, static_cast<char>(user_key.size() + 8));
      e += user_key;
      const std::uint64_t tag = sequence << 8 | 1;  // kTypeValue
      e.append(reinterpret_cast<const char*>(&tag), 8);
      return e;
    };
    const std::string samples[] = {entry("\x01", 5),     entry("\x80", 5), entry("\x80\x00", 5),
                                   entry("\x80\x00", 9), entry("b", 1),    entry("ab", 7)};
    for (const std::string& a : samples) {
      for (const std::string& b : samples) {
        const Slice b_key(b.data() + 1, b.size() - 1);
        const int theirs = compare_(a.data(), b_key), ours = Compare(a.data(), b_key);
        if ((theirs < 0) != (ours < 0) || (theirs > 0) != (ours > 0)) return false;
      }
    }
    return true;
  }

  const KeyComparator& compare_;
  Node* const head_;
  // The inserting thread's only: InsertKeyWithHint's node last inserted, per hint slot.
  std::unordered_map<void**, Node*> last_in_range_;
  std::atomic<int> max_height_{1};
  std::uint32_t random_ = 0xdeadbeef;
};

void ListIterator::Next() {
  assert(Valid());
  node_ = node_->Next(0);
}

void ListIterator::Prev() {
  assert(Valid());
  node_ = list_->FindLessThan(list_->Decode(node_->key));
}

void ListIterator::Seek(const Slice& internal_key, const char* memtable_key) {
  node_ = list_->FindGreaterOrEqual(
      memtable_key != nullptr ? list_->Decode(memtable_key) : internal_key, nullptr);
}

void ListIterator::SeekForPrev(const Slice& internal_key, const char* memtable_key) {
  const Slice target = memtable_key != nullptr ? list_->Decode(memtable_key) : internal_key;
  node_ = list_->FindGreaterOrEqual(target, nullptr);
  if (node_ == nullptr || list_->Compare(node_->key, target) > 0)
    node_ = list_->FindLessThan(target);
}

void ListIterator::SeekToFirst() { node_ = list_->First(); }

void ListIterator::SeekToLast() { node_ = list_->FindLast(); }

IteratorBlocks& IteratorBlocks::Mine() {
  static thread_local IteratorBlocks blocks;
  return blocks;
}

IteratorBlocks::~IteratorBlocks() {
  for (int i = 0; i < count_; ++i) ::operator delete(blocks_[i]);
  gone_ = true;
}

void* IteratorBlocks::Take(std::size_t size) {
  assert(size == sizeof(ListIterator));
  if (!gone_) {
    IteratorBlocks& mine = Mine();
    if (mine.count_ > 0) return mine.blocks_[--mine.count_];
  }
  return ::operator new(size);
}

void IteratorBlocks::Give(void* block) {
  // At thread exit, after this thread's cache is gone, a block is left to the process.
  if (gone_) return;
  IteratorBlocks& mine = Mine();
  if (mine.count_ == kKept) {
    ::operator delete(mine.blocks_[--mine.count_]);  // another block, given back earlier
  }
  mine.blocks_[mine.count_++] = block;
}

class SkipListMemTableFactory final : public rocksdb::MemTableRepFactory {
 public:
  const char* Name() const override { return "TokenledgerSkipList"; }
  using MemTableRepFactory::CreateMemTableRep;
  rocksdb::MemTableRep* CreateMemTableRep(const KeyComparator& compare,
                                          rocksdb::Allocator* allocator,
                                          const rocksdb::SliceTransform* transform,
                                          rocksdb::Logger* /*logger*/) override {
    return new SkipListRep(compare, allocator, transform);
  }
  bool IsInsertConcurrentlySupported() const override { return false; }
  // InsertKey refuses an entry equal to one in the list, as RocksDB's own list does.
  bool CanHandleDuplicatedKey() const override { return true; }
};

}  // namespace

std::shared_ptr<rocksdb::MemTableRepFactory> NewSkipListMemTableFactory() {
  return std::make_shared<SkipListMemTableFactory>();
}

}  // namespace tokenledger::store
