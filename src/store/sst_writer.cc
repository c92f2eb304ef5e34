#include "src/store/sst_writer.h"

#include <cassert>
#include <cstring>

namespace tokenledger::store {
namespace {

std::uint32_t GetU32(const char* p) {
  std::uint32_t v;
  std::memcpy(&v, p, 4);
  return v;
}

}  // namespace

ParallelSstWriter::ParallelSstWriter(const rocksdb::Options& options,
                                     rocksdb::ColumnFamilyHandle* family, std::string path_prefix,
                                     std::uint64_t file_bytes)
    : options_(options), family_(family), prefix_(std::move(path_prefix)), file_bytes_(file_bytes) {
  assert(file_bytes > 0);
}

ParallelSstWriter::~ParallelSstWriter() {
  for (auto& f : in_flight_) f->thread.join();
}

rocksdb::Status ParallelSstWriter::Put(std::string_view key, std::string_view value) {
  if (!status_.ok()) return status_;
  // A file holds at most file_bytes_ of entries (but for one larger entry): an entry that would
  // not fit starts a file first. The buffer is reserved once (it used to check for a capacity
  // of 0, which a std::string never has, so every buffer grew by doubling): file_bytes_, a
  // whole number of huge pages (BulkBuffer; a std::string asks for its capacity + 1).
  const std::size_t entry = 8 + key.size() + value.size();
  if (!filling_.empty() && filling_.size() + entry > file_bytes_) {
    if (rocksdb::Status s = StartFile(); !s.ok()) return s;
  }
  if (filling_.capacity() < file_bytes_ - 1) filling_.reserve(file_bytes_ - 1);
  const auto k = static_cast<std::uint32_t>(key.size());
  const auto v = static_cast<std::uint32_t>(value.size());
  char header[8];
  std::memcpy(header, &k, 4);
  std::memcpy(header + 4, &v, 4);
  filling_.append(header, 8);
  filling_.append(key);
  filling_.append(value);
  return rocksdb::Status::OK();
}

rocksdb::Status ParallelSstWriter::StartFile() {
  if (filling_.empty() || !status_.ok()) return status_;  // after an error, nothing more
  if (in_flight_.size() >= kSstFilesInFlight) {
    if (rocksdb::Status s = Reap(); !s.ok()) return s;
  }
  auto file = std::make_unique<File>();
  file->entries.swap(filling_);
  filling_.swap(spare_);  // empty, with a reaped file's capacity if there was one
  filling_.clear();
  files_.push_back(prefix_ + "-" + std::to_string(files_.size()) + ".sst");
  File* f = file.get();
  f->thread = std::thread([this, f, path = files_.back()] {
    rocksdb::SstFileWriter writer(rocksdb::EnvOptions(), options_, family_);
    rocksdb::Status s = writer.Open(path);
    const char* p = f->entries.data();
    const char* const end = p + f->entries.size();
    while (s.ok() && p < end) {
      const std::uint32_t k = GetU32(p), v = GetU32(p + 4);
      s = writer.Put(rocksdb::Slice(p + 8, k), rocksdb::Slice(p + 8 + k, v));
      p += 8 + std::size_t{k} + v;
    }
    if (s.ok()) s = writer.Finish();
    f->status = s;
  });
  in_flight_.push_back(std::move(file));
  return status_;
}

rocksdb::Status ParallelSstWriter::Reap() {
  std::unique_ptr<File> f = std::move(in_flight_.front());
  in_flight_.pop_front();
  f->thread.join();
  if (status_.ok()) status_ = f->status;
  f->entries.clear();
  spare_.swap(f->entries);
  return status_;
}

rocksdb::Status ParallelSstWriter::Finish() {
  rocksdb::Status s = StartFile();
  while (!in_flight_.empty()) {
    rocksdb::Status r = Reap();
    if (s.ok()) s = r;
  }
  return s.ok() ? status_ : s;
}

rocksdb::Status ParallelSstWriter::IngestInto(rocksdb::DB* db) const {
  assert(in_flight_.empty());
  if (files_.empty()) return rocksdb::Status::OK();
  rocksdb::IngestExternalFileOptions ingest;
  ingest.move_files = true;  // falls back to a copy across file systems
  return db->IngestExternalFile(family_, files_, ingest);
}

}  // namespace tokenledger::store
