#include "src/store/sorted_runs.h"

#include <fcntl.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <utility>

#include "src/store/token_sort.h"

namespace tokenledger::store {

Error SortError(const std::string& what) {
  return Error{
      ErrorCode::kUnavailable, "temporary sort: " + what + ": " + std::strerror(errno), {}};
}

namespace {

// A run in memory: the chunk's records, in the order of `order` (record offsets).
class MemorySource final : public Source {
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
class FileSource final : public Source {
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
  std::vector<unsigned char> live_;  // whether source i has a current record
  std::vector<std::size_t> tree_;    // [0]: the winner; [1, k): the loser of each match
  bool valid_ = false, started_ = false;
};

}  // namespace

std::unique_ptr<Source> NewMemorySource(const BulkBuffer* data, const SortOrder* order) {
  return std::make_unique<MemorySource>(data, order);
}

std::unique_ptr<Source> NewFileSource(const std::string& path) {
  return std::make_unique<FileSource>(path);
}

std::unique_ptr<rocksdb::Iterator> NewMergeIterator(std::vector<std::unique_ptr<Source>> sources,
                                                    std::size_t common, rocksdb::Status status) {
  return std::make_unique<MergeIterator>(std::move(sources), common, std::move(status));
}

RunWriter::RunWriter(const std::string& path, BulkBuffer& buffer)
    : fd_(::open(path.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600)), buf_(buffer) {
  // One huge page: a write's worth and room for the record that crosses it.
  static_assert(kRunWriteBytes < kHugePageBytes);
  buf_.clear();
  if (buf_.capacity() < kHugePageBytes - 1) buf_.reserve(kHugePageBytes - 1);
}

RunWriter::~RunWriter() {
  if (fd_ >= 0) ::close(fd_);
}

bool RunWriter::Add(std::string_view key, std::string_view value) {
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

bool RunWriter::Close() {
  const bool ok = fd_ >= 0 && Flush() && ::close(fd_) == 0;
  fd_ = -1;
  return ok;
}

bool RunWriter::Flush() {
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

}  // namespace tokenledger::store
