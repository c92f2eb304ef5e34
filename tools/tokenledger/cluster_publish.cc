#include "tools/tokenledger/cluster_publish.h"

#include <cstdio>

#include "src/store/cluster_publisher.h"
#include "tools/tokenledger/export_format.h"
#include "tools/tokenledger/progress.h"

namespace tokenledger::cli {

int ClusterPublish(const Flags& flags) {
  ClusterOptions options;
  options.urls = flags.Get("cluster");
  options.stream = flags.Get("cluster-stream", options.stream);
  if (options.urls.empty()) {
    std::fprintf(stderr, "tokenledger cluster-publish: --cluster URLS is required\n");
    return kUsage;
  }
  const std::string replicas = flags.Get("cluster-replicas", "3");
  if (replicas.size() != 1 || replicas[0] < '1' || replicas[0] > '5') {
    std::fprintf(stderr, "tokenledger cluster-publish: --cluster-replicas must be 1 to 5\n");
    return kUsage;
  }
  options.replicas = replicas[0] - '0';
  const InputFile input(flags.Get("input", "-"), "cluster-publish");
  if (!input.ok()) return kFinding;

  auto publisher = store::ClusterPublisher::Connect(options, StoreOptions().idempotency_ttl);
  if (!publisher) {
    std::fprintf(stderr, "tokenledger cluster-publish: %s\n", publisher.error().message.c_str());
    return publisher.error().code == ErrorCode::kInvalidValue ? kUsage : kFinding;
  }
  LineReader in(input.fd());
  Progress bar("cluster-publish", input.bytes(), flags.Has("quiet"), "bytes");
  std::string_view line;
  std::uint64_t line_no = 0, bytes = 0;
  while (in.Next(&line)) {
    ++line_no;
    bytes += line.size() + 1;
    bar.Update(bytes);
    if (line.empty()) continue;
    auto record = ParseExportLine(line);
    if (!record) {
      std::fprintf(stderr, "tokenledger cluster-publish: line %llu is not an exported event\n",
                   static_cast<unsigned long long>(line_no));
      return kFinding;
    }
    if (Status s = (*publisher)->Publish(*record); !s) {
      std::fprintf(stderr, "tokenledger cluster-publish: line %llu: %s\n",
                   static_cast<unsigned long long>(line_no), s.error().message.c_str());
      return kFinding;
    }
  }
  if (in.error()) {
    std::fprintf(stderr, "tokenledger cluster-publish: cannot read the input\n");
    return kFinding;
  }
  Status done = (*publisher)->Finish();
  bar.Done();
  if (!done) {
    std::fprintf(stderr, "tokenledger cluster-publish: %s\n", done.error().message.c_str());
    return kFinding;
  }
  std::fprintf(stderr, "tokenledger cluster-publish: %llu events published to stream %s\n",
               static_cast<unsigned long long>((*publisher)->Published()), options.stream.c_str());
  return kOk;
}

}  // namespace tokenledger::cli
