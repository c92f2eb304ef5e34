// The OpenAPI document cannot drift from the server: real responses of every operation are
// validated against the schemas it declares for them, and every path it lists is routed.
#include <regex>

#include "tests/e2e/e2e_util.h"

namespace tokenledger::e2e {
namespace {
namespace json = boost::json;

// The subset of JSON Schema (2020-12) the document uses (anyOf included).
class SchemaValidator {
 public:
  explicit SchemaValidator(json::value doc) : doc_(std::move(doc)) {}

  const json::value& Resolve(const json::value& node) const {
    const json::value* n = &node;
    while (n->is_object() && n->as_object().contains("$ref")) {
      std::string ref(n->at("$ref").as_string());
      EXPECT_EQ(ref.rfind("#/", 0), 0u) << ref;
      n = &doc_;
      std::size_t pos = 2;
      while (pos <= ref.size()) {
        const std::size_t slash = ref.find('/', pos);
        const std::string part =
            ref.substr(pos, slash == std::string::npos ? std::string::npos : slash - pos);
        n = &n->at(part);
        if (slash == std::string::npos) break;
        pos = slash + 1;
      }
    }
    return *n;
  }

  void Validate(const json::value& schema_node, const json::value& v, const std::string& path,
                std::vector<std::string>& errors) const {
    const json::object& s = Resolve(schema_node).as_object();
    auto fail = [&](const std::string& what) {
      errors.push_back(path + ": " + what + " (value " + json::serialize(v) + ")");
    };
    if (const auto* any = s.if_contains("anyOf")) {
      bool matched = false;
      for (const auto& option : any->as_array()) {
        std::vector<std::string> option_errors;
        Validate(option, v, path, option_errors);
        matched = matched || option_errors.empty();
      }
      if (!matched) fail("matches none of anyOf");
    }
    if (const auto* type = s.if_contains("type")) {
      std::vector<std::string> types;
      if (type->is_string())
        types.emplace_back(type->as_string());
      else
        for (const auto& t : type->as_array()) types.emplace_back(t.as_string());
      bool ok = false;
      for (const auto& t : types) ok = ok || TypeMatches(t, v);
      if (!ok) return fail("type is not " + json::serialize(*type));
    }
    if (const auto* c = s.if_contains("const"); c && *c != v) fail("is not " + json::serialize(*c));
    if (const auto* e = s.if_contains("enum")) {
      bool found = false;
      for (const auto& option : e->as_array()) found = found || option == v;
      if (!found) fail("is not one of " + json::serialize(*e));
    }
    if (v.is_string()) {
      const std::string str(v.as_string());
      if (const auto* p = s.if_contains("pattern");
          p && !std::regex_search(str, std::regex(std::string(p->as_string()))))
        fail("does not match pattern");
      if (const auto* f = s.if_contains("format"); f && *f == "date-time" && !ParseRfc3339(str))
        fail("is not a date-time");
      if (const auto* m = s.if_contains("minLength"); m && str.size() < m->to_number<std::size_t>())
        fail("too short");
      if (const auto* m = s.if_contains("maxLength"); m && str.size() > m->to_number<std::size_t>())
        fail("too long");
    }
    if (v.is_number()) {
      const double d = v.to_number<double>();
      if (const auto* m = s.if_contains("minimum"); m && d < m->to_number<double>())
        fail("below minimum");
      if (const auto* m = s.if_contains("maximum"); m && d > m->to_number<double>())
        fail("above maximum");
    }
    if (v.is_object()) {
      const json::object& o = v.as_object();
      if (const auto* req = s.if_contains("required")) {
        for (const auto& k : req->as_array()) {
          if (!o.contains(k.as_string()))
            fail("lacks required '" + std::string(k.as_string()) + "'");
        }
      }
      const json::object* props =
          s.contains("properties") ? &s.at("properties").as_object() : nullptr;
      for (const auto& [k, child] : o) {
        if (props && props->contains(k)) {
          Validate(props->at(k), child, path + "." + std::string(k), errors);
        } else if (const auto* extra = s.if_contains("additionalProperties")) {
          if (extra->is_bool() && !extra->as_bool())
            fail("has undeclared property '" + std::string(k) + "'");
          else if (extra->is_object())
            Validate(*extra, child, path + "." + std::string(k), errors);
        }
      }
    }
    if (v.is_array()) {
      if (const auto* items = s.if_contains("items")) {
        for (std::size_t i = 0; i < v.as_array().size(); ++i)
          Validate(*items, v.as_array()[i], path + "[" + std::to_string(i) + "]", errors);
      }
    }
  }

