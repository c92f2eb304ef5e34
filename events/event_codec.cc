#include "events/event_codec.h"

#include <array>
#include <boost/json.hpp>
#include <charconv>
#include <cstring>

#include "events/hash_chain.h"

namespace tokenledger::events {
namespace json = boost::json;
namespace {

Error Corrupt(std::string message) { return Error{ErrorCode::kUnexpected, std::move(message), {}}; }

json::value OptId(const std::optional<Id>& id) {
  return id ? json::value(id->ToString()) : json::value(nullptr);
}

}  // namespace

std::size_t Utf8SequenceLength(std::string_view at) {
  if (at.empty()) return 0;
  const auto b0 = static_cast<unsigned char>(at[0]);
  std::size_t n;
  unsigned char lo = 0x80, hi = 0xbf;  // bounds of the second byte
  if (b0 >= 0xc2 && b0 <= 0xdf) {
    n = 2;
  } else if (b0 >= 0xe0 && b0 <= 0xef) {
    n = 3;
    if (b0 == 0xe0) lo = 0xa0;
    if (b0 == 0xed) hi = 0x9f;
  } else if (b0 >= 0xf0 && b0 <= 0xf4) {
    n = 4;
    if (b0 == 0xf0) lo = 0x90;
    if (b0 == 0xf4) hi = 0x8f;
  } else {
    return 0;
  }
  if (at.size() < n) return 0;
  const auto b1 = static_cast<unsigned char>(at[1]);
  if (b1 < lo || b1 > hi) return 0;
  for (std::size_t i = 2; i < n; ++i) {
    const auto b = static_cast<unsigned char>(at[i]);
    if (b < 0x80 || b > 0xbf) return 0;
  }
  return n;
}

bool IsWellFormedUtf8(std::string_view text) {
  for (std::size_t i = 0; i < text.size();) {
    if (static_cast<unsigned char>(text[i]) < 0x80) {
      ++i;
      continue;
    }
    const std::size_t n = Utf8SequenceLength(text.substr(i));
    if (n == 0) return false;
    i += n;
  }
  return true;
}

namespace {

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

Result<std::optional<std::string>> GetOptString(const json::object& o, std::string_view key) {
  auto v = Field(o, key);
  if (!v) return v.error();
  if ((*v)->is_null()) return std::optional<std::string>();
  auto text = GetString(o, key);
  if (!text) return text.error();
  return std::optional<std::string>(std::move(*text));
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
    auto agent = GetOptId(d, "agent_id");
    if (!agent) return agent.error();
    e.agent_id = *agent;
    auto deployment = GetOptId(d, "agent_deployment_id");
    if (!deployment) return deployment.error();
    e.agent_deployment_id = *deployment;
    auto kid = GetOptString(d, "signing_kid");
    if (!kid) return kid.error();
    e.signing_kid = std::move(*kid);
    return EventData(std::move(e));
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
  if (type == "SigningKeyRotated") {
    SigningKeyRotated e;
    auto kid = GetString(d, "kid");
    if (!kid) return kid.error();
    auto previous = GetOptString(d, "previous_kid");
    if (!previous) return previous.error();
    auto by = GetString(d, "by");
    if (!by) return by.error();
    e.kid = std::move(*kid);
    e.previous_kid = std::move(*previous);
    e.by = std::move(*by);
    return EventData(std::move(e));
  }
  if (type == "SigningKeyRetired") {
    SigningKeyRetired e;
    auto kid = GetString(d, "kid");
    if (!kid) return kid.error();
    auto active = GetUint(d, "active_tokens");
    if (!active) return active.error();
    auto by = GetString(d, "by");
    if (!by) return by.error();
    e.kid = std::move(*kid);
    e.active_tokens = *active;
    e.by = std::move(*by);
    return EventData(std::move(e));
  }
  return Corrupt("unknown event type '" + std::string(type) + "'");
}

// ---------------------------------------------------------------------------------------
// The fast path: a cursor over the canonical layout. Every step returns false on anything it
// does not recognise (the caller then falls back to the general path), never an error.
class Canonical {
 public:
  explicit Canonical(std::string_view body) : p_(body.data()), end_(body.data() + body.size()) {}

  bool AtEnd() const { return p_ == end_; }

  bool Lit(std::string_view lit) {
    if (static_cast<std::size_t>(end_ - p_) < lit.size() ||
        std::memcmp(p_, lit.data(), lit.size()) != 0)
      return false;
    p_ += lit.size();
    return true;
  }

