// `tokenledger import`: an export loaded into an empty data directory (the format:
// export_format.h).
#include <fcntl.h>
#include <unistd.h>

#include <cstdio>
#include <cstring>
#include <filesystem>
#include <functional>
#include <future>
#include <string_view>
#include <vector>

#include "src/auth/signing_key.h"
#include "src/store/keys.h"
#include "tools/tokenledger/cli.h"
#include "tools/tokenledger/commands.h"
#include "tools/tokenledger/export_format.h"
#include "tools/tokenledger/interrupt.h"
#include "tools/tokenledger/keys.h"
#include "tools/tokenledger/progress.h"

namespace tokenledger::cli {
namespace {

// Records per AppendVerbatim call (all or nothing each); two batches of ~10 MiB at 630 bytes a
// record (up to 16 MiB of buffer each, as a string grows by doubling) are held at once.
constexpr std::size_t kImportBatchRecords = 16384;

// Copies the signing key file (every key of the ring) into the new data directory (0600,
// fsynced) after checking it is a usable key file, so the tokens minted before the export keep
// authenticating after the import.
Status CopySigningKey(const std::string& from, const std::string& data_dir) {
  auto keys = auth::LoadOrCreateKeyFile(from, /*create_if_missing=*/false);
  if (!keys) return keys.error();
  return auth::WriteKeyFile(data_dir + "/signing.key", *keys);
}

}  // namespace

int Import(const Flags& flags) {
  const std::string data_dir = flags.Get("data-dir");
  std::error_code ec;
  const bool existed = std::filesystem::exists(data_dir, ec);
  if (existed && !std::filesystem::is_empty(data_dir, ec)) {
    std::fprintf(stderr,
                 "tokenledger import: '%s' is not empty; import needs an empty data directory\n",
                 data_dir.c_str());
    return kUsage;
  }
  const bool new_key = flags.Has("new-signing-key");
  if (flags.Has("signing-key") == new_key) {
    std::fprintf(stderr,
                 "tokenledger import: give --signing-key FILE (the exported server's signing key, "
                 "usually <its data-dir>/signing.key): the tokens in the ledger are JWTs signed "
                 "with it, and without it every one of them fails with \"token signature is "
                 "invalid\". Only if that is intended, give --new-signing-key instead.\n");
    return kUsage;
  }
  if (!new_key) {  // fail before anything is written
    if (auto keys = auth::LoadOrCreateKeyFile(flags.Get("signing-key"), false); !keys) {
      std::fprintf(stderr, "tokenledger import: --signing-key: %s\n", keys.error().message.c_str());
      return kUsage;
    }
  }
  const InputFile input(flags.Get("input", "-"), "import");
  if (!input.ok()) return kFinding;
  const std::uint64_t input_bytes = input.bytes();
  LineReader in(input.fd());
  // SIGINT/SIGTERM stop the import between batches; the partial directory is then removed.
  // (SIGKILL or a crash leave it marked import_in_progress: the server refuses to serve it.)
  StopOnSignals();
  int rc = kOk;
  std::string error;
  std::uint64_t count = 0;
  const bool quiet = flags.Has("quiet");
  // The marker file comes first, so that no moment of the import leaves a servable directory.
  const std::string marker = data_dir + "/" + store::kImportMarkerFile;
  {
    std::filesystem::create_directories(data_dir, ec);
    const int fd = ::open(marker.c_str(), O_WRONLY | O_CREAT | O_CLOEXEC, 0600);
    const bool ok = fd >= 0 && ::fsync(fd) == 0 && SyncDirectory(data_dir) == 0;
    if (fd >= 0) ::close(fd);
    if (!ok) {
      std::fprintf(stderr, "tokenledger import: cannot write '%s'\n", marker.c_str());
      if (!existed) std::filesystem::remove_all(data_dir, ec);
      return kFinding;
    }
  }
  try {
    Opened opened = OpenExclusive(data_dir, "import");
    if (!opened.store) {
      std::filesystem::remove_all(data_dir, ec);
      if (existed) std::filesystem::create_directories(data_dir, ec);
      return opened.exit_code;
    }
    store::LedgerStore& ledger = *opened.store;
    if (Status s = ledger.BeginImport(flags.Get("temp-dir")); !s) error = s.error().message;
    if (error.empty() && !new_key) {
      if (Status s = CopySigningKey(flags.Get("signing-key"), data_dir); !s)
        error = s.error().message;
    }
    // The next batch is read and parsed on a second thread while the current one is checked
    // and written (hashes, decoding, the sort by token, RocksDB's memtables). Two batches take
    // turns, each one buffer of records reused: a string per record was 16,384 allocations a
    // batch, and glibc gave the freed batch back to the system and faulted it in again for the
    // next (sysmalloc and page faults, ~10% of the load).
    struct Batch {
      std::string bytes;                      // the records, one after the other
      std::vector<std::size_t> ends;          // where each record ends in `bytes`
      std::vector<std::string_view> records;  // views of `bytes`, made once it is complete
      std::string error;
    };
    std::uint64_t line_no = 0, bytes = 0;
    Progress bar("import", input_bytes, quiet, "bytes");
    auto read_batch = [&](Batch& b) {
      b.bytes.clear();
      b.ends.clear();
      b.records.clear();
      b.error.clear();
      std::string_view line;
      while (b.ends.size() < kImportBatchRecords && in.Next(&line)) {
        ++line_no;
        bytes += line.size() + 1;
        bar.Update(bytes, "load");
        if (line.empty()) continue;
        if (!AppendExportRecord(line, b.bytes)) {
          b.error = "line " + std::to_string(line_no) + " is not an exported event";
          break;
        }
        b.ends.push_back(b.bytes.size());
      }
      if (in.error() && b.error.empty())
        b.error = "cannot read the input: " + std::string(std::strerror(in.error()));
      std::size_t begin = 0;
      for (const std::size_t end : b.ends) {
        b.records.emplace_back(b.bytes.data() + begin, end - begin);
        begin = end;
      }
    };
    TimePhase("load");
    Batch batches[2];
    Batch* batch = &batches[0];
    Batch* spare = &batches[1];
    read_batch(*batch);
    while (error.empty() && !batch->records.empty()) {
      ThrowIfStopped();
      std::future<void> next;
      if (batch->error.empty()) next = std::async(std::launch::async, read_batch, std::ref(*spare));
      if (Status s = ledger.AppendVerbatim(batch->records); !s) {
        error = s.error().message;
      } else {
        count += batch->records.size();
      }
      if (error.empty()) error = batch->error;
      if (!next.valid()) break;
      next.get();
      std::swap(batch, spare);
    }
    if (error.empty()) error = batch->error;
    const auto step = StepsOf(bar);
    bar.SetUnit("events");
    if (error.empty()) {
      if (Status s = ledger.RebuildProjections(step, 4096, flags.Get("temp-dir")); !s)
        error = s.error().message;
    }
    // No separate verify pass: the load checked every record's hash, sequence number and link
    // (AppendVerbatim) and decoded it, the rebuild's fold checked every stream's versions, and
    // the projections and the stream index were just derived from those same events.
    // `--verify` runs the full verify as well (a third read of the ledger).
    if (error.empty() && flags.Has("verify")) {
      store::VerifyOptions options;
      options.temp_dir = flags.Get("temp-dir");
      options.progress = step;
      auto report = ledger.Verify(options);
      if (!report) {
        error = report.error().message;
      } else if (!report->findings.empty()) {
        error = "verify after import: " + report->findings[0].message;
      }
    }
    if (error.empty()) {
      ThrowIfStopped();
      TimePhase("finish");
      if (Status s = ledger.FinishImport(); !s) error = s.error().message;
      TimePhase("end");
    }
    // The key ring the server will open: checked now, not at its first start.
    if (error.empty()) error = ImportKeyRing(ledger, data_dir, new_key);
    if (error.empty()) {
      if (::unlink(marker.c_str()) != 0 || SyncDirectory(data_dir) != 0)
        error = "cannot remove '" + marker + "'";
    }
  } catch (const Interrupted&) {
    error = "interrupted by a signal";
  }
  if (!error.empty()) {
    // Nothing half-imported stays behind: the directory was empty before.
    std::filesystem::remove_all(data_dir, ec);
    if (existed) std::filesystem::create_directories(data_dir, ec);
    std::fprintf(stderr, "tokenledger import: %s; nothing was imported\n", error.c_str());
    rc = Stopped() ? kInterrupted : kFinding;
  } else {
    std::fprintf(stderr, "imported %llu events; chain verified, projections rebuilt%s\n",
                 static_cast<unsigned long long>(count),
                 new_key ? "; NO signing key: tokens minted before the export will not "
                           "authenticate"
                         : ", signing key copied");
  }
  return rc;
}

}  // namespace tokenledger::cli
