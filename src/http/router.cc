#include "src/http/router.h"

namespace tokenledger::http {

PathSegments SplitPath(std::string_view path) {
  PathSegments segments;
  if (path.empty() || path[0] != '/') return segments;
  std::size_t start = 1;
  for (;;) {
    if (segments.count == PathSegments::kMaxSegments) {
      segments.too_long = true;
      return segments;
    }
    const std::size_t slash = path.find('/', start);
    segments.items[segments.count++] =
        path.substr(start, slash == std::string_view::npos ? slash : slash - start);
    if (slash == std::string_view::npos) break;
    start = slash + 1;
  }
  return segments;
}

bool ParseQuery(std::string_view query, std::vector<std::pair<std::string, std::string>>& out) {
  auto decode = [](std::string_view in, std::string& s) {
    s.clear();
    s.reserve(in.size());
    for (std::size_t i = 0; i < in.size(); ++i) {
      // Runs with nothing to decode (a token in an introspection body: ~250 characters) are
      // copied whole, not a character at a time.
      std::size_t special = i;
      while (special < in.size() && in[special] != '%' && in[special] != '+') ++special;
      s.append(in.data() + i, special - i);
      i = special;
      if (i == in.size()) break;
      if (in[i] == '+') {
        s += ' ';
      } else {  // '%'
        if (i + 2 >= in.size()) return false;
        auto hex = [](char c) -> int {
          if (c >= '0' && c <= '9') return c - '0';
          if (c >= 'a' && c <= 'f') return c - 'a' + 10;
          if (c >= 'A' && c <= 'F') return c - 'A' + 10;
          return -1;
        };
        const int hi = hex(in[i + 1]), lo = hex(in[i + 2]);
        if (hi < 0 || lo < 0) return false;
        s += static_cast<char>(hi * 16 + lo);
        i += 2;
      }
    }
    return true;
  };
  while (!query.empty()) {
    const std::size_t amp = query.find('&');
    const std::string_view part = query.substr(0, amp);
    query = amp == std::string_view::npos ? std::string_view() : query.substr(amp + 1);
    if (part.empty()) continue;
    const std::size_t eq = part.find('=');
    std::string key, value;
    if (!decode(part.substr(0, eq), key)) return false;
    if (eq != std::string_view::npos && !decode(part.substr(eq + 1), value)) return false;
    out.emplace_back(std::move(key), std::move(value));
  }
  return true;
}

}  // namespace tokenledger::http