  // A JSON number as json::serialize writes an unsigned integer: no sign, no leading zero, no
  // fraction or exponent (the next literal fails on those). At most 19 digits, so no overflow.
  bool Uint(std::uint64_t* v) {
    const char* start = p_;
    std::uint64_t n = 0;
    while (p_ < end_ && *p_ >= '0' && *p_ <= '9' && p_ - start < 20) n = n * 10 + (*p_++ - '0');
    const auto digits = p_ - start;
    if (digits == 0 || digits > 19 || (digits > 1 && *start == '0')) return false;
    *v = n;
    return true;
  }

  // The raw bytes between the quotes of a string that has no escapes and no control
  // characters (the callers check the text further, and none of their texts may contain '\').
  bool RawString(std::string_view* out) {
    if (p_ == end_ || *p_ != '"') return false;
    const char* start = ++p_;
    const void* q = std::memchr(p_, '"', static_cast<std::size_t>(end_ - p_));
    if (!q) return false;
    p_ = static_cast<const char*>(q);
    *out = std::string_view(start, static_cast<std::size_t>(p_ - start));
    ++p_;
    return true;
  }

  bool IdValue(Id* out) {
    if (end_ - p_ < static_cast<std::ptrdiff_t>(Id::kTextLength + 2) || p_[0] != '"' ||
        p_[Id::kTextLength + 1] != '"')
      return false;
    auto id = Id::Parse(std::string_view(p_ + 1, Id::kTextLength));
    if (!id) return false;
    *out = *id;
    p_ += Id::kTextLength + 2;
    return true;
  }

  bool OptIdValue(std::optional<Id>* out) {
    if (Lit("null")) {
      out->reset();
      return true;
    }
    Id id;
    if (!IdValue(&id)) return false;
    *out = id;
    return true;
  }

  bool TimeValue(Micros* out) {
    std::string_view raw;
    if (!RawString(&raw)) return false;
    auto t = ParseRfc3339(raw);  // accepts no '\\' or control character: raw is the text
    if (!t) return false;
    *out = *t;
    return true;
  }

  // Any JSON string, unescaped into `out`, with the checks Boost.JSON makes: no raw control
  // characters, valid escapes, strict UTF-8. Surrogate escapes (\ud800-\udfff) are left to
  // the general path.
  bool StringValue(std::string* out) {
    if (p_ == end_ || *p_ != '"') return false;
    ++p_;
    out->clear();
    const char* run = p_;  // start of the bytes not yet copied
    while (p_ < end_) {
      const auto c = static_cast<unsigned char>(*p_);
      if (c == '"') {
        out->append(run, p_);
        ++p_;
        return true;
      }
      if (c < 0x20) return false;
      if (c < 0x80) {
        if (c != '\\') {
          ++p_;
          continue;
        }
        out->append(run, p_);
        if (!Escape(out)) return false;
        run = p_;
        continue;
      }
      if (!Utf8Sequence()) return false;
    }
    return false;
  }

  bool OptStringValue(std::optional<std::string>* out) {
    if (Lit("null")) {
      out->reset();
      return true;
    }
    if (!out->has_value()) out->emplace();
    return StringValue(&**out);
  }

 private:
  // After a '\\': one escape, appended to `out`.
  bool Escape(std::string* out) {
    if (end_ - p_ < 2) return false;
    const char e = p_[1];
    p_ += 2;
    switch (e) {
      case '"':
        out->push_back('"');
        return true;
      case '\\':
        out->push_back('\\');
        return true;
      case '/':
        out->push_back('/');
        return true;
      case 'b':
        out->push_back('\b');
        return true;
      case 'f':
        out->push_back('\f');
        return true;
      case 'n':
        out->push_back('\n');
        return true;
      case 'r':
        out->push_back('\r');
        return true;
      case 't':
        out->push_back('\t');
        return true;
      case 'u':
        break;
      default:
        return false;
    }
    if (end_ - p_ < 4) return false;
    unsigned cp = 0;
    for (int i = 0; i < 4; ++i) {
      const char h = *p_++;
      unsigned d;
      if (h >= '0' && h <= '9')
        d = static_cast<unsigned>(h - '0');
      else if (h >= 'a' && h <= 'f')
        d = static_cast<unsigned>(h - 'a' + 10);
      else if (h >= 'A' && h <= 'F')
        d = static_cast<unsigned>(h - 'A' + 10);
      else
        return false;
      cp = cp << 4 | d;
    }
    if (cp >= 0xd800 && cp <= 0xdfff) return false;  // surrogates: the general path
    if (cp < 0x80) {
      out->push_back(static_cast<char>(cp));
    } else if (cp < 0x800) {
      out->push_back(static_cast<char>(0xc0 | cp >> 6));
      out->push_back(static_cast<char>(0x80 | (cp & 0x3f)));
    } else {
      out->push_back(static_cast<char>(0xe0 | cp >> 12));
      out->push_back(static_cast<char>(0x80 | (cp >> 6 & 0x3f)));
      out->push_back(static_cast<char>(0x80 | (cp & 0x3f)));
    }
    return true;
  }

