#include "src/http/json_views.h"

#include <boost/json/serialize.hpp>
#include <cassert>
#include <cstring>

namespace tokenledger::http {
namespace json = boost::json;
namespace {

// The longest text AppendTokenDetailsJson can write (every optional field present, the longest
// scope and status names: ~730 bytes; tested). The writers size their buffer for it once, so no
// piece checks for room.
constexpr std::size_t kMaxTokenJson = 1024;
[[maybe_unused]] constexpr std::size_t kMaxNameLength = 32;  // a scope's or a status's name

// A cursor over a buffer sized beforehand: keys are copied as literals of known length.
class Cursor {
 public:
  explicit Cursor(char* at) : p_(at) {}
  template <std::size_t N>
  void Lit(const char (&s)[N]) {
    std::memcpy(p_, s, N - 1);
    p_ += N - 1;
  }
  // REQUIRES: `v` is a name (no escapes, at most kMaxNameLength bytes).
  void Name(std::string_view v) {
    assert(v.size() <= kMaxNameLength);
    *p_++ = '"';
    std::memcpy(p_, v.data(), v.size());
    p_ += v.size();
    *p_++ = '"';
  }
  void IdText(const Id& id) {
    *p_++ = '"';
    id.WriteText(p_);
    p_ += Id::kTextLength;
    *p_++ = '"';
  }
  void IdOrNull(const std::optional<Id>& id) {
    if (id) {
      IdText(*id);
    } else {
      Lit("null");
    }
  }
  void Time(Micros t) {
    *p_++ = '"';
    FormatRfc3339To(t, p_);
    p_ += kRfc3339Length;
    *p_++ = '"';
  }
  void TimeOrNull(const std::optional<Micros>& t) {
    if (t) {
      Time(*t);
    } else {
      Lit("null");
    }
  }
  char* at() const { return p_; }

 private:
  char* p_;
};

// The summary's keys, without the closing brace.
void WriteSummaryFields(const core::TokenState& s, Cursor& w) {
  w.Lit("{\"id\":");
  w.IdText(s.id);
  w.Lit(",\"type\":\"api_token\",\"account_id\":");
  w.IdText(s.account_id);
  w.Lit(",\"environment_id\":");
  w.IdOrNull(s.environment_id);
  w.Lit(",\"token_scope\":");
  w.Name(events::ScopeName(s.scope));
  w.Lit(",\"agent_id\":");
  w.IdOrNull(s.agent_id);
  w.Lit(",\"agent_deployment_id\":");
  w.IdOrNull(s.agent_deployment_id);
  w.Lit(",\"status\":");
  w.Name(core::StatusName(s.status));
  w.Lit(",\"created_by_admin_user_id\":");
  w.IdOrNull(s.created_by_admin_user_id);
  w.Lit(",\"expires_at\":");
  w.Time(s.expires_at);
  w.Lit(",\"inserted_at\":");
  w.Time(s.inserted_at);
  w.Lit(",\"updated_at\":");
  w.Time(s.updated_at);
  w.Lit(",\"last_used_at\":");
  w.TimeOrNull(s.last_used_at);
}

// Runs `write` on a Cursor over room for kMaxTokenJson bytes at the end of `out`, then trims
// `out` to what was written.
template <typename Write>
void AppendBounded(std::string& out, Write write) {
  const std::size_t at = out.size();
  out.resize(at + kMaxTokenJson);
  Cursor w(out.data() + at);
  write(w);
  const auto n = static_cast<std::size_t>(w.at() - (out.data() + at));
  assert(n <= kMaxTokenJson);
  out.resize(at + n);
}

}  // namespace

void AppendIdOrNull(std::string& out, const std::optional<Id>& id) {
  if (id) {
    out += '"';
    id->AppendText(out);
    out += '"';
  } else {
    out += "null";
  }
}

void AppendTokenSummaryJson(const core::TokenState& s, std::string& out) {
  AppendBounded(out, [&s](Cursor& w) {
    WriteSummaryFields(s, w);
    w.Lit("}");
  });
}

void AppendTokenDetailsJson(const projections::TokenRow& row, std::string& out) {
  AppendBounded(out, [&row](Cursor& w) {
    WriteSummaryFields(row.state, w);
    w.Lit(",\"status_changed_at\":");
    w.Time(row.status_changed_at);
    w.Lit(",\"revoked_at\":");
    w.TimeOrNull(row.revoked_at);
    const core::AvailableActions a = core::ActionsFor(row.state.status);
    const auto flag = [&w](bool b) {
      if (b) {
        w.Lit("true");
      } else {
        w.Lit("false");
      }
    };
    w.Lit(",\"available_actions\":{\"activate\":");
    flag(a.activate);
    w.Lit(",\"delete\":");
    flag(a.del);
    w.Lit(",\"revoke\":");
    flag(a.revoke);
    w.Lit(",\"suspend\":");
    flag(a.suspend);
    w.Lit("}}");
  });
}

HttpResponse TokenDetailsResponse(const projections::TokenRow& row,
                                  const std::optional<std::string>& jwt) {
  HttpResponse r;
  r.body.reserve(64 + kMaxTokenJson + (jwt ? jwt->size() : 0));
  r.body = R"({"status":"success","details":)";
  AppendTokenDetailsJson(row, r.body);
  if (jwt) {
    r.body += R"(,"token":")";
    r.body += *jwt;
    r.body += '"';
  }
  r.body += '}';
  return r;
}

json::object PaginationJson(std::uint64_t count, std::uint64_t offset, std::uint64_t page_size,
                            std::uint64_t rows) {
  json::object p;
  p["item_count"] = count;
  p["item_start"] = rows == 0 ? 0 : offset + 1;
  p["item_end"] = rows == 0 ? 0 : offset + rows;
  p["page_count"] = (count + page_size - 1) / page_size;
  p["page_index"] = offset / page_size + 1;
  p["page_offset"] = offset;
  p["page_size"] = page_size;
  p["next_page_offset"] =
      offset + page_size < count ? json::value(offset + page_size) : json::value(nullptr);
  p["previous_page_offset"] =
      offset > 0 ? json::value(offset > page_size ? offset - page_size : 0) : json::value(nullptr);
  return p;
}

HttpResponse SuccessResponse(const json::object& body) {
  HttpResponse r;
  r.body = json::serialize(body);
  return r;
}

}  // namespace tokenledger::http