  // Validates a response of `method` on documented `path` against its declared schema.
  void CheckResponse(const std::string& method, const std::string& path, const Response& r) const {
    SCOPED_TRACE(method + " " + path + " -> " + std::to_string(r.status));
    const json::value& op = doc_.at("paths").at(path).at(method);
    const json::object& responses = op.at("responses").as_object();
    ASSERT_TRUE(responses.contains(std::to_string(r.status)))
        << "status " << r.status << " is not documented: " << r.body;
    const json::value& response = Resolve(responses.at(std::to_string(r.status)));
    const json::object& content = response.at("content").as_object();
    if (content.contains("text/plain")) return;
    const json::value& schema = content.at("application/json").at("schema");
    boost::system::error_code ec;
    const json::value body = json::parse(r.body, ec);
    ASSERT_FALSE(ec) << r.body;
    std::vector<std::string> errors;
    Validate(schema, body, "$", errors);
    for (const auto& e : errors) ADD_FAILURE() << e;
    ++checked;
  }

  mutable int checked = 0;
  const json::value& doc() const { return doc_; }

 private:
  static bool TypeMatches(const std::string& t, const json::value& v) {
    if (t == "object") return v.is_object();
    if (t == "array") return v.is_array();
    if (t == "string") return v.is_string();
    if (t == "integer") return v.is_int64() || v.is_uint64();
    if (t == "number") return v.is_number();
    if (t == "boolean") return v.is_bool();
    if (t == "null") return v.is_null();
    return false;
  }
  json::value doc_;
};

class OpenApiTest : public E2ETest {
 protected:
  void SetUp() override {
    E2ETest::SetUp();
    env_token_ = Seed(account_, ids_.Generate());
    gateway_ = SeedGateway();
    StartServer();
    validator_ = std::make_unique<SchemaValidator>(Call("GET", "/api/v1/openapi.json", "").Json());
  }
  void Check(const std::string& method, const std::string& doc_path, const std::string& target,
             const std::string& jwt, const std::string& body = "") {
    std::string m = method;
    for (auto& c : m) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
    validator_->CheckResponse(m, doc_path, Call(method, target, jwt, body));
  }
  Seeded env_token_, gateway_;
  std::unique_ptr<SchemaValidator> validator_;
};

TEST_F(OpenApiTest, RealResponsesMatchTheDocument) {
  const std::string tokens = "/api/v1/api_token";
  const std::string one = "/api/v1/api_token/{api_token_id}";
  Check("GET", "/api/v1/ping", "/api/v1/ping", main_.jwt);
  Check("GET", "/api/v1/ping", "/api/v1/ping", "");
  Check("POST", tokens, tokens, main_.jwt, R"({"details":{"token_scope":"account"}})");
  Check("POST", tokens, tokens, main_.jwt,
        R"({"details":{"token_scope":"environment","environment_id":")" +
            ids_.Generate().ToString() + R"(","expires_at":"2099-01-01T00:00:00Z"}})");
  Check("POST", tokens, tokens, main_.jwt, R"({"details":{}})");
  Check("POST", tokens, tokens, main_.jwt, "{oops");
  Check("POST", tokens, tokens, env_token_.jwt, R"({"details":{"token_scope":"account"}})");
  Check("POST", tokens, tokens, main_.jwt, std::string(70000, ' '));
  Check("GET", tokens, tokens, main_.jwt);
  Check("GET", tokens, tokens + "?pagination[page_size]=1&pagination[offset]=1&sorting=-expires_at",
        main_.jwt);
  Check("GET", tokens, tokens + "?pagination[offset]=99", main_.jwt);
  Check("GET", tokens, tokens + "?nope=1", main_.jwt);
  Check("GET", tokens, tokens + "?account_id=" + ids_.Generate().ToString(), main_.jwt);
  const std::string id = JsonString(CreateViaApi(main_.jwt).at("details").at("id"));
  const std::string path = tokens + "/" + id;
  Check("GET", one, path, main_.jwt);
  Check("GET", one, path + "?as_of=" + FormatRfc3339(NowMicros()), main_.jwt);
  Check("GET", one, tokens + "/" + ids_.Generate().ToString(), main_.jwt);
  Check("GET", one, tokens + "/bad", main_.jwt);
  Check("POST", one + "/suspend", path + "/suspend", main_.jwt);
  Check("POST", one + "/suspend", path + "/suspend", main_.jwt);  // 409
  Check("POST", one + "/suspend", path + "/suspend", env_token_.jwt);
  Check("POST", one + "/activate", path + "/activate", main_.jwt, R"({"idempotency_key":"a"})");
  Check("POST", one + "/activate", path + "/activate", main_.jwt,
        R"({"idempotency_key":"a"})");  // replay
  Check("POST", one + "/revoke", path + "/revoke", main_.jwt,
        R"({"idempotency_key":"a"})");  // conflict
  Check("POST", one + "/revoke", path + "/revoke", main_.jwt, "null");
  Check("GET", one + "/events", path + "/events", main_.jwt);
  Check("GET", one + "/events", path + "/events?pagination[page_size]=2&pagination[offset]=1",
        main_.jwt);
  Check("DELETE", one, path, main_.jwt);
  Check("DELETE", one, path, main_.jwt);  // 404
  Check("GET", one + "/events", path + "/events", main_.jwt);
  const std::string introspect = "/api/v1/introspect";
  Check("POST", introspect, introspect, gateway_.jwt, R"({"token":")" + main_.jwt + R"("})");
  Check("POST", introspect, introspect, gateway_.jwt, R"({"token":"nope"})");
  Check("POST", introspect, introspect + "?inactive_status=401", gateway_.jwt,
        R"({"token":"nope"})");
  Check("POST", introspect, introspect, gateway_.jwt, "{}");
  Check("POST", introspect, introspect, main_.jwt, R"({"token":"nope"})");
  Check("POST", introspect, introspect, "", R"({"token":"nope"})");
  Check("GET", "/api/v1/ping", "/api/v1/ping", gateway_.jwt);
  Check("GET", tokens, tokens, gateway_.jwt);
  Check("GET", "/healthz", "/healthz", "");
  Check("GET", "/readyz", "/readyz", "");
  Check("GET", "/metrics", "/metrics", "");
  EXPECT_GT(validator_->checked, 25);
}

TEST_F(OpenApiTest, EveryDocumentedOperationIsRouted) {
  const std::string sample = ids_.Generate().ToString();
  for (const auto& [path, item] : validator_->doc().at("paths").as_object()) {
    std::string target(path);
    if (auto p = target.find("{api_token_id}"); p != std::string::npos)
      target.replace(p, 14, sample);
    for (const auto& [method, op] : item.as_object()) {
      if (method == "parameters") continue;
      std::string m(method);
      for (auto& c : m) c = static_cast<char>(std::toupper(static_cast<unsigned char>(c)));
      Response r = Call(m, target, main_.jwt);
      EXPECT_NE(r.status, 405) << m << " " << path;
      if (r.Header("Content-Type").rfind("application/json", 0) != 0) continue;  // /metrics
      const json::value body = r.Json();
      if (r.status == 404) {
        EXPECT_NE(JsonString(body.at("message")).find("no route"), 0u) << m << " " << path;
      }
      EXPECT_NE(body.as_object().size(), 0u);
    }
  }
}

}  // namespace
}  // namespace tokenledger::e2e