  // One multi-byte UTF-8 sequence at p_.
  bool Utf8Sequence() {
    const std::size_t n =
        Utf8SequenceLength(std::string_view(p_, static_cast<std::size_t>(end_ - p_)));
    p_ += n;
    return n != 0;
  }

  const char* p_;
  const char* end_;
};

// The index in EventData of a type name, or -1.
int TypeIndex(std::string_view type) {
  static constexpr std::string_view kNames[] = {"TokenCreated", "TokenSuspended", "TokenActivated",
                                                "TokenRevoked", "TokenDeleted",   "TokenUsed"};
  for (int i = 0; i < 6; ++i)
    if (kNames[i] == type) return i;
  return -1;
}

}  // namespace

bool DecodeCanonicalEventBody(std::string_view body, EventEnvelope* out) {
  Canonical c(body);
  EventEnvelope& e = *out;
  std::string_view type;
  std::uint64_t schema = 0;
  if (!c.Lit("{\"seq\":") || !c.Uint(&e.seq) || !c.Lit(",\"stream\":") || !c.IdValue(&e.stream) ||
      !c.Lit(",\"stream_version\":") || !c.Uint(&e.stream_version) || !c.Lit(",\"type\":") ||
      !c.RawString(&type) || !c.Lit(",\"schema_version\":") || !c.Uint(&schema))
    return false;
  const int index = TypeIndex(type);
  if (index < 0 || schema != CurrentSchemaVersion(type)) return false;  // upcast: general path
  e.schema_version = static_cast<std::uint32_t>(schema);
  if (!c.Lit(",\"at\":") || !c.TimeValue(&e.at) || !c.Lit(",\"actor\":{\"token_id\":") ||
      !c.OptIdValue(&e.actor.token_id) || !c.Lit(",\"admin_user_id\":") ||
      !c.OptIdValue(&e.actor.admin_user_id) || !c.Lit("},\"request_id\":") ||
      !c.StringValue(&e.request_id) || !c.Lit(",\"idempotency_key\":") ||
      !c.OptStringValue(&e.idempotency_key) || !c.Lit(",\"data\":"))
    return false;
  switch (index) {
    case 0: {
      TokenCreated d;
      std::string_view scope;
      if (!c.Lit("{\"account_id\":") || !c.IdValue(&d.account_id) ||
          !c.Lit(",\"environment_id\":") || !c.OptIdValue(&d.environment_id) ||
          !c.Lit(",\"token_scope\":") || !c.RawString(&scope) || !c.Lit(",\"expires_at\":") ||
          !c.TimeValue(&d.expires_at) || !c.Lit(",\"created_by_admin_user_id\":") ||
          !c.OptIdValue(&d.created_by_admin_user_id) || !c.Lit(",\"agent_id\":") ||
          !c.OptIdValue(&d.agent_id) || !c.Lit(",\"agent_deployment_id\":") ||
          !c.OptIdValue(&d.agent_deployment_id) || !c.Lit(",\"signing_kid\":") ||
          !c.OptStringValue(&d.signing_kid) || !c.Lit("}"))
        return false;
      auto s = ParseScope(scope);
      if (!s) return false;
      d.scope = *s;
      e.data = std::move(d);
      break;
    }
    case 5: {
      TokenUsed d;
      if (!c.Lit("{\"used_at\":") || !c.TimeValue(&d.used_at) || !c.Lit("}")) return false;
      e.data = d;
      break;
    }
    default:
      if (!c.Lit("{}")) return false;
      switch (index) {
        case 1:
          e.data = TokenSuspended{};
          break;
        case 2:
          e.data = TokenActivated{};
          break;
        case 3:
          e.data = TokenRevoked{};
          break;
        default:
          e.data = TokenDeleted{};
          break;
      }
  }
  std::string_view prev;
  if (!c.Lit(",\"prev_hash\":") || !c.RawString(&prev) || !c.Lit("}") || !c.AtEnd()) return false;
  const std::optional<Hash> prev_hash = HashFromHex(prev);
  if (!prev_hash) return false;
  e.prev_hash = *prev_hash;
  e.hash = {};
  return true;
}

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
  static const UpcasterRegistry registry = [] {
    UpcasterRegistry r;
    // TokenCreated 1 -> 2: every token before version 2 had no agent and was signed by the
    // ledger's original key (no `kid`).
    r.Register("TokenCreated", 1, [](json::object data) -> Result<json::object> {
      for (std::string_view key : {"agent_id", "agent_deployment_id", "signing_kid"}) {
        if (data.contains(key)) {
          return Corrupt("TokenCreated schema version 1 has a field '" + std::string(key) + "'");
        }
        data[key] = nullptr;
      }
      return data;
    });
    return r;
  }();
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
    d["agent_id"] = OptId(c->agent_id);
    d["agent_deployment_id"] = OptId(c->agent_deployment_id);
    d["signing_kid"] = c->signing_kid ? json::value(*c->signing_kid) : json::value(nullptr);
  } else if (const auto* u = std::get_if<TokenUsed>(&data)) {
    d["used_at"] = FormatRfc3339(u->used_at);
  } else if (const auto* r = std::get_if<SigningKeyRotated>(&data)) {
    d["kid"] = r->kid;
    d["previous_kid"] = r->previous_kid ? json::value(*r->previous_kid) : json::value(nullptr);
    d["by"] = r->by;
  } else if (const auto* t = std::get_if<SigningKeyRetired>(&data)) {
    d["kid"] = t->kid;
    d["active_tokens"] = t->active_tokens;
    d["by"] = t->by;
  }
  return d;
}

