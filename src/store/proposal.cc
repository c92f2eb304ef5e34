#include "src/store/proposal.h"

#include <boost/json.hpp>
#include <limits>

#include "events/event_codec.h"
#include "events/hash_chain.h"
#include "src/store/keys.h"

namespace tokenledger::store {
namespace json = boost::json;
namespace {

Error Malformed(std::string what) {
  return Error{ErrorCode::kUnexpected, "malformed cluster message: " + what, {}};
}

const json::value* Field(const json::object& o, std::string_view name) {
  return o.if_contains(name);
}

std::optional<std::uint64_t> U64(const json::object& o, std::string_view name) {
  const json::value* v = Field(o, name);
  if (!v) return std::nullopt;
  if (v->is_uint64()) return v->get_uint64();
  if (v->is_int64() && v->get_int64() >= 0) return static_cast<std::uint64_t>(v->get_int64());
  return std::nullopt;
}

// A time in microseconds since the epoch: a non-negative integer that fits Micros (a larger
// one would come back negative, which the encoder writes and this decoder refuses).
std::optional<Micros> Time(const json::object& o, std::string_view name) {
  const auto v = U64(o, name);
  if (!v || *v > static_cast<std::uint64_t>(std::numeric_limits<Micros>::max()))
    return std::nullopt;
  return static_cast<Micros>(*v);
}

std::optional<std::string_view> Str(const json::object& o, std::string_view name) {
  const json::value* v = Field(o, name);
  if (!v || !v->is_string()) return std::nullopt;
  return std::string_view(v->get_string());
}

std::optional<std::string> FromHex(std::string_view hex) {
  if (hex.size() % 2 != 0) return std::nullopt;
  auto nibble = [](char c) -> int {
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    return -1;
  };
  std::string out(hex.size() / 2, '\0');
  for (std::size_t i = 0; i < out.size(); ++i) {
    const int hi = nibble(hex[2 * i]), lo = nibble(hex[2 * i + 1]);
    if (hi < 0 || lo < 0) return std::nullopt;
    out[i] = static_cast<char>(hi << 4 | lo);
  }
  return out;
}

}  // namespace

std::string EncodeProposal(const Proposal& p) {
  json::object o;
  o["v"] = kProposalFormat;
  o["id"] = p.id;
  if (!p.verbatim.empty()) {
    o["verbatim"] = events::BytesToHex(p.verbatim);
    return json::serialize(o);
  }
  o["stream"] = p.stream.ToString();
  o["version"] = p.version;
  o["subject_seq"] = p.subject_seq;
  o["at"] = p.at;
  if (p.idempotency) {
    o["idempotency"] = json::object{{"account", p.idempotency->account_id.ToString()},
                                    {"key", p.idempotency->key},
                                    {"fingerprint", events::HashToHex(p.idempotency->fingerprint)}};
  }
  o["applied"] = p.applied;
  if (!p.applied) {
    o["rejection"] = json::object{{"code", WireCode(p.rejection.code)},
                                  {"message", p.rejection.message},
                                  {"field", p.rejection.field}};
  }
  if (p.used_at) o["used_at"] = *p.used_at;
  json::array evs;
  for (const auto& e : p.events) {
    if (e.seq == 0 && e.prev_hash == events::Hash{}) {
      evs.emplace_back(events::EncodeEventBody(e));
    } else {
      events::EventEnvelope unstamped = e;
      unstamped.seq = 0;
      unstamped.prev_hash = {};
      evs.emplace_back(events::EncodeEventBody(unstamped));
    }
  }
  o["events"] = std::move(evs);
  return json::serialize(o);
}

Result<Proposal> DecodeProposal(std::string_view bytes) {
  boost::system::error_code ec;
  json::value v = json::parse(bytes, ec);
  if (ec || !v.is_object()) return Malformed("not a JSON object");
  const json::object& o = v.get_object();
  Proposal p;
  const auto format = U64(o, "v");
  if (!format) return Malformed("no format version");
  if (*format > kProposalFormat) {
    return Error{ErrorCode::kUnavailable,
                 "cluster message of format " + std::to_string(*format) +
                     " was written by a newer release; upgrade this node",
                 {}};
  }
  const auto id = Str(o, "id");
  if (!id) return Malformed("no id");
  p.id = std::string(*id);
  if (const auto verbatim = Str(o, "verbatim")) {
    auto bytes_out = FromHex(*verbatim);
    if (!bytes_out || bytes_out->size() <= 32) return Malformed("bad verbatim record");
    p.verbatim = std::move(*bytes_out);
    return p;
  }
  const auto stream = Str(o, "stream");
  const auto version = U64(o, "version");
  const auto subject_seq = U64(o, "subject_seq");
  const auto at = Time(o, "at");
  const json::value* applied = Field(o, "applied");
  if (!stream || !version || !subject_seq || !at || !applied || !applied->is_bool()) {
    return Malformed("stream, version, subject_seq, at or applied missing");
  }
  auto stream_id = Id::Parse(*stream);
  if (!stream_id) return Malformed("bad stream id");
  p.stream = *stream_id;
  p.version = *version;
  p.subject_seq = *subject_seq;
  p.at = *at;
  p.applied = applied->get_bool();
  if (const json::value* idem = Field(o, "idempotency")) {
    if (!idem->is_object()) return Malformed("bad idempotency");
    const json::object& io = idem->get_object();
    const auto account = Str(io, "account");
    const auto key = Str(io, "key");
    const auto fingerprint = Str(io, "fingerprint");
    std::optional<Id> account_id = account ? Id::Parse(*account) : std::nullopt;
    std::optional<events::Hash> fp = fingerprint ? events::HashFromHex(*fingerprint) : std::nullopt;
    if (!account_id || !key || key->empty() || !fp) return Malformed("bad idempotency");
    p.idempotency = IdempotencyInfo{*account_id, std::string(*key), *fp};
  }
  if (!p.applied) {
    const json::value* rj = Field(o, "rejection");
    if (!rj || !rj->is_object() || !p.idempotency) return Malformed("bad rejection");
    const json::object& ro = rj->get_object();
    const auto code = Str(ro, "code");
    const auto message = Str(ro, "message");
    const auto field = Str(ro, "field");
    if (!code || !message || !field) return Malformed("bad rejection");
    if (*code == WireCode(ErrorCode::kInvalidAction)) {
      p.rejection.code = ErrorCode::kInvalidAction;
    } else if (*code == WireCode(ErrorCode::kNotFound)) {
      p.rejection.code = ErrorCode::kNotFound;
    } else {
      return Malformed("rejection code '" + std::string(*code) + "' is not recorded");
    }
    p.rejection.message = std::string(*message);
    p.rejection.field = std::string(*field);
  }
  if (Field(o, "used_at")) {
    p.used_at = Time(o, "used_at");
    if (!p.used_at) return Malformed("bad used_at");
  }
  const json::value* evs = Field(o, "events");
  if (!evs || !evs->is_array()) return Malformed("no events");
  std::uint64_t expected_version = p.version;
  for (const json::value& ev : evs->get_array()) {
    if (!ev.is_string()) return Malformed("an event is not a string");
    const std::string_view body = ev.get_string();
    // An event this release cannot read (a newer schema version or type) or lay out: this
    // node must stop before it, not skip it (nodes that can read it apply it).
    auto e = events::DecodeEventBody(body);
    if (!e || !events::StampEventBody(body, 1, events::Hash{})) {
      return Error{ErrorCode::kUnavailable,
                   "cluster message " + p.id + " holds an event this release cannot apply (" +
                       (e ? std::string("layout") : e.error().message) + "); upgrade this node",
                   {}};
    }
    if (e->stream != p.stream || e->stream_version != ++expected_version) {
      return Malformed("an event's stream or version does not follow the proposal's");
    }
    p.events.push_back(std::move(*e));
    p.bodies.emplace_back(body);
  }
  return p;
}

}  // namespace tokenledger::store
