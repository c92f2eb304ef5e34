// The cluster message codec on arbitrary bytes: what a node reads from the JetStream stream
// (DecodeProposal). It must never crash, and never accept a message it cannot apply: every
// accepted proposal's event bodies stamp (StampEventBody, what the applier stores), and it
// re-encodes to a message that decodes to the same proposal (so every node reads one message
// the same way).
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <string_view>

#include "events/event_codec.h"
#include "src/store/proposal.h"

namespace {

using namespace tokenledger;
using namespace tokenledger::store;

[[noreturn]] void Fail(const char* what) {
  std::fprintf(stderr, "proposal_fuzz: %s\n", what);
  std::abort();
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const std::string_view input(reinterpret_cast<const char*>(data), size);
  auto p = DecodeProposal(input);
  if (!p) return 0;
  if (p->bodies.size() != p->events.size()) Fail("bodies and events differ in number");
  for (const auto& body : p->bodies) {
    if (!events::StampEventBody(body, 1, events::Hash{})) Fail("an accepted body does not stamp");
  }
  const std::string again = EncodeProposal(*p);
  auto back = DecodeProposal(again);
  if (!back) Fail("a re-encoded proposal does not decode");
  if (back->id != p->id || back->stream != p->stream || back->version != p->version ||
      back->subject_seq != p->subject_seq || back->at != p->at || back->applied != p->applied ||
      back->rejection != p->rejection || back->used_at != p->used_at ||
      back->verbatim != p->verbatim || back->events != p->events ||
      back->idempotency.has_value() != p->idempotency.has_value()) {
    Fail("a re-encoded proposal decodes to another");
  }
  if (EncodeProposal(*back) != again) Fail("encoding is not canonical");
  return 0;
}
