#include "src/store/token_sort.h"

#include <rocksdb/memtablerep.h>
#include <stdlib.h>

#include <cstring>
#include <filesystem>

#include "src/store/keys.h"
#include "src/store/store_impl.h"

namespace tokenledger::store {
namespace {

constexpr std::size_t kBatchBytes = 4u << 20;

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

enum Tag : char { kCreated = 1, kSuspended, kActivated, kRevoked, kDeleted, kUsed };

}  // namespace

Result<std::unique_ptr<TokenSort>> TokenSort::Create(const std::string& parent) {
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
  rocksdb::Options o;
  o.create_if_missing = true;
  o.disable_auto_compactions = true;  // sorted runs are merged by the iterator
  o.write_buffer_size = kTokenSortWriteBufferBytes;
  o.max_write_buffer_number = 2;
  o.level0_slowdown_writes_trigger = 1 << 20;
  o.level0_stop_writes_trigger = 1 << 20;
  o.max_background_jobs = 1;
  o.compression = rocksdb::kNoCompression;
  o.max_open_files = 256;
  o.keep_log_file_num = 1;
  // Appends, sorted once when a buffer is flushed: far cheaper than skip-list inserts.
  o.memtable_factory = std::make_shared<rocksdb::VectorRepFactory>();
  o.allow_concurrent_memtable_write = false;
  rocksdb::DB* db = nullptr;
  rocksdb::Status s = rocksdb::DB::Open(o, sort->dir_, &db);
  if (!s.ok()) return StorageError(s, "creating the temporary sort database");
  sort->db_.reset(db);
  return sort;
}

TokenSort::~TokenSort() {
  if (db_) {
    db_->Close().PermitUncheckedError();
    db_.reset();
  }
  std::error_code ec;
  if (!dir_.empty()) std::filesystem::remove_all(dir_, ec);
}

Status TokenSort::Add(const events::EventEnvelope& e) {
  char key[1 + Id::kBytes + 16];
  key[0] = kEventsTag;
  std::memcpy(key + 1, e.stream.Bytes().data(), Id::kBytes);
  std::string tail;
  PutU64(tail, e.stream_version);
  PutU64(tail, e.seq);
  std::memcpy(key + 1 + Id::kBytes, tail.data(), 16);
  std::string v;
  v.reserve(96);
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
        } else if constexpr (std::is_same_v<T, events::TokenSuspended>) {
          v.push_back(kSuspended);
        } else if constexpr (std::is_same_v<T, events::TokenActivated>) {
          v.push_back(kActivated);
        } else if constexpr (std::is_same_v<T, events::TokenRevoked>) {
          v.push_back(kRevoked);
        } else if constexpr (std::is_same_v<T, events::TokenDeleted>) {
          v.push_back(kDeleted);
        } else {
          v.push_back(kUsed);
          PutU64(v, static_cast<std::uint64_t>(d.used_at));
        }
      },
      e.data);
  batch_.Put(rocksdb::Slice(key, sizeof(key)), v);
  ++count_;
  if (batch_.GetDataSize() >= kBatchBytes) return Finish();
  return Status::Ok();
}

Status TokenSort::AddRaw(char tag, std::string_view key, std::string_view value) {
  std::string k;
  k.reserve(1 + key.size());
  k.push_back(tag);
  k.append(key);
  batch_.Put(k, rocksdb::Slice(value.data(), value.size()));
  if (batch_.GetDataSize() >= kBatchBytes) return Finish();
  return Status::Ok();
}

Status TokenSort::Finish() {
  if (batch_.Count() == 0) return Status::Ok();
  rocksdb::WriteOptions wo;
  wo.disableWAL = true;
  rocksdb::Status s = db_->Write(wo, &batch_);
  batch_.Clear();
  unflushed_ = true;
  if (!s.ok()) return StorageError(s, "writing the temporary sort database");
  return Status::Ok();
}

std::unique_ptr<rocksdb::Iterator> TokenSort::NewIterator(char tag) {
  if (unflushed_) {  // sorted runs on disk iterate faster than a vector memtable
    rocksdb::FlushOptions fo;
    fo.wait = true;
    db_->Flush(fo).PermitUncheckedError();  // on failure the memtable is iterated instead
    unflushed_ = false;
  }
  // One-byte bounds per tag, pointing into a static table (they must outlive the iterator).
  static const struct Table {
    char bytes[257];
    rocksdb::Slice slices[256];
    Table() {
      for (int i = 0; i < 256; ++i) bytes[i] = static_cast<char>(i);
      for (int i = 0; i < 256; ++i) slices[i] = rocksdb::Slice(bytes + i, 1);
    }
  } table;
  const auto t = static_cast<unsigned char>(tag);
  rocksdb::ReadOptions ro;
  ro.iterate_lower_bound = &table.slices[t];
  ro.iterate_upper_bound = t < 255 ? &table.slices[t + 1] : nullptr;
  ro.fill_cache = false;
  ro.readahead_size = 2u << 20;
  return std::unique_ptr<rocksdb::Iterator>(db_->NewIterator(ro));
}

bool TokenSort::Decode(rocksdb::Slice key, rocksdb::Slice value, events::EventEnvelope* out) {
  if (key.size() != 1 + Id::kBytes + 16 || key[0] != kEventsTag || value.size() < 9) return false;
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
      if (!opt_id(c.created_by_admin_user_id)) return false;
      out->data = c;
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
    default:
      return false;
  }
}

}  // namespace tokenledger::store