namespace {

// The canonical body is what json::serialize wrote for a json::object of these keys in this
// order (insertion order); it is hashed, so these writers must keep every byte of it. They do
// without the object (a fifth of a committed write's CPU on the committer thread):
// EventCodecTest.TheDirectEncodingIsTheJsonObjectsByteForByte compares them with the object's
// serialization for every event type and every byte value in every string.

// A string as json::serialize writes one: '"' and '\\' escaped, \b \t \n \f \r, other
// bytes below 0x20 as \u00xx, every other byte as it is.
void AppendJsonString(std::string& out, std::string_view s) {
  static constexpr std::array<char, 32> kControl = {
      'u', 'u', 'u', 'u', 'u', 'u', 'u', 'u', 'b', 't', 'n', 'u', 'f', 'r', 'u', 'u',
      'u', 'u', 'u', 'u', 'u', 'u', 'u', 'u', 'u', 'u', 'u', 'u', 'u', 'u', 'u', 'u'};
  static constexpr char kHex[] = "0123456789abcdef";
  out += '"';
  std::size_t run = 0;  // start of the bytes not yet appended
  for (std::size_t i = 0; i < s.size(); ++i) {
    const auto c = static_cast<unsigned char>(s[i]);
    if (c >= 0x20 && c != '"' && c != '\\') continue;
    out.append(s.data() + run, i - run);
    run = i + 1;
    out += '\\';
    if (c >= 0x20) {
      out += static_cast<char>(c);
    } else {
      out += kControl[c];
      if (kControl[c] == 'u') {
        out += "00";
        out += kHex[c >> 4];
        out += kHex[c & 15];
      }
    }
  }
  out.append(s.data() + run, s.size() - run);
  out += '"';
}

void AppendOptId(std::string& out, const std::optional<Id>& id) {
  if (!id) {
    out += "null";
    return;
  }
  out += '"';
  id->AppendText(out);
  out += '"';
}

void AppendOptString(std::string& out, const std::optional<std::string>& s) {
  if (s) {
    AppendJsonString(out, *s);
  } else {
    out += "null";
  }
}

void AppendTime(std::string& out, Micros t) {
  char text[kRfc3339Length];
  FormatRfc3339To(t, text);
  out += '"';
  out.append(text, kRfc3339Length);
  out += '"';
}

void AppendNumber(std::string& out, std::uint64_t n) {
  char digits[20];
  const auto end = std::to_chars(digits, digits + sizeof digits, n).ptr;
  out.append(digits, end);
}

// EventDataToJson's object, serialized.
void AppendEventData(std::string& out, const EventData& data) {
  if (const auto* c = std::get_if<TokenCreated>(&data)) {
    out += R"({"account_id":")";
    c->account_id.AppendText(out);
    out += R"(","environment_id":)";
    AppendOptId(out, c->environment_id);
    out += R"(,"token_scope":)";
    AppendJsonString(out, ScopeName(c->scope));
    out += R"(,"expires_at":)";
    AppendTime(out, c->expires_at);
    out += R"(,"created_by_admin_user_id":)";
    AppendOptId(out, c->created_by_admin_user_id);
    out += R"(,"agent_id":)";
    AppendOptId(out, c->agent_id);
    out += R"(,"agent_deployment_id":)";
    AppendOptId(out, c->agent_deployment_id);
    out += R"(,"signing_kid":)";
    AppendOptString(out, c->signing_kid);
    out += '}';
  } else if (const auto* u = std::get_if<TokenUsed>(&data)) {
    out += R"({"used_at":)";
    AppendTime(out, u->used_at);
    out += '}';
  } else if (const auto* r = std::get_if<SigningKeyRotated>(&data)) {
    out += R"({"kid":)";
    AppendJsonString(out, r->kid);
    out += R"(,"previous_kid":)";
    AppendOptString(out, r->previous_kid);
    out += R"(,"by":)";
    AppendJsonString(out, r->by);
    out += '}';
  } else if (const auto* t = std::get_if<SigningKeyRetired>(&data)) {
    out += R"({"kid":)";
    AppendJsonString(out, t->kid);
    out += R"(,"active_tokens":)";
    AppendNumber(out, t->active_tokens);
    out += R"(,"by":)";
    AppendJsonString(out, t->by);
    out += '}';
  } else {
    out += "{}";
  }
}

}  // namespace

