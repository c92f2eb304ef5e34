#include "events/event_codec.h"

#include <boost/json.hpp>

#include "events/hash_chain.h"

namespace tokenledger::events {
namespace json = boost::json;
namespace {

Error Corrupt(std::string message) { return Error{ErrorCode::kUnexpected, std::move(message), {}}; }

json::value OptId(const std::optional<Id>& id) {
  return id ? json::value(id->ToString()) : json::value(nullptr);
}

// Typed field readers: each fails with a message naming the field.
Result<const json::value*> Field(const json::object& o, std::string_view key) {
  const json::value* v = o.if_contains(key);
  if (!v) return Corrupt("event field '" + std::string(key) + "' is missing");
  return v;
}

Result<std::string> GetString(const json::object& o, std::string_view key) {
  auto v = Field(o, key);
  if (!v) return v.error();
  if (!(*v)->is_string()) return Corrupt("event field '" + std::string(key) + "' is not a string");
  return std::string((*v)->get_string());
}

Result<std::uint64_t> GetUint(const json::object& o, std::string_view key) {
  auto v = Field(o, key);
  if (!v) return v.error();
  if ((*v)->is_uint64()) return (*v)->get_uint64();
  if ((*v)->is_int64() && (*v)->get_int64() >= 0)
    return static_cast<std::uint64_t>((*v)->get_int64());
  return Corrupt("event field '" + std::string(key) + "' is not an unsigned integer");
}

Result<Id> GetId(const json::object& o, std::string_view key) {
  auto s = GetString(o, key);
  if (!s) return s.error();
  auto id = Id::Parse(*s);
  if (!id) return Corrupt("event field '" + std::string(key) + "' is not a valid id");
  return *id;
}

Result<std::optional<Id>> GetOptId(const json::object& o, std::string_view key) {
  auto v = Field(o, key);
  if (!v) return v.error();
  if ((*v)->is_null()) return std::optional<Id>();
  auto id = GetId(o, key);
  if (!id) return id.error();
  return std::optional<Id>(*id);
}

Result<Micros> GetTime(const json::object& o, std::string_view key) {
  auto s = GetString(o, key);
  if (!s) return s.error();
  auto t = ParseRfc3339(*s);
  if (!t) return Corrupt("event field '" + std::string(key) + "' is not an RFC 3339 time");
  return *t;
}

Result<const json::object*> GetObject(const json::object& o, std::string_view key) {
  auto v = Field(o, key);
  if (!v) return v.error();
  if (!(*v)->is_object()) return Corrupt("event field '" + std::string(key) + "' is not an object");
  return &(*v)->get_object();
}

Result<EventData> DecodeData(std::string_view type, const json::object& d) {
  if (type == "TokenCreated") {
    TokenCreated e;
    auto account = GetId(d, "account_id");
    if (!account) return account.error();
    e.account_id = *account;
    auto env = GetOptId(d, "environment_id");
    if (!env) return env.error();
    e.environment_id = *env;
    auto scope_name = GetString(d, "token_scope");
    if (!scope_name) return scope_name.error();
    auto scope = ParseScope(*scope_name);
    if (!scope) return Corrupt("event field 'token_scope' has an unknown value");
    e.scope = *scope;
    auto expires = GetTime(d, "expires_at");
    if (!expires) return expires.error();
    e.expires_at = *expires;
    auto admin = GetOptId(d, "created_by_admin_user_id");
    if (!admin) return admin.error();
    e.created_by_admin_user_id = *admin;
    return EventData(e);
  }
  if (type == "TokenSuspended") return EventData(TokenSuspended{});
  if (type == "TokenActivated") return EventData(TokenActivated{});
  if (type == "TokenRevoked") return EventData(TokenRevoked{});
  if (type == "TokenDeleted") return EventData(TokenDeleted{});
  if (type == "TokenUsed") {
    auto used = GetTime(d, "used_at");
    if (!used) return used.error();
    return EventData(TokenUsed{*used});
  }
  return Corrupt("unknown event type '" + std::string(type) + "'");
}

}  // namespace

void UpcasterRegistry::Register(std::string type, std::uint32_t from_version, Upcaster upcaster) {
  steps_[{std::move(type), from_version}] = std::move(upcaster);
}

Result<json::object> UpcasterRegistry::Upcast(std::string_view type, std::uint32_t version,
                                              json::object data) const {
  const std::uint32_t current = CurrentSchemaVersion(type);
  if (version > current) {
    return Corrupt("event type '" + std::string(type) + "' has schema version " +
                   std::to_string(version) + ", this release reads versions 1.." +
                   std::to_string(current) + " (written by a newer release?)");
  }
  while (version < current) {
    auto it = steps_.find(std::pair<std::string, std::uint32_t>(std::string(type), version));
    if (it == steps_.end()) {
      return Corrupt("no upcaster for '" + std::string(type) + "' from schema version " +
                     std::to_string(version));
    }
    auto next = it->second(std::move(data));
    if (!next) return next.error();
    data = std::move(next).value();
    ++version;
  }
  return data;
}

const UpcasterRegistry& DefaultUpcasters() {
  static const UpcasterRegistry registry;
  return registry;
}

json::object EventDataToJson(const EventData& data) {
  json::object d;
  if (const auto* c = std::get_if<TokenCreated>(&data)) {
    d["account_id"] = c->account_id.ToString();
    d["environment_id"] = OptId(c->environment_id);
    d["token_scope"] = ScopeName(c->scope);
    d["expires_at"] = FormatRfc3339(c->expires_at);
    d["created_by_admin_user_id"] = OptId(c->created_by_admin_user_id);
  } else if (const auto* u = std::get_if<TokenUsed>(&data)) {
    d["used_at"] = FormatRfc3339(u->used_at);
  }
  return d;
}

std::string EncodeEventBody(const EventEnvelope& e) {
  // boost::json::object keeps insertion order, which makes this encoding canonical.
  json::object o;
  o["seq"] = e.seq;
  o["stream"] = e.stream.ToString();
  o["stream_version"] = e.stream_version;
  o["type"] = TypeName(e.data);
  o["schema_version"] = e.schema_version;
  o["at"] = FormatRfc3339(e.at);
  o["actor"] = json::object{{"token_id", OptId(e.actor.token_id)},
                            {"admin_user_id", OptId(e.actor.admin_user_id)}};
  o["request_id"] = e.request_id;
  o["idempotency_key"] = e.idempotency_key ? json::value(*e.idempotency_key) : json::value(nullptr);
  o["data"] = EventDataToJson(e.data);
  o["prev_hash"] = HashToHex(e.prev_hash);
  return json::serialize(o);
}

std::string EncodeStoredEvent(EventEnvelope& e) {
  const std::string body = EncodeEventBody(e);
  e.hash = Sha256(body);
  std::string out;
  out.reserve(e.hash.size() + body.size());
  out.append(reinterpret_cast<const char*>(e.hash.data()), e.hash.size());
  out.append(body);
  return out;
}

Result<EventEnvelope> DecodeEventBody(std::string_view body, const UpcasterRegistry& upcasters) {
  boost::system::error_code ec;
  json::value root = json::parse(body, ec);
  if (ec || !root.is_object()) return Corrupt("event body is not a JSON object");
  const json::object& o = root.get_object();
  EventEnvelope e;
  auto seq = GetUint(o, "seq");
  if (!seq) return seq.error();
  e.seq = *seq;
  auto stream = GetId(o, "stream");
  if (!stream) return stream.error();
  e.stream = *stream;
  auto version = GetUint(o, "stream_version");
  if (!version) return version.error();
  e.stream_version = *version;
  auto type = GetString(o, "type");
  if (!type) return type.error();
  auto schema = GetUint(o, "schema_version");
  if (!schema) return schema.error();
  if (*schema > 0xffffffffu) return Corrupt("event field 'schema_version' is out of range");
  auto at = GetTime(o, "at");
  if (!at) return at.error();
  e.at = *at;
  auto actor = GetObject(o, "actor");
  if (!actor) return actor.error();
  auto actor_token = GetOptId(**actor, "token_id");
  if (!actor_token) return actor_token.error();
  e.actor.token_id = *actor_token;
  auto actor_admin = GetOptId(**actor, "admin_user_id");
  if (!actor_admin) return actor_admin.error();
  e.actor.admin_user_id = *actor_admin;
  auto request_id = GetString(o, "request_id");
  if (!request_id) return request_id.error();
  e.request_id = std::move(*request_id);
  auto key = Field(o, "idempotency_key");
  if (!key) return key.error();
  if (!(*key)->is_null()) {
    if (!(*key)->is_string()) return Corrupt("event field 'idempotency_key' is not a string");
    e.idempotency_key = std::string((*key)->get_string());
  }
  auto data = GetObject(o, "data");
  if (!data) return data.error();
  auto upcast = upcasters.Upcast(*type, static_cast<std::uint32_t>(*schema), **data);
  if (!upcast) return upcast.error();
  auto decoded = DecodeData(*type, *upcast);
  if (!decoded) return decoded.error();
  e.data = std::move(*decoded);
  e.schema_version = CurrentSchemaVersion(*type);
  auto prev = GetString(o, "prev_hash");
  if (!prev) return prev.error();
  auto prev_hash = HashFromHex(*prev);
  if (!prev_hash) return Corrupt("event field 'prev_hash' is not 64 hex digits");
  e.prev_hash = *prev_hash;
  return e;
}

std::string_view StoredBody(std::string_view stored) {
  return stored.size() < sizeof(Hash) ? std::string_view() : stored.substr(sizeof(Hash));
}

bool StoredHashMatches(std::string_view stored) {
  if (stored.size() < sizeof(Hash)) return false;
  const Hash h = Sha256(StoredBody(stored));
  return std::equal(h.begin(), h.end(), reinterpret_cast<const std::uint8_t*>(stored.data()));
}

Result<EventEnvelope> DecodeStoredEvent(std::string_view stored,
                                        const UpcasterRegistry& upcasters) {
  if (stored.size() < sizeof(Hash)) return Corrupt("stored event is shorter than its hash");
  auto e = DecodeEventBody(StoredBody(stored), upcasters);
  if (!e) return e.error();
  std::copy_n(reinterpret_cast<const std::uint8_t*>(stored.data()), sizeof(Hash), e->hash.begin());
  return e;
}

// Deliberately not built from EncodeEventBody: the stored body is a disk format that must never
// change, while this wire shape may grow; sharing code would couple the two.
json::object EventToApiJson(const EventEnvelope& e) {
  json::object o;
  o["seq"] = e.seq;
  o["stream_version"] = e.stream_version;
  o["type"] = TypeName(e.data);
  o["schema_version"] = e.schema_version;
  o["at"] = FormatRfc3339(e.at);
  o["actor"] = json::object{{"token_id", OptId(e.actor.token_id)},
                            {"admin_user_id", OptId(e.actor.admin_user_id)}};
  o["request_id"] = e.request_id;
  o["idempotency_key"] = e.idempotency_key ? json::value(*e.idempotency_key) : json::value(nullptr);
  o["data"] = EventDataToJson(e.data);
  o["hash"] = HashToHex(e.hash);
  return o;
}

}  // namespace tokenledger::events
