// `tokenledger export`: every event as JSON Lines (the format: export_format.h).
#include <fcntl.h>  // sync_file_range
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <filesystem>

#include "tools/tokenledger/cli.h"
#include "tools/tokenledger/commands.h"
#include "tools/tokenledger/export_format.h"
#include "tools/tokenledger/interrupt.h"
#include "tools/tokenledger/progress.h"

namespace tokenledger::cli {
int Export(const Flags& flags) {
  const std::string output = flags.Get("output", "-");
  const std::string temp = output == "-" ? "" : output + ".partial";
  // To a file: stopped cleanly, without one. To stdout a signal keeps its default action, so
  // the output ends mid-line (which import refuses) rather than as a shorter, well-formed
  // ledger: the format has no trailer that would tell the two apart.
  if (!temp.empty()) StopOnSignals();
  Opened opened = OpenReadOnly(flags.Get("data-dir"));
  if (!opened.store) return opened.exit_code;
  std::FILE* out = output == "-" ? stdout : std::fopen(temp.c_str(), "wb");
  if (!out) {
    std::fprintf(stderr, "tokenledger export: cannot write '%s'\n", temp.c_str());
    return kFinding;
  }
  std::uint64_t count = 0;
  static std::vector<char> buffer(1u << 20);  // outlives stdout's last flush
  std::setvbuf(out, buffer.data(), _IOFBF, buffer.size());
  Progress bar("export", opened.store->LastSeq(), flags.Has("quiet"));
  // To a file, the written bytes are sent to the disk every kExportWritebackBytes as the export
  // goes, so the final fsync waits for the last few megabytes, not for the whole file (at 1M
  // events, 600 MB: ~0.4 s of a ~1.8 s export).
  constexpr std::uint64_t kExportWritebackBytes = 16u << 20;
  std::uint64_t written_bytes = 0, sent_bytes = 0;
  Status s = opened.store->ScanStoredEvents(1, [&](std::uint64_t seq, std::string_view record) {
    const std::string line = FormatExportLine(record);
    std::fwrite(line.data(), 1, line.size(), out);
    written_bytes += line.size();
    if (out != stdout && written_bytes - sent_bytes >= kExportWritebackBytes &&
        std::fflush(out) == 0) {
      // Starts the writeback and returns; errors surface at the fsync below.
      ::sync_file_range(::fileno(out), static_cast<off64_t>(sent_bytes),
                        static_cast<off64_t>(written_bytes - sent_bytes), SYNC_FILE_RANGE_WRITE);
      sent_bytes = written_bytes;
    }
    ++count;
    bar.Update(seq);
    return !Stopped();
  });
  bar.Done();
  const bool written = !Stopped() && std::fflush(out) == 0 && !std::ferror(out) &&
                       (out == stdout || ::fsync(::fileno(out)) == 0);
  if (out != stdout) std::fclose(out);
  if (!s || !written) {
    std::fprintf(stderr, "tokenledger export: %s\n",
                 !s          ? s.error().message.c_str()
                 : Stopped() ? "interrupted by a signal; no file was written"
                             : "write failed");
    if (!temp.empty()) std::filesystem::remove(temp);
    return s && Stopped() ? kInterrupted : kFinding;
  }
  if (!temp.empty()) {
    std::error_code ec;
    std::filesystem::rename(temp, output, ec);  // a complete file, or none
    if (ec) {
      std::fprintf(stderr, "tokenledger export: cannot rename '%s' to '%s': %s\n", temp.c_str(),
                   output.c_str(), ec.message().c_str());
      std::filesystem::remove(temp, ec);
      return kFinding;
    }
    // The rename too survives a crash: the directory's entry is synced. (Some file systems
    // cannot sync a directory, EINVAL: nothing more can be done there.)
    const int err = SyncDirectory(std::filesystem::absolute(output).parent_path());
    if (err != 0 && err != EINVAL) {
      std::fprintf(stderr,
                   "tokenledger export: '%s' is complete, but its directory could not be "
                   "synced (%s): a crash now may lose the file's name\n",
                   output.c_str(), std::strerror(err));
      return kFinding;
    }
  }
  std::fprintf(stderr, "exported %llu events\n", static_cast<unsigned long long>(count));
  return kOk;
}

}  // namespace tokenledger::cli