std::string EncodeEventBody(const EventEnvelope& e) {
  std::string out;
  out.reserve(640);
  out += R"({"seq":)";
  AppendNumber(out, e.seq);
  out += R"(,"stream":")";
  e.stream.AppendText(out);
  out += R"(","stream_version":)";
  AppendNumber(out, e.stream_version);
  out += R"(,"type":)";
  AppendJsonString(out, TypeName(e.data));
  out += R"(,"schema_version":)";
  AppendNumber(out, e.schema_version);
  out += R"(,"at":)";
  AppendTime(out, e.at);
  out += R"(,"actor":{"token_id":)";
  AppendOptId(out, e.actor.token_id);
  out += R"(,"admin_user_id":)";
  AppendOptId(out, e.actor.admin_user_id);
  out += R"(},"request_id":)";
  AppendJsonString(out, e.request_id);
  out += R"(,"idempotency_key":)";
  AppendOptString(out, e.idempotency_key);
  out += R"(,"data":)";
  AppendEventData(out, e.data);
  out += R"(,"prev_hash":")";
  out += HashToHex(e.prev_hash);
  out += R"("})";
  return out;
}

std::optional<std::string> StampEventBody(std::string_view body, std::uint64_t seq,
                                          const Hash& prev_hash) {
  static constexpr std::string_view kHead = R"({"seq":0,)";
  static const std::string kTail = R"("prev_hash":")" + std::string(64, '0') + R"("})";
  if (body.size() < kHead.size() + kTail.size() || body.substr(0, kHead.size()) != kHead ||
      body.substr(body.size() - kTail.size()) != kTail) {
    return std::nullopt;
  }
  std::string out = R"({"seq":)" + std::to_string(seq) + ",";
  out.append(body.substr(kHead.size(), body.size() - kHead.size() - kTail.size()));
  out.append(R"("prev_hash":")").append(HashToHex(prev_hash)).append(R"("})");
  return out;
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

Result<EventEnvelope> DecodeEventBodyGeneric(std::string_view body,
                                             const UpcasterRegistry& upcasters) {
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

Result<EventEnvelope> DecodeEventBody(std::string_view body, const UpcasterRegistry& upcasters) {
  EventEnvelope e;
  if (DecodeCanonicalEventBody(body, &e)) return e;
  return DecodeEventBodyGeneric(body, upcasters);
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
  EventEnvelope e;
  if (Status s = DecodeStoredEventInto(stored, &e, upcasters); !s) return s.error();
  return e;
}

Status DecodeStoredEventInto(std::string_view stored, EventEnvelope* out,
                             const UpcasterRegistry& upcasters) {
  if (stored.size() < sizeof(Hash)) return Corrupt("stored event is shorter than its hash");
  if (!DecodeCanonicalEventBody(StoredBody(stored), out)) {
    auto e = DecodeEventBodyGeneric(StoredBody(stored), upcasters);
    if (!e) return e.error();
    *out = std::move(*e);
  }
  std::copy_n(reinterpret_cast<const std::uint8_t*>(stored.data()), sizeof(Hash),
              out->hash.begin());
  return Status::Ok();
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
